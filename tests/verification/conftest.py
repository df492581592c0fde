"""Fixtures for the Django side of verification: GBSG2 (all 686 rows) as a dataset, a published
copula release of it, and helpers to ask hypotheses and read budgets, ledgers and audit rows."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.conftest import GBSG2_SCHEMA, finish_report

VERIFY = "/api/v1/verifications/"
BUDGET = "/api/v1/budget/"


@pytest.fixture(autouse=True)
def _empty_cache():
    """DRF's rate limits live in the cache (Redis on the PostgreSQL pass), which outlives a test."""
    cache.clear()
    yield
    cache.clear()


_CSV: bytes | None = None


def gbsg2_csv() -> bytes:
    """All of GBSG2 with a ``pid`` column first, as CSV bytes (built once per process)."""
    global _CSV
    if _CSV is None:
        from lifelines.datasets import load_gbsg2

        frame = load_gbsg2()
        frame.insert(0, "pid", range(1, len(frame) + 1))
        _CSV = frame.to_csv(index=False).encode()
    return _CSV


def publish_gbsg2(custodian_user, *, slug: str = "gbsg2", schema: dict | None = None, seed: int = 1,
                  policy: bool = True):
    """A dataset of GBSG2 and a published copula release (686 rows) of it, report marked passing,
    and (``policy``) its budget policy with the settings' defaults, so that "nothing changed"
    compares like with like (the first request would create it otherwise).

    Training runs in-process; ``queue_report=False`` keeps the (slow) report out of transactional tests."""
    from accounts.budgets import policy_for
    from clearinghouse.services.datasets import dataset_create
    from releases.services import release_create, release_publish
    from generators.services import run_create
    from generators.tasks import train_run

    dataset = dataset_create(slug=slug, name=f"GBSG2 ({slug})", schema=schema or GBSG2_SCHEMA, data=gbsg2_csv(),
                             by=custodian_user)
    run = run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian_user,
                     enqueue=False)
    train_run.apply(args=[run.pk])  # in this process, now
    run.refresh_from_db()
    assert run.status == "succeeded", (run.status, run.error)
    release = release_create(run=run, rows=686, seed=seed, by=custodian_user, queue_report=False)
    finish_report(release)
    if policy:
        policy_for(dataset)
    return dataset, release_publish(release=release, by=custodian_user)


def publish_another_release(release, custodian_user, *, seed: int = 2):
    """A second published release of the same run."""
    from releases.services import release_create, release_publish

    other = release_create(run=release.run, rows=686, seed=seed, by=custodian_user, queue_report=False)
    finish_report(other)
    return release_publish(release=other, by=custodian_user)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture
def gbsg2(custodian):
    """(dataset, published release) of the full GBSG2 cohort."""
    return publish_gbsg2(custodian[0])


@pytest.fixture
def ravi(db):
    """A second verified researcher: (user, client)."""
    from tests.conftest import client_for, make_user

    user, raw = make_user("ravi", ["researcher"], verified=True)
    return user, client_for(raw)


# --------------------------------------------------------------------------- helpers
def hypothesis(release, kind: str = "mean", params: dict | None = None, *, where: list | None = None,
               claim: dict | None = None, epsilon=0.5, **extra) -> dict:
    """A hypothesis body (mean age > 50 at ε = 0.5 unless told otherwise)."""
    body = {"release": release.pk if hasattr(release, "pk") else release, "kind": kind,
            "params": {"column": "age"} if params is None else params, "where": where or [],
            "claim": claim or {"direction": "greater", "value": 50}, "epsilon": epsilon}
    body.update(extra)
    return body


def ask(client, body, **kwargs):
    return client.post(VERIFY, body, format="json", **kwargs)


def assert_error(response, status: int, code: str) -> dict:
    """The one error body ``{"error": {"code", "message", "details"}}``; returns the inner object."""
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    return error


def micro(value) -> int:
    """ε in millionths, from a number or a decimal string."""
    from decimal import Decimal

    return int(Decimal(str(value)).scaleb(6))


def ledger(user=None, dataset=None, kind: str | None = None) -> list:
    from accounts.models import LedgerEntry

    qs = LedgerEntry.objects.order_by("id")
    if user is not None:
        qs = qs.filter(user=user)
    if dataset is not None:
        qs = qs.filter(dataset=dataset)
    if kind is not None:
        qs = qs.filter(kind=kind)
    return list(qs)


def spent_micro(user, dataset) -> int | None:
    """The allocation's spent (millionths), or None when the researcher has no allocation yet."""
    from accounts.models import Allocation

    allocation = Allocation.objects.filter(user=user, dataset=dataset).first()
    return None if allocation is None else allocation.spent_micro


def state() -> dict:
    """Everything a request could charge or store: ledger, verifications, allocations, policies."""
    from accounts.models import Allocation, BudgetPolicy, LedgerEntry
    from verification.models import Verification

    return {
        "ledger": list(LedgerEntry.objects.order_by("id").values_list("id", "kind", "epsilon_micro")),
        "verifications": list(Verification.objects.order_by("id").values_list("id", "status", "epsilon_micro")),
        "allocations": sorted(Allocation.objects.values_list("user_id", "dataset_id", "epsilon_micro",
                                                             "spent_micro")),
        "policies": sorted(BudgetPolicy.objects.values_list("dataset_id", "total_cap_micro", "total_spent_micro")),
    }


def assert_ledger_adds_up(dataset) -> None:
    """Per researcher: charges − refunds == allocation.spent, the last allocation entry is the
    allocation; over all researchers: the charges − refunds == the policy's total_spent."""
    from accounts.models import Allocation, BudgetPolicy, LedgerEntry

    total = 0
    for allocation in Allocation.objects.filter(dataset=dataset):
        entries = list(LedgerEntry.objects.filter(user=allocation.user, dataset=dataset).order_by("id"))
        charged = sum(e.epsilon_micro for e in entries if e.kind == "charge")
        refunded = sum(e.epsilon_micro for e in entries if e.kind == "refund")
        assert charged - refunded == allocation.spent_micro, (allocation, charged, refunded)
        allocations = [e for e in entries if e.kind == "allocation"]
        assert allocations and allocations[-1].epsilon_micro == allocation.epsilon_micro
        assert entries[-1].spent_after_micro == allocation.spent_micro
        assert 0 <= allocation.spent_micro <= allocation.epsilon_micro
        total += allocation.spent_micro
    policy = BudgetPolicy.objects.get(dataset=dataset)
    assert policy.total_spent_micro == total
    assert 0 <= policy.total_spent_micro <= policy.total_cap_micro


def audit_events(**filters) -> list:
    from clearinghouse.models import AuditEvent

    return list(AuditEvent.objects.filter(**filters).order_by("seq"))


def release_frame(release):
    """The release's synthetic rows, as the researcher downloads them (parquet)."""
    import pandas as pd

    from releases.storage import release_file

    return pd.read_parquet(release_file(release, "parquet"))
