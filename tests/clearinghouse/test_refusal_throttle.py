"""Requests without a valid token are throttled by client address before authentication's 401
(issue 14, finding 3): 300 anonymous GETs used to give 300 × 401 and no 429."""

from __future__ import annotations

import pytest
from rest_framework.throttling import AnonRateThrottle

from clearinghouse.models import AuditEvent
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_per_minute(monkeypatch):
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {**AnonRateThrottle.THROTTLE_RATES, "anon": "3/min"})


def _refusals() -> list[tuple[str, int, str]]:
    events = AuditEvent.objects.filter(action="dataset.list").order_by("seq")
    return [(e.outcome, e.details["status"], e.details["code"]) for e in events]


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
