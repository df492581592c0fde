"""Failed logins lock out the username, and the client address, for a window (counters in the cache)."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from accounts import login_throttle
from accounts.models import ApiToken
from clearinghouse.models import AuditEvent
from tests.accounts.conftest import PASSWORD, assert_error, issue_token
from tests.conftest import refusals

pytestmark = pytest.mark.django_db

WRONG = "definitely not the password"


@pytest.fixture
def limits(settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 900
    return settings


def _fail(client, username: str, times: int) -> None:
    for _ in range(times):
        assert_error(issue_token(client, username, password=WRONG), 401, "invalid_credentials")


def _assert_throttled(response, wait: int = 900) -> dict:
    error = assert_error(response, 429, "throttled")
    assert response["Retry-After"] == str(wait)
    assert "Too many failed logins" in error["message"]
    return error


def test_it_locks_a_username_after_five_failures_even_for_the_right_password(researcher, limits):
    client = APIClient()
    tokens_before = ApiToken.objects.count()
    _fail(client, "rhea", 5)
    _assert_throttled(issue_token(client, "rhea"))
    _assert_throttled(issue_token(client, "rhea", password=WRONG))
    assert ApiToken.objects.count() == tokens_before

    # Identical failures from one address: the first in full, the other four as one exact count.
    denied = refusals("auth.token.issue", "denied")
    assert [(e.details["username"], e.details["code"]) for e in denied] == [("rhea", "invalid_credentials")] * 5
    assert len({e.pk for e in denied}) == 2
    refused = refusals("auth.token.issue", "refused")
    assert [(e.details["username"], e.details["code"], e.details["status"]) for e in refused] == [
        ("rhea", "throttled", 429)] * 2
    assert all(e.client_ip == "127.0.0.1" and e.actor_id is None for e in [*denied, *refused])


def test_it_still_accepts_the_right_password_after_four_failures(researcher, limits):
    client = APIClient()
    _fail(client, "rhea", 4)
    assert issue_token(client, "rhea").status_code == 201


def test_it_counts_failures_whatever_the_case_of_the_username(researcher, limits):
    client = APIClient()
    for name in ["rhea", "RHEA", "Rhea", "rHEA", "rhea"]:
        issue_token(client, name, password=WRONG)
    _assert_throttled(issue_token(client, "rhea"))


def test_it_locks_only_the_username_that_failed(researcher, custodian, limits):
    client = APIClient()
    _fail(client, "rhea", 5)
    assert issue_token(client, "cora").status_code == 201
    _assert_throttled(issue_token(client, "rhea"))


def test_it_resets_the_username_counter_after_a_success(researcher, limits):
    client = APIClient()
    _fail(client, "rhea", 4)
    assert issue_token(client, "rhea").status_code == 201
    _fail(client, "rhea", 4)
    assert issue_token(client, "rhea").status_code == 201
    _fail(client, "rhea", 5)
    _assert_throttled(issue_token(client, "rhea"))


def test_it_locks_an_address_across_usernames(researcher, limits):
    limits.LOGIN_FAILURES_PER_ADDRESS = 3
    limits.LOGIN_FAILURES_PER_USERNAME = 10
    client = APIClient()
    for name in ["alpha", "bravo", "charlie"]:
        _fail(client, name, 1)
    _assert_throttled(issue_token(client, "rhea"))  # a fresh username, the right password, the same address
    # Another address is not affected.
    elsewhere = issue_token(APIClient(REMOTE_ADDR="10.0.0.7"), "rhea")
    assert elsewhere.status_code == 201
    # A success elsewhere does not clear this address's counter.
    _assert_throttled(issue_token(client, "rhea"))
    events = AuditEvent.objects.filter(action="auth.token.issue", channel="api").order_by("seq")
    assert [(e.outcome, e.client_ip, e.details.get("username")) for e in events] == [
        ("denied", "127.0.0.1", "alpha"),
        ("denied", "127.0.0.1", "bravo"),
        ("denied", "127.0.0.1", "charlie"),
        ("refused", "127.0.0.1", "rhea"),
        ("success", "10.0.0.7", None),
    ]
    # The second lockout is a repeat of the first: counted, and written for the auditor.
    assert [(e.action, e.client_ip, e.details["username"]) for e in refusals("auth.token.issue", "refused")] == [
        ("auth.token.issue", "127.0.0.1", "rhea"), ("api.refusals_repeated", "127.0.0.1", "rhea")]


def test_it_ignores_x_forwarded_for_when_no_proxy_is_trusted(researcher, limits):
    limits.LOGIN_FAILURES_PER_ADDRESS = 2
    limits.LOGIN_FAILURES_PER_USERNAME = 10
    limits.TRUSTED_PROXY_COUNT = 0
    client = APIClient()
    _fail(client, "alpha", 1)
    _fail(client, "bravo", 1)
    spoofed = client.post("/api/v1/auth/token/", {"username": "rhea", "password": PASSWORD}, format="json",
                          HTTP_X_FORWARDED_FOR="203.0.113.9")
    _assert_throttled(spoofed)


def test_it_unlocks_the_username_once_the_window_has_passed(researcher, limits):
    limits.LOGIN_FAILURE_WINDOW_SECONDS = 1
    client = APIClient()
    _fail(client, "rhea", 5)
    _assert_throttled(issue_token(client, "rhea"), wait=1)
    time.sleep(1.3)
    assert issue_token(client, "rhea").status_code == 201


def test_it_counts_unknown_usernames_too(db, limits):
    client = APIClient()
    _fail(client, "ghost", 5)
    _assert_throttled(issue_token(client, "ghost", password=WRONG))


def test_it_keeps_the_counters_in_the_cache_by_hashed_key(limits):
    assert login_throttle.locked_for("Mallory", "192.0.2.1") is None
    for _ in range(4):
        login_throttle.record_failure("mallory", "192.0.2.1")
    assert login_throttle.locked_for("MALLORY", None) is None
    login_throttle.record_failure("Mallory", "192.0.2.1")
    assert login_throttle.locked_for("mallory", None) == 900
    assert login_throttle.locked_for("someone-else", "192.0.2.2") is None
    login_throttle.clear("MALLORY")
    assert login_throttle.locked_for("mallory", None) is None
    # The address counter is not cleared by a success; it only expires.
    for _ in range(15):
        login_throttle.record_failure(f"user{_}", "192.0.2.1")
    assert login_throttle.locked_for("fresh", "192.0.2.1") == 900
    assert login_throttle.locked_for("fresh", None) is None
