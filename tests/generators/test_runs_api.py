"""Training runs API: POST/GET /api/v1/datasets/{slug}/runs/, GET /api/v1/runs/{id}/,
POST /api/v1/runs/{id}/cancel/ — the payload, the audit trail, bad input, cancelling, every role.

Without a broker Celery runs eagerly, so a run created through the API has trained by the time
the 202 is written (in a transactional test, where the request's commit really happens).
"""

from __future__ import annotations

import json

import pytest
import torch

from clearinghouse.models import AuditEvent
from generators import services
from generators.models import GeneratorRun
from generators.services import run_execute, run_split
from tests.conftest import ROLES
from tests.generators.runs_fixtures import (  # noqa: F401  (fixtures)
    entries, events_after, fresh_cache, last_seq, make_run, models_dir,
)

pytestmark = pytest.mark.usefixtures("fresh_cache")

RUN_FIELDS = {"id", "dataset", "model", "hyperparameters", "epochs", "seed", "device_requested", "device", "queue",
              "status", "cancel_requested", "progress", "error", "n_train", "n_holdout", "created_by",
              "created_at", "started_at", "finished_at"}
PROGRESS_FIELDS = {"epoch", "epochs", "fraction", "losses", "elapsed_seconds", "eta_seconds", "last_report_at"}


def runs_url(slug: str = "gbsg2-small") -> str:
    return f"/api/v1/datasets/{slug}/runs/"


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:2000])
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    if code is not None:
        assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


# --------------------------------------------------------------------------------------------
# POST: a run trains (eagerly) and answers 202
# --------------------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("model, epochs, hyperparameters", [
    ("copula", None, {}),  # fitted in one pass: no epochs
    ("ctgan", 2, {"batch_size": 10, "generator_width": 32, "critic_width": 32}),
    ("flow", 2, {"hidden_width": 16, "transforms": 1}),
])
def test_post_trains_a_run_and_answers_202(clients, custodian, dataset, models_dir, model, epochs, hyperparameters):
    before = last_seq()
    payload = {"model": model, "epochs": epochs, "seed": 7, "device": "cpu", "hyperparameters": hyperparameters}
    response = clients["custodian"].post(
        runs_url(), {k: v for k, v in payload.items() if v is not None}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    run = GeneratorRun.objects.get()
    assert response["Location"] == f"/api/v1/runs/{run.pk}/"

    assert set(body) == RUN_FIELDS
    assert body["id"] == run.pk
    assert body["dataset"] == "gbsg2-small"
    assert body["model"] == model
    assert body["hyperparameters"] == hyperparameters
    assert (body["epochs"], body["seed"], body["device_requested"], body["device"]) == (epochs, 7, "cpu", "cpu")
    assert body["queue"] == "default"
    assert body["status"] == "succeeded", body["error"]
    assert body["error"] == ""
    assert body["cancel_requested"] is False
    assert body["created_by"] == "cora"
    assert body["started_at"] and body["finished_at"]

    progress = body["progress"]
    assert set(progress) == PROGRESS_FIELDS
    assert progress["epoch"] == progress["epochs"] == epochs  # null and null for the copula
    assert progress["fraction"] == 1.0
    assert progress["losses"] and all(isinstance(v, float) for v in progress["losses"].values())
    assert progress["elapsed_seconds"] is not None and progress["elapsed_seconds"] >= 0
    assert progress["eta_seconds"] == 0
    assert progress["last_report_at"]

    n = dataset.n_rows
    assert body["n_train"] + body["n_holdout"] == n
    assert body["n_holdout"] == round(0.2 * n)

    # the holdout positions are stored (the validation report needs them) and never served
    assert run.holdout_rows == run_split(n, 7)[1].tolist()
    assert len(run.holdout_rows) == body["n_holdout"]
    assert "holdout" not in json.dumps(body).replace("n_holdout", "")

    # the audit trail: created by the custodian, started and finished by the worker
    events = events_after(before)
    assert [(e.action, e.outcome) for e in events] == [
        ("run.create", "success"), ("run.start", "success"), ("run.finish", "success")]
    for event in events:
        assert (event.object_type, event.object_id) == ("run", str(run.pk))
    assert events[0].actor_id == custodian[0].pk
    assert events[0].details["model"] == model and events[0].details["dataset"] == "gbsg2-small"
    assert events[1].actor_id is None and events[2].actor_id is None
    assert events[2].details["status"] == "succeeded"

    # the checkpoint: whole, under MODELS_DIR, no staging folder left behind
    assert run.checkpoint_name == f"run-{run.pk}"
    assert entries(models_dir) == {f"run-{run.pk}"}
    assert entries(models_dir / run.checkpoint_name) == {"config.json.fernet", "weights.pt.fernet"}


@pytest.mark.django_db
def test_post_defaults_seed_and_device(clients, dataset, models_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = clients["custodian"].post(runs_url(), {"model": "copula", "epochs": 1}, format="json")
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["seed"], body["device_requested"], body["hyperparameters"]) == (0, "auto", {})
    assert body["status"] == "queued"  # the task runs on commit, after the response was built
    detail = clients["custodian"].get(f"/api/v1/runs/{body['id']}/").json()
    assert detail["status"] == "succeeded"
    assert detail["device"] == "cpu" or detail["device"].startswith("cuda")


# --------------------------------------------------------------------------------------------
# GET: one run, a dataset's runs
# --------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_get_run_detail(clients, custodian, dataset, models_dir):
    run = make_run(dataset, custodian[0])
    run_execute(run.pk)
    before = last_seq()
    response = clients["custodian"].get(f"/api/v1/runs/{run.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == RUN_FIELDS
    # a copula has no epochs
    assert (body["id"], body["status"], body["progress"]["epoch"]) == (run.pk, "succeeded", None)
    assert "holdout_rows" not in body
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id) == ("run.read", "success", custodian[0].pk)
    assert (event.object_type, event.object_id) == ("run", str(run.pk))


@pytest.mark.django_db
def test_get_a_queued_run_has_no_progress_yet(clients, custodian, dataset, models_dir):
    run = make_run(dataset, custodian[0], model="ctgan", epochs=3)
    body = clients["custodian"].get(f"/api/v1/runs/{run.pk}/").json()
    assert body["status"] == "queued"
    assert body["progress"] == {"epoch": 0, "epochs": 3, "fraction": 0.0, "losses": {}, "elapsed_seconds": None,
                                "eta_seconds": None, "last_report_at": None}
    assert body["n_train"] is None and body["n_holdout"] is None


@pytest.mark.django_db
def test_get_unknown_run_is_404(clients, custodian, dataset):
    error = assert_error(clients["custodian"].get("/api/v1/runs/987654/"), 404, "not_found")
    assert error
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.object_id) == ("run.read", "refused", "987654")


@pytest.mark.django_db
def test_list_a_datasets_runs_paginated(clients, custodian, dataset, models_dir):
    from clearinghouse.services.datasets import dataset_create
    from tests.conftest import DATA, GBSG2_SCHEMA

    other = dataset_create(slug="other", name="Other", schema=GBSG2_SCHEMA,
                           data=(DATA / "gbsg2_small.csv").read_bytes(), by=custodian[0])
    runs = [make_run(dataset, custodian[0], seed=s) for s in range(3)]
    make_run(other, custodian[0])
    before = last_seq()

    response = clients["custodian"].get(runs_url(), {"page_size": 2})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert body["next"] and body["previous"] is None
    assert [r["id"] for r in body["results"]] == [runs[2].pk, runs[1].pk]  # newest first
    assert all(set(r) == RUN_FIELDS for r in body["results"])
    assert all("holdout_rows" not in r for r in body["results"])
    page2 = clients["custodian"].get(runs_url(), {"page_size": 2, "page": 2}).json()
    assert [r["id"] for r in page2["results"]] == [runs[0].pk]

    event = events_after(before)[0]
    assert (event.action, event.outcome, event.actor_id) == ("run.list", "success", custodian[0].pk)
    assert (event.object_type, event.object_id) == ("dataset", "gbsg2-small")


@pytest.mark.django_db
def test_list_for_an_unknown_dataset_is_404(clients, custodian):
    assert_error(clients["custodian"].get(runs_url("nope")), 404, "not_found")
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.object_id) == ("run.list", "refused", "nope")


# --------------------------------------------------------------------------------------------
# Bad input: a 400 naming the problem, nothing stored or queued, the refusal audited
# --------------------------------------------------------------------------------------------
GOOD = {"model": "copula", "epochs": 1, "seed": 0, "device": "cpu"}

BAD_INPUT = [
    pytest.param({"model": "gan"}, "unknown_model", "gan", id="unknown-model"),
    pytest.param({"model": ""}, None, "model", id="empty-model"),
    pytest.param({"hyperparameters": {"n_quantiles": 16, "learning_rate": 0.1}}, "invalid_hyperparameters",
                 "learning_rate", id="unknown-hyperparameter"),
    pytest.param({"hyperparameters": {"n_quantiles": "many"}}, "invalid_hyperparameters", "n_quantiles",
                 id="wrong-typed-hyperparameter"),
    pytest.param({"hyperparameters": {"n_quantiles": 2.5}}, "invalid_hyperparameters", "n_quantiles",
                 id="float-for-int-hyperparameter"),
    pytest.param({"hyperparameters": {"shrinkage": -0.5}}, "invalid_hyperparameters", "shrinkage",
                 id="negative-hyperparameter"),
    pytest.param({"model": "ctgan", "hyperparameters": {"batch_size": 15}}, "invalid_hyperparameters", "pac",
                 id="ctgan-batch-not-multiple-of-pac"),
    pytest.param({"model": "ctgan", "hyperparameters": {"continuous": "spline"}}, "invalid_hyperparameters",
                 "continuous", id="ctgan-bad-continuous"),
    pytest.param({"model": "flow", "hyperparameters": {"condition_on": "nope"}}, "invalid_hyperparameters",
                 "condition_on", id="flow-condition-on-unknown-column"),
    pytest.param({"model": "flow", "hyperparameters": {"condition_on": "age"}}, "invalid_hyperparameters",
                 "condition_on", id="flow-condition-on-numeric-column"),
    pytest.param({"hyperparameters": ["n_quantiles"]}, None, "hyperparameters", id="hyperparameters-not-object"),
    pytest.param({"epochs": 0}, "invalid_epochs", "epochs", id="epochs-zero"),
    pytest.param({"epochs": -3}, "invalid_epochs", "epochs", id="epochs-negative"),
    pytest.param({"epochs": 5001}, "invalid_epochs", "epochs", id="epochs-above-limit"),
    pytest.param({"epochs": 10**30}, "invalid_epochs", "epochs", id="epochs-huge"),
    pytest.param({"epochs": 1.5}, None, "epochs", id="epochs-fraction"),
    pytest.param({"epochs": True}, None, "epochs", id="epochs-boolean"),
    pytest.param({"epochs": "ten"}, None, "epochs", id="epochs-text"),
    pytest.param({"model": "ctgan", "epochs": None}, "invalid_epochs", "epochs", id="epochs-null"),
    pytest.param({"model": "flow", "epochs": "__missing__"}, "invalid_epochs", "epochs", id="epochs-missing"),
    pytest.param({"model": "__missing__"}, None, "model", id="model-missing"),
    pytest.param({"seed": -1}, "invalid_seed", "seed", id="seed-negative"),
    pytest.param({"seed": 2**32}, "invalid_seed", "seed", id="seed-too-large"),
    pytest.param({"seed": "x"}, None, "seed", id="seed-text"),
    pytest.param({"device": "tpu"}, "invalid_device", "device", id="bad-device"),
    pytest.param({"device": "CPU"}, "invalid_device", "device", id="device-wrong-case"),
    pytest.param({"rows": 10}, None, "rows", id="unknown-field"),
]


@pytest.mark.django_db
@pytest.mark.parametrize("change, code, named", BAD_INPUT)
def test_bad_input_is_a_400_naming_the_problem(clients, custodian, dataset, models_dir, settings,
                                               django_capture_on_commit_callbacks, change, code, named):
    settings.GENERATOR_MAX_EPOCHS = 5000
    payload = {**GOOD, **change}
    payload = {k: v for k, v in payload.items() if v != "__missing__"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = clients["custodian"].post(runs_url(), payload, format="json")
    error = assert_error(response, 400, code)
    assert named in error["message"] or named in json.dumps(error["details"]), error
    assert GeneratorRun.objects.count() == 0
    assert callbacks == []
    assert entries(models_dir) == set()
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.actor_id) == ("run.create", "refused", custodian[0].pk)
    assert (event.object_type, event.object_id) == ("dataset", "gbsg2-small")
    assert event.details["status"] == 400 and event.details["code"] == error["code"]
    assert not AuditEvent.objects.filter(action="run.create", outcome="success").exists()


@pytest.mark.django_db
def test_epochs_limit_is_a_setting(clients, dataset, models_dir, settings):
    settings.GENERATOR_MAX_EPOCHS = 3
    error = assert_error(clients["custodian"].post(runs_url(), {**GOOD, "epochs": 4}, format="json"), 400,
                         "invalid_epochs")
    assert "3" in error["message"]
    assert GeneratorRun.objects.count() == 0
    # accepted (queued on commit, which this test's transaction never reaches)
    assert clients["custodian"].post(runs_url(), {**GOOD, "epochs": 3}, format="json").status_code == 202
    assert GeneratorRun.objects.count() == 1


@pytest.mark.django_db
def test_cuda_without_cuda_in_eager_mode_is_refused(clients, custodian, dataset, models_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    error = assert_error(clients["custodian"].post(runs_url(), {**GOOD, "device": "cuda"}, format="json"), 400,
                         "cuda_unavailable")
    assert "cuda" in error["message"].lower()
    assert GeneratorRun.objects.count() == 0
    assert entries(models_dir) == set()
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.details["code"]) == ("run.create", "refused", "cuda_unavailable")


@pytest.mark.django_db
def test_unknown_dataset_is_404_and_stores_nothing(clients, custodian, dataset, models_dir):
    assert_error(clients["custodian"].post(runs_url("nope"), GOOD, format="json"), 404, "not_found")
    assert GeneratorRun.objects.count() == 0
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.actor_id) == ("run.create", "refused", custodian[0].pk)
    assert (event.object_type, event.object_id) == ("dataset", "nope")


@pytest.mark.django_db
def test_a_body_that_is_not_an_object_is_a_400(clients, custodian, dataset, models_dir):
    assert_error(clients["custodian"].post(runs_url(), [GOOD], format="json"), 400, "invalid")
    assert GeneratorRun.objects.count() == 0
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome) == ("run.create", "refused")


@pytest.mark.django_db
def test_malformed_json_is_a_400(clients, custodian, dataset, models_dir):
    response = clients["custodian"].post(runs_url(), data="{not json", content_type="application/json")
    assert_error(response, 400, "malformed_request")
    assert GeneratorRun.objects.count() == 0


# --------------------------------------------------------------------------------------------
# Cancel
# --------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_cancel_a_finished_run_is_409(clients, custodian, dataset, models_dir):
    run = make_run(dataset, custodian[0])
    run_execute(run.pk)
    before = last_seq()
    error = assert_error(clients["custodian"].post(f"/api/v1/runs/{run.pk}/cancel/"), 409, "run_finished")
    assert "succeeded" in error["message"]
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("succeeded", False)
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id) == ("run.cancel", "refused", custodian[0].pk)
    assert (event.object_type, event.object_id) == ("run", str(run.pk))
    assert event.details["code"] == "run_finished"


@pytest.mark.django_db
def test_cancel_an_unknown_run_is_404(clients, custodian):
    assert_error(clients["custodian"].post("/api/v1/runs/987654/cancel/"), 404, "not_found")
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.object_id) == ("run.cancel", "refused", "987654")


@pytest.mark.django_db
def test_cancel_a_queued_run_cancels_it_at_once(clients, custodian, dataset, models_dir):
    run = make_run(dataset, custodian[0])
    before = last_seq()
    response = clients["custodian"].post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "cancelled"
    assert body["finished_at"]
    assert body["progress"]["eta_seconds"] == 0
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id) == ("run.cancel", "success", custodian[0].pk)
    assert (event.object_type, event.object_id) == ("run", str(run.pk))

    # the task, should it still arrive, does nothing
    before = last_seq()
    assert run_execute(run.pk) is None
    run.refresh_from_db()
    assert (run.status, run.started_at, run.epoch) == ("cancelled", None, 0)
    assert events_after(before) == []
    assert entries(models_dir) == set()

    # and cancelling it again is a 409
    assert_error(clients["custodian"].post(f"/api/v1/runs/{run.pk}/cancel/"), 409, "run_finished")


@pytest.mark.django_db
def test_cancel_a_running_run_stops_it_at_the_next_progress_report(clients, custodian, dataset, models_dir,
                                                                    monkeypatch):
    """The custodian cancels while the worker trains (from inside the worker's progress relay)."""
    monkeypatch.setattr(services, "PROGRESS_EVERY_SECONDS", 0)
    run = make_run(dataset, custodian[0], model="flow", epochs=2, hyperparameters={"hidden_width": 16})
    responses = []

    def relay(epoch, total, losses):
        if not responses:
            responses.append(clients["custodian"].post(f"/api/v1/runs/{run.pk}/cancel/"))

    before = last_seq()
    run = run_execute(run.pk, relay=relay)
    [response] = responses
    assert response.status_code == 202, response.content
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    assert run.status == "cancelled"
    assert run.error == "cancelled on request"
    assert 1 <= run.epoch <= 2
    assert run.checkpoint_name == ""
    assert entries(models_dir) == set()
    assert [(e.action, e.outcome, e.details.get("status")) for e in events_after(before)] == [
        ("run.start", "success", None), ("run.cancel", "success", "running"),
        ("run.finish", "success", "cancelled")]
    body = clients["custodian"].get(f"/api/v1/runs/{run.pk}/").json()
    assert (body["status"], body["cancel_requested"]) == ("cancelled", True)


@pytest.mark.django_db
def test_cancel_requested_before_the_worker_starts_stops_training(custodian, dataset, models_dir, monkeypatch):
    """The simulation the brief describes: cancel_requested already set when run_execute starts."""
    monkeypatch.setattr(services, "PROGRESS_EVERY_SECONDS", 0)
    run = make_run(dataset, custodian[0], epochs=1)
    GeneratorRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    run = run_execute(run.pk)
    assert run.status == "cancelled"
    assert entries(models_dir) == set()


# --------------------------------------------------------------------------------------------
# Roles: custodians only; everyone else is refused, and the refusal is audited
# --------------------------------------------------------------------------------------------
ENDPOINTS = [
    ("post", "runs", "run.create"),
    ("get", "runs", "run.list"),
    ("get", "detail", "run.read"),
    ("post", "cancel", "run.cancel"),
]
REFUSED_ROLES = [("anonymous", 401, "not_authenticated"), ("unverified", 403, "permission_denied"),
                 ("researcher", 403, "permission_denied"), ("auditor", 403, "permission_denied")]


@pytest.mark.django_db
@pytest.mark.parametrize("method, endpoint, action", ENDPOINTS)
@pytest.mark.parametrize("role, status, code", REFUSED_ROLES)
def test_only_custodians(clients, custodian, researcher, unverified, auditor, dataset, models_dir,
                         method, endpoint, action, role, status, code):
    run = make_run(dataset, custodian[0])
    path = {"runs": runs_url(), "detail": f"/api/v1/runs/{run.pk}/", "cancel": f"/api/v1/runs/{run.pk}/cancel/"}[endpoint]
    before = last_seq()
    response = getattr(clients[role], method)(path, GOOD if endpoint == "runs" and method == "post" else None,
                                              format="json")
    assert_error(response, status, code)
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    # nothing happened
    run.refresh_from_db()
    assert (run.status, run.cancel_requested) == ("queued", False)
    assert GeneratorRun.objects.count() == 1
    [event] = events_after(before)
    assert (event.action, event.outcome) == (action, "denied")
    users = {"unverified": unverified, "researcher": researcher, "auditor": auditor}
    assert event.actor_id == (users[role][0].pk if role in users else None)
    assert event.details["status"] == status


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_is_complete(role):
    """Every role of tests.conftest.ROLES is covered above (custodian by the success tests)."""
    assert role == "custodian" or role in {r for r, _, _ in REFUSED_ROLES}


@pytest.mark.django_db
def test_a_copula_run_has_no_epochs_and_its_progress_goes_from_0_to_1(clients, custodian, dataset, models_dir,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = clients["custodian"].post(runs_url(), {"model": "copula", "device": "cpu"}, format="json")
    assert response.status_code == 202, response.content
    queued = response.json()
    assert queued["status"] == "queued" and queued["epochs"] is None
    progress = queued["progress"]
    assert (progress["epoch"], progress["epochs"], progress["fraction"]) == (None, None, 0.0)
    assert queued["progress"]["eta_seconds"] is None
    done = clients["custodian"].get(f"/api/v1/runs/{queued['id']}/").json()
    assert done["status"] == "succeeded", done["error"]
    assert (done["epochs"], done["progress"]["epoch"], done["progress"]["fraction"]) == (None, None, 1.0)
    assert done["progress"]["eta_seconds"] == 0
    created = AuditEvent.objects.get(action="run.create")
    assert created.details["epochs"] is None and created.details["model"] == "copula"
    # an epoch count given to the copula is checked, then ignored
    assert_error(clients["custodian"].post(runs_url(), {"model": "copula", "epochs": 0}, format="json"), 400,
                 "invalid_epochs")
    ignored = clients["custodian"].post(runs_url(), {"model": "copula", "epochs": 300}, format="json").json()
    assert ignored["epochs"] is None


@pytest.mark.django_db
@pytest.mark.parametrize("model", ["ctgan", "flow"])
def test_models_that_train_by_epochs_need_them(clients, dataset, models_dir, model):
    error = assert_error(clients["custodian"].post(runs_url(), {"model": model}, format="json"), 400,
                         "invalid_epochs")
    assert error["message"].startswith(f"epochs is required for {model} (1 to ")
    assert GeneratorRun.objects.count() == 0
