"""A verification whose process died stays "computing" only until it is reaped: failed, refunded
(its own ledger entry), audited, and the identical hypothesis can be asked and charged again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Allocation, LedgerEntry
from tests.conftest import last_event
from tests.verification.conftest import ask, hypothesis
from verification.models import Verification
from verification.services import verifications_reap_stale

pytestmark = pytest.mark.django_db


def _die_while_computing(monkeypatch):
    """The request is charged, then its process "dies" (the computation never stores an answer)."""
    import verification.services

    class Died(BaseException):  # not an Exception: nothing in the request path catches it
        pass

    def die(*args, **kwargs):
        raise Died()

    monkeypatch.setattr(verification.services, "answer", die)
    return Died


def test_a_verification_left_computing_is_failed_refunded_and_its_hypothesis_freed(gbsg2, clients, researcher,
                                                                                  monkeypatch, settings):
    dataset, release = gbsg2
    died = _die_while_computing(monkeypatch)
    body = hypothesis(release, epsilon=0.4)
    with pytest.raises(died):
        ask(clients["researcher"], body)
    stuck = Verification.objects.get()
    allocation = Allocation.objects.get(user=researcher[0], dataset=dataset)
    assert (stuck.status, stuck.primary, allocation.spent_micro) == ("computing", True, 400_000)

    # Not yet stale: the identical hypothesis waits for it (409, nothing charged), the reaper leaves it.
    monkeypatch.undo()
    busy = ask(clients["researcher"], body)
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "verification_in_progress"
    assert verifications_reap_stale() == []

    settings.VERIFICATION_STALE_AFTER_SECONDS = 60
    assert verifications_reap_stale(now=timezone.now() + timedelta(seconds=61)) == [stuck.pk]
    stuck.refresh_from_db()
    allocation.refresh_from_db()
    assert (stuck.status, stuck.primary, allocation.spent_micro) == ("failed", False, 0)
    refund = LedgerEntry.objects.filter(kind="refund").get()
    assert (refund.verification_id, refund.epsilon_micro, refund.spent_after_micro) == (stuck.pk, 400_000, 0)
    event = last_event()
    assert (event.action, event.outcome, event.object_id) == ("verification.fail", "failed", str(stuck.pk))
    assert event.details["refunded"] == "0.4" and "process stopped" in event.details["error"]
    assert verifications_reap_stale(now=timezone.now() + timedelta(seconds=61)) == []  # once only

    again = ask(clients["researcher"], body)
    assert again.status_code == 201 and again.json()["reused"] is False and again.json()["epsilon_charged"] == "0.4"
    allocation.refresh_from_db()
    assert allocation.spent_micro == 400_000
    charges = LedgerEntry.objects.filter(kind="charge")
    refunds = LedgerEntry.objects.filter(kind="refund")
    assert sum(e.epsilon_micro for e in charges) - sum(e.epsilon_micro for e in refunds) == allocation.spent_micro


def test_the_identical_hypothesis_reaps_a_stale_one_itself_and_is_charged_once(gbsg2, clients, researcher,
                                                                               monkeypatch, settings):
    """No beat needed: asking the hypothesis again after the stale limit fails and refunds the dead
    one in the same request, then charges and answers the new one."""
    dataset, release = gbsg2
    died = _die_while_computing(monkeypatch)
    body = hypothesis(release, epsilon=0.4)
    with pytest.raises(died):
        ask(clients["researcher"], body)
    monkeypatch.undo()
    stuck = Verification.objects.get()
    settings.VERIFICATION_STALE_AFTER_SECONDS = 60
    Verification.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - timedelta(seconds=61))

    again = ask(clients["researcher"], body)
    assert again.status_code == 201, again.content
    assert again.json()["reused"] is False and again.json()["epsilon_charged"] == "0.4"
    stuck.refresh_from_db()
    assert (stuck.status, stuck.primary, stuck.error) == ("failed", False, verification_stale_error())
    allocation = Allocation.objects.get(user=researcher[0], dataset=dataset)
    assert allocation.spent_micro == 400_000  # charged, refunded, charged
    assert [e.kind for e in LedgerEntry.objects.filter(kind__in=("charge", "refund")).order_by("pk")] == [
        "charge", "refund", "charge"]
    assert Verification.objects.filter(primary=True).get().status == "answered"


def verification_stale_error() -> str:
    from verification.services import STALE_ERROR

    return STALE_ERROR
