"""GET /api/v1/accounts/ (custodians) and GET /api/v1/accounts/me/ (anyone signed in)."""

from __future__ import annotations

import pytest

from tests.accounts.conftest import assert_error
from tests.conftest import last_event, make_user

pytestmark = pytest.mark.django_db

LIST = "/api/v1/accounts/"


def _usernames(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [u["username"] for u in response.json()["results"]]


def test_it_lists_pending_registrations_for_a_custodian(clients, custodian):
    make_user("pia", ["researcher"], verified=False)
    response = clients["custodian"].get(LIST, {"role": "researcher", "verified": "false"})
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2 and _usernames(response) == ["uma", "pia"]
    first = body["results"][0]
    assert set(first) == {"id", "username", "email", "first_name", "last_name", "affiliation", "roles", "verified",
                          "verified_at", "is_active", "date_joined"}
    assert (first["roles"], first["verified"], first["verified_at"]) == (["researcher"], False, None)
    assert "password" not in response.content.decode()
    event = last_event()
    assert (event.action, event.outcome, event.actor_id) == ("accounts.list", "success", custodian[0].pk)
    assert event.details == {"query": {"role": "researcher", "verified": "false"}}


def test_it_lists_everyone_without_filters_in_id_order(clients):
    assert _usernames(clients["custodian"].get(LIST)) == ["cora", "rhea", "uma", "otto"]


@pytest.mark.parametrize("query, expected", [
    ({"role": "researcher"}, ["rhea", "uma"]),
    ({"role": "researcher", "verified": "true"}, ["rhea"]),
    ({"verified": "false"}, ["uma"]),
    ({"verified": "0"}, ["uma"]),
    ({"role": "custodian"}, ["cora"]),
    ({"role": "auditor", "verified": "true"}, ["otto"]),
])
def test_it_filters_by_role_and_verification(clients, query, expected):
    assert _usernames(clients["custodian"].get(LIST, query)) == expected


@pytest.mark.parametrize("query, field", [
    ({"verified": "maybe"}, "verified"),
    ({"role": "admin"}, "role"),
    ({"rol": "researcher"}, "rol"),
    ({"page_size": "0"}, "page_size"),
    ({"page": "first"}, "page"),
])
def test_it_refuses_a_bad_filter_with_400(clients, query, field):
    error = assert_error(clients["custodian"].get(LIST, query), 400, "invalid")
    assert field in error["details"]
    event = last_event()
    assert (event.action, event.outcome, event.details["status"]) == ("accounts.list", "refused", 400)


def test_it_treats_blank_filters_as_absent(clients):
    assert _usernames(clients["custodian"].get(LIST, {"role": "", "verified": ""})) == ["cora", "rhea", "uma", "otto"]


def test_it_paginates_the_user_list(clients):
    for index in range(3):
        make_user(f"extra{index}", ["researcher"], verified=False)
    page = clients["custodian"].get(LIST, {"role": "researcher", "verified": "false", "page_size": 2}).json()
    assert page["count"] == 4 and [u["username"] for u in page["results"]] == ["uma", "extra0"]
    assert "page=2" in page["next"] and page["previous"] is None


@pytest.mark.parametrize("role, status, code", [
    ("anonymous", 401, "not_authenticated"),
    ("unverified", 403, "permission_denied"),
    ("researcher", 403, "permission_denied"),
    ("auditor", 403, "permission_denied"),
])
def test_it_refuses_the_user_list_to_non_custodians(clients, role, status, code):
    error = assert_error(clients[role].get(LIST, {"role": "researcher"}), status, code)
    assert error["message"] in ("Only custodians may do this.", "Authentication credentials were not provided.")
    event = last_event()
    assert (event.action, event.outcome) == ("accounts.list", "denied")


@pytest.mark.parametrize("role, username, roles, verified", [
    ("unverified", "uma", ["researcher"], False),
    ("researcher", "rhea", ["researcher"], True),
    ("auditor", "otto", ["auditor"], True),
    ("custodian", "cora", ["custodian"], True),
])
def test_it_shows_every_signed_in_user_its_own_account(clients, role, username, roles, verified):
    response = clients[role].get("/api/v1/accounts/me/")
    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["roles"], body["verified"]) == (username, roles, verified)
    event = last_event()
    assert (event.action, event.outcome, event.actor_username) == ("accounts.me", "success", username)


def test_it_refuses_me_to_anonymous_callers(clients):
    assert_error(clients["anonymous"].get("/api/v1/accounts/me/"), 401, "not_authenticated")


def test_it_refuses_writes_to_me(clients):
    assert_error(clients["researcher"].post("/api/v1/accounts/me/", {}, format="json"), 405, "method_not_allowed")


def test_it_refuses_a_role_filter_holding_a_null_character(clients):
    error = assert_error(clients["custodian"].get(LIST, {"role": "a\x00b"}), 400, "invalid")
    assert "role" in error["details"]
    event = last_event()  # the refusal is audited, with the NUL made storable (PostgreSQL refuses U+0000)
    assert (event.action, event.outcome) == ("accounts.list", "refused")
    assert "\x00" not in str(event.details) and "\ufffd" in str(event.details)
