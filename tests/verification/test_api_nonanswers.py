"""Issue 14 over HTTP: a hypothesis the data cannot answer (no events within the filter) is answered, 201,
with ``informative: false`` and the reason, an inconclusive verdict, the ε charged on the ledger and the
answer in the audit log."""

from __future__ import annotations

from tests.verification.conftest import (
    ask,
    assert_ledger_adds_up,
    audit_events,
    hypothesis,
    ledger,
    micro,
    spent_micro,
)
from verification.models import Verification

NO_EVENTS = [{"column": "cens", "op": "==", "value": 0}]  # the censored patients only: nobody has an event
HR = {"exposure": {"column": "horTh", "value": "yes"}}


def test_it_answers_a_hazard_ratio_without_events_as_a_non_answer(gbsg2, researcher, clients, seeded_noise):
    dataset, release = gbsg2
    body = hypothesis(release, "hazard_ratio", HR, where=NO_EVENTS, claim={"direction": "less", "value": 1},
                      epsilon="0.5")
    response = ask(clients["researcher"], body)

    assert response.status_code == 201, response.content
    out = response.json()
    answer = out["answer"]
    assert out["status"] == "answered" and out["epsilon_charged"] == "0.5"
    assert answer["withheld"] is False and answer["informative"] is False
    assert answer["verdict"] == "inconclusive"
    assert answer["details"]["non_answer"] == "no_events"
    assert "too few events" in answer["reason"] and "noisy table" in answer["reason"], answer["reason"]
    assert answer["epsilon"] == "0.5" and answer["noisy_n"] > 300  # 387 censored patients: not withheld
    # the paid-for values are shown (a finite ratio and CI), but they are not a finding
    assert answer["estimate"] is not None and answer["ci_low"] is not None and answer["ci_high"] is not None

    # charged: the real rows were read
    stored = Verification.objects.get()
    assert stored.status == "answered" and stored.answer == answer and stored.epsilon_micro == micro("0.5")
    [charge] = ledger(kind="charge")
    assert (charge.verification_id, charge.epsilon_micro) == (stored.pk, micro("0.5"))
    assert not ledger(kind="refund")
    assert spent_micro(researcher[0], dataset) == micro("0.5")
    assert out["budget"]["spent"] == "0.5" and out["budget"]["left"] == "1.5"
    assert_ledger_adds_up(dataset)

    # audited with its answer
    events = audit_events(object_type="verification", object_id=str(stored.pk))
    assert [e.action for e in events] == ["verification.charge", "verification.answer"]
    assert events[1].outcome == "success" and events[1].details["answer"] == answer
    assert events[1].details["answer"]["informative"] is False

    # the history shows it the same way, and asking again is the stored non-answer, free
    again = ask(clients["researcher"], body)
    assert again.status_code in (200, 201) and again.json()["reused"] is True
    assert again.json()["answer"]["informative"] is False
    assert len(ledger(kind="charge")) == 1
