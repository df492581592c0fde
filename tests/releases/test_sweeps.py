"""Model-selection sweeps (issue 4): ``POST /api/v1/datasets/{slug}/sweeps/`` and ``manage.py sweep``.

A sweep trains every model × seed, samples each run ``samples`` times, computes every release's
validation report and ranks the releases that pass the dataset's gates by the documented composite
(``generators.core.evaluation.ranking``); the best is proposed as a draft release.

The sweeps that run here train copulas (hundredths of a second each) on the full GBSG2 cohort, so
that the reports' privacy comparisons can be measured; most of the time goes into the reports.
Without a broker the sweep task is eager: through the API it runs when the request commits (captured
with ``django_capture_on_commit_callbacks(execute=True)``); the command runs it in its own process.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command

from clearinghouse.models import AuditEvent
from releases.models import Release, ReleaseReport
from clearinghouse.services.datasets import dataset_create
from generators.core.evaluation import Report, check_gates
from generators.core.evaluation.ranking import composite_score
from generators.models import GeneratorRun
from releases.models import Sweep
from generators.core.models import MODELS
from releases.sweeps import DEFAULT_MODELS, MAX_SAMPLES, MAX_SEEDS, MAX_TRAININGS
from tests.clearinghouse.conftest import assert_error
from tests.conftest import GBSG2_SCHEMA, last_event

pytestmark = pytest.mark.django_db

CANDIDATE_FIELDS = {"release", "run", "model", "seed", "sample", "report", "composite", "components", "failed_gates",
                    "headline", "passed", "rank"}


@pytest.fixture(autouse=True)
def _models_dir_and_fresh_cache(settings, tmp_path):
    """Checkpoints in a folder of this test's own; DRF's throttle counters (in the cache) cleared."""
    settings.MODELS_DIR = tmp_path / "models"
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def gbsg2(custodian):
    from lifelines.datasets import load_gbsg2

    frame = load_gbsg2()
    frame.insert(0, "pid", [f"GBSG2-{i:04d}" for i in range(1, len(frame) + 1)])
    return dataset_create(slug="gbsg2", name="GBSG2", schema=GBSG2_SCHEMA, data=frame.to_csv(index=False).encode(),
                          by=custodian[0])


def sweep_of(client, body: dict, slug: str = "gbsg2"):
    return client.post(f"/api/v1/datasets/{slug}/sweeps/", body, format="json")


# --------------------------------------------------------------------------------------------
# The API, run to its end
# --------------------------------------------------------------------------------------------

def test_a_sweep_trains_reports_ranks_and_proposes_the_best_release_that_passes_the_gates(
        clients, gbsg2, custodian, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        # the copula is fitted in one pass: a sweep of it alone needs no epochs, and shows none
        response = sweep_of(clients["custodian"], {"models": ["copula"], "seeds": [0, 1], "samples": 2})
    assert response.status_code == 202, response.content
    accepted = response.json()
    assert response["Location"] == f"/api/v1/sweeps/{accepted['id']}/"
    assert (accepted["dataset"], accepted["models"], accepted["seeds"], accepted["samples"], accepted["epochs"],
            accepted["rows"], accepted["created_by"]) == ("gbsg2", ["copula"], [0, 1], 2, None, 686, "cora")
    assert accepted["status"] == "queued"  # answered before the request committed; the task ran after

    body = clients["custodian"].get(f"/api/v1/sweeps/{accepted['id']}/").json()
    assert (body["status"], body["error"]) == ("succeeded", ""), body
    assert body["progress"] == {"steps_done": 6, "steps_total": 6, "stage": "", "fraction": 1.0}
    assert body["started_at"] and body["finished_at"]

    # one run per seed, one release per sample, each with its finished report
    runs = GeneratorRun.objects.order_by("pk")
    assert [(r.model, r.seed, r.status) for r in runs] == [("copula", 0, "succeeded"), ("copula", 1, "succeeded")]
    candidates = body["candidates"]
    assert len(candidates) == 4 and all(set(c) == CANDIDATE_FIELDS for c in candidates)
    assert sorted((c["seed"], c["sample"]) for c in candidates) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert {c["release"] for c in candidates} == set(Release.objects.values_list("pk", flat=True))
    for candidate in candidates:
        release = Release.objects.get(pk=candidate["release"])
        assert (release.run_id, release.seed, release.rows, release.published) == (
            candidate["run"], candidate["sample"], 686, False)
        report = ReleaseReport.objects.get(release=release)
        assert (report.status, candidate["report"]) == ("succeeded", "succeeded")
        result = Report.from_dict(report.content)
        composite, components = composite_score(result)
        assert (candidate["composite"], candidate["components"]) == (pytest.approx(composite), components)
        failed = [g.gate for g in check_gates(result, gbsg2.gates) if not g.passed]
        assert [g["gate"] for g in candidate["failed_gates"]] == failed
        assert candidate["passed"] is (failed == [])
        assert candidate["headline"] == report.content["headline"]

    # the ranked ones pass every gate, best composite first; the others come after, unranked
    ranked = [c for c in candidates if c["rank"] is not None]
    assert ranked, "an honest copula release of GBSG2 passes the gates"
    assert [c["rank"] for c in ranked] == list(range(1, len(ranked) + 1))
    assert candidates[:len(ranked)] == ranked
    assert all(c["passed"] for c in ranked) and not any(c["passed"] for c in candidates[len(ranked):])
    composites = [c["composite"] for c in ranked]
    assert composites == sorted(composites, reverse=True)

    # the best is proposed, as a draft a custodian still publishes
    assert body["proposed_release"] == ranked[0]["release"]
    proposed = clients["custodian"].get(f"/api/v1/releases/{body['proposed_release']}/").json()
    assert (proposed["published"], proposed["report"]["status"]) == (False, "succeeded")
    assert clients["researcher"].get(f"/api/v1/releases/{body['proposed_release']}/").status_code == 404

    sweep_events = AuditEvent.objects.filter(action__in=("sweep.create", "sweep.finish")).order_by("seq")
    assert [(e.action, e.outcome, e.actor_id, e.object_type, e.object_id) for e in sweep_events] == [
        ("sweep.create", "success", custodian[0].pk, "sweep", str(accepted["id"])),
        ("sweep.finish", "success", custodian[0].pk, "sweep", str(accepted["id"])),
    ]
    finish = sweep_events.last()
    assert finish.details == {"dataset": "gbsg2", "proposed_release": body["proposed_release"], "candidates": 4,
                              "passed": len(ranked), "error": ""}
    assert sweep_events.first().details == {"dataset": "gbsg2", "models": ["copula"], "seeds": [0, 1], "samples": 2,
                                            "epochs": None, "rows": 686}
    assert AuditEvent.objects.filter(action="report.compute", outcome="success").count() == 4

    listed = clients["custodian"].get("/api/v1/datasets/gbsg2/sweeps/").json()
    assert [(s["id"], s["status"], s["proposed_release"]) for s in listed["results"]] == [
        (accepted["id"], "succeeded", body["proposed_release"])]


# --------------------------------------------------------------------------------------------
# Bad input: 400 naming the problem, nothing stored, audited as refused
# --------------------------------------------------------------------------------------------

TOO_MANY_SEEDS = list(range(MAX_SEEDS + 1))


@pytest.mark.parametrize(("body", "code", "named"), [
    pytest.param({"models": ["gpt"], "epochs": 1}, "unknown_model", "'gpt'", id="unknown model"),
    pytest.param({"models": [], "epochs": 1}, "invalid_models", "models must be a non-empty list", id="no models"),
    pytest.param({"models": ["copula", "copula"], "epochs": 1}, "invalid_models", "twice", id="a model twice"),
    pytest.param({"models": ["copula"], "seeds": [], "epochs": 1}, "invalid_seeds", "non-empty", id="no seeds"),
    pytest.param({"models": ["copula"], "seeds": [3, 3], "epochs": 1}, "invalid_seeds", "twice", id="a seed twice"),
    pytest.param({"models": ["copula"], "seeds": TOO_MANY_SEEDS, "epochs": 1}, "invalid_seeds",
                 f"at most {MAX_SEEDS} entries", id="too many seeds"),
    pytest.param({"models": ["copula"], "seeds": [-1], "epochs": 1}, None, "seeds", id="a negative seed"),
    pytest.param({"models": ["copula"], "seeds": ["zero", "one"], "epochs": 1}, "invalid", "seeds",
                 id="string seeds"),
    pytest.param({"models": ["copula"], "seeds": "0,1", "epochs": 1}, "invalid", "seeds", id="seeds as a string"),
    pytest.param({"models": ["copula"], "samples": 0, "epochs": 1}, "invalid_samples",
                 f"samples must be between 1 and {MAX_SAMPLES}, not 0", id="no samples"),
    pytest.param({"models": ["copula"], "samples": MAX_SAMPLES + 1, "epochs": 1}, "invalid_samples",
                 f"not {MAX_SAMPLES + 1}", id="too many samples"),
    pytest.param({"models": ["copula", "ctgan", "flow"], "seeds": list(range(MAX_SEEDS)), "epochs": 1},
                 "sweep_too_large", f"at most {MAX_TRAININGS} runs", id="too many trainings"),
    pytest.param({"models": ["copula"], "epochs": 0}, "invalid_epochs", "epochs must be between 1", id="no epochs"),
    pytest.param({"models": ["copula"], "epochs": 10**6}, "invalid_epochs", "epochs", id="too many epochs"),
    pytest.param({"models": ["copula", "ctgan"]}, "invalid_epochs", "epochs is required for ctgan",
                 id="epochs missing for a model that trains by epochs"),
    pytest.param({"models": ["copula"], "epochs": 1, "rows": 0}, "invalid_rows", "rows", id="no rows"),
    pytest.param({"models": ["copula"], "epochs": 1, "colour": "blue"}, "invalid", "colour", id="unknown field"),
    pytest.param({"models": "copula", "epochs": 1}, "invalid", "models", id="models as a string"),
])
def test_bad_input_is_refused_naming_the_problem_and_nothing_is_stored(clients, dataset, custodian, body, code, named):
    response = sweep_of(clients["custodian"], body, slug=dataset.slug)
    error = assert_error(response, 400, code)
    assert named in error["message"], error["message"]
    assert not Sweep.objects.exists() and not GeneratorRun.objects.exists() and not Release.objects.exists()
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "sweep.create", "refused", custodian[0].pk, "dataset", dataset.slug)
    assert event.details["code"] == error["code"]
    assert not AuditEvent.objects.filter(action="sweep.create", outcome="success").exists()


def test_a_sweep_of_an_unknown_dataset_is_a_404(clients, custodian):
    assert_error(sweep_of(clients["custodian"], {"models": ["copula"], "epochs": 1}, slug="no-such"), 404, "not_found")
    assert_error(clients["custodian"].get("/api/v1/datasets/no-such/sweeps/"), 404, "not_found")
    assert_error(clients["custodian"].get("/api/v1/sweeps/987654/"), 404, "not_found")
    assert not Sweep.objects.exists()


def test_the_defaults_are_the_aml_paper_s_five_seeds_three_samples_and_the_cohort_s_size(clients, dataset):
    body = sweep_of(clients["custodian"], {"models": ["copula"], "epochs": 1}, slug=dataset.slug).json()
    assert (body["seeds"], body["samples"], body["rows"], body["status"]) == ([0, 1, 2, 3, 4], 3, 6, "queued")
    assert body["progress"] == {"steps_done": 0, "steps_total": 5 * (1 + 3), "stage": "", "fraction": 0.0}


# --------------------------------------------------------------------------------------------
# The sweep command
# --------------------------------------------------------------------------------------------

def sweep_command(*args, **options) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("sweep", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_the_sweep_command_prints_the_proposed_release_last_and_a_progress_bar_on_stderr(gbsg2, custodian):
    out, err = sweep_command("gbsg2", "--models", "copula", "--seeds", "2", "--samples", "1", "--epochs", "1",
                             "--rows", "300")
    sweep = Sweep.objects.get()
    assert (sweep.status, sweep.model_names, sweep.seeds, sweep.samples, sweep.rows) == (
        "succeeded", ["copula"], [0, 1], 1, 300)
    assert sweep.proposed_release_id is not None
    assert out.strip().splitlines()[-1] == str(sweep.proposed_release_id)
    assert Release.objects.get(pk=sweep.proposed_release_id).published_at is None
    # the bar (tqdm: "sweep N: 100%|...| 4/4") and the ranking, on stderr
    assert f"sweep {sweep.pk}" in err and "4/4" in err and "100%" in err
    assert f"#1   release {sweep.proposed_release_id}: copula seed" in err and "passes every gate" in err
    assert f"Sweep {sweep.pk} proposes release {sweep.proposed_release_id}" in err
    events = AuditEvent.objects.filter(object_type="sweep").order_by("seq")  # (no API read here)
    assert [(e.action, e.outcome, e.actor_id, e.channel) for e in events] == [
        ("sweep.create", "success", custodian[0].pk, "command"),
        ("sweep.finish", "success", custodian[0].pk, "command")]


def test_a_sweep_where_nothing_passes_proposes_nothing_and_the_command_says_so(gbsg2, clients, custodian):
    gbsg2.gates = {"fidelity_min": 1.0}  # no release is a perfect copy of the cohort's shapes and trends
    gbsg2.save(update_fields=["gates"])
    with pytest.raises(CommandError) as raised:
        sweep_command("gbsg2", "--models", "copula", "--seeds", "1", "--samples", "1", "--epochs", "1",
                      "--rows", "300", "--no-progress")
    sweep = Sweep.objects.get()
    assert "no release passed every gate" in str(raised.value)
    assert (sweep.status, sweep.proposed_release_id) == ("succeeded", None)
    assert sweep.error == "no release passed every gate; nothing is proposed"
    [candidate] = sweep.candidates
    assert (candidate["passed"], candidate["rank"]) == (False, None)
    assert "fidelity_min" in [g["gate"] for g in candidate["failed_gates"]]

    body = clients["custodian"].get(f"/api/v1/sweeps/{sweep.pk}/").json()
    assert (body["status"], body["proposed_release"], body["error"]) == ("succeeded", None, sweep.error)
    finish = AuditEvent.objects.get(action="sweep.finish")
    assert (finish.outcome, finish.details["proposed_release"], finish.details["passed"]) == ("success", None, 0)


@pytest.mark.parametrize(("args", "message"), [
    (["gbsg2-small", "--models", "gpt", "--epochs", "1"], "[unknown_model]"),
    (["gbsg2-small", "--models", "copula", "--epochs", "0"], "[invalid_epochs]"),
    (["gbsg2-small", "--epochs", "0"], "[invalid_epochs]"),  # every model by default
    (["gbsg2-small", "--models", "copula", "--epochs", "1", "--seeds", "0"], "--seeds must be at least 1"),
    (["gbsg2-small", "--models", "copula", "--epochs", "1", "--samples", "9"], "[invalid_samples]"),
    (["no-such", "--models", "copula", "--epochs", "1"], "No dataset with slug 'no-such'"),
])
def test_the_sweep_command_refuses_bad_input_and_stores_nothing(dataset, args, message):
    with pytest.raises(CommandError) as raised:
        sweep_command(*args, "--no-progress")
    assert message in str(raised.value)
    assert not Sweep.objects.exists() and not GeneratorRun.objects.exists()


# --------------------------------------------------------------------------------------------
# The automatic model choice: models default to every model; the proposed release's datasheet says so
# --------------------------------------------------------------------------------------------

def test_without_models_a_sweep_compares_every_model(clients, dataset, custodian):
    body = sweep_of(clients["custodian"], {"epochs": 1, "seeds": [0]}, slug=dataset.slug).json()
    assert (body["models"], body["epochs"], body["status"]) == (["copula", "ctgan", "flow"], 1, "queued")
    assert list(DEFAULT_MODELS) == sorted(MODELS) == body["models"]
    assert body["progress"]["steps_total"] == 3 * (1 + 3)
    assert Sweep.objects.get().model_names == ["copula", "ctgan", "flow"]
    event = AuditEvent.objects.get(action="sweep.create")
    assert (event.outcome, event.details["models"]) == ("success", ["copula", "ctgan", "flow"])


def test_without_models_the_epochs_are_still_required_and_the_refusal_names_the_models(clients, dataset, custodian):
    error = assert_error(sweep_of(clients["custodian"], {}, slug=dataset.slug), 400, "invalid_epochs")
    assert "epochs is required for ctgan, flow" in error["message"], error["message"]
    assert not Sweep.objects.exists()
    assert (last_event().action, last_event().outcome) == ("sweep.create", "refused")


def test_the_openapi_help_documents_the_default_models(clients):
    document = clients["custodian"].get("/api/v1/schema/", {"format": "json"})
    assert document.status_code == 200
    text = document.content.decode()
    assert "default: every model (copula, ctgan, flow), the automatic model choice" in text
    assert "says it was chosen automatically" in text


def test_a_sweep_s_proposed_release_datasheet_names_the_chosen_model_and_the_compared_ones(
        clients, gbsg2, custodian, django_capture_on_commit_callbacks):
    """GBSG2, copula and ctgan (5 epochs: it may well fail a gate), one seed, one sample each."""
    from releases.storage import DATASHEET_FILE, release_folder

    with django_capture_on_commit_callbacks(execute=True):
        response = sweep_of(clients["custodian"], {"models": ["copula", "ctgan"], "seeds": [0], "samples": 1,
                                                   "epochs": 5})
    assert response.status_code == 202, response.content
    sweep = Sweep.objects.get()
    assert (sweep.status, sweep.error) == ("succeeded", ""), sweep.error
    best = next(c for c in sweep.candidates if c["rank"] == 1)
    assert sweep.proposed_release_id == best["release"]
    proposed = Release.objects.get(pk=sweep.proposed_release_id)
    selection = proposed.datasheet["selection"]
    assert (selection["automatic"], selection["sweep"], selection["models"], selection["seeds"],
            selection["samples"], selection["epochs"]) == (True, sweep.pk, ["copula", "ctgan"], [0], 1, 5)
    assert selection["chosen"] == {"release": proposed.pk, "model": best["model"], "seed": 0, "sample": 0,
                                   "composite": best["composite"],
                                   "quality": best["headline"]["fidelity.overall"]}
    # one entry per candidate, in the sweep's order, with its scores and failed gates' names
    assert [(c["release"], c["model"], c["rank"], c["passed"]) for c in selection["candidates"]] == [
        (c["release"], c["model"], c["rank"], c["passed"]) for c in sweep.candidates]
    for entry, candidate in zip(selection["candidates"], sweep.candidates):
        assert entry["composite"] == candidate["composite"]
        assert entry["quality"] == candidate["headline"]["fidelity.overall"]
        assert entry["failed_gates"] == [g["gate"] for g in candidate["failed_gates"]]
    assert {c["model"] for c in selection["candidates"]} == {"copula", "ctgan"}
    summary = selection["summary"]
    assert summary.startswith(f"Chosen automatically by sweep {sweep.pk}: copula, ctgan × seed(s) 0; 1 release(s) "
                              "per run; 2 candidate(s)"), summary
    assert f"the proposed release ({best['model']} seed 0 sample 0)" in summary
    assert f"{best['model']} seed 0 sample 0: composite {best['composite']:.3f}" in summary and "rank 1" in summary
    other = next(c for c in sweep.candidates if c["release"] != proposed.pk)
    assert f"{other['model']} seed 0 sample 0: composite" in summary
    assert proposed.datasheet["known_limits"][-1] == (
        f"The model ({best['model']}) was chosen automatically by sweep {sweep.pk} among copula, ctgan; see selection.")

    # the file says the same, the data files and their digests are untouched; the other release has no selection
    on_disk = json.loads((release_folder() / proposed.storage_name / DATASHEET_FILE).read_text(encoding="utf-8"))
    assert on_disk == proposed.datasheet
    assert on_disk["files"]["parquet"]["sha256"] == proposed.parquet_sha256
    assert "selection" not in Release.objects.get(pk=other["release"]).datasheet
    # the API shows it to the custodian (and to researchers once published)
    shown = clients["custodian"].get(f"/api/v1/releases/{proposed.pk}/").json()
    assert shown["datasheet"]["selection"] == selection


def test_the_selection_text_names_failed_trainings_and_failed_gates_without_their_errors():
    from types import SimpleNamespace

    from releases.sweeps import _selection

    sweep = SimpleNamespace(pk=7, model_names=["copula", "ctgan", "flow"], seeds=[0], samples=1, epochs=10)
    gate = {"gate": "mia_auc_max", "metric": "privacy.mia_auc", "value": 0.71, "comparison": "<=", "threshold": 0.6,
            "passed": False, "reason": ""}
    table = [
        {"release": 3, "run": 1, "model": "copula", "seed": 0, "sample": 0, "report": "succeeded",
         "composite": 0.8123, "headline": {"fidelity.overall": 0.9012}, "failed_gates": [], "passed": True, "rank": 1},
        {"release": 4, "run": 2, "model": "ctgan", "seed": 0, "sample": 0, "report": "succeeded",
         "composite": 0.8555, "headline": {"fidelity.overall": 0.91}, "failed_gates": [gate], "passed": False,
         "rank": None},
        {"run": 3, "model": "flow", "seed": 0, "error": "the secret stack trace", "passed": False, "rank": None},
    ]
    selection = _selection(sweep, 3, table)
    assert selection["chosen"] == {"release": 3, "model": "copula", "seed": 0, "sample": 0, "composite": 0.8123,
                                   "quality": 0.9012}
    assert selection["candidates"][1]["failed_gates"] == ["mia_auc_max"]
    assert selection["candidates"][2] == {"release": None, "model": "flow", "seed": 0, "sample": None,
                                          "composite": None, "quality": None, "passed": False, "rank": None,
                                          "failed_gates": [], "error": "training failed"}
    assert selection["summary"].endswith(
        "Candidates: copula seed 0 sample 0: composite 0.812, quality 0.901, rank 1; ctgan seed 0 sample 0: "
        "composite 0.856, quality 0.910, fails mia_auc_max; flow seed 0: training failed.")
    assert "secret" not in json.dumps(selection) and "0.71" not in json.dumps(selection)
