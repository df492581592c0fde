"""Requests without a valid token are throttled by client address before authentication's 401
(issue 14, finding 3): 300 anonymous GETs used to give 300 × 401 and no 429."""

from __future__ import annotations

import pytest
from rest_framework.throttling import AnonRateThrottle

from clearinghouse.models import AuditEvent
from clearinghouse.services.refusals import REPEATED_ACTION, audit_refusals_flush
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_per_minute(monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {**AnonRateThrottle.THROTTLE_RATES, "anon": "3/min"})


def _refusals() -> list[tuple[str, int, str]]:
    """Every refusal of the dataset list, the ones counted as repeats included (in seq order of the
    events that record them: repeats come after the first one of their window)."""
    audit_refusals_flush(open_windows=True)
    refusals = []
    for e in AuditEvent.objects.filter(action__in=["dataset.list", REPEATED_ACTION]).order_by("seq"):
        if e.action == "dataset.list":
            refusals.append((e.outcome, e.details["status"], e.details["code"]))
        elif e.details["of_action"] == "dataset.list":
            refusals += [(e.outcome, e.details["status"], e.details["code"])] * e.details["repeats"]
    return sorted(refusals, key=lambda refusal: refusal[1])


def test_the_request_after_the_anonymous_rate_is_a_429_with_retry_after(three_per_minute, researcher):
    anonymous = client_for(None)
    assert [anonymous.get("/api/v1/datasets/").status_code for _ in range(3)] == [401] * 3
    throttled = anonymous.get("/api/v1/datasets/")
    assert throttled.status_code == 429 and 1 <= int(throttled["Retry-After"]) <= 60
    assert throttled.json()["error"]["code"] == "throttled"
    # A made-up token from the same address is throttled too,.
    forged = client_for("cht_" + "x" * 40).get("/api/v1/datasets/")
    assert forged.status_code == 429 and forged.json()["error"]["code"] == "throttled"
    assert _refusals() == [("denied", 401, "not_authenticated")] * 3 + [("refused", 429, "throttled")] * 2
    # A valid token is counted per user, not by the address's anonymous rate.
    assert client_for(researcher[1]).get("/api/v1/datasets/").status_code == 200


def test_bad_tokens_count_against_the_address_like_anonymous_requests(three_per_minute):
    forged = client_for("cht_" + "y" * 40)
    assert [forged.get("/api/v1/datasets/").status_code for _ in range(3)] == [401] * 3
    assert forged.get("/api/v1/datasets/").status_code == 429
    assert client_for(None).get("/api/v1/datasets/").status_code == 429
    assert [code for _outcome, _status, code in _refusals()] == ["authentication_failed"] * 3 + ["throttled"] * 2
    # Written as: each source's first 401 and first 429 in full, then one count per source and kind.
    written = AuditEvent.objects.filter(action__in=["dataset.list", REPEATED_ACTION]).order_by("seq")
    assert [(e.action, e.details["status"], e.details.get("repeats")) for e in written] == [
        ("dataset.list", 401, {"window_seconds": 60, "counted_as": REPEATED_ACTION}),
        ("dataset.list", 429, {"window_seconds": 60, "counted_as": REPEATED_ACTION}),
        ("dataset.list", 429, {"window_seconds": 60, "counted_as": REPEATED_ACTION}),
        (REPEATED_ACTION, 401, 2)]
