"""The database connection lost in the middle of a verification (issue 14, "Faults").

The request's own PostgreSQL backend is terminated from a second connection
(``pg_terminate_backend``) at one point of the request; the server side rolls back whatever that
backend had not committed. Whatever happens, no ε stays charged without an answer or a refund
entry: the request refunds at once on a fresh connection when it can, and the reaper
(``verifications_reap_stale``) refunds what is left computing when it cannot. The client gets a
503 ``database_unavailable`` error body, never a traceback, and the refusal is audited.

PostgreSQL only: the fault is a terminated server backend, and each step commits for real
(``transaction=True``).
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from accounts.budgets import allocation_for, policy_for
from accounts.models import Allocation, BudgetPolicy, LedgerEntry
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_chain_verify
from tests.conftest import client_for
from tests.verification.conftest import VERIFY, assert_error, assert_ledger_adds_up, hypothesis, publish_gbsg2
from verification.models import Verification
from verification.services import verifications_reap_stale

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (a server backend to terminate)"),
    pytest.mark.django_db(transaction=True),
]


def kill_my_connection() -> int:
    """Terminate this thread's Django connection from another connection; returns its backend pid."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    params = connection.settings_dict
    with psycopg.connect(dbname=params["NAME"], user=params["USER"] or None, password=params["PASSWORD"] or None,
                         host=params["HOST"] or None, port=params["PORT"] or None, autocommit=True) as other:
        # The timeout makes it wait until the backend has gone, so the next statement surely fails.
        assert other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid]).fetchone() == (True,)
    return pid


@pytest.fixture
def world(custodian, researcher):
    """(dataset, release, researcher, client), the researcher's allocation and the policy created."""
    dataset, release = publish_gbsg2(custodian[0])
    user, token = researcher
    allocation_for(user, dataset)
    policy_for(dataset)
    return dataset, release, user, client_for(token)


def nothing_spent(user, dataset) -> None:
    assert Allocation.objects.get(user=user, dataset=dataset).spent_micro == 0
    assert BudgetPolicy.objects.get(dataset=dataset).total_spent_micro == 0
    assert_ledger_adds_up(dataset)


def every_charge_answered_or_refunded() -> None:
    for charge in LedgerEntry.objects.filter(kind="charge"):
        verification = Verification.objects.get(pk=charge.verification_id)
        refunds = LedgerEntry.objects.filter(kind="refund", verification_id=charge.verification_id)
        if verification.status == Verification.Status.ANSWERED:
            assert not refunds.exists(), verification
        else:
            assert verification.status == Verification.Status.FAILED and not verification.primary, verification
            assert [r.epsilon_micro for r in refunds] == [charge.epsilon_micro], verification


def refusal_event() -> AuditEvent:
    event = AuditEvent.objects.filter(action="verification.create").order_by("-seq").first()
    assert event is not None
    assert (event.outcome, event.details["status"], event.details["code"]) == ("failed", 503, "database_unavailable")
    return event


def lose_the_database_after_answering(monkeypatch, killed: list[int]) -> None:
    """The engine answers on the real rows, then the request's connection is killed (noted in
    ``killed``): the ANSWERED write comes next and fails."""
    import verification.services

    real_answer = verification.services.answer

    def answer_then_lose_the_database(*args, **kwargs):
        result = real_answer(*args, **kwargs)
        killed.append(kill_my_connection())
        return result

    monkeypatch.setattr(verification.services, "answer", answer_then_lose_the_database)


def test_connection_lost_before_the_answer_is_stored_refunds_at_once(world, monkeypatch):
    dataset, release, user, client = world
    killed = []
    lose_the_database_after_answering(monkeypatch, killed)
    response = client.post(VERIFY, hypothesis(release, epsilon=0.4), format="json")
    monkeypatch.undo()
    connection.close()

    assert killed, "the fault was not injected"
    error = assert_error(response, 503, "database_unavailable")
    [verification] = Verification.objects.all()
    assert error["details"] == {"verification": verification.pk, "refunded": "0.4"}
    assert "estimate" not in response.content.decode() and "answer" not in error["details"]
    assert (verification.status, verification.primary, verification.answer) == ("failed", False, None)
    [charge] = LedgerEntry.objects.filter(kind="charge")
    [refund] = LedgerEntry.objects.filter(kind="refund")
    assert (charge.verification_id, refund.verification_id) == (verification.pk, verification.pk)
    assert charge.epsilon_micro == refund.epsilon_micro == 400_000
    nothing_spent(user, dataset)
    fail = AuditEvent.objects.get(action="verification.fail")
    assert (fail.outcome, fail.details["refunded"], fail.details["error"]) == ("failed", "0.4", "OperationalError")
    refusal_event()
    assert not AuditEvent.objects.filter(action="verification.answer").exists()
    # Nothing is left for the reaper, and the invariant holds.
    assert verifications_reap_stale(now=timezone.now() + timedelta(days=1)) == []
    every_charge_answered_or_refunded()
    assert audit_chain_verify().valid

    # The database back, the identical hypothesis is charged and answered afresh.
    again = client.post(VERIFY, hypothesis(release, epsilon=0.4), format="json")
    assert again.status_code == 201, again.content
    assert again.json()["reused"] is False and again.json()["epsilon_charged"] == "0.4"
    every_charge_answered_or_refunded()
    assert_ledger_adds_up(dataset)


def test_connection_lost_once_more_during_the_refund_is_retried_on_a_fresh_one(world, monkeypatch):
    import verification.services

    dataset, release, user, client = world
    real_refund = verification.services.budget_refund
    killed = []
    lose_the_database_after_answering(monkeypatch, killed)

    def lose_it_on_the_first_refund(*args, **kwargs):
        if len(killed) == 1:
            killed.append(kill_my_connection())
        return real_refund(*args, **kwargs)

    monkeypatch.setattr(verification.services, "budget_refund", lose_it_on_the_first_refund)
    response = client.post(VERIFY, hypothesis(release, epsilon=0.4), format="json")
    monkeypatch.undo()
    connection.close()

    assert len(killed) == 2 and killed[0] != killed[1], killed
    error = assert_error(response, 503, "database_unavailable")
    [verification] = Verification.objects.all()
    assert error["details"] == {"verification": verification.pk, "refunded": "0.4"}
    assert (verification.status, verification.primary) == ("failed", False)
    assert [e.epsilon_micro for e in LedgerEntry.objects.filter(kind="refund", verification=verification)] == [400_000]
    nothing_spent(user, dataset)
    assert AuditEvent.objects.filter(action="verification.fail").count() == 1
    refusal_event()
    every_charge_answered_or_refunded()
    assert audit_chain_verify().valid


def test_connection_lost_on_every_refund_leaves_it_to_the_reaper(world, monkeypatch, settings):
    import verification.services

    dataset, release, user, client = world
    real_refund = verification.services.budget_refund
    killed = []
    lose_the_database_after_answering(monkeypatch, killed)

    def lose_it_again(*args, **kwargs):  # the refund and its retry, each on a fresh connection, die too
        killed.append(kill_my_connection())
        return real_refund(*args, **kwargs)

    monkeypatch.setattr(verification.services, "budget_refund", lose_it_again)
    response = client.post(VERIFY, hypothesis(release, epsilon=0.4), format="json")
    monkeypatch.undo()
    connection.close()

    assert len(killed) == len(set(killed)) == 3, killed
    error = assert_error(response, 503, "database_unavailable")
    [verification] = Verification.objects.all()
    assert error["details"] == {"verification": verification.pk, "refunded": None}
    assert "refunded automatically" in error["message"]
    # The charge committed; the answer and both refunds were rolled back with their backends.
    assert (verification.status, verification.primary, verification.answer) == ("computing", True, None)
    assert LedgerEntry.objects.filter(kind="charge").count() == 1
    assert not LedgerEntry.objects.filter(kind="refund").exists()
    assert Allocation.objects.get(user=user, dataset=dataset).spent_micro == 400_000
    refusal_event()

    settings.VERIFICATION_STALE_AFTER_SECONDS = 60
    assert verifications_reap_stale(now=timezone.now() + timedelta(seconds=61)) == [verification.pk]
    verification.refresh_from_db()
    assert (verification.status, verification.primary) == ("failed", False)
    [refund] = LedgerEntry.objects.filter(kind="refund")
    assert (refund.verification_id, refund.epsilon_micro) == (verification.pk, 400_000)
    nothing_spent(user, dataset)
    every_charge_answered_or_refunded()
    fail = AuditEvent.objects.get(action="verification.fail")
    assert "process stopped" in fail.details["error"] and fail.details["refunded"] == "0.4"
    assert not AuditEvent.objects.filter(action="verification.answer").exists()
    assert audit_chain_verify().valid


def test_connection_lost_before_the_charge_commits_charges_nothing(world, monkeypatch):
    import verification.services

    dataset, release, user, client = world
    real_charge = verification.services.budget_charge
    killed = []

    def lose_the_database_then_charge(*args, **kwargs):
        killed.append(kill_my_connection())
        return real_charge(*args, **kwargs)

    monkeypatch.setattr(verification.services, "budget_charge", lose_the_database_then_charge)
    response = client.post(VERIFY, hypothesis(release, epsilon=0.4), format="json")
    monkeypatch.undo()
    connection.close()

    assert killed, "the fault was not injected"
    error = assert_error(response, 503, "database_unavailable")
    assert error["details"] is None
    assert response.headers.get("Retry-After")
    # The charge transaction died with its backend: no verification, no charge, nothing spent.
    assert not Verification.objects.exists()
    assert not LedgerEntry.objects.filter(kind__in=("charge", "refund")).exists()
    nothing_spent(user, dataset)
    refusal_event()
    assert not AuditEvent.objects.filter(action="verification.charge").exists()
    assert verifications_reap_stale(now=timezone.now() + timedelta(days=1)) == []
    assert audit_chain_verify().valid
