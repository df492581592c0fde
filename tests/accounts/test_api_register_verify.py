"""Self-registration as an unverified researcher, and verification by a custodian."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiToken, User
from clearinghouse.models import AuditEvent
from tests.accounts.conftest import assert_error, issue_token
from tests.conftest import client_for, last_event, make_user

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/accounts/register/"
STRONG = "quiet-lantern-orbit-47"
NEWCOMER = {
    "username": "nadia",
    "password": STRONG,
    "email": "nadia@example.org",
    "first_name": "Nadia",
    "last_name": "Quist",
    "affiliation": "Example University",
}


def _register(**overrides):
    return APIClient().post(REGISTER, {**NEWCOMER, **overrides}, format="json")


def _verify(client, user_id):
    return client.post(f"/api/v1/accounts/{user_id}/verify/", format="json")


# --- registration -------------------------------------------------------------------


def test_it_registers_an_unverified_researcher(db):
    response = _register()
    assert response.status_code == 202, response.json()
    body = response.json()
    user = User.objects.get(username="nadia")
    assert (body["username"], body["status"]) == ("nadia", "received")
    assert "If the username 'nadia' was free" in body["message"]
    assert (user.email, user.first_name, user.last_name, user.affiliation, user.roles, user.is_active) == (
        "nadia@example.org", "Nadia", "Quist", "Example University", ["researcher"], True)
    assert "password" not in body and STRONG not in response.content.decode()
    assert (user.is_researcher, user.is_custodian, user.is_auditor, user.is_staff, user.is_superuser) == (
        True, False, False, False, False)
    assert user.verified_at is None and user.verified_by is None
    assert user.check_password(STRONG) and user.password != STRONG
    assert not ApiToken.objects.filter(user=user).exists()
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "accounts.register", "success", user.pk, "user", str(user.pk))
    assert event.details == {"username": "nadia", "affiliation": "Example University"}
    assert STRONG not in str(event.details)


def test_it_registers_with_only_the_required_fields(db):
    response = APIClient().post(REGISTER, {"username": "nadia", "password": STRONG, "email": "nadia@example.org"},
                                format="json")
    assert response.status_code == 202, response.json()
    user = User.objects.get(username="nadia")
    assert user.affiliation == "" and user.first_name == ""


def test_it_lets_the_new_researcher_log_in_and_see_itself_but_not_datasets(db):
    assert _register().status_code == 202
    issued = issue_token(APIClient(), "nadia", password=STRONG)
    assert issued.status_code == 201, issued.json()
    client = client_for(issued.json()["token"])
    me = client.get("/api/v1/accounts/me/")
    assert me.status_code == 200
    assert (me.json()["username"], me.json()["roles"], me.json()["verified"]) == ("nadia", ["researcher"], False)
    error = assert_error(client.get("/api/v1/datasets/"), 403, "permission_denied")
    assert "verified" in error["message"]
    event = last_event()
    assert (event.outcome, event.actor_username, event.details["status"]) == ("denied", "nadia", 403)


@pytest.mark.parametrize("password, fragment", [
    ("short1!", "too short"),
    ("password1234", "too common"),
    ("nadia@example.org", "too similar"),
])
def test_it_refuses_a_weak_password(db, password, fragment):
    response = _register(password=password)
    error = assert_error(response, 400, "weak_password")
    assert fragment in error["message"]
    assert any(fragment in message for message in error["details"]["password"])
    assert not User.objects.filter(username="nadia").exists()
    event = last_event()
    assert (event.action, event.outcome, event.details["code"], event.details["username"]) == (
        "accounts.register", "refused", "weak_password", "nadia")
    assert password not in str(event.details)


@pytest.mark.parametrize("username", ["rhea", "RHEA", "Rhea", "\uff52\uff48\uff45\uff41"])  # the last: fullwidth
def test_a_taken_username_is_answered_as_a_free_one_and_changes_nothing(researcher, username, monkeypatch):
    # No enumeration: the same status and body (the name as stored) as for a free name, the password checked
    # and hashed all the same; the existing account is untouched; only the audit row says it was taken.
    import django.contrib.auth.base_user as base_user

    hashed = []
    monkeypatch.setattr(base_user, "make_password", lambda raw, *a, **k: hashed.append(raw) or f"md5$x${len(hashed)}")
    rhea = User.objects.get(username="rhea")
    free = _register(username="nadia")
    taken = _register(username=username, email="attacker@example.org", affiliation="Elsewhere")
    echoed = User.normalize_username(username)  # the name as sent (NFKC), whoever holds it
    assert (taken.status_code, taken.json()) == (free.status_code, {**free.json(), "username": echoed,
                                                 "message": free.json()["message"].replace("nadia", echoed)})
    assert free.status_code == 202 and hashed == [STRONG, STRONG]
    assert User.objects.filter(username__iexact="rhea").count() == 1
    after = User.objects.get(pk=rhea.pk)
    assert (after.email, after.affiliation, after.password, after.verified_at) == (
        rhea.email, rhea.affiliation, rhea.password, rhea.verified_at)
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "accounts.register", "refused", None, "user", str(rhea.pk))
    assert (event.details["username"], event.details["code"]) == (echoed, "duplicate_username")  # as attempted


def test_a_weak_password_is_refused_whether_or_not_the_name_is_taken(researcher):
    for username in ("rhea", "nadia"):
        assert_error(_register(username=username, password="short1!"), 400, "weak_password")
    assert not User.objects.filter(username="nadia").exists()


@pytest.mark.parametrize("email", ["not-an-email", "nadia@", "", "@example.org"])
def test_it_refuses_a_bad_email(db, email):
    error = assert_error(_register(email=email), 400, "invalid")
    assert "email" in error["details"]
    assert not User.objects.filter(username="nadia").exists()


@pytest.mark.parametrize("username", ["ab", "has space", "semi;colon", "x" * 151, ""])
def test_it_refuses_a_bad_username(db, username):
    error = assert_error(_register(username=username), 400, "invalid")
    assert "username" in error["details"]
    assert User.objects.count() == 0


@pytest.mark.parametrize("field, value", [("is_custodian", True), ("roles", ["custodian"]),
                                          ("verified", True), ("is_staff", True)])
def test_it_refuses_fields_that_would_grant_privileges(db, field, value):
    error = assert_error(_register(**{field: value}), 400, "invalid")
    assert error["details"] == {field: ["Unknown field."]}
    assert not User.objects.exists()


def test_it_refuses_a_form_encoded_registration(db):
    response = APIClient().post(REGISTER, NEWCOMER)
    assert_error(response, 415, "unsupported_media_type")
    assert not User.objects.exists()


def test_it_ignores_credentials_sent_to_register(researcher):
    client = client_for(researcher[1])
    assert client.post(REGISTER, NEWCOMER, format="json").status_code == 202
    assert last_event().actor_username == "nadia"


# --- verification -------------------------------------------------------------------


def test_it_lets_a_custodian_verify_a_researcher(clients, custodian, unverified):
    user = unverified[0]
    response = _verify(clients["custodian"], user.pk)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"] == user.pk and body["verified"] is True and body["verified_at"] is not None
    user.refresh_from_db()
    assert user.verified_at is not None and user.verified_by_id == custodian[0].pk
    assert user.is_verified_researcher
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "accounts.verify", "success", custodian[0].pk, "user", str(user.pk))
    assert event.details == {"username": "uma"}
    # Now the researcher may read dataset metadata.
    assert clients["unverified"].get("/api/v1/datasets/").status_code == 200


def test_it_verifies_a_freshly_registered_researcher_end_to_end(clients, custodian):
    assert _register().status_code == 202  # the answer names no id: the custodian finds it among the pending
    pending = clients["custodian"].get("/api/v1/accounts/", {"role": "researcher", "verified": "false"}).json()
    assert [u["username"] for u in pending["results"]] == ["uma", "nadia"]
    user_id = pending["results"][1]["id"]
    assert _verify(clients["custodian"], user_id).status_code == 200
    pending = clients["custodian"].get("/api/v1/accounts/", {"role": "researcher", "verified": "false"}).json()
    assert [u["username"] for u in pending["results"]] == ["uma"]
    raw = issue_token(APIClient(), "nadia", password=STRONG).json()["token"]
    assert client_for(raw).get("/api/v1/datasets/").status_code == 200


def test_it_refuses_to_verify_twice(clients, custodian, unverified):
    user = unverified[0]
    assert _verify(clients["custodian"], user.pk).status_code == 200
    first = User.objects.get(pk=user.pk).verified_at
    error = assert_error(_verify(clients["custodian"], user.pk), 409, "already_verified")
    assert "already verified" in error["message"]
    assert User.objects.get(pk=user.pk).verified_at == first
    assert AuditEvent.objects.filter(action="accounts.verify", outcome="success").count() == 1
    event = last_event()
    assert (event.action, event.outcome, event.object_id, event.details["code"]) == (
        "accounts.verify", "refused", str(user.pk), "already_verified")


def test_it_refuses_to_verify_an_already_verified_researcher(clients, researcher):
    assert_error(_verify(clients["custodian"], researcher[0].pk), 409, "already_verified")


@pytest.mark.parametrize("who", ["custodian", "auditor"])
def test_it_refuses_to_verify_someone_who_is_not_a_researcher(clients, custodian, auditor, who):
    target = {"custodian": custodian, "auditor": auditor}[who][0]
    error = assert_error(_verify(clients["custodian"], target.pk), 409, "not_a_researcher")
    assert target.username in error["message"]
    target.refresh_from_db()
    assert target.verified_by is None


def test_it_refuses_to_verify_a_disabled_researcher(clients, unverified):
    user = unverified[0]
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_error(_verify(clients["custodian"], user.pk), 409, "user_disabled")
    user.refresh_from_db()
    assert user.verified_at is None


def test_it_answers_404_for_an_unknown_user(clients):
    assert_error(_verify(clients["custodian"], 987654), 404, "not_found")
    event = last_event()
    assert (event.action, event.outcome, event.object_id) == ("accounts.verify", "refused", "987654")


@pytest.mark.parametrize("role, status, code", [
    ("anonymous", 401, "not_authenticated"),
    ("unverified", 403, "permission_denied"),
    ("researcher", 403, "permission_denied"),
    ("auditor", 403, "permission_denied"),
])
def test_it_refuses_verification_by_non_custodians_and_audits_it(clients, unverified, role, status, code):
    target = unverified[0]
    assert_error(_verify(clients[role], target.pk), status, code)
    target.refresh_from_db()
    assert target.verified_at is None
    event = last_event()
    assert (event.action, event.outcome, event.object_type, event.object_id) == (
        "accounts.verify", "denied", "user", str(target.pk))
    assert event.actor_username == {"anonymous": "", "unverified": "uma", "researcher": "rhea", "auditor": "otto"}[role]


def test_it_does_not_let_a_researcher_verify_itself(clients, unverified):
    assert_error(_verify(clients["unverified"], unverified[0].pk), 403, "permission_denied")


def test_it_lets_a_custodian_who_is_also_a_researcher_be_verified_by_another(clients, custodian):
    both, _ = make_user("bea", ["custodian", "researcher"], verified=False)
    assert both.verified_at is None
    assert _verify(clients["custodian"], both.pk).status_code == 200


def test_it_stores_usernames_in_nfkc_form_and_accepts_either_form_at_login(db):
    response = _register(username="\uff4e\uff41\uff44\uff49\uff41")  # fullwidth "nadia"
    assert response.status_code == 202, response.json()
    assert response.json()["username"] == "nadia"
    assert User.objects.filter(username="nadia").exists()
    assert issue_token(APIClient(), "nadia", password=STRONG).status_code == 201
    assert issue_token(APIClient(), "\uff4e\uff41\uff44\uff49\uff41", password=STRONG).status_code == 201
