"""Concurrent verifications on PostgreSQL: the budget can never be overspent and an identical
hypothesis is never charged twice.

Each request runs in its own thread with its own database connection and commits for real
(``transaction=True``); a barrier releases them together so that they queue on the allocation
and policy rows (the conditional UPDATEs) and on the one-answer-per-hypothesis unique index.
SQLite serialises writers on the whole file, so the module only runs on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections

from accounts.budgets import allocation_set, policy_set
from accounts.models import Allocation, BudgetPolicy, LedgerEntry
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_chain_verify
from tests.conftest import client_for, make_user, refusals
from tests.verification.conftest import VERIFY, assert_ledger_adds_up, hypothesis, publish_gbsg2
from verification.models import Verification

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (row locks under concurrency)"),
    pytest.mark.django_db(transaction=True),
]


def fire(requests: list[tuple[str, dict]]) -> list[tuple[int, dict, dict]]:
    """POST each (token, body) from its own thread, all released at once; (status, json, headers) in order."""
    barrier = threading.Barrier(len(requests))
    results: list = [None] * len(requests)

    def worker(i: int, token: str, body: dict) -> None:
        try:
            client = client_for(token)
            barrier.wait(timeout=60)
            response = client.post(VERIFY, body, format="json")
            results[i] = (response.status_code, response.json(), dict(response.headers))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = (None, {"exception": repr(exc)}, {})
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, token, body)) for i, (token, body) in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert all(r is not None and r[0] is not None for r in results), [r for r in results if r is None or r[0] is None]
    return results


def count_body(release, i: int, epsilon=0.1) -> dict:
    """The i-th of many different hypotheses (never reused): patients aged at least i."""
    return hypothesis(release, "count", {}, epsilon=epsilon, where=[{"column": "age", "op": ">=", "value": i}],
                      claim={"direction": "greater", "value": 100})


def test_fifty_concurrent_verifications_against_an_allocation_for_ten_charge_exactly_ten(custodian, researcher):
    dataset, release = publish_gbsg2(custodian[0])
    user, token = researcher
    allocation_set(user=user, dataset=dataset, epsilon="1", by=custodian[0])  # covers exactly 10 at ε = 0.1

    results = fire([(token, count_body(release, i)) for i in range(50)])

    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 10, 403: 40}, [(s, b) for s, b, _ in results if s not in (201, 403)]
    for status, body, _ in results:
        if status == 403:
            assert body["error"]["code"] == "budget_exhausted", body
            assert body["error"]["details"] == {"requested": "0.1", "left": "0", "limited_by": "allocation"}
        else:
            assert body["status"] == "answered" and body["reused"] is False and body["epsilon_charged"] == "0.1"
    allocation = Allocation.objects.get(user=user, dataset=dataset)
    assert allocation.spent_micro == allocation.epsilon_micro == 1_000_000
    charges = LedgerEntry.objects.filter(user=user, dataset=dataset, kind="charge")
    assert charges.count() == 10 and sum(c.epsilon_micro for c in charges) == 1_000_000
    # The charges were serialised on the allocation row: each saw the one before it.
    assert sorted(c.spent_after_micro for c in charges) == [100_000 * k for k in range(1, 11)]
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    assert BudgetPolicy.objects.get(dataset=dataset).total_spent_micro == 1_000_000
    answered = Verification.objects.filter(dataset=dataset)
    assert answered.count() == 10
    assert {v.pk for v in answered} == {body["id"] for status, body, _ in results if status == 201}
    assert all(v.status == "answered" and v.primary and v.epsilon_micro == 100_000 and v.answer for v in answered)
    assert {c.verification_id for c in charges} == {v.pk for v in answered}
    assert_ledger_adds_up(dataset)
    # Every request is in the audit log, and the hash chain survived the concurrent appends.
    assert AuditEvent.objects.filter(action="verification.charge").count() == 10
    assert AuditEvent.objects.filter(action="verification.answer").count() == 10
    # (identical refusals from one researcher: some in full, the rest as exact counts)
    denied = refusals("verification.create", "denied")
    assert len(denied) == 40 and {e.details["code"] for e in denied} == {"budget_exhausted"}
    assert audit_chain_verify().valid


def test_twenty_concurrent_identical_hypotheses_are_charged_once(custodian, researcher):
    dataset, release = publish_gbsg2(custodian[0])
    user, token = researcher
    body = hypothesis(release, "mean", {"column": "age"}, epsilon=0.5)

    results = fire([(token, body)] * 20)

    statuses = Counter(status for status, _, _ in results)
    assert statuses[201] == 1 and statuses[200] + statuses[409] == 19, statuses
    [(_, first, _)] = [r for r in results if r[0] == 201]
    for status, out, headers in results:
        if status == 200:
            assert out["reused"] is True and out["reused_from"] == first["id"] and out["epsilon_charged"] == "0"
            assert out["answer"]["estimate"] == first["answer"]["estimate"]
        elif status == 409:
            assert out["error"]["code"] == "verification_in_progress", out
            assert headers.get("Retry-After") == "2"
    charges = LedgerEntry.objects.filter(kind="charge")
    assert [(c.user_id, c.epsilon_micro, c.verification_id) for c in charges] == [(user.pk, 500_000, first["id"])]
    assert Allocation.objects.get(user=user, dataset=dataset).spent_micro == 500_000
    assert BudgetPolicy.objects.get(dataset=dataset).total_spent_micro == 500_000
    primary = Verification.objects.filter(dataset=dataset, primary=True)
    assert [(v.pk, v.status) for v in primary] == [(first["id"], "answered")]
    assert Verification.objects.filter(status="reused").count() == statuses[200]
    assert Verification.objects.count() == 1 + statuses[200]
    assert_ledger_adds_up(dataset)
    # Once answered, the same hypothesis is free for everyone.
    again = client_for(token).post(VERIFY, body, format="json")
    assert again.status_code == 200 and again.json()["reused_from"] == first["id"]


def test_concurrent_researchers_cannot_overspend_the_dataset_total(custodian, researcher):
    dataset, release = publish_gbsg2(custodian[0])
    policy_set(dataset=dataset, changes={"total_cap": "1"}, by=custodian[0])
    users = [researcher]
    users += [make_user(f"r{k}", ["researcher"], verified=True) for k in range(1, 4)]
    for user, _ in users:
        allocation_set(user=user, dataset=dataset, epsilon="2", by=custodian[0])  # each could spend 2 alone

    results = fire([(users[i % 4][1], count_body(release, i)) for i in range(40)])

    statuses = Counter(status for status, _, _ in results)
    assert statuses == {201: 10, 403: 30}, statuses
    assert {body["error"]["details"]["limited_by"] for status, body, _ in results if status == 403} == {"dataset"}
    policy = BudgetPolicy.objects.get(dataset=dataset)
    assert policy.total_spent_micro == policy.total_cap_micro == 1_000_000
    # A refused dataset UPDATE rolled the allocation UPDATE before it back.
    spent = [Allocation.objects.get(user=user, dataset=dataset).spent_micro for user, _ in users]
    assert sum(spent) == 1_000_000
    for (user, _), micro in zip(users, spent):
        assert micro == 100_000 * LedgerEntry.objects.filter(user=user, kind="charge").count()
    assert LedgerEntry.objects.filter(kind="charge").count() == 10
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    assert Verification.objects.count() == 10
    assert_ledger_adds_up(dataset)


def test_concurrent_requests_cannot_exceed_the_daily_limit(custodian, researcher, monkeypatch):
    import verification.services

    dataset, release = publish_gbsg2(custodian[0])
    policy_set(dataset=dataset, changes={"daily_limit": 2}, by=custodian[0])
    user, token = researcher
    # Hold every request just before its charge transaction until all five have got there, so
    # they all reach the daily-limit check together and the outcome does not depend on scheduling.
    barrier = threading.Barrier(5)
    held = threading.local()
    real_allocation_for = verification.services.allocation_for

    def allocation_for(*args, **kwargs):
        if not getattr(held, "done", False):  # only a request's first call (later ones read the budget)
            held.done = True
            barrier.wait(timeout=30)
        return real_allocation_for(*args, **kwargs)

    monkeypatch.setattr(verification.services, "allocation_for", allocation_for)
    results = fire([(token, count_body(release, i)) for i in range(5)])

    statuses = Counter(status for status, _, _ in results)
    assert LedgerEntry.objects.filter(kind="charge").count() == statuses[201]
    assert statuses == {201: 2, 429: 3}, statuses
