"""POST /api/v1/verifications/preview/ on GBSG2: the figures, their speed, the suggestion within what is
left, and that a preview is free: no real row read, no ε charged, nothing stored but its audit row; the
same 400s as a verification, 401/403 for everyone but verified researchers."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

import clearinghouse.custody
import verification.services
from accounts.budgets import allocation_set
from tests.conftest import last_event
from tests.verification.conftest import assert_error, audit_events, hypothesis, state
from tests.verification.test_api import BAD_INPUT
from verification.core import verdict_for
from verification.core.hypothesis import epsilon_text
from verification.core.preview import EPSILON_GRID, NOTE
from verification.models import Verification

PREVIEW = "/api/v1/verifications/preview/"
FIELDS = {"dataset", "release", "kind", "hypothesis", "epsilon", "draws", "p_decisive", "p_withheld",
          "p_uninformative", "expected_ci_width", "expected_ci_width_log", "expected_ci", "synthetic_estimate",
          "max_epsilon", "budget_left", "suggested_epsilon", "suggestion_reason", "target", "searched", "note"}
HR = {"exposure": {"column": "horTh", "value": "yes"}}
LOGISTIC = {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh", "value": "yes"}}
LESS_THAN_1 = {"direction": "less", "value": 1}


@pytest.fixture(autouse=True)
def _no_real_rows(monkeypatch):
    """A preview must never read the real rows: custody refuses loudly in every test here."""

    def refuse(*args, **kwargs):
        raise AssertionError("a preview read the real rows")

    monkeypatch.setattr(verification.services, "custody_read", refuse)
    monkeypatch.setattr(clearinghouse.custody, "custody_read", refuse)


def preview(client, body, **kwargs):
    return client.post(PREVIEW, body, format="json", **kwargs)


def test_it_previews_a_hypothesis_without_charging_or_storing_anything(gbsg2, researcher, clients):
    dataset, release = gbsg2
    before = state()
    body = hypothesis(release, "mean", {"column": "age"}, epsilon=0.5)  # mean age > 50: about 53 on GBSG2
    response = preview(clients["researcher"], body)
    assert response.status_code == 200, response.content
    figures = response.json()
    assert set(figures) == FIELDS
    assert (figures["dataset"], figures["release"], figures["kind"], figures["epsilon"], figures["draws"]) == (
        "gbsg2", release.pk, "mean", "0.5", 40)
    assert figures["hypothesis"] == {"kind": "mean", "params": {"column": "age"}, "where": [], "epsilon": "0.5",
                                     "claim": {"direction": "greater", "value": 50}}
    for name in ("p_decisive", "p_withheld", "p_uninformative"):
        assert isinstance(figures[name], float) and 0 <= figures[name] <= 1
    assert figures["p_decisive"] >= 0.8 and figures["p_withheld"] == 0
    assert isinstance(figures["expected_ci_width"], float) and figures["expected_ci_width"] > 0
    assert figures["expected_ci_width_log"] is None  # not a ratio
    low, high = figures["expected_ci"]["low"], figures["expected_ci"]["high"]
    assert low < figures["synthetic_estimate"] < high and verdict_for(low, high, body["claim"]) == "supported"
    # the policy's defaults: 2 allocated, nothing spent, at most 1 per hypothesis
    # every ε figure is an exact decimal string (the service's own floats, written by their decimal text)
    assert (figures["budget_left"], figures["max_epsilon"], figures["target"]) == ("2", "1", 0.8)
    assert float(figures["suggested_epsilon"]) in EPSILON_GRID and Decimal(figures["suggested_epsilon"]) <= 1
    assert all(isinstance(row["epsilon"], str) and Decimal(row["epsilon"]) > 0 and 0 <= row["p_decisive"] <= 1
               for row in figures["searched"])
    assert figures["note"] == NOTE and "synthetic release" in figures["note"]
    # free: nothing charged (not even an allocation made), nothing stored
    assert state() == before
    assert not Verification.objects.exists()
    [event] = audit_events(action="verification.preview")
    assert (event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "success", researcher[0].pk, "release", str(release.pk))
    assert event.details["hypothesis"] == figures["hypothesis"] and event.details["charged"] == "0"
    assert event.details["preview"]["p_decisive"] == figures["p_decisive"]
    assert epsilon_text(event.details["preview"]["suggested_epsilon"]) == figures["suggested_epsilon"]
    assert not audit_events(action__in=["verification.charge", "verification.answer"])


@pytest.mark.parametrize("kind, params", [("hazard_ratio", HR), ("logistic_odds_ratio", LOGISTIC)])
def test_a_ratio_preview_gives_its_log_width(kind, params, gbsg2, researcher, clients):
    """Its speed (target ≤ 2 s) is `make bench-preview`'s to measure, not a timed assertion here."""
    dataset, release = gbsg2
    body = hypothesis(release, kind, params, claim=LESS_THAN_1, epsilon=1)
    response = preview(clients["researcher"], body)
    assert response.status_code == 200, response.content
    figures = response.json()
    low, high = figures["expected_ci"]["low"], figures["expected_ci"]["high"]
    assert 0 < low < high
    assert figures["expected_ci_width_log"] > 0 and figures["expected_ci_width"] > 0
    assert math.isclose(figures["expected_ci_width_log"], math.log(high / low), rel_tol=0.5)
    assert figures["synthetic_estimate"] is None or figures["synthetic_estimate"] > 0
    assert figures["suggested_epsilon"] is None or Decimal(figures["suggested_epsilon"]) <= 1
    assert figures["suggestion_reason"]


def test_p_decisive_is_high_at_large_epsilon_and_low_at_tiny_epsilon(gbsg2, researcher):
    dataset, release = gbsg2
    user = researcher[0]
    claim = {"direction": "greater", "value": 40}  # mean age ≈ 53
    large = verification.services.verification_preview(
        user=user, raw=hypothesis(release, "mean", {"column": "age"}, claim=claim, epsilon=1), seed=11)
    tiny = verification.services.verification_preview(
        user=user, raw=hypothesis(release, "mean", {"column": "age"}, claim=claim, epsilon=0.002), seed=11)
    assert large["p_decisive"] >= 0.95
    assert tiny["p_decisive"] <= 0.3
    assert tiny["suggested_epsilon"] is not None and tiny["suggested_epsilon"] <= 1.0
    again = verification.services.verification_preview(
        user=user, raw=hypothesis(release, "mean", {"column": "age"}, claim=claim, epsilon=0.002), seed=11)
    assert again == tiny  # a seed reproduces a preview


def test_the_suggestion_stays_within_what_is_left_and_over_budget_still_previews(gbsg2, researcher, custodian,
                                                                                 clients):
    dataset, release = gbsg2
    allocation_set(user=researcher[0], dataset=dataset, epsilon="0.2", by=custodian[0])
    before = state()
    body = hypothesis(release, "mean", {"column": "age"}, claim={"direction": "greater", "value": 52}, epsilon=0.5)
    response = preview(clients["researcher"], body)  # more than is left: a verification would be refused
    assert response.status_code == 200, response.content
    figures = response.json()
    assert (figures["budget_left"], figures["max_epsilon"], figures["epsilon"]) == ("0.2", "0.2", "0.5")
    assert figures["suggested_epsilon"] is None or Decimal(figures["suggested_epsilon"]) <= Decimal("0.2")
    assert all(Decimal(row["epsilon"]) <= Decimal("0.2") for row in figures["searched"] if row["epsilon"] != "0.5")
    assert state() == before

    allocation_set(user=researcher[0], dataset=dataset, epsilon="0", by=custodian[0])
    figures = preview(clients["researcher"], body).json()
    assert (figures["budget_left"], figures["max_epsilon"], figures["suggested_epsilon"]) == ("0", "0", None)
    assert "No ε is left" in figures["suggestion_reason"]
    assert figures["p_decisive"] >= 0  # the asked ε is previewed all the same


def test_bad_input_is_refused_with_a_verifications_codes_and_audited(gbsg2, researcher, clients):
    dataset, release = gbsg2
    for case, changes, code, mention in BAD_INPUT:
        body = hypothesis(release)
        body.update(changes)
        if case == "epsilon missing":
            del body["epsilon"]
        before, events = state(), len(audit_events())
        error = assert_error(preview(clients["researcher"], body), 400, code)
        assert mention in error["message"], (case, error)
        assert state() == before, case
        event = last_event()
        assert len(audit_events()) == events + 1, case
        assert (event.action, event.outcome, event.actor_id, event.details["code"], event.details["status"]) == (
            "verification.preview", "refused", researcher[0].pk, code, 400), case
    for raw in (b"[1, 2]", b'{"release": 1, '):
        response = clients["researcher"].post(PREVIEW, raw, content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["code"] in ("malformed", "malformed_request")
    assert not Verification.objects.exists()
    assert not audit_events(action="verification.preview", outcome="success")


@pytest.mark.parametrize("role, status, code, outcome", [
    ("anonymous", 401, "not_authenticated", "denied"),
    ("unverified", 403, "permission_denied", "denied"),
    ("custodian", 403, "permission_denied", "denied"),
    ("auditor", 403, "permission_denied", "denied"),
])
def test_only_verified_researchers_may_preview(role, status, code, outcome, gbsg2, clients, request):
    dataset, release = gbsg2
    actor = None if role == "anonymous" else request.getfixturevalue(role)[0]
    before = state()
    response = preview(clients[role], hypothesis(release))
    assert_error(response, status, code)
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")
    assert state() == before
    [event] = audit_events(action="verification.preview")
    assert (event.outcome, event.actor_id, event.details["status"]) == (outcome, actor.pk if actor else None, status)


def test_a_failing_simulation_is_a_500_that_charges_nothing(gbsg2, researcher, clients, monkeypatch):
    dataset, release = gbsg2

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(verification.services, "preview", broken)
    before = state()
    error = assert_error(preview(clients["researcher"], hypothesis(release)), 500, "preview_failed")
    assert "nothing was charged" in error["message"]
    assert state() == before
    assert last_event().action == "verification.preview" and last_event().outcome == "failed"
