"""Every endpoint, for every role: the status it answers, its body, and the audit row it writes.

The matrix below is the contract of docs/api.md (roles: anonymous, unverified researcher,
verified researcher, auditor, custodian). Each cell is one test case: it sends the request
as that role and checks

* the status;
* on success, the payload (and what was stored) and the one ``success`` audit event (action
  and actor); a verification writes two (``verification.charge``, ``verification.answer``);
* on refusal, the error body ``{"error": {"code", "message", "details"}}``, the
  ``WWW-Authenticate: Bearer`` challenge on a 401, no side effect, and the one audit
  event with outcome ``denied`` (401/403) or ``refused`` (404) naming the caller.

The admin site (session login, custodians only) has its own matrix further down.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any, Callable

import pytest
import yaml
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from accounts import login_throttle
from accounts.models import Allocation, ApiToken, BudgetPolicy, LedgerEntry, User
from accounts.services import token_issue_for
from clearinghouse.api.audit import EXPORT_FIELDS
from clearinghouse.models import AuditEvent, Dataset
from releases.models import Release, ReleaseReport
from releases.services import release_create, release_publish
from generators.core.evaluation.gates import DEFAULT_GATES
from generators.models import GeneratorRun
from releases.models import Sweep
from generators.services import run_create
from releases.sweeps import sweep_create
from tests.conftest import ROLES, client_for, finish_report, make_user, upload_payload
from verification.core import verdict_for
from verification.models import Verification
from verification.services import verification_submit

PASSWORD = "correct horse battery staple"  # what tests.conftest.make_user gives every user
DATASET_FIELDS = {"slug", "name", "description", "schema", "n_rows", "n_columns", "dropped_columns",
                  "stored_bytes", "created_by", "created_at"}
RUN_FIELDS = {"id", "dataset", "model", "hyperparameters", "epochs", "seed", "device_requested", "device", "queue",
              "status", "cancel_requested", "progress", "error", "n_train", "n_holdout", "created_by", "created_at",
              "started_at", "finished_at"}
RELEASE_FIELDS = {"id", "dataset", "run", "rows", "seed", "conditions", "published", "published_at", "created_at",
                  "datasheet", "files", "report", "gate_override"}
SWEEP_FIELDS = {"id", "dataset", "models", "seeds", "samples", "epochs", "rows", "status", "progress",
                "proposed_release", "candidates", "error", "created_by", "created_at", "started_at", "finished_at"}
GATES_FIELDS = {"dataset", "gates", "defaults", "descriptions"}
VERIFICATION_FIELDS = {"id", "dataset", "release", "kind", "hypothesis", "status", "reused", "reused_from",
                       "epsilon_charged", "answer", "created_at", "answered_at"}
POLICY_FIELDS = {"dataset", "total_cap", "total_spent", "default_allocation", "max_epsilon_per_query",
                 "min_subgroup", "daily_limit"}
#: The marker ``finish_report`` puts in every metric's real_details: a statistic of the real rows.
REAL_MARKER = "4242.4242"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate limits and login lockouts live in the cache (Redis on the PostgreSQL pass), which outlives a test."""

    def clear():
        keys = ["throttle_anon_127.0.0.1", login_throttle._key("addr", "127.0.0.1")]
        keys += [login_throttle._key("user", name) for name in ("cora", "rhea", "uma", "otto", "cass", "ravi", "nobody")]
        cache.delete_many(keys)

    clear()
    yield
    clear()


# --------------------------------------------------------------------------------------------
# The matrix: (endpoint, method, path) → the status each role gets, and the audit action.
# Path placeholders: {own_token} one of the caller's tokens; {other_token} someone else's;
# {pending} an unverified researcher awaiting verification; {slug} an existing dataset;
# {run} a succeeded training run; {queued_run} a run not yet started; {release} a published
# release of {run}; {draft} an unpublished one (both with a finished, passing report);
# {sweep} a queued model-selection sweep of {slug}; {verification} an answered verification of {release}
# by the verified researcher; {other_verification} one by another verified researcher; {researcher_id}
# the verified researcher (for their ε allocation on {slug}).
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    path: str
    anonymous: int
    unverified: int
    researcher: int
    auditor: int
    custodian: int
    audit_action: str | None  # None: a public page that writes no audit row
    #: the audit rows a success writes, when not the one ``audit_action`` row (a verification is charged, then
    #: answered: docs/privacy.md, "Audit"); refusals are recorded under ``audit_action`` all the same
    success_actions: tuple[str, ...] | None = None


E = Endpoint
MATRIX = [
    #  endpoint                    method  path                                    anon unver resea audit custo  audit action
    E("issue a token",             "POST", "/api/v1/auth/token/",                   201, 201,  201,  201,  201, "auth.token.issue"),
    E("list own tokens",           "GET",  "/api/v1/auth/tokens/",                  401, 200,  200,  200,  200, "auth.token.list"),
    E("revoke own token",          "POST", "/api/v1/auth/tokens/{own_token}/revoke/", 401, 200, 200, 200,  200, "auth.token.revoke"),
    E("revoke another's token",    "POST", "/api/v1/auth/tokens/{other_token}/revoke/", 401, 404, 404, 404, 404, "auth.token.revoke"),
    E("list accounts",             "GET",  "/api/v1/accounts/",                     401, 403,  403,  403,  200, "accounts.list"),
    E("register",                  "POST", "/api/v1/accounts/register/",            202, 202,  202,  202,  202, "accounts.register"),
    E("read own account",          "GET",  "/api/v1/accounts/me/",                  401, 200,  200,  200,  200, "accounts.me"),
    E("verify a researcher",       "POST", "/api/v1/accounts/{pending}/verify/",    401, 403,  403,  403,  200, "accounts.verify"),
    E("list datasets",             "GET",  "/api/v1/datasets/",                     401, 403,  200,  200,  200, "dataset.list"),
    E("read a dataset",            "GET",  "/api/v1/datasets/{slug}/",              401, 403,  200,  200,  200, "dataset.read"),
    E("upload a dataset",          "POST", "/api/v1/datasets/",                     401, 403,  403,  403,  201, "dataset.upload"),
    E("list a dataset's runs",     "GET",  "/api/v1/datasets/{slug}/runs/",         401, 403,  403,  403,  200, "run.list"),
    E("start a training run",      "POST", "/api/v1/datasets/{slug}/runs/",         401, 403,  403,  403,  202, "run.create"),
    E("read a run",                "GET",  "/api/v1/runs/{run}/",                   401, 403,  403,  403,  200, "run.read"),
    E("cancel a run",              "POST", "/api/v1/runs/{queued_run}/cancel/",     401, 403,  403,  403,  202, "run.cancel"),
    E("make a release",            "POST", "/api/v1/runs/{run}/releases/",          401, 403,  403,  403,  201, "release.create"),
    E("list releases",             "GET",  "/api/v1/releases/",                     401, 403,  200,  403,  200, "release.list"),
    E("read a release",            "GET",  "/api/v1/releases/{release}/",           401, 403,  200,  403,  200, "release.read"),
    E("read a draft release",      "GET",  "/api/v1/releases/{draft}/",             401, 403,  404,  403,  200, "release.read"),
    E("publish a release",         "POST", "/api/v1/releases/{draft}/publish/",     401, 403,  403,  403,  200, "release.publish"),
    E("download a CSV",            "GET",  "/api/v1/releases/{release}/data.csv",   401, 403,  200,  403,  200, "release.download"),
    E("download a Parquet",        "GET",  "/api/v1/releases/{release}/data.parquet", 401, 403, 200, 403,  200, "release.download"),
    E("download a draft's CSV",    "GET",  "/api/v1/releases/{draft}/data.csv",     401, 403,  404,  403,  200, "release.download"),
    E("download a draft's Parquet", "GET", "/api/v1/releases/{draft}/data.parquet", 401, 403,  404,  403,  200, "release.download"),
    E("read a release's report",   "GET",  "/api/v1/releases/{release}/report/",    401, 403,  200,  403,  200, "report.read"),
    E("read a report as HTML",     "GET",  "/api/v1/releases/{release}/report/?format=html", 401, 403, 200, 403, 200, "report.read"),
    E("read a draft's report",     "GET",  "/api/v1/releases/{draft}/report/",      401, 403,  404,  403,  200, "report.read"),
    E("ask for a report again",    "POST", "/api/v1/releases/{draft}/report/",      401, 403,  403,  403,  202, "report.request"),
    E("read a dataset's gates",    "GET",  "/api/v1/datasets/{slug}/gates/",        401, 403,  403,  403,  200, "dataset.gates.read"),
    E("set a dataset's gates",     "PUT",  "/api/v1/datasets/{slug}/gates/",        401, 403,  403,  403,  200, "dataset.gates.set"),
    E("list a dataset's sweeps",   "GET",  "/api/v1/datasets/{slug}/sweeps/",       401, 403,  403,  403,  200, "sweep.list"),
    E("start a sweep",             "POST", "/api/v1/datasets/{slug}/sweeps/",       401, 403,  403,  403,  202, "sweep.create"),
    E("read a sweep",              "GET",  "/api/v1/sweeps/{sweep}/",               401, 403,  403,  403,  200, "sweep.read"),
    E("list audit events",         "GET",  "/api/v1/audit/events/",                 401, 403,  403,  200,  403, "audit.events.list"),
    E("export audit events",       "GET",  "/api/v1/audit/events/export.csv",       401, 403,  403,  200,  403, "audit.events.export"),
    E("export audit events, JSONL", "GET", "/api/v1/audit/events/export.jsonl",     401, 403,  403,  200,  403, "audit.events.export"),
    E("verify the audit chain",    "GET",  "/api/v1/audit/verify/",                 401, 403,  403,  200,  403, "audit.verify"),
    E("submit a verification",     "POST", "/api/v1/verifications/",                401, 403,  201,  403,  403, "verification.create",
      success_actions=("verification.charge", "verification.answer")),
    E("preview a verification",    "POST", "/api/v1/verifications/preview/",        401, 403,  200,  403,  403, "verification.preview"),
    E("list own verifications",    "GET",  "/api/v1/verifications/",                401, 403,  200,  403,  403, "verification.list"),
    E("read a verification",       "GET",  "/api/v1/verifications/{verification}/", 401, 403,  200,  403,  403, "verification.read"),
    E("read another's verification", "GET", "/api/v1/verifications/{other_verification}/", 401, 403, 404, 403, 403, "verification.read"),
    E("read own ε budget",         "GET",  "/api/v1/budget/",                       401, 403,  200,  403,  403, "budget.read"),
    E("read a budget policy",      "GET",  "/api/v1/datasets/{slug}/budget-policy/", 401, 403, 403,  403,  200, "budget.policy.read"),
    E("set a budget policy",       "PUT",  "/api/v1/datasets/{slug}/budget-policy/", 401, 403, 403,  403,  200, "budget.policy.set"),
    E("set an ε allocation",       "PUT",  "/api/v1/datasets/{slug}/allocations/{researcher_id}/", 401, 403, 403, 403, 200, "budget.allocation.set"),
    E("read the OpenAPI document", "GET",  "/api/v1/schema/",                       200, 200,  200,  200,  200, None),
    E("read the API docs page",    "GET",  "/api/docs/",                            200, 200,  200,  200,  200, None),
    E("check health",              "GET",  "/healthz",                              200, 200,  200,  200,  200, None),
]

CASES = [
    pytest.param(endpoint, role, getattr(endpoint, role), id=f"{endpoint.name} as {role} -> {getattr(endpoint, role)}")
    for endpoint in MATRIX
    for role in ROLES
]


# --------------------------------------------------------------------------------------------
# The world every case runs in
# --------------------------------------------------------------------------------------------

@dataclass
class World:
    users: dict[str, User | None]
    clients: dict[str, APIClient]
    spare_tokens: dict[str, ApiToken]  # a second token per user, safe to revoke
    pending: User
    dataset: Dataset
    capture_on_commit: Callable
    run: GeneratorRun | None = None  # succeeded
    queued_run: GeneratorRun | None = None
    release: Release | None = None  # published
    draft: Release | None = None
    sweep: Sweep | None = None  # queued, never executed
    verification: Verification | None = None  # the verified researcher's, answered
    other_verification: Verification | None = None  # another verified researcher's, answered
    budget_state: dict | None = None  # the ledger, verifications, allocations and policies once both are made

    def user(self, role: str) -> User | None:
        return self.users[role]

    def add_runs_and_releases(self) -> None:
        """A trained run (a copula: hundredths of a second), a queued one, a published release and a draft.
        Made only for the cases that need them."""
        by = self.users["custodian"]
        with self.capture_on_commit(execute=True):  # the eager task trains the run when the creation commits
            run = run_create(dataset=self.dataset, model="copula", epochs=1, seed=0, device="cpu", by=by)
        run.refresh_from_db()
        assert run.status == GeneratorRun.Status.SUCCEEDED, run.error
        self.run = run
        self.queued_run = run_create(dataset=self.dataset, model="copula", epochs=1, seed=1, device="cpu", by=by,
                                     enqueue=False)
        # Their reports are queued on commit, which never comes in the test's transaction: finish them by hand
        # with metrics that pass every gate, so that both may be published.
        self.release = release_publish(release=finish_report(release_create(run=run, rows=8, seed=1, by=by)), by=by)
        self.draft = finish_report(release_create(run=run, rows=9, seed=2, by=by))

    def add_verifications(self) -> None:
        """Two answered verifications of the published release, the researcher's and another verified
        researcher's (each charged, which makes their allocations and the dataset's policy with the settings'
        defaults), and a snapshot of everything a verification request could charge or change."""
        if self.release is None:
            self.add_runs_and_releases()
        other, _ = make_user("vera", ["researcher"], verified=True)
        self.verification = verification_submit(user=self.users["researcher"], raw=self.hypothesis(epsilon=0.1,
                                                                                                    kind="mean"))
        self.other_verification = verification_submit(user=other, raw=self.hypothesis(epsilon=0.3))
        assert self.verification.status == self.other_verification.status == Verification.Status.ANSWERED
        self.budget_state = budget_state()

    def hypothesis(self, *, epsilon: float, kind: str = "count") -> dict:
        params = {"column": "age"} if kind == "mean" else {}
        return {"release": self.release.pk, "kind": kind, "params": params, "where": [],
                "claim": {"direction": "greater", "value": 1}, "epsilon": epsilon}

    def add_sweep(self) -> None:
        self.sweep = sweep_create(dataset=self.dataset, models=["copula"], seeds=[0], samples=1, epochs=1,
                                  by=self.users["custodian"], enqueue=False)

    def path(self, endpoint: Endpoint, role: str) -> str:
        own = self.spare_tokens.get(role, self.spare_tokens["researcher"])
        other = self.spare_tokens["researcher" if role == "custodian" else "custodian"]
        if self.run is None and ("/runs/" in endpoint.path or "/releases/" in endpoint.path):
            self.add_runs_and_releases()
        if self.sweep is None and "/sweeps/" in endpoint.path:
            self.add_sweep()
        if self.verification is None and touches_budgets(endpoint):
            self.add_verifications()
        ids = {name: getattr(self, name).pk if getattr(self, name) else None
               for name in ("run", "queued_run", "release", "draft", "sweep", "verification", "other_verification")}
        return endpoint.path.format(own_token=own.pk, other_token=other.pk, pending=self.pending.pk,
                                    slug=self.dataset.slug, researcher_id=self.users["researcher"].pk, **ids)

    def body(self, endpoint: Endpoint, role: str) -> tuple[dict | None, str | None]:
        """The request body and its format for one cell of the matrix."""
        if endpoint.name == "issue a token":
            who = self.users[role] or self.users["researcher"]  # anonymous: someone's own password, no token
            return {"username": who.username, "password": PASSWORD, "name": f"as-{role}"}, "json"
        if endpoint.name == "register":
            return {"username": f"new-{role}", "password": PASSWORD, "email": f"new-{role}@example.org",
                    "affiliation": "Example University"}, "json"
        if endpoint.name == "upload a dataset":
            return upload_payload(slug=f"upload-by-{role}"), "multipart"
        if endpoint.name == "start a training run":
            return {"model": "copula", "seed": 3, "device": "cpu"}, "json"
        if endpoint.name == "make a release":
            return {"rows": 7, "seed": 5}, "json"
        if endpoint.name == "set a dataset's gates":
            return {"mia_auc_max": 0.55}, "json"
        if endpoint.name == "start a sweep":
            return {"models": ["copula"], "seeds": [7], "samples": 2, "epochs": 1}, "json"
        if endpoint.name in ("submit a verification", "preview a verification"):
            return self.hypothesis(epsilon=0.1), "json"
        if endpoint.name == "set a budget policy":
            return {"daily_limit": 20, "total_cap": "50"}, "json"
        if endpoint.name == "set an ε allocation":
            return {"epsilon": "3.5"}, "json"
        return None, None


def touches_budgets(endpoint: Endpoint) -> bool:
    """The verification and budget endpoints: their cases run with two answered verifications."""
    return any(part in endpoint.path for part in ("/verifications/", "/budget/", "/budget-policy/", "/allocations/"))


def budget_state() -> dict:
    """Everything a verification or budget request could charge, store or change."""
    return {
        "ledger": list(LedgerEntry.objects.order_by("id").values_list(
            "id", "kind", "user_id", "epsilon_micro", "spent_after_micro", "allocation_after_micro")),
        "verifications": list(Verification.objects.order_by("id").values_list("id", "user_id", "status",
                                                                               "epsilon_micro")),
        "allocations": sorted(Allocation.objects.values_list("user_id", "dataset_id", "epsilon_micro", "spent_micro")),
        "policies": sorted(BudgetPolicy.objects.values_list(
            "dataset_id", "total_cap_micro", "total_spent_micro", "default_allocation_micro", "max_epsilon_micro",
            "min_subgroup", "daily_limit")),
    }


@pytest.fixture
def world(clients, custodian, researcher, unverified, auditor, dataset, django_capture_on_commit_callbacks) -> World:
    users = {"anonymous": None, "unverified": unverified[0], "researcher": researcher[0], "auditor": auditor[0],
             "custodian": custodian[0]}
    spare = {role: token_issue_for(user=user, name="spare")[0] for role, user in users.items() if user}
    pending, _ = make_user("pat", ["researcher"], verified=False)
    return World(users=users, clients=clients, spare_tokens=spare, pending=pending, dataset=dataset,
                 capture_on_commit=django_capture_on_commit_callbacks)


def send(client, method: str, path: str, body: dict | None = None, fmt: str | None = None):
    if method == "GET":
        return client.get(path)
    return client.generic(method, path) if body is None else getattr(client, method.lower())(path, body, format=fmt)


def content_of(response) -> bytes:
    """The body, read once (a streamed body can be consumed only once)."""
    if not hasattr(response, "_collected"):
        response._collected = b"".join(response.streaming_content) if response.streaming else response.content
    return response._collected


def head_seq() -> int:
    event = AuditEvent.objects.order_by("-seq").first()
    return event.seq if event else 0


def events_after(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def assert_error_body(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, content_of(response)
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


# --------------------------------------------------------------------------------------------
# What a success must look like, per endpoint
# --------------------------------------------------------------------------------------------

def _issued(world: World, role: str, response) -> User:
    body = response.json()
    who = world.users[role] or world.users["researcher"]
    assert body["token"].startswith(ApiToken.PREFIX) and body["token_type"] == "Bearer"
    assert body["user"]["username"] == who.username
    token = ApiToken.objects.get(pk=body["id"])
    assert (token.user_id, token.hint, token.name) == (who.pk, body["hint"], f"as-{role}")
    assert body["token"] not in {token.key_hash, token.hint}  # only the hash is stored
    me = client_for(body["token"]).get("/api/v1/accounts/me/")
    assert me.status_code == 200 and me.json()["username"] == who.username
    return who


def _tokens_listed(world: World, role: str, response) -> User:
    user = world.users[role]
    body = response.json()
    assert body["count"] == ApiToken.objects.filter(user=user).count() == 2
    assert {t["id"] for t in body["results"]} == set(ApiToken.objects.filter(user=user).values_list("pk", flat=True))
    assert all("key_hash" not in t and "token" not in t for t in body["results"])
    return user


def _own_token_revoked(world: World, role: str, response) -> User:
    token = world.spare_tokens[role]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert response.json()["id"] == token.pk and response.json()["revoked_at"] is not None
    return world.users[role]


def _accounts_listed(world: World, role: str, response) -> User:
    usernames = {u["username"] for u in response.json()["results"]}
    assert usernames == {"cora", "rhea", "uma", "otto", "pat"}
    return world.users[role]


def _registered(world: World, role: str, response) -> User:
    body = response.json()  # the same whether or not the name was free: no account fields (no enumeration)
    assert (body["username"], body["status"]) == (f"new-{role}", "received")
    user = User.objects.get(username=f"new-{role}")
    assert user.is_researcher and not (user.is_custodian or user.is_auditor) and user.verified_at is None
    return user  # the audit row names the new account, never the caller's bearer token


def _me(world: World, role: str, response) -> User:
    user = world.users[role]
    body = response.json()
    assert (body["id"], body["username"], body["roles"]) == (user.pk, user.username, user.roles)
    assert body["verified"] is (role != "unverified")
    return user


def _verified(world: World, role: str, response) -> User:
    world.pending.refresh_from_db()
    assert world.pending.verified_at is not None and world.pending.verified_by_id == world.users[role].pk
    assert response.json()["verified"] is True
    return world.users[role]


def _datasets_listed(world: World, role: str, response) -> User:
    body = response.json()
    assert body["count"] == 1 and [d["slug"] for d in body["results"]] == ["gbsg2-small"]
    assert set(body["results"][0]) == DATASET_FIELDS  # metadata only: no rows, no storage name
    return world.users[role]


def _dataset_read(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == DATASET_FIELDS
    assert (body["slug"], body["n_rows"], body["n_columns"], body["dropped_columns"]) == ("gbsg2-small", 6, 10, ["pid"])
    return world.users[role]


def _uploaded(world: World, role: str, response) -> User:
    body = response.json()
    assert (body["slug"], body["n_rows"], body["created_by"]) == (f"upload-by-{role}", 6, world.users[role].username)
    assert Dataset.objects.filter(slug=f"upload-by-{role}").exists()
    return world.users[role]


def _audit_listed(world: World, role: str, response) -> User:
    body = response.json()
    assert body["count"] == AuditEvent.objects.count() - 1  # all but the read of this very list
    assert [e["seq"] for e in body["results"]] == sorted(e["seq"] for e in body["results"])
    return world.users[role]


def _audit_exported(world: World, role: str, response) -> User:
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(content_of(response).decode())))
    assert rows[0] == EXPORT_FIELDS
    assert len(rows) - 1 == AuditEvent.objects.count()  # the export's own row is written before it streams
    return world.users[role]


def _audit_exported_jsonl(world: World, role: str, response) -> User:
    assert response["Content-Type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in content_of(response).decode().splitlines()]
    assert [list(line) for line in lines[:1]] == [EXPORT_FIELDS]
    assert len(lines) == AuditEvent.objects.count()  # the export's own row is written before it streams
    return world.users[role]


def _audit_verified(world: World, role: str, response) -> User:
    body = response.json()
    assert body["valid"] is True and body["first_broken"] is None
    assert body["events_checked"] == AuditEvent.objects.count() - 1
    return world.users[role]


def _runs_listed(world: World, role: str, response) -> User:
    body = response.json()
    assert [r["id"] for r in body["results"]] == [world.queued_run.pk, world.run.pk]
    assert set(body["results"][0]) == RUN_FIELDS
    return world.users[role]


def _run_started(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == RUN_FIELDS
    assert (body["dataset"], body["model"], body["epochs"], body["seed"], body["created_by"]) == (
        "gbsg2-small", "copula", None, 3, world.users[role].username)
    assert response["Location"] == f"/api/v1/runs/{body['id']}/"
    assert GeneratorRun.objects.filter(pk=body["id"], seed=3).exists()
    return world.users[role]


def _run_read(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == RUN_FIELDS
    assert (body["id"], body["status"], body["n_train"], body["n_holdout"]) == (world.run.pk, "succeeded", 5, 1)
    assert "holdout_rows" not in body and "checkpoint_name" not in body
    return world.users[role]


def _run_cancelled(world: World, role: str, response) -> User:
    world.queued_run.refresh_from_db()
    assert world.queued_run.status == "cancelled"
    assert response.json()["status"] == "cancelled"
    return world.users[role]


def _release_made(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == RELEASE_FIELDS
    assert (body["run"], body["rows"], body["seed"], body["published"]) == (world.run.pk, 7, 5, False)
    # its report is queued when the request commits
    assert (body["report"]["status"], body["report"]["url"], body["gate_override"]) == (
        "pending", f"/api/v1/releases/{body['id']}/report/", None)
    assert Release.objects.filter(pk=body["id"], created_by=world.users[role]).exists()
    return world.users[role]


def _releases_listed(world: World, role: str, response) -> User:
    body = response.json()
    expected = [world.draft.pk, world.release.pk] if role == "custodian" else [world.release.pk]
    assert [r["id"] for r in body["results"]] == expected  # researchers: published only
    assert all(set(r) == RELEASE_FIELDS for r in body["results"])
    return world.users[role]


def _release_read(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == RELEASE_FIELDS and body["id"] == world.release.pk and body["published"] is True
    assert (body["report"]["status"], body["report"]["headline"]["privacy.ims"], body["gate_override"]) == (
        "succeeded", 0.0, None)
    return world.users[role]


def _draft_read(world: World, role: str, response) -> User:
    body = response.json()
    assert (body["id"], body["published"]) == (world.draft.pk, False)
    return world.users[role]


def _published(world: World, role: str, response) -> User:
    world.draft.refresh_from_db()
    assert world.draft.published and world.draft.published_by == world.users[role]
    assert response.json()["published"] is True
    return world.users[role]


def _downloaded(release_of: Callable[[World], Release], kind: str):
    def check(world: World, role: str, response) -> User:
        release = release_of(world)
        assert response.streaming and response["Content-Disposition"].startswith("attachment;")
        content = content_of(response)
        assert len(content) == getattr(release, f"{kind}_bytes")
        return world.users[role]

    return check


def _report_read(release_of: Callable[[World], Release]):
    def check(world: World, role: str, response) -> User:
        release = release_of(world)
        assert response["Content-Type"].startswith("application/json")
        body = response.json()
        assert (body["release"], body["dataset"], body["override"]) == (release.pk, "gbsg2-small", None)
        assert set(body["sections"]) == {"fidelity", "survival", "privacy", "utility"}
        assert body["headline"]["privacy.mia_auc"] == 0.52
        assert [(g["gate"], g["passed"]) for g in body["gates"]] == [(name, True) for name in DEFAULT_GATES]
        metrics = [m for section in body["sections"].values() for m in section]
        assert metrics
        if role == "custodian":  # the whole report, statistics of the real rows included
            assert all(m["real_details"] == {"marker": 4242.4242} for m in metrics)
        else:  # the public view: scores only
            assert all("real_details" not in m for m in metrics)
            assert REAL_MARKER not in response.content.decode()
        return world.users[role]

    return check


def _report_page(world: World, role: str, response) -> User:
    assert response["Content-Type"].startswith("text/html")
    audience = "custodian" if role == "custodian" else "public"
    assert response.content.decode() == f"<!doctype html><title>{audience}</title>"  # as finish_report stored it
    return world.users[role]


def _report_requested(world: World, role: str, response) -> User:
    report = ReleaseReport.objects.get(release=world.draft)
    assert (report.status, report.content, report.html) == ("pending", {}, "")
    body = response.json()
    assert (body["status"], body["headline"], body["url"]) == (
        "pending", None, f"/api/v1/releases/{world.draft.pk}/report/")
    return world.users[role]


def _gates_read(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == GATES_FIELDS
    assert body["dataset"] == "gbsg2-small" and body["gates"] == body["defaults"] == DEFAULT_GATES
    assert set(body["descriptions"]) == set(DEFAULT_GATES)
    return world.users[role]


def _gates_set(world: World, role: str, response) -> User:
    body = response.json()
    assert body["gates"] == {**DEFAULT_GATES, "mia_auc_max": 0.55}
    world.dataset.refresh_from_db()
    assert world.dataset.gates == {"mia_auc_max": 0.55}
    return world.users[role]


def _sweeps_listed(world: World, role: str, response) -> User:
    body = response.json()
    assert [s["id"] for s in body["results"]] == [world.sweep.pk]
    assert set(body["results"][0]) == SWEEP_FIELDS
    return world.users[role]


def _sweep_started(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == SWEEP_FIELDS
    assert (body["dataset"], body["models"], body["seeds"], body["samples"], body["epochs"], body["rows"]) == (
        "gbsg2-small", ["copula"], [7], 2, None, 6)  # a copula-only sweep has no epochs to show
    # queued: the task starts when the request commits, which it never does in the test's transaction
    assert (body["status"], body["progress"]["steps_done"], body["progress"]["steps_total"]) == ("queued", 0, 3)
    assert response["Location"] == f"/api/v1/sweeps/{body['id']}/"
    assert Sweep.objects.filter(pk=body["id"], created_by=world.users[role]).exists()
    return world.users[role]


def _sweep_read(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == SWEEP_FIELDS
    assert (body["id"], body["status"], body["proposed_release"], body["candidates"]) == (
        world.sweep.pk, "queued", None, [])
    return world.users[role]


MICRO = 1_000_000  # ε in millionths (accounts.models)


def _verification_submitted(world: World, role: str, response) -> User:
    user = world.users[role]
    body = response.json()
    assert set(body) == VERIFICATION_FIELDS | {"budget"}
    assert (body["dataset"], body["release"], body["kind"], body["status"], body["reused"], body["reused_from"],
            body["epsilon_charged"]) == ("gbsg2-small", world.release.pk, "count", "answered", False, None, "0.1")
    assert body["hypothesis"]["claim"] == {"direction": "greater", "value": 1}
    answer = body["answer"]
    assert (answer["kind"], answer["epsilon"], answer["epsilon_split"]) == ("count", "0.1", {"count": "0.1"})
    assert answer["synthetic_estimate"] == 8.0  # the release's 8 rows, counted without noise
    # Six real rows and a noisy count (discrete Laplace, scale 10) against the smallest subgroup of 20: most
    # often withheld as insufficient data (the ε is charged all the same), sometimes released with its CI.
    if answer["noisy_n"] < 20:
        assert answer["withheld"] is True and answer["reason"].startswith("insufficient data")
        assert (answer["estimate"], answer["ci_low"], answer["ci_high"], answer["verdict"]) == (None, None, None, None)
    else:
        assert answer["withheld"] is False and answer["estimate"] == answer["noisy_n"]
        assert answer["ci_low"] <= answer["estimate"] <= answer["ci_high"]
        assert answer["verdict"] == verdict_for(answer["ci_low"], answer["ci_high"], {"direction": "greater",
                                                                                       "value": 1})
    # the world's mean (0.1) and this count (0.1) out of the default 2
    assert body["budget"] == {"dataset": "gbsg2-small", "allocation": "2", "spent": "0.2", "left": "1.8"}
    stored = Verification.objects.get(pk=body["id"])
    assert (stored.user_id, stored.status, stored.primary, stored.epsilon_micro, stored.answer) == (
        user.pk, "answered", True, MICRO // 10, answer)
    [charge] = LedgerEntry.objects.filter(verification=stored)
    assert (charge.kind, charge.user_id, charge.epsilon_micro, charge.spent_after_micro) == (
        "charge", user.pk, MICRO // 10, 2 * MICRO // 10)
    assert Allocation.objects.get(user=user, dataset=world.dataset).spent_micro == 2 * MICRO // 10
    assert BudgetPolicy.objects.get(dataset=world.dataset).total_spent_micro == 5 * MICRO // 10  # + vera's 0.3
    return user


def _verification_previewed(world: World, role: str, response) -> User:
    body = response.json()
    assert (body["dataset"], body["release"], body["kind"], body["epsilon"], body["draws"]) == (
        "gbsg2-small", world.release.pk, "count", "0.1", 40)
    assert body["synthetic_estimate"] == 8.0  # the release's 8 rows, counted without noise
    assert 0 <= body["p_decisive"] <= 1 and 0 <= body["p_withheld"] <= 1
    # the world's mean (0.1) is spent out of the default 2; at most 1 per hypothesis
    assert (body["budget_left"], body["max_epsilon"]) == ("1.9", "1")  # ε figures: exact decimal strings
    assert body["suggested_epsilon"] is None or float(body["suggested_epsilon"]) <= 1.0
    assert budget_state() == world.budget_state  # free: nothing charged, no verification stored
    return world.users[role]


def _verifications_listed(world: World, role: str, response) -> User:
    body = response.json()
    assert body["count"] == 1 and [v["id"] for v in body["results"]] == [world.verification.pk]  # not vera's
    assert set(body["results"][0]) == VERIFICATION_FIELDS
    assert body["results"][0]["answer"] == world.verification.answer
    assert budget_state() == world.budget_state  # reading charges nothing
    return world.users[role]


def _verification_read(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == VERIFICATION_FIELDS
    assert (body["id"], body["kind"], body["status"], body["epsilon_charged"], body["release"]) == (
        world.verification.pk, "mean", "answered", "0.1", world.release.pk)
    assert body["answer"] == world.verification.answer and body["hypothesis"]["params"] == {"column": "age"}
    assert budget_state() == world.budget_state
    return world.users[role]


def _budget_read(world: World, role: str, response) -> User:
    assert response.json() == {"budgets": [
        {"dataset": "gbsg2-small", "allocation": "2", "spent": "0.1", "left": "1.9", "dataset_left": "19.6",
         "max_epsilon_per_query": "1"}]}
    assert budget_state() == world.budget_state
    return world.users[role]


def _policy_read(world: World, role: str, response) -> User:
    assert response.json() == {"dataset": "gbsg2-small", "total_cap": "20", "total_spent": "0.4",
                               "default_allocation": "2", "max_epsilon_per_query": "1", "min_subgroup": 20,
                               "daily_limit": None}
    assert budget_state() == world.budget_state
    return world.users[role]


def _policy_set(world: World, role: str, response) -> User:
    body = response.json()
    assert set(body) == POLICY_FIELDS
    assert (body["dataset"], body["total_cap"], body["daily_limit"], body["total_spent"], body["min_subgroup"]) == (
        "gbsg2-small", "50", 20, "0.4", 20)
    policy = BudgetPolicy.objects.get(dataset=world.dataset)
    assert (policy.total_cap_micro, policy.daily_limit, policy.total_spent_micro, policy.default_allocation_micro,
            policy.max_epsilon_micro) == (50 * MICRO, 20, 4 * MICRO // 10, 2 * MICRO, MICRO)
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.details["before"]["total_cap"], event.details["after"]["total_cap"]) == ("20", "50")
    return world.users[role]


def _allocation_set(world: World, role: str, response) -> User:
    researcher = world.users["researcher"]
    assert response.json() == {"dataset": "gbsg2-small", "user": researcher.pk, "username": "rhea",
                               "allocation": "3.5", "spent": "0.1"}
    allocation = Allocation.objects.get(user=researcher, dataset=world.dataset)
    assert (allocation.epsilon_micro, allocation.spent_micro) == (35 * MICRO // 10, MICRO // 10)
    entry = LedgerEntry.objects.order_by("-id").first()
    assert (entry.kind, entry.user_id, entry.by_id, entry.allocation_after_micro, entry.spent_after_micro) == (
        "allocation", researcher.pk, world.users[role].pk, 35 * MICRO // 10, MICRO // 10)
    assert len(budget_state()["ledger"]) == len(world.budget_state["ledger"]) + 1
    return world.users[role]


def _openapi(world: World, role: str, response) -> None:
    assert yaml.safe_load(response.content)["openapi"].startswith("3.")


def _docs(world: World, role: str, response) -> None:
    assert response["Content-Type"].startswith("text/html") and b"swagger-ui" in response.content


def _health(world: World, role: str, response) -> None:
    assert response.json() == {"status": "ok"}


SUCCESS_CHECKS: dict[str, Callable[[World, str, Any], User | None]] = {
    "issue a token": _issued,
    "list own tokens": _tokens_listed,
    "revoke own token": _own_token_revoked,
    "list accounts": _accounts_listed,
    "register": _registered,
    "read own account": _me,
    "verify a researcher": _verified,
    "list datasets": _datasets_listed,
    "read a dataset": _dataset_read,
    "upload a dataset": _uploaded,
    "list a dataset's runs": _runs_listed,
    "start a training run": _run_started,
    "read a run": _run_read,
    "cancel a run": _run_cancelled,
    "make a release": _release_made,
    "list releases": _releases_listed,
    "read a release": _release_read,
    "read a draft release": _draft_read,
    "publish a release": _published,
    "download a CSV": _downloaded(lambda w: w.release, "csv"),
    "download a Parquet": _downloaded(lambda w: w.release, "parquet"),
    "download a draft's CSV": _downloaded(lambda w: w.draft, "csv"),
    "download a draft's Parquet": _downloaded(lambda w: w.draft, "parquet"),
    "read a release's report": _report_read(lambda w: w.release),
    "read a report as HTML": _report_page,
    "read a draft's report": _report_read(lambda w: w.draft),
    "ask for a report again": _report_requested,
    "read a dataset's gates": _gates_read,
    "set a dataset's gates": _gates_set,
    "list a dataset's sweeps": _sweeps_listed,
    "start a sweep": _sweep_started,
    "read a sweep": _sweep_read,
    "list audit events": _audit_listed,
    "export audit events": _audit_exported,
    "export audit events, JSONL": _audit_exported_jsonl,
    "verify the audit chain": _audit_verified,
    "submit a verification": _verification_submitted,
    "preview a verification": _verification_previewed,
    "list own verifications": _verifications_listed,
    "read a verification": _verification_read,
    "read own ε budget": _budget_read,
    "read a budget policy": _policy_read,
    "set a budget policy": _policy_set,
    "set an ε allocation": _allocation_set,
    "read the OpenAPI document": _openapi,
    "read the API docs page": _docs,
    "check health": _health,
}


def assert_no_side_effect(world: World, endpoint: Endpoint, role: str) -> None:
    """A refused write leaves nothing behind."""
    if endpoint.name == "verify a researcher":
        world.pending.refresh_from_db()
        assert world.pending.verified_at is None
    elif endpoint.name == "upload a dataset":
        assert list(Dataset.objects.values_list("slug", flat=True)) == ["gbsg2-small"]
    elif endpoint.name.startswith("revoke"):
        assert not ApiToken.objects.filter(revoked_at__isnull=False).exists()
    elif endpoint.name == "start a training run":
        assert set(GeneratorRun.objects.values_list("pk", flat=True)) == {world.run.pk, world.queued_run.pk}
    elif endpoint.name == "cancel a run":
        world.queued_run.refresh_from_db()
        assert (world.queued_run.status, world.queued_run.cancel_requested) == ("queued", False)
    elif endpoint.name == "make a release":
        assert set(Release.objects.values_list("pk", flat=True)) == {world.release.pk, world.draft.pk}
    elif endpoint.name == "publish a release":
        world.draft.refresh_from_db()
        assert not world.draft.published
    elif endpoint.name == "ask for a report again":
        report = ReleaseReport.objects.get(release=world.draft)
        assert report.status == "succeeded" and report.content["headline"]["privacy.ims"] == 0.0
    elif endpoint.name == "set a dataset's gates":
        world.dataset.refresh_from_db()
        assert world.dataset.gates == {}
    elif endpoint.name == "start a sweep":
        assert list(Sweep.objects.values_list("pk", flat=True)) == [world.sweep.pk]
        assert not GeneratorRun.objects.exists()
    elif touches_budgets(endpoint):
        # nothing charged or stored: no new verification or ledger entry, allocations and policy unchanged
        assert budget_state() == world.budget_state
        assert Verification.objects.count() == 2 and not LedgerEntry.objects.filter(by__isnull=False).exists()


# --------------------------------------------------------------------------------------------
# The matrix test
# --------------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(("endpoint", "role", "expected"), CASES)
def test_it_answers_every_endpoint_for_every_role_as_the_matrix_says(world, endpoint, role, expected):
    path = world.path(endpoint, role)
    body, fmt = world.body(endpoint, role)
    before = head_seq()

    response = send(world.clients[role], endpoint.method, path, body, fmt)
    content = content_of(response)
    events = events_after(before)

    assert response.status_code == expected, content[:500]
    if expected < 400:
        actor = SUCCESS_CHECKS[endpoint.name](world, role, response)
        written = [(e.action, e.outcome, e.actor_id, e.channel) for e in events]
        if endpoint.audit_action is None:
            assert written == []
        else:
            actions = endpoint.success_actions or (endpoint.audit_action,)
            assert written == [(action, "success", actor.pk, "api") for action in actions]
        return

    codes = {401: "not_authenticated", 403: "permission_denied", 404: "not_found"}
    error = assert_error_body(response, expected, codes[expected])
    assert error["details"] is None
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    else:
        assert "WWW-Authenticate" not in response
    assert_no_side_effect(world, endpoint, role)
    caller = world.user(role)
    assert len(events) == 1, [(e.action, e.outcome) for e in events]
    event = events[0]
    assert event.action == endpoint.audit_action
    assert event.outcome == ("denied" if expected in (401, 403) else "refused")
    assert event.actor_id == (caller.pk if caller else None)
    assert event.actor_username == (caller.username if caller else "")
    assert event.channel == "api"
    assert {k: event.details[k] for k in ("status", "code", "method", "path")} == {
        "status": expected, "code": codes[expected], "method": endpoint.method, "path": path.split("?")[0]}


def test_the_matrix_covers_every_api_route():
    """A route added without a row in the matrix fails here."""
    from django.urls import get_resolver

    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/v1/")
    routes = {"/api/v1/" + str(p.pattern) for p in api.url_patterns}
    normalised = {
        e.path.replace("{own_token}", "<int:token_id>").replace("{other_token}", "<int:token_id>")
        .replace("{pending}", "<int:user_id>").replace("{slug}", "<str:slug>")
        .replace("{run}", "<int:run_id>").replace("{queued_run}", "<int:run_id>")
        .replace("{release}", "<int:release_id>").replace("{draft}", "<int:release_id>")
        .replace("{sweep}", "<int:sweep_id>").replace("{verification}", "<int:verification_id>")
        .replace("{other_verification}", "<int:verification_id>").replace("{researcher_id}", "<int:user_id>")
        .split("?")[0]
        for e in MATRIX
    }
    assert routes <= normalised, routes - normalised
    assert {"/api/docs/", "/healthz"} <= normalised


# --------------------------------------------------------------------------------------------
# Tokens: bad, revoked and expired tokens are anonymous 401s; passwords
# --------------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer cht_not-a-real-token", "Bearer nonsense", "Bearer a b"])
def test_it_refuses_a_bad_token_with_a_bearer_challenge_and_audits_it(db, header):
    before = head_seq()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/accounts/me/")
    assert_error_body(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Bearer")
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id, event.details["status"]) == ("accounts.me", "denied", None, 401)


@pytest.mark.django_db
def test_it_refuses_a_revoked_token_after_its_owner_revokes_it(researcher):
    user, raw = researcher
    client = client_for(raw)
    current = ApiToken.objects.get(user=user)
    assert client.post(f"/api/v1/auth/tokens/{current.pk}/revoke/").status_code == 200
    before = head_seq()
    response = client.get("/api/v1/datasets/")
    error = assert_error_body(response, 401, "authentication_failed")
    assert "revoked" in error["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id) == ("dataset.list", "denied", None)
    again = client_for(token_issue_for(user=user)[1]).post(f"/api/v1/auth/tokens/{current.pk}/revoke/")
    assert assert_error_body(again, 409, "already_revoked")


@pytest.mark.django_db
def test_it_refuses_an_expired_token(researcher):
    from django.utils import timezone

    user, _ = researcher
    token, raw = token_issue_for(user=user, ttl_days=1)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timezone.timedelta(seconds=1))
    response = client_for(raw).get("/api/v1/accounts/me/")
    assert "expired" in assert_error_body(response, 401, "authentication_failed")["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_it_refuses_a_wrong_password_and_audits_the_attempt_as_denied(researcher):
    before = head_seq()
    response = APIClient().post("/api/v1/auth/token/", {"username": "rhea", "password": "wrong password!"},
                                format="json")
    error = assert_error_body(response, 401, "invalid_credentials")
    assert "password" not in (error["details"] or {})
    assert not ApiToken.objects.filter(user=researcher[0]).exclude(name="").exists()
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id, event.details["username"]) == (
        "auth.token.issue", "denied", None, "rhea")
    assert "wrong password!" not in str(event.details)


@pytest.mark.django_db
def test_it_sends_a_challenge_with_the_wrong_password_401(researcher):
    response = APIClient().post("/api/v1/auth/token/", {"username": "rhea", "password": "wrong password!"},
                                format="json")
    assert response.status_code == 401
    assert "WWW-Authenticate" in response


@pytest.mark.django_db
def test_it_lets_a_token_issued_by_password_do_exactly_what_the_role_allows(auditor):
    issued = APIClient().post("/api/v1/auth/token/", {"username": "otto", "password": PASSWORD}, format="json")
    assert issued.status_code == 201
    client = client_for(issued.json()["token"])
    assert client.get("/api/v1/audit/verify/").json()["valid"] is True
    assert_error_body(client.get("/api/v1/accounts/"), 403, "permission_denied")


# --------------------------------------------------------------------------------------------
# Several roles; verification opens the datasets
# --------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_lets_a_custodian_who_is_also_an_auditor_do_both(dataset):
    user, raw = make_user("cass", ["custodian", "auditor"])
    client = client_for(raw)

    me = client.get("/api/v1/accounts/me/").json()
    assert (me["roles"], me["verified"]) == (["custodian", "auditor"], True)
    assert {u["username"] for u in client.get("/api/v1/accounts/").json()["results"]} == {"cora", "cass"}
    upload = client.post("/api/v1/datasets/", upload_payload(slug="by-cass"), format="multipart")
    assert upload.status_code == 201 and upload.json()["created_by"] == "cass"
    assert [d["slug"] for d in client.get("/api/v1/datasets/").json()["results"]] == ["by-cass", "gbsg2-small"]
    events = client.get("/api/v1/audit/events/", {"user": "cass", "page_size": 200}).json()["results"]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("auth.token.issue", "success"), ("accounts.me", "success"), ("accounts.list", "success"), ("dataset.upload", "success"), ("dataset.list", "success"),
    ]
    assert client.get("/api/v1/audit/verify/").json()["valid"] is True
    export = client.get("/api/v1/audit/events/export.csv")
    assert export.status_code == 200 and export["Content-Type"].startswith("text/csv")
    assert not AuditEvent.objects.filter(actor=user, outcome="denied").exists()


@pytest.mark.django_db
def test_it_lets_a_verified_researcher_who_is_also_an_auditor_do_both_but_nothing_more(dataset):
    user, raw = make_user("ravi", ["researcher", "auditor"], verified=True)
    client = client_for(raw)

    assert client.get("/api/v1/datasets/gbsg2-small/").status_code == 200
    assert client.get("/api/v1/audit/events/").status_code == 200
    before = head_seq()
    assert_error_body(client.get("/api/v1/accounts/"), 403, "permission_denied")
    assert_error_body(client.post("/api/v1/datasets/", upload_payload(slug="by-ravi"), format="multipart"), 403)
    assert [(e.action, e.outcome, e.actor_id) for e in events_after(before)] == [
        ("accounts.list", "denied", user.pk), ("dataset.upload", "denied", user.pk)]
    assert not Dataset.objects.filter(slug="by-ravi").exists()


@pytest.mark.django_db
def test_it_opens_the_datasets_to_an_unverified_researcher_once_a_custodian_verifies_them(clients, unverified, dataset):
    user, _ = unverified
    researcher_client = clients["unverified"]

    refused = researcher_client.get("/api/v1/datasets/")
    assert "not verified" in assert_error_body(refused, 403, "permission_denied")["message"]
    assert researcher_client.get("/api/v1/accounts/me/").json()["verified"] is False
    pending = clients["custodian"].get("/api/v1/accounts/", {"role": "researcher", "verified": "false"}).json()
    assert [u["username"] for u in pending["results"]] == ["uma"]

    verified = clients["custodian"].post(f"/api/v1/accounts/{user.pk}/verify/")
    assert verified.status_code == 200 and verified.json()["verified"] is True
    event = AuditEvent.objects.filter(action="accounts.verify").get()
    assert (event.outcome, event.actor_username, event.object_type, event.object_id) == (
        "success", "cora", "user", str(user.pk))

    listed = researcher_client.get("/api/v1/datasets/")
    assert listed.status_code == 200 and [d["slug"] for d in listed.json()["results"]] == ["gbsg2-small"]
    assert researcher_client.get("/api/v1/datasets/gbsg2-small/").status_code == 200
    assert researcher_client.get("/api/v1/accounts/me/").json()["verified"] is True
    assert_error_body(researcher_client.get("/api/v1/audit/events/"), 403)  # verified is not an auditor
    again = clients["custodian"].post(f"/api/v1/accounts/{user.pk}/verify/")
    assert_error_body(again, 409, "already_verified")


@pytest.mark.django_db
def test_it_registers_a_researcher_who_can_then_log_in_but_not_list_datasets(dataset):
    client = APIClient()
    registered = client.post("/api/v1/accounts/register/", {"username": "nobody", "password": PASSWORD,
                                                             "email": "n@example.org"}, format="json")
    assert registered.status_code == 202
    token = client.post("/api/v1/auth/token/", {"username": "nobody", "password": PASSWORD}, format="json")
    assert token.status_code == 201
    assert_error_body(client_for(token.json()["token"]).get("/api/v1/datasets/"), 403, "permission_denied")


# --------------------------------------------------------------------------------------------
# The admin site: custodians only, by session login; a bearer token does not open it
# --------------------------------------------------------------------------------------------

ADMIN_PAGES = [
    "/admin/",
    "/admin/clearinghouse/dataset/",
    "/admin/clearinghouse/auditevent/",
    "/admin/accounts/user/",
    "/admin/accounts/apitoken/",
    "/admin/clearinghouse/dataset/{dataset}/change/",
]
#                   anonymous unverified researcher auditor custodian
ADMIN_EXPECTED = dict(zip(ROLES, (302, 302, 302, 302, 200)))


def session_client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("page", ADMIN_PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_it_opens_the_admin_site_to_custodian_sessions_only(world, role, page):
    path = page.format(dataset=world.dataset.pk)
    response = session_client(world.user(role)).get(path)
    assert response.status_code == ADMIN_EXPECTED[role]
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/?next=")
    else:
        assert b"Clearing-house custody" in response.content


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["/admin/", "/admin/clearinghouse/auditevent/"])
def test_it_does_not_open_the_admin_site_for_a_custodian_bearer_token(world, page):
    response = world.clients["custodian"].get(page)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_it_logs_a_custodian_into_the_admin_site_by_password_and_audits_it(custodian):
    client = Client()
    before = head_seq()
    response = client.post("/admin/login/?next=/admin/", {"username": "cora", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id, event.channel) == (
        "auth.admin_login", "success", custodian[0].pk, "admin")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["unverified", "researcher", "auditor"])
def test_it_refuses_an_admin_login_by_a_non_custodian(world, role):
    client = Client()
    response = client.post("/admin/login/?next=/admin/", {"username": world.user(role).username, "password": PASSWORD})
    assert response.status_code == 200  # the login form again, with the refusal
    assert b"Only custodians may use the admin site." in response.content
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["researcher", "auditor"])
def test_it_audits_a_refused_admin_login_by_a_non_custodian_as_denied(world, role):
    before = head_seq()
    Client().post("/admin/login/?next=/admin/", {"username": world.user(role).username, "password": PASSWORD})
    events = [(e.action, e.outcome) for e in events_after(before)]
    assert ("auth.admin_login", "denied") in events


@pytest.mark.django_db
def test_it_audits_a_wrong_admin_password_as_a_denied_login(custodian):
    before = head_seq()
    response = Client().post("/admin/login/?next=/admin/", {"username": "cora", "password": "not the password"})
    assert response.status_code == 200
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id, event.details) == (
        "auth.admin_login", "denied", None, {"username": "cora"})
