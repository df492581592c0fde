"""Synthetic releases: sampling (plain, augmented, conditional, rebalanced), the files and their
datasheet, bad input, conflicts, who sees what, streamed and audited downloads, the ``release`` command.

Each test trains its own generator through ``generators.services`` (``run_create``, then the
on-commit eager Celery task). A Gaussian copula with ``epochs=1`` trains on the six-row
``dataset`` fixture in a few hundredths of a second, so a per-test run (the database is rolled back
after each test) costs less than sharing one would; the one CTGAN test trains for two epochs.
The split is seeded: with training seed 0 the holdout is row 4 (p004), so the five training rows
hold both ``horTh`` categories, ``tgrade`` II and III, and no ``tgrade`` I.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from clearinghouse.models import AuditEvent
from releases.models import Release
from clearinghouse.services.datasets import dataset_create
from releases.services import release_create, release_publish
from releases.storage import DATASHEET_FILE
from generators.core.models import TrainingDiverged
from generators.core.models.copula import GaussianCopula
from generators.models import GeneratorRun
from generators.services import checkpoint_path, run_cancel, run_create
from tests.conftest import DATA, GBSG2_SCHEMA, finish_report, last_event

pytestmark = pytest.mark.django_db

KEPT = [c["name"] for c in GBSG2_SCHEMA["columns"] if c["type"] != "identifier"]
CATEGORIES = {c["name"]: c["categories"] for c in GBSG2_SCHEMA["columns"] if c["type"] == "categorical"}
COPULA_DEFAULTS = {"n_quantiles": 256, "shrinkage": 0.01}


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def train(dataset, by, capture, *, model: str = "copula", epochs: int = 1, seed: int = 0, **extra) -> GeneratorRun:
    """A run created by the service and trained by the eager task when the (captured) commit happens."""
    with capture(execute=True):
        run = run_create(dataset=dataset, model=model, epochs=epochs, seed=seed, device="cpu", by=by, **extra)
    run.refresh_from_db()
    assert run.status == GeneratorRun.Status.SUCCEEDED, run.error
    return run


@pytest.fixture
def run(dataset, custodian, django_capture_on_commit_callbacks) -> GeneratorRun:
    return train(dataset, custodian[0], django_capture_on_commit_callbacks)


def releases_root() -> Path:
    return Path(settings.RELEASES_DIR)


def on_disk() -> list[str]:
    """Everything under RELEASES_DIR, staging folders (hidden) included."""
    root = releases_root()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def create(client: APIClient, run: GeneratorRun, body, **extra):
    return client.post(f"/api/v1/runs/{run.pk}/releases/", body, format="json", **extra)


def made(client: APIClient, run: GeneratorRun, **body) -> dict:
    response = create(client, run, body)
    assert response.status_code == 201, response.content
    return response.json()


def download(client: APIClient, release_id: int, kind: str, **headers):
    """(response, body). Reading a streamed body to its end closes the response and its file; closing it by hand
    would fire request_finished, which closes the database connection the test's transaction is in."""
    response = client.get(f"/api/v1/releases/{release_id}/data.{kind}", **headers)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response, content


def read_csv(content: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(content))


def read_parquet(content: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(content))


def frames(client: APIClient, release_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(CSV, Parquet) as downloaded; the Parquet cast to the CSV's dtypes, and the two checked equal."""
    csv_response, csv_bytes = download(client, release_id, "csv")
    parquet_response, parquet_bytes = download(client, release_id, "parquet")
    assert csv_response.status_code == parquet_response.status_code == 200
    from_csv, from_parquet = read_csv(csv_bytes), read_parquet(parquet_bytes)
    assert list(from_csv.columns) == list(from_parquet.columns) == KEPT
    pd.testing.assert_frame_equal(from_csv, from_parquet.astype(from_csv.dtypes.to_dict()))
    return from_csv, from_parquet


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def assert_rows_follow_the_schema(frame: pd.DataFrame) -> None:
    for column in GBSG2_SCHEMA["columns"]:
        name = column["name"]
        if column["type"] == "identifier":
            assert name not in frame.columns  # dropped at import: never generated
        elif column["type"] == "categorical":
            assert set(frame[name]) <= set(column["categories"]), name
        elif column["type"] == "event":
            assert set(frame[name]) <= {0, 1}
        else:
            assert frame[name].between(column["min"], column["max"]).all(), name
            if column["type"] == "integer":
                assert (frame[name] == frame[name].round()).all(), name
    assert not frame.isna().any().any()


# --------------------------------------------------------------------------------------------
# Plain, augmented, conditional and rebalanced releases
# --------------------------------------------------------------------------------------------

def test_it_makes_a_plain_release_at_the_real_size(clients, run, dataset, custodian):
    body = made(clients["custodian"], run, rows=dataset.n_rows, seed=3)

    assert (body["dataset"], body["run"], body["rows"], body["seed"], body["conditions"], body["published"]) == (
        "gbsg2-small", run.pk, 6, 3, None, False)
    release = Release.objects.get(pk=body["id"])
    assert (release.rows, release.created_by, release.published_at) == (6, custodian[0], None)
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id, event.channel) == (
        "release.create", "success", custodian[0].pk, "release", str(release.pk), "api")
    assert event.details == {"run": run.pk, "dataset": "gbsg2-small", "rows": 6, "seed": 3, "conditions": None}
    from_csv, _ = frames(clients["custodian"], release.pk)
    assert len(from_csv) == dataset.n_rows
    assert_rows_follow_the_schema(from_csv)


def test_it_augments_the_cohort_to_three_times_its_real_size(clients, run, dataset):
    body = made(clients["custodian"], run, rows=3 * dataset.n_rows)

    from_csv, from_parquet = frames(clients["custodian"], body["id"])
    assert len(from_csv) == len(from_parquet) == body["rows"] == 18
    assert_rows_follow_the_schema(from_csv)


def test_it_makes_a_conditional_release_whose_two_files_agree_with_each_other_and_the_datasheet(clients, run):
    body = made(clients["custodian"], run, rows=40, seed=5, conditions={"horTh": "yes"})

    assert body["conditions"] == {"horTh": "yes"}
    csv_response, csv_bytes = download(clients["custodian"], body["id"], "csv")
    parquet_response, parquet_bytes = download(clients["custodian"], body["id"], "parquet")
    from_csv, from_parquet = frames(clients["custodian"], body["id"])
    assert len(from_csv) == 40 and set(from_csv["horTh"]) == {"yes"}
    assert set(from_parquet["horTh"].astype(str)) == {"yes"}
    assert_rows_follow_the_schema(from_csv)
    files = body["datasheet"]["files"]
    assert files == {"csv": {"name": "data.csv", "bytes": len(csv_bytes), "sha256": sha256(csv_bytes)},
                     "parquet": {"name": "data.parquet", "bytes": len(parquet_bytes), "sha256": sha256(parquet_bytes)}}
    assert body["files"] == {
        "csv": {"url": f"/api/v1/releases/{body['id']}/data.csv", "bytes": len(csv_bytes), "sha256": sha256(csv_bytes)},
        "parquet": {"url": f"/api/v1/releases/{body['id']}/data.parquet", "bytes": len(parquet_bytes),
                    "sha256": sha256(parquet_bytes)}}
    assert csv_response["Content-Length"] == str(len(csv_bytes))
    assert parquet_response["Content-Length"] == str(len(parquet_bytes))


def test_it_keeps_every_listed_category_and_no_other(clients, run):
    body = made(clients["custodian"], run, rows=30, conditions={"tgrade": ["II", "III"], "horTh": "no"})

    from_csv, _ = frames(clients["custodian"], body["id"])
    assert len(from_csv) == 30 and set(from_csv["horTh"]) == {"no"} and set(from_csv["tgrade"]) <= {"II", "III"}


@pytest.mark.parametrize(("rows", "expected"), [(40, {"yes": 20, "no": 20}), (41, {"yes": 21, "no": 20})])
def test_it_rebalances_a_column_to_exactly_the_proportions_asked_for(clients, run, rows, expected):
    body = made(clients["custodian"], run, rows=rows, seed=2, conditions={"horTh": {"yes": 0.5, "no": 0.5}})

    from_csv, from_parquet = frames(clients["custodian"], body["id"])
    assert from_csv["horTh"].value_counts().to_dict() == expected
    assert from_parquet["horTh"].astype(str).value_counts().to_dict() == expected
    assert from_csv["horTh"].iloc[: rows // 2].nunique() == 2  # the two groups are interleaved, not stacked


def test_it_honours_the_conditions_with_a_torch_model_and_repeats_its_rows_for_the_same_seed(
        clients, dataset, custodian, django_capture_on_commit_callbacks):
    run = train(dataset, custodian[0], django_capture_on_commit_callbacks, model="ctgan", epochs=2)
    first = made(clients["custodian"], run, rows=30, seed=11, conditions={"horTh": "yes"})
    again = made(clients["custodian"], run, rows=30, seed=11, conditions={"horTh": "yes"})
    other = made(clients["custodian"], run, rows=30, seed=12, conditions={"horTh": "yes"})

    from_csv, _ = frames(clients["custodian"], first["id"])
    assert len(from_csv) == 30 and set(from_csv["horTh"]) == {"yes"}
    assert_rows_follow_the_schema(from_csv)
    assert first["files"]["csv"]["sha256"] == again["files"]["csv"]["sha256"]
    assert first["files"]["parquet"]["sha256"] == again["files"]["parquet"]["sha256"]
    assert first["files"]["csv"]["sha256"] != other["files"]["csv"]["sha256"]
    assert first["datasheet"]["generator"]["model"] == "ctgan"


def test_it_writes_the_same_bytes_for_the_same_seed_and_other_bytes_for_another(clients, run):
    first = made(clients["custodian"], run, rows=25, seed=7)
    again = made(clients["custodian"], run, rows=25, seed=7)
    other = made(clients["custodian"], run, rows=25, seed=8)

    for kind in ("csv", "parquet"):
        contents = {key: download(clients["custodian"], body["id"], kind)[1]
                    for key, body in (("first", first), ("again", again), ("other", other))}
        assert contents["first"] == contents["again"], kind
        assert contents["first"] != contents["other"], kind
    assert first["id"] != again["id"]
    stored = Release.objects.get(pk=first["id"]).storage_name, Release.objects.get(pk=again["id"]).storage_name
    assert stored[0] != stored[1]  # each release has its own folder, even with identical rows


# --------------------------------------------------------------------------------------------
# The datasheet and the files on disk
# --------------------------------------------------------------------------------------------

def test_it_writes_a_datasheet_with_provenance_and_known_limits(clients, dataset, custodian,
                                                               django_capture_on_commit_callbacks):
    run = train(dataset, custodian[0], django_capture_on_commit_callbacks, seed=0,
                hyperparameters={"shrinkage": 0.05})
    body = made(clients["custodian"], run, rows=12, seed=9, conditions={"horTh": "yes"})
    sheet = body["datasheet"]
    release = Release.objects.get(pk=body["id"])

    assert sheet["source_dataset"] == {"slug": "gbsg2-small", "name": "GBSG2 (small)", "rows": 6, "columns": 10}
    generator = sheet["generator"]
    assert (generator["run"], generator["model"], generator["epochs"], generator["training_seed"],
            generator["device"], generator["trained_rows"]) == (run.pk, "copula", None, 0, "cpu", 5)  # one pass
    assert generator["hyperparameters"] == {**COPULA_DEFAULTS, "shrinkage": 0.05}  # defaults filled in
    assert datetime.fromisoformat(generator["trained_at"]) == run.finished_at
    assert (sheet["seed"], sheet["rows"], sheet["conditions"]) == (9, 12, {"horTh": "yes"})
    created = datetime.fromisoformat(sheet["created_at"])
    assert created.tzinfo is not None and abs((created - release.created_at).total_seconds()) < 5
    assert sheet["schema"] == dataset.schema
    limits = sheet["known_limits"]
    assert isinstance(limits, list) and len(limits) >= 4 and all(isinstance(x, str) and x for x in limits)
    assert any("differential privacy" in x for x in limits)
    assert any("Conditional release" in x and '"horTh": "yes"' in x for x in limits)
    assert set(sheet["files"]) == {"csv", "parquet"}
    for kind in ("csv", "parquet"):
        assert sheet["files"][kind]["bytes"] == getattr(release, f"{kind}_bytes")
        assert sheet["files"][kind]["sha256"] == getattr(release, f"{kind}_sha256")
    # datasheet.json on disk, the database row and the API say the same
    on_file = json.loads((releases_root() / release.storage_name / DATASHEET_FILE).read_text(encoding="utf-8"))
    assert on_file == sheet == release.datasheet
    detail = clients["custodian"].get(f"/api/v1/releases/{release.pk}/").json()
    assert detail["datasheet"] == on_file


def test_it_lists_no_conditional_limit_for_a_plain_release(clients, run):
    sheet = made(clients["custodian"], run, rows=6)["datasheet"]
    assert sheet["conditions"] is None
    assert not any("Conditional release" in x for x in sheet["known_limits"])
    assert sheet["generator"]["hyperparameters"] == COPULA_DEFAULTS


def test_it_writes_the_three_files_into_the_release_folder_and_leaves_no_staging_folder(clients, run):
    before = set(on_disk())
    body = made(clients["custodian"], run, rows=10)
    release = Release.objects.get(pk=body["id"])

    folder = releases_root() / release.storage_name
    assert sorted(p.name for p in folder.iterdir()) == ["data.csv", "data.parquet", "datasheet.json"]
    added = set(on_disk()) - before
    assert added == {release.storage_name, *(f"{release.storage_name}/{n}" for n in
                                             ("data.csv", "data.parquet", "datasheet.json"))}
    assert not [p for p in releases_root().iterdir() if p.name.startswith(".")]  # no staging folder left
    for kind in ("csv", "parquet"):
        content = (folder / f"data.{kind}").read_bytes()
        assert (len(content), sha256(content)) == (getattr(release, f"{kind}_bytes"), getattr(release, f"{kind}_sha256"))
    assert "storage_name" not in json.dumps(body) and release.storage_name not in json.dumps(body)


def test_it_leaves_no_folder_and_no_row_when_writing_fails(run, custodian, monkeypatch):
    before, count = on_disk(), Release.objects.count()

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        release_create(run=run, rows=10, seed=0, by=custodian[0])
    assert on_disk() == before
    assert Release.objects.count() == count
    assert not AuditEvent.objects.filter(action="release.create").exists()


def test_it_removes_the_written_folder_when_the_row_cannot_be_stored(run, custodian, monkeypatch):
    from releases import services as releases

    before = on_disk()

    def broken(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(releases, "audit_record", broken)
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        release_create(run=run, rows=10, seed=0, by=custodian[0])
    assert on_disk() == before
    assert not Release.objects.exists()


# --------------------------------------------------------------------------------------------
# Bad input: a 400 naming the problem; nothing stored; the refusal audited
# --------------------------------------------------------------------------------------------

BAD_INPUT = [
    pytest.param({"rows": 0}, "invalid_rows", "rows must be between 1 and 10, not 0", id="rows-zero"),
    pytest.param({"rows": -5}, "invalid_rows", "rows must be between 1 and 10, not -5", id="rows-negative"),
    pytest.param({"rows": 11}, "invalid_rows", "rows must be between 1 and 10, not 11", id="rows-above-the-limit"),
    pytest.param({"rows": 12.5}, "invalid", "rows: A valid integer is required.", id="rows-fraction"),
    pytest.param({"rows": "many"}, "invalid", "rows: A valid integer is required.", id="rows-text"),
    pytest.param({"rows": True}, "invalid", "rows: A valid integer is required.", id="rows-boolean"),
    pytest.param({"seed": 1}, "invalid", "rows: This field is required.", id="rows-missing"),
    pytest.param({"rows": 5, "seed": -1}, "invalid_seed", "seed must be between 0 and 4294967295, not -1",
                 id="seed-negative"),
    pytest.param({"rows": 5, "seed": 2**32}, "invalid_seed", "seed must be between 0 and 4294967295, not 4294967296",
                 id="seed-too-large"),
    pytest.param({"rows": 5, "conditions": {"colour": "blue"}}, "invalid_conditions", "unknown column 'colour'",
                 id="unknown-column"),
    pytest.param({"rows": 5, "conditions": {"pid": "p001"}}, "invalid_conditions", "unknown column 'pid'",
                 id="identifier-column"),
    pytest.param({"rows": 5, "conditions": {"horTh": "maybe"}}, "invalid_conditions",
                 "conditions.horTh: unknown category 'maybe' (declared: no, yes)", id="unknown-category"),
    pytest.param({"rows": 5, "conditions": {"tgrade": ["II", "IV"]}}, "invalid_conditions",
                 "unknown category 'IV'", id="unknown-category-in-a-list"),
    pytest.param({"rows": 5, "conditions": {"horTh": {"yes": 0.5, "perhaps": 0.5}}}, "invalid_conditions",
                 "unknown category 'perhaps'", id="unknown-category-in-proportions"),
    pytest.param({"rows": 5, "conditions": {"age": 50}}, "invalid_conditions",
                 "column 'age' is integer; only categorical and event columns", id="numeric-column"),
    pytest.param({"rows": 5, "conditions": {"tgrade": "I"}}, "invalid_conditions",
                 "category 'I' has no training rows", id="category-without-training-rows"),
    pytest.param({"rows": 5, "conditions": {"tgrade": {"I": 0.5, "II": 0.5}}}, "invalid_conditions",
                 "category 'I' has no training rows", id="proportion-of-a-category-without-training-rows"),
    pytest.param({"rows": 5, "conditions": {"horTh": {"yes": 0.7, "no": 0.7}}}, "invalid_conditions",
                 "proportions must add up to 1", id="proportions-not-summing-to-one"),
    pytest.param({"rows": 5, "conditions": {"horTh": {"yes": 1.5, "no": -0.5}}}, "invalid_conditions",
                 "a proportion between 0 and 1", id="proportion-out-of-range"),
    pytest.param({"rows": 5, "conditions": {"horTh": []}}, "invalid_conditions",
                 "a category, a list of categories", id="empty-list"),
    pytest.param({"rows": 5, "conditions": {"horTh": {"yes": 0.5, "no": 0.5}, "tgrade": ["II", "III"]}},
                 "invalid_conditions", "at most one column", id="two-split-columns"),
    pytest.param({"rows": 5, "conditions": ["horTh", "yes"]}, "invalid_conditions", "conditions must be an object",
                 id="conditions-a-list"),
    pytest.param({"rows": 5, "conditions": "horTh=yes"}, "invalid_conditions", "conditions must be an object",
                 id="conditions-a-string"),
    pytest.param({"rows": 5, "colour": "blue"}, "invalid", "colour: Unknown field.", id="unknown-field"),
    pytest.param([{"rows": 5}], "invalid", "Invalid data. Expected a dictionary", id="body-a-list"),
]


@pytest.mark.parametrize(("body", "code", "message"), BAD_INPUT)
def test_it_refuses_bad_input_naming_the_problem_and_stores_nothing(clients, run, custodian, settings, body, code,
                                                                   message):
    settings.RELEASE_MAX_ROWS = 10
    before, count = on_disk(), Release.objects.count()

    response = create(clients["custodian"], run, body)

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and message in error["message"], error
    assert Release.objects.count() == count
    assert on_disk() == before
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "release.create", "refused", custodian[0].pk, "run", str(run.pk))
    assert (event.details["status"], event.details["code"]) == (400, code)


def test_it_refuses_a_body_that_is_not_json(clients, run):
    before = on_disk()
    response = clients["custodian"].generic("POST", f"/api/v1/runs/{run.pk}/releases/", b'{"rows": 5',
                                            content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_request"
    assert not Release.objects.exists() and on_disk() == before


def test_it_takes_null_conditions_as_none(clients, run):
    body = made(clients["custodian"], run, rows=5, conditions=None)
    assert body["conditions"] is None and body["datasheet"]["conditions"] is None


def test_it_refuses_a_category_seen_only_in_the_holdout(clients, custodian, django_capture_on_commit_callbacks):
    """p004 (the holdout row for training seed 0) is the only tgrade I patient: declared, in the data, never trained on."""
    lines = (DATA / "gbsg2_small.csv").read_text().splitlines()
    lines[4] = lines[4].replace(",II,", ",I,")
    assert lines[4].startswith("p004,") and ",I," in lines[4]
    dataset = dataset_create(slug="holdout-grade", name="tgrade I only in the holdout", schema=GBSG2_SCHEMA,
                             data=("\n".join(lines) + "\n").encode(), by=custodian[0])
    run = train(dataset, custodian[0], django_capture_on_commit_callbacks, seed=0)
    assert run.holdout_rows == [3]

    response = create(clients["custodian"], run, {"rows": 5, "conditions": {"tgrade": "I"}})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_conditions", "details": None,
        "message": "conditions.tgrade: category 'I' has no training rows, so the model cannot generate it"}
    assert not Release.objects.exists()


def test_it_refuses_conditions_too_rare_to_sample_with_a_400(clients, run, monkeypatch):
    """Rejection sampling gives up below the model's minimum acceptance rate: bad input, not a 500."""
    monkeypatch.setattr(GaussianCopula, "min_acceptance", 0.99)  # horTh yes is 2 of the 5 training rows
    before = on_disk()
    response = create(clients["custodian"], run, {"rows": 100_000, "conditions": {"horTh": "yes"}})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_conditions" and "too rare" in error["message"]
    assert not Release.objects.exists() and on_disk() == before


def test_it_answers_404_for_an_unknown_run(clients):
    response = clients["custodian"].post("/api/v1/runs/987654/releases/", {"rows": 5}, format="json")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


# --------------------------------------------------------------------------------------------
# Conflicts: only a succeeded run makes releases; a release is published once
# --------------------------------------------------------------------------------------------

def _failed(dataset, by, capture, monkeypatch) -> GeneratorRun:
    def diverge(self, *args, **kwargs):
        raise TrainingDiverged("the nll loss became nan at epoch 1 of 1")

    monkeypatch.setattr(GaussianCopula, "_fit", diverge)
    with capture(execute=True):
        run = run_create(dataset=dataset, model="copula", epochs=1, device="cpu", by=by)
    run.refresh_from_db()
    return run


def _queued(dataset, by, capture, monkeypatch) -> GeneratorRun:
    return run_create(dataset=dataset, model="copula", epochs=1, device="cpu", by=by, enqueue=False)


def _cancelled(dataset, by, capture, monkeypatch) -> GeneratorRun:
    return run_cancel(run=_queued(dataset, by, capture, monkeypatch), by=by)


@pytest.mark.parametrize(("make", "status"), [(_failed, "failed"), (_queued, "queued"), (_cancelled, "cancelled")])
def test_it_refuses_a_release_from_a_run_that_has_not_succeeded(clients, dataset, custodian, monkeypatch,
                                                                django_capture_on_commit_callbacks, make, status):
    run = make(dataset, custodian[0], django_capture_on_commit_callbacks, monkeypatch)
    assert run.status == status
    before = on_disk()

    response = create(clients["custodian"], run, {"rows": 5})

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "run_not_succeeded" and f"is {status}" in error["message"]
    assert not Release.objects.exists() and on_disk() == before
    event = last_event()
    assert (event.action, event.outcome, event.details["status"]) == ("release.create", "refused", 409)


def test_it_refuses_a_release_when_the_checkpoint_is_gone(clients, run):
    import shutil

    shutil.rmtree(checkpoint_path(run))
    response = create(clients["custodian"], run, {"rows": 5})
    assert response.status_code == 409 and response.json()["error"]["code"] == "checkpoint_missing"
    assert not Release.objects.exists()


def test_it_publishes_once_and_refuses_a_second_publication(clients, run, custodian):
    release_id = made(clients["custodian"], run, rows=5)["id"]
    # the report is queued when the request commits, which never happens in the test's transaction
    finish_report(Release.objects.get(pk=release_id))

    first = clients["custodian"].post(f"/api/v1/releases/{release_id}/publish/")
    assert first.status_code == 200 and first.json()["published"] is True
    published_at = Release.objects.get(pk=release_id).published_at
    assert first.json()["published_at"] is not None
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_id) == (
        "release.publish", "success", custodian[0].pk, str(release_id))

    again = clients["custodian"].post(f"/api/v1/releases/{release_id}/publish/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_published"
    assert Release.objects.get(pk=release_id).published_at == published_at
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("release.publish", "refused", "already_published")


# --------------------------------------------------------------------------------------------
# Who sees what; streamed, audited downloads
# --------------------------------------------------------------------------------------------

@pytest.fixture
def two_releases(run, custodian) -> tuple[Release, Release]:
    """(published, draft), both with a finished report that passes every gate."""
    published = release_publish(release=finish_report(release_create(run=run, rows=8, seed=1, by=custodian[0])),
                                by=custodian[0])
    draft = finish_report(release_create(run=run, rows=9, seed=2, by=custodian[0]))
    return published, draft


def test_researchers_see_only_published_releases(clients, two_releases):
    published, draft = two_releases
    researcher = clients["researcher"]

    listed = researcher.get("/api/v1/releases/").json()
    assert (listed["count"], [r["id"] for r in listed["results"]]) == (1, [published.pk])
    assert researcher.get(f"/api/v1/releases/{published.pk}/").status_code == 200
    assert researcher.get(f"/api/v1/releases/{draft.pk}/").status_code == 404
    for kind in ("csv", "parquet"):
        assert download(researcher, published.pk, kind)[0].status_code == 200
        response, content = download(researcher, draft.pk, kind)
        assert response.status_code == 404 and json.loads(content)["error"]["code"] == "not_found"
    assert researcher.get("/api/v1/releases/987654/").status_code == 404


def test_custodians_see_every_release(clients, two_releases):
    published, draft = two_releases
    custodian = clients["custodian"]

    listed = custodian.get("/api/v1/releases/").json()
    assert [(r["id"], r["published"]) for r in listed["results"]] == [(draft.pk, False), (published.pk, True)]
    assert custodian.get(f"/api/v1/releases/{draft.pk}/").json()["rows"] == 9
    assert download(custodian, draft.pk, "csv")[0].status_code == 200


def test_publishing_opens_a_draft_to_researchers(clients, two_releases):
    _, draft = two_releases
    assert clients["researcher"].get(f"/api/v1/releases/{draft.pk}/").status_code == 404
    assert clients["custodian"].post(f"/api/v1/releases/{draft.pk}/publish/").status_code == 200
    assert clients["researcher"].get(f"/api/v1/releases/{draft.pk}/").json()["published"] is True
    assert {r["id"] for r in clients["researcher"].get("/api/v1/releases/").json()["results"]} == {
        r.pk for r in two_releases}


@pytest.mark.parametrize(("kind", "content_type"), [("csv", "text/csv"), ("parquet", "application/vnd.apache.parquet")])
def test_a_download_is_streamed_as_an_attachment_and_audited(clients, two_releases, researcher, kind, content_type):
    published, _ = two_releases
    response, content = download(clients["researcher"], published.pk, kind)

    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"].split(";")[0] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="gbsg2-small-release-{published.pk}.{kind}"'
    assert (len(content), sha256(content)) == (getattr(published, f"{kind}_bytes"), getattr(published, f"{kind}_sha256"))
    assert content == (releases_root() / published.storage_name / f"data.{kind}").read_bytes()
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.actor_username, event.object_type, event.object_id) == (
        "release.download", "success", researcher[0].pk, "rhea", "release", str(published.pk))
    assert event.details == {"format": kind}


@pytest.mark.parametrize("role", ["anonymous", "unverified", "auditor", "researcher"])
def test_an_error_on_a_download_is_a_json_body_whatever_the_accept_header(clients, two_releases, role):
    _, draft = two_releases
    response, content = download(clients[role], draft.pk, "csv", HTTP_ACCEPT="text/csv")

    expected = {"anonymous": 401, "unverified": 403, "auditor": 403, "researcher": 404}[role]
    assert response.status_code == expected
    assert response["Content-Type"].startswith("application/json")
    body = json.loads(content)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert last_event().action == "release.download" and last_event().outcome in ("denied", "refused")


def test_a_download_of_a_missing_file_is_a_410(clients, two_releases):
    published, _ = two_releases
    (releases_root() / published.storage_name / "data.csv").unlink()
    response, content = download(clients["researcher"], published.pk, "csv", HTTP_ACCEPT="text/csv")
    assert response.status_code == 410 and json.loads(content)["error"]["code"] == "release_file_missing"
    assert download(clients["researcher"], published.pk, "parquet")[0].status_code == 200


# --------------------------------------------------------------------------------------------
# The release command
# --------------------------------------------------------------------------------------------

def finishing_the_report(monkeypatch, **values) -> None:
    """The release command's releases get a finished report with these gate metrics (``finish_report``).
    Run for real, without a broker, the report is computed when the release commits, inside the command;
    the test's transaction never commits."""
    import releases.management.commands.release as command

    real = command.release_create
    monkeypatch.setattr(command, "release_create", lambda **kwargs: finish_report(real(**kwargs), **values))


def test_the_release_command_prints_the_release_id_last_and_publishes(run, custodian, monkeypatch):
    finishing_the_report(monkeypatch)
    out, err = io.StringIO(), io.StringIO()
    call_command("release", run.pk, rows=50, publish=True, stdout=out, stderr=err)

    release = Release.objects.get()
    assert out.getvalue().strip().splitlines()[-1] == str(release.pk)
    assert (release.rows, release.seed, release.conditions, release.published, release.published_by) == (
        50, 0, None, True, custodian[0])
    assert f"/api/v1/releases/{release.pk}/data.csv" in err.getvalue()
    events = AuditEvent.objects.filter(action__in=("release.create", "release.publish")).order_by("seq")
    assert [(e.action, e.outcome, e.actor_id, e.channel) for e in events] == [
        ("release.create", "success", custodian[0].pk, "command"),
        ("release.publish", "success", custodian[0].pk, "command")]


def test_the_release_command_does_not_publish_before_the_report_is_ready_and_keeps_the_draft(run, custodian):
    with pytest.raises(CommandError) as raised:
        call_command("release", run.pk, rows=5, publish=True, stdout=io.StringIO(), stderr=io.StringIO())
    assert "[report_not_ready]" in str(raised.value)
    release = Release.objects.get()
    assert (release.published, release.report.status) == (False, "pending")


def test_the_release_command_does_not_publish_a_release_that_fails_a_gate(run, custodian, monkeypatch):
    finishing_the_report(monkeypatch, **{"privacy.ims": 0.25})
    with pytest.raises(CommandError) as raised:
        call_command("release", run.pk, rows=5, publish=True, stdout=io.StringIO(), stderr=io.StringIO())
    assert "[gates_failed]" in str(raised.value) and "ims_max" in str(raised.value)
    assert Release.objects.get().published is False


def test_the_release_command_takes_conditions_and_leaves_a_draft_without_publish(run):
    out = io.StringIO()
    call_command("release", str(run.pk), "--rows", "20", "--seed", "4", "--conditions", '{"horTh": "no"}', stdout=out,
                 stderr=io.StringIO())
    release = Release.objects.get(pk=int(out.getvalue().split()[-1]))
    assert (release.rows, release.seed, release.conditions, release.published) == (20, 4, {"horTh": "no"}, False)
    frame = pd.read_csv(releases_root() / release.storage_name / "data.csv")
    assert set(frame["horTh"]) == {"no"}


@pytest.mark.parametrize(("options", "message"), [
    ({"rows": 5, "conditions": "{horTh: yes"}, "--conditions is not valid JSON"),
    ({"rows": 5, "conditions": '{"horTh": "maybe"}'}, "unknown category 'maybe' (declared: no, yes) [invalid_conditions]"),
    ({"rows": 5, "conditions": '["horTh"]'}, "conditions must be an object"),
    ({"rows": 0}, "rows must be between 1 and"),
    ({"rows": 5, "by": "nobody"}, "'nobody' is not an active custodian."),
])
def test_the_release_command_refuses_bad_input_and_stores_nothing(run, options, message):
    before = on_disk()
    with pytest.raises(CommandError) as raised:
        call_command("release", run.pk, stdout=io.StringIO(), stderr=io.StringIO(), **options)
    assert message in str(raised.value)
    assert not Release.objects.exists() and on_disk() == before


def test_the_release_command_refuses_an_unknown_run(custodian):
    with pytest.raises(CommandError, match="No run with id 987654"):
        call_command("release", 987654, rows=5, stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_a_category_listed_twice_counts_once_and_gives_exactly_the_rows_asked_for(custodian):
    from generators.core.models import make_model
    from tests.conftest import GBSG2_SCHEMA
    from clearinghouse.schema import Schema
    from clearinghouse.tabular import read_csv_checked

    schema = Schema.from_dict(GBSG2_SCHEMA)
    table = read_csv_checked((Path(__file__).resolve().parents[1] / "data" / "gbsg2_small.csv").read_bytes(), schema)
    model = make_model("copula").fit(table, schema, epochs=1, seed=0)
    assert model.plan(10, {"horTh": ["yes", "yes"]}) == [(10, {"horTh": "yes"})]
    rows = model.sample(10, conditions={"horTh": ["yes", "yes"]}, seed=0)
    assert len(rows) == 10 and set(rows["horTh"]) == {"yes"}
