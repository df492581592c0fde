"""The custodian's pages through the Django test client: each form's effects on the database, the custody
folder and the audit log, and each refused form re-shown with the service's message, storing nothing."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import Allocation, BudgetPolicy, LedgerEntry, User
from clearinghouse.models import AuditEvent, Dataset
from generators.models import GeneratorRun
from generators.services import run_create
from releases.models import Release
from releases.services import release_create
from tests.conftest import DATA, GBSG2_SCHEMA, finish_report, make_user
from tests.portal.conftest import session_client
from tests.test_permissions import events_after, head_seq

CSV = (DATA / "gbsg2_small.csv").read_bytes()


def _csv(content: bytes = CSV, name: str = "cohort.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content, content_type="text/csv")


def _custody_files() -> set[str]:
    return {p.name for p in Path(settings.CUSTODY_DIR).glob("*")}


def _events(seq, action=None):
    return [(e.action, e.outcome) for e in events_after(seq) if action is None or e.action == action]


@pytest.fixture
def cora(custodian):
    return session_client(custodian[0])


@pytest.fixture
def trained(dataset, custodian, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian[0])
    run.refresh_from_db()
    assert run.status == GeneratorRun.Status.SUCCEEDED, run.error
    return run


# --------------------------------------------------------------------------- upload
def test_upload_with_the_inferred_schema_reviewed(cora, custodian):
    before = _custody_files()
    page = cora.get("/custody/upload/")
    assert page.status_code == 200 and b'name="file"' in page.content
    seq = head_seq()
    drafted = cora.post("/custody/upload/", {"step": "draft", "slug": "gbsg2", "name": "GBSG2", "file": _csv()})
    assert drafted.status_code == 200
    assert not Dataset.objects.exists() and _custody_files() == before  # the draft stores nothing
    draft_yaml = drafted.context["form"].initial["schema"]
    draft = yaml.safe_load(draft_yaml)
    assert {c["name"]: c["type"] for c in draft["columns"]}["pid"] == "identifier"
    assert "A draft schema was inferred" in drafted.content.decode()
    assert _events(seq) == [("dataset.upload.draft", AuditEvent.Outcome.SUCCESS)]
    # the custodian reviews the draft: gives age wider public bounds, then sends the file again
    for column in draft["columns"]:
        if column["name"] == "age":
            column["min"], column["max"] = 18, 100
    seq = head_seq()
    done = cora.post("/custody/upload/", {"step": "upload", "slug": "gbsg2", "name": "GBSG2", "description": "six rows",
                                          "schema": yaml.safe_dump(draft, sort_keys=False), "file": _csv()})
    assert done.status_code == 302 and done["Location"] == "/custody/datasets/gbsg2/"
    dataset = Dataset.objects.get(slug="gbsg2")
    assert dataset.n_rows == 6 and dataset.dropped_columns == ["pid"] and dataset.created_by == custodian[0]
    assert next(c for c in dataset.schema["columns"] if c["name"] == "age")["min"] == 18
    assert (Path(settings.CUSTODY_DIR) / dataset.storage_name).is_file()
    assert _events(seq) == [("dataset.upload", AuditEvent.Outcome.SUCCESS)]
    detail = cora.get("/custody/datasets/gbsg2/").content.decode()
    assert "6 rows" in detail and "18 to 100" in detail and "p001" not in detail  # metadata, never a row


def test_upload_with_a_json_schema_file(cora):
    schema = SimpleUploadedFile("schema.json", json.dumps(GBSG2_SCHEMA).encode(), content_type="application/json")
    response = cora.post("/custody/upload/", {"step": "upload", "slug": "g2", "name": "G", "file": _csv(),
                                              "schema_file": schema})
    assert response.status_code == 302 and Dataset.objects.filter(slug="g2").exists()


@pytest.mark.parametrize("case, fields, field, message", [
    ("bad csv", {"file": b"pid,horTh\np1\x00,no\n"}, "file", "NUL byte"),
    ("a failing cell", {"file": CSV.replace(b"p001,no,70", b"p001,no,seventy")}, "file", "Row 1, column age"),
    ("schema errors", {"schema": yaml.safe_dump({"columns": [{"name": "age", "type": "integr"}]})}, "schema",
     "The schema is invalid"),
    ("unreadable schema", {"schema": "columns: [oops"}, "schema", "not valid YAML or JSON"),
    ("bad slug", {"slug": "Has Spaces!"}, "slug", "slug"),
])
def test_bad_upload_is_reshown_with_its_message_and_stores_nothing(cora, custodian, case, fields, field, message):
    posted = {"step": "upload", "slug": "bad-one", "name": "Bad", "schema": json.dumps(GBSG2_SCHEMA)}
    posted.update({k: v for k, v in fields.items() if k != "file"})
    posted["file"] = _csv(fields.get("file", CSV))
    before, seq = _custody_files(), head_seq()
    response = cora.post("/custody/upload/", posted)
    assert response.status_code == 400, case
    form = response.context["form"]
    assert field in form.errors and message in " ".join(form.errors[field]), form.errors
    assert f'value="{posted["name"]}"' in response.content.decode()  # the input is shown again
    assert message.split(",")[0] in response.content.decode()
    assert not Dataset.objects.exists() and _custody_files() == before
    assert [(e.action, e.outcome, e.actor_id) for e in events_after(seq)] == [
        ("dataset.upload", AuditEvent.Outcome.REFUSED, custodian[0].pk)]


def test_a_bad_row_at_the_end_of_a_file_of_many_chunks_is_named_and_nothing_is_stored(cora, custodian, settings,
                                                                                     monkeypatch, tmp_path):
    import clearinghouse.tabular as tabular

    monkeypatch.setattr(tabular, "CHUNK_ROWS", 4)
    spool = tmp_path / "upload-tmp"
    spool.mkdir(mode=0o700)
    settings.UPLOAD_TEMP_DIR, settings.FILE_UPLOAD_TEMP_DIR = spool, str(spool)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # spooled to the private UPLOAD_TEMP_DIR, as a large upload is
    lines = CSV.decode().splitlines()
    content = "\n".join([lines[0], *[lines[1]] * 199, lines[1].replace(",70,", ",98765,")]).encode() + b"\n"
    before, seq = _custody_files(), head_seq()
    response = cora.post("/custody/upload/", {"step": "upload", "slug": "late", "name": "Late",
                                              "schema": json.dumps(GBSG2_SCHEMA), "file": _csv(content)})
    assert response.status_code == 400
    assert "Row 200, column age: above the schema's maximum 100" in response.context["form"].errors["file"]
    assert "98765" not in response.content.decode()
    assert not Dataset.objects.exists() and _custody_files() == before
    assert not any(spool.iterdir())
    assert [(e.action, e.outcome, e.actor_id) for e in events_after(seq)] == [
        ("dataset.upload", AuditEvent.Outcome.REFUSED, custodian[0].pk)]


def test_duplicate_slug_is_refused_on_the_slug_field(cora, dataset):
    seq = head_seq()
    response = cora.post("/custody/upload/", {"step": "upload", "slug": dataset.slug, "name": "Again",
                                              "schema": json.dumps(GBSG2_SCHEMA), "file": _csv()})
    assert response.status_code == 400 and "already exists" in " ".join(response.context["form"].errors["slug"])
    assert Dataset.objects.count() == 1
    assert _events(seq) == [("dataset.upload", AuditEvent.Outcome.REFUSED)]


@pytest.mark.parametrize("copies", [40, 400])  # past the limit while streaming; past it by the declared length
def test_oversized_upload_is_a_form_message_not_a_500(cora, settings, copies):
    settings.MAX_UPLOAD_BYTES = 1024
    assert (len(CSV) * copies > 1024 + 64 * 1024) == (copies == 400)
    before, seq = _custody_files(), head_seq()
    response = cora.post("/custody/upload/", {"step": "upload", "slug": "big", "name": "Big",
                                              "schema": json.dumps(GBSG2_SCHEMA), "file": _csv(CSV * copies)})
    assert response.status_code == 413 and "larger than the limit" in response.content.decode()
    assert not Dataset.objects.exists() and _custody_files() == before
    assert _events(seq) == [("dataset.upload", AuditEvent.Outcome.REFUSED)]


def test_upload_checks_csrf_itself(db):
    from django.test import Client

    user, _ = make_user("cleo", ["custodian"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.post("/custody/upload/", {"step": "upload", "slug": "x", "name": "X",
                                                "schema": json.dumps(GBSG2_SCHEMA), "file": _csv()})
    assert response.status_code == 403 and not Dataset.objects.exists()


# --------------------------------------------------------------------------- train, progress, cancel
def test_train_makes_a_run_and_opens_its_page(cora, dataset, custodian, django_capture_on_commit_callbacks):
    seq = head_seq()
    with django_capture_on_commit_callbacks(execute=False):  # queued, not trained
        response = cora.post(f"/custody/datasets/{dataset.slug}/train/",
                             {"model": "ctgan", "epochs": 3, "seed": 7, "device": "cpu"})
    run = GeneratorRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/custody/runs/{run.pk}/"
    assert (run.model, run.epochs, run.seed, run.device_requested, run.created_by) == ("ctgan", 3, 7, "cpu",
                                                                                      custodian[0])
    assert _events(seq) == [("run.create", AuditEvent.Outcome.SUCCESS)]
    page = cora.get(f"/custody/runs/{run.pk}/").content.decode()
    assert f'data-poll="/custody/runs/{run.pk}/progress.json"' in page and "Waiting for a worker" in page


def test_train_refused_by_the_service_is_reshown(cora, dataset):
    seq = head_seq()
    response = cora.post(f"/custody/datasets/{dataset.slug}/train/",
                         {"model": "copula", "epochs": 10**9, "seed": 0, "device": "cpu"})
    assert response.status_code == 400
    assert "epochs must be between" in " ".join(response.context["train_form"].errors["epochs"])
    assert not GeneratorRun.objects.exists()
    assert _events(seq) == [("run.create", AuditEvent.Outcome.REFUSED)]


def test_progress_json_payload_and_no_audit_row_per_poll(cora, dataset, custodian):
    run = run_create(dataset=dataset, model="ctgan", epochs=4, seed=0, device="cpu", by=custodian[0], enqueue=False)
    GeneratorRun.objects.filter(pk=run.pk).update(status="running", epoch=1, losses={"loss": 0.5})
    seq = head_seq()
    body = cora.get(f"/custody/runs/{run.pk}/progress.json").json()
    assert body["fraction"] == 0.25 and body["epoch"] == 1 and body["epochs"] == 4 and body["status"] == "running"
    assert body["losses"] == {"loss": 0.5} and "eta_seconds" in body and body["done"] is False
    assert body["fields"]["epoch"] == "1 of 4" and body["fields"]["losses"] == "loss 0.5"
    assert events_after(seq) == []
    GeneratorRun.objects.filter(pk=run.pk).update(status="succeeded", epoch=4)
    body = cora.get(f"/custody/runs/{run.pk}/progress.json").json()
    assert body["done"] is True and body["reload"] is True and body["fraction"] == 1.0


def test_a_copula_trains_without_epochs_and_its_progress_says_so(cora, dataset, custodian,
                                                                  django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = cora.post(f"/custody/datasets/{dataset.slug}/train/",
                             {"model": "copula", "epochs": "", "seed": 0, "device": "cpu"})
    run = GeneratorRun.objects.get()
    assert response.status_code == 302 and run.model == "copula"
    body = cora.get(f"/custody/runs/{run.pk}/progress.json").json()
    assert (body["epoch"], body["epochs"], body["fraction"]) == (None, None, 0.0)
    assert body["fields"]["epoch"] == "— (fitted in one pass)"
    assert "no epochs (fitted in one pass), seed 0" in cora.get(f"/custody/runs/{run.pk}/").content.decode()
    GeneratorRun.objects.filter(pk=run.pk).update(status="succeeded", epoch=1)
    assert cora.get(f"/custody/runs/{run.pk}/progress.json").json()["fraction"] == 1.0
    refused = cora.post(f"/custody/datasets/{dataset.slug}/train/",
                        {"model": "flow", "epochs": "", "seed": 0, "device": "cpu"})
    assert refused.status_code == 400
    assert "epochs is required for flow" in " ".join(refused.context["train_form"].errors["epochs"])


def test_cancel_a_queued_run(cora, dataset, custodian):
    run = run_create(dataset=dataset, model="copula", epochs=4, seed=0, device="cpu", by=custodian[0], enqueue=False)
    seq = head_seq()
    response = cora.post(f"/custody/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == GeneratorRun.Status.CANCELLED
    assert _events(seq) == [("run.cancel", AuditEvent.Outcome.SUCCESS)]
    again = cora.post(f"/custody/runs/{run.pk}/cancel/")  # finished: the house page, audited
    assert again.status_code == 409 and b"nothing to cancel" in again.content


def test_cancel_a_running_run_asks_it_to_stop(cora, dataset, custodian):
    run = run_create(dataset=dataset, model="copula", epochs=4, seed=0, device="cpu", by=custodian[0], enqueue=False)
    GeneratorRun.objects.filter(pk=run.pk).update(status="running", epoch=2)
    response = cora.post(f"/custody/runs/{run.pk}/cancel/", follow=True)
    run.refresh_from_db()
    assert run.cancel_requested and run.status == GeneratorRun.Status.RUNNING
    assert "training stops at its next progress report" in response.content.decode()
    assert "(cancel asked)" in response.content.decode()


# --------------------------------------------------------------------------- releases
@pytest.mark.parametrize("posted, conditions, words", [
    ({"kind": "plain", "rows": 6}, None, "plain"),
    ({"kind": "augmented", "rows": 20}, None, "augmented: 20 rows from a cohort of 6"),
    ({"kind": "conditional", "rows": 5, "column": "horTh", "value": "yes"}, {"horTh": "yes"},
     "only rows with horTh = yes"),
    ({"kind": "rebalanced", "rows": 10, "column": "horTh", "shares": "yes: 0.5\nno: 0.5"},
     {"horTh": {"yes": 0.5, "no": 0.5}}, "horTh as no 50 %, yes 50 %"),  # the schema's order: no, yes
])
def test_release_kinds_make_the_right_conditions(cora, trained, posted, conditions, words):
    seq = head_seq()
    response = cora.post(f"/custody/runs/{trained.pk}/release/", {"seed": 3, **posted})
    release = Release.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/custody/releases/{release.pk}/"
    assert release.conditions == conditions and release.rows == posted["rows"] and release.seed == 3
    assert _events(seq, "release.create") == [("release.create", AuditEvent.Outcome.SUCCESS)]
    assert words in cora.get(response["Location"]).content.decode()


@pytest.mark.parametrize("posted, field", [
    ({"kind": "augmented", "rows": 3}, "rows"),
    ({"kind": "conditional", "rows": 5, "column": "horTh"}, "value"),
    ({"kind": "conditional", "rows": 5, "column": "horTh", "value": "maybe"}, "value"),
    ({"kind": "rebalanced", "rows": 5, "column": "horTh", "shares": "yes 0.5"}, "shares"),
])
def test_bad_release_form_is_reshown(cora, trained, posted, field):
    seq = head_seq()
    response = cora.post(f"/custody/runs/{trained.pk}/release/", {"seed": 0, **posted})
    assert response.status_code == 400 and field in response.context["release_form"].errors
    assert not Release.objects.exists()
    assert _events(seq) == [("release.create", AuditEvent.Outcome.REFUSED)]


def test_publish_with_a_failing_gate_needs_a_written_reason(cora, trained, custodian):
    release = finish_report(release_create(run=trained, rows=6, seed=1, by=custodian[0]),
                            **{"privacy.ims": 0.9})
    page = cora.get(f"/custody/releases/{release.pk}/").content.decode()
    assert "Failed" in page and "Publish with this override" in page and "data-confirm" in page
    seq = head_seq()
    response = cora.post(f"/custody/releases/{release.pk}/publish/", {"justification": ""})
    assert response.status_code == 400 and "written reason" in " ".join(
        response.context["publish_form"].errors["justification"])
    release.refresh_from_db()
    assert not release.published and release.gate_override is None
    assert _events(seq) == [("release.publish", AuditEvent.Outcome.REFUSED)]
    short = cora.post(f"/custody/releases/{release.pk}/publish/", {"justification": "too short"})
    assert short.status_code == 400
    assert "at least 20" in short.content.decode() and "too short" in short.content.decode()
    reason = "Membership risk accepted: the cohort is already public in the original trial paper."
    seq = head_seq()
    done = cora.post(f"/custody/releases/{release.pk}/publish/", {"justification": reason})
    assert done.status_code == 302
    release.refresh_from_db()
    assert release.published and release.gate_override["justification"] == reason
    assert release.gate_override["by"] == "cora" and release.gate_override["failed"][0]["metric"] == "privacy.ims"
    assert _events(seq) == [("release.publish", AuditEvent.Outcome.SUCCESS)]
    assert reason in cora.get(f"/custody/releases/{release.pk}/").content.decode()


def test_report_is_served_whole_and_audited(cora, trained, custodian):
    release = finish_report(release_create(run=trained, rows=6, seed=1, by=custodian[0]))
    seq = head_seq()
    response = cora.get(f"/custody/releases/{release.pk}/report/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    assert b"<title>custodian</title>" in response.content
    assert _events(seq) == [("report.read", AuditEvent.Outcome.SUCCESS)]


def test_pending_report_shows_live_progress(cora, trained, custodian):
    release = release_create(run=trained, rows=6, seed=1, by=custodian[0])  # its report is queued on commit: pending
    page = cora.get(f"/custody/releases/{release.pk}/").content.decode()
    assert f'data-poll="/custody/releases/{release.pk}/progress.json"' in page and "still being computed" in page
    seq = head_seq()
    body = cora.get(f"/custody/releases/{release.pk}/progress.json").json()
    assert body["done"] is False and body["fields"]["status"] == "pending" and events_after(seq) == []
    refused = cora.post(f"/custody/releases/{release.pk}/publish/", {})
    assert refused.status_code == 400 and not Release.objects.get(pk=release.pk).published


# --------------------------------------------------------------------------- budgets
def test_policy_form_changes_the_policy(cora, dataset):
    url = f"/custody/datasets/{dataset.slug}/budget/"
    assert cora.get(url).status_code == 200
    seq = head_seq()
    response = cora.post(url, {"action": "policy", "total_cap": "40", "default_allocation": "2.5",
                               "max_epsilon_per_query": "1", "min_subgroup": 10, "daily_limit": 5})
    assert response.status_code == 302
    policy = BudgetPolicy.objects.get(dataset=dataset)
    assert (policy.total_cap, policy.default_allocation, policy.min_subgroup,
            policy.daily_limit) == (Decimal(40), Decimal("2.5"), 10, 5)
    assert _events(seq) == [("budget.policy.set", AuditEvent.Outcome.SUCCESS)]
    seq = head_seq()
    bad = cora.post(url, {"action": "policy", "total_cap": "1.1234567", "default_allocation": "2.5",
                          "max_epsilon_per_query": "1", "min_subgroup": 10, "daily_limit": ""})
    assert bad.status_code == 400 and "decimal places" in " ".join(bad.context["policy_form"].errors["total_cap"])
    assert BudgetPolicy.objects.get(dataset=dataset).total_cap == 40
    assert _events(seq) == [("budget.policy.set", AuditEvent.Outcome.REFUSED)]


def test_allocation_form_sets_an_allocation(cora, dataset, researcher, custodian):
    url = f"/custody/datasets/{dataset.slug}/budget/"
    seq = head_seq()
    response = cora.post(url, {"action": "allocation", "researcher": researcher[0].pk, "epsilon": "3.5"})
    assert response.status_code == 302
    allocation = Allocation.objects.get(user=researcher[0], dataset=dataset)
    assert str(allocation.epsilon.normalize()) == "3.5"
    assert LedgerEntry.objects.filter(user=researcher[0], dataset=dataset, by=custodian[0]).count() == 1
    assert _events(seq, "budget.allocation.set") == [("budget.allocation.set", AuditEvent.Outcome.SUCCESS)]
    page = cora.get(url).content.decode()
    assert 'data-researcher="rhea"' in page and "3.5" in page
    seq = head_seq()
    bad = cora.post(url, {"action": "allocation", "researcher": researcher[0].pk, "epsilon": "lots"})
    assert bad.status_code == 400 and "must be a number" in " ".join(bad.context["allocation_form"].errors["epsilon"])
    assert str(Allocation.objects.get(pk=allocation.pk).epsilon.normalize()) == "3.5"
    assert _events(seq) == [("budget.allocation.set", AuditEvent.Outcome.REFUSED)]


# --------------------------------------------------------------------------- researchers
def test_verify_a_researcher(cora, custodian, unverified):
    home = cora.get("/home/").content.decode()
    assert 'href="/custody/"' in home and "Datasets in custody" in home and 'href="/custody/researchers/"' in home
    page = cora.get("/custody/researchers/").content.decode()
    assert 'data-pending="uma"' in page
    assert "Researchers awaiting verification: <span data-pending>1</span>" in cora.get("/custody/").content.decode()
    seq = head_seq()
    response = cora.post(f"/custody/researchers/{unverified[0].pk}/verify/")
    assert response.status_code == 302
    user = User.objects.get(pk=unverified[0].pk)
    assert user.verified_at is not None and user.verified_by == custodian[0]
    assert _events(seq) == [("accounts.verify", AuditEvent.Outcome.SUCCESS)]
    again = cora.post(f"/custody/researchers/{unverified[0].pk}/verify/")
    assert again.status_code == 409 and b"already verified" in again.content
