"""GET /api/v1/auth/tokens/ and POST /api/v1/auth/tokens/{id}/revoke/: own tokens only."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.authentication import hash_token
from accounts.models import ApiToken
from accounts.services import token_issue_for
from clearinghouse.models import AuditEvent
from tests.accounts.conftest import assert_error
from tests.conftest import client_for, last_event

pytestmark = pytest.mark.django_db

ME = "/api/v1/accounts/me/"


def _revoke(client, token_id):
    return client.post(f"/api/v1/auth/tokens/{token_id}/revoke/", format="json")


def _own_other_token(user):
    token, raw = token_issue_for(user=user, name="second")
    return token, raw


def test_it_lets_the_owner_revoke_a_token_which_then_stops_working(researcher):
    user, raw = researcher
    other, other_raw = _own_other_token(user)
    client = client_for(raw)
    response = _revoke(client, other.pk)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["id"] == other.pk and body["revoked_at"] is not None and body["name"] == "second"
    assert "key_hash" not in body and "token" not in body
    other.refresh_from_db()
    assert other.revoked_at is not None and not other.is_usable
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "auth.token.revoke", "success", user.pk, "token", str(other.pk))
    assert event.details == {"hint": other.hint}

    refused = client_for(other_raw).get(ME)
    assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
    assert client.get(ME).status_code == 200  # the caller's own token is untouched


def test_it_lets_a_caller_revoke_the_token_in_use_which_logs_them_out(researcher):
    user, raw = researcher
    token = ApiToken.objects.get(key_hash=hash_token(raw))
    client = client_for(raw)
    assert _revoke(client, token.pk).status_code == 200
    assert client.get(ME).status_code == 401


def test_it_refuses_to_revoke_a_token_twice_with_409(researcher):
    user, raw = researcher
    other, _ = _own_other_token(user)
    client = client_for(raw)
    assert _revoke(client, other.pk).status_code == 200
    first_revoked_at = ApiToken.objects.get(pk=other.pk).revoked_at
    error = assert_error(_revoke(client, other.pk), 409, "already_revoked")
    assert "already revoked" in error["message"]
    assert ApiToken.objects.get(pk=other.pk).revoked_at == first_revoked_at
    assert AuditEvent.objects.filter(action="auth.token.revoke", outcome="success").count() == 1
    event = last_event()
    assert (event.action, event.outcome, event.object_id, event.details["code"]) == (
        "auth.token.revoke", "refused", str(other.pk), "already_revoked")


@pytest.mark.parametrize("role", ["researcher", "custodian", "auditor"])
def test_it_answers_404_for_someone_elses_token_and_leaves_it_usable(clients, unverified, role):
    victim, victim_raw = unverified
    victim_token = ApiToken.objects.get(key_hash=hash_token(victim_raw))
    error = assert_error(_revoke(clients[role], victim_token.pk), 404, "not_found")
    assert error["details"] is None
    event = last_event()
    assert (event.action, event.outcome, event.object_type, event.object_id, event.actor_username) == (
        "auth.token.revoke", "refused", "token", str(victim_token.pk), {"researcher": "rhea", "custodian": "cora",
                                                                       "auditor": "otto"}[role])
    victim_token.refresh_from_db()
    assert victim_token.revoked_at is None
    assert client_for(victim_raw).get(ME).status_code == 200


def test_it_answers_404_for_a_token_that_does_not_exist(researcher):
    assert_error(_revoke(client_for(researcher[1]), 999999), 404, "not_found")


def test_it_refuses_revoking_without_credentials(researcher):
    token = ApiToken.objects.get(key_hash=hash_token(researcher[1]))
    response = _revoke(APIClient(), token.pk)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    token.refresh_from_db()
    assert token.revoked_at is None
    event = last_event()
    assert (event.action, event.outcome, event.object_id) == ("auth.token.revoke", "denied", str(token.pk))


def test_it_refuses_get_on_the_revoke_endpoint(researcher):
    token = ApiToken.objects.get(key_hash=hash_token(researcher[1]))
    assert_error(client_for(researcher[1]).get(f"/api/v1/auth/tokens/{token.pk}/revoke/"), 405, "method_not_allowed")
    token.refresh_from_db()
    assert token.revoked_at is None


def test_it_lists_only_the_callers_tokens_newest_first_without_secrets(researcher, unverified):
    user, raw = researcher
    second, second_raw = _own_other_token(user)
    response = client_for(raw).get("/api/v1/auth/tokens/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 2 and body["next"] is None and body["previous"] is None
    assert [item["id"] for item in body["results"]] == [second.pk, ApiToken.objects.get(key_hash=hash_token(raw)).pk]
    for item in body["results"]:
        assert set(item) == {"id", "name", "hint", "created_at", "expires_at", "revoked_at", "last_used_at"}
    text = response.content.decode()
    for secret in (raw, second_raw, hash_token(raw), hash_token(second_raw), unverified[1]):
        assert secret not in text
    event = last_event()
    assert (event.action, event.outcome, event.actor_id) == ("auth.token.list", "success", user.pk)


def test_it_paginates_the_token_list(researcher):
    user, raw = researcher
    for index in range(4):
        token_issue_for(user=user, name=f"extra-{index}")
    client = client_for(raw)
    first = client.get("/api/v1/auth/tokens/", {"page_size": 2}).json()
    assert first["count"] == 5 and len(first["results"]) == 2
    assert first["previous"] is None and "page=2" in first["next"]
    third = client.get("/api/v1/auth/tokens/", {"page_size": 2, "page": 3}).json()
    assert len(third["results"]) == 1 and third["next"] is None
    names = [t["name"] for t in first["results"]]
    assert names == ["extra-3", "extra-2"]
    assert_error(client.get("/api/v1/auth/tokens/", {"page": 9}), 404, "not_found")


def test_it_shows_a_revoked_token_as_revoked_in_the_list(researcher):
    user, raw = researcher
    other, _ = _own_other_token(user)
    client = client_for(raw)
    _revoke(client, other.pk)
    listed = {t["id"]: t for t in client.get("/api/v1/auth/tokens/").json()["results"]}
    assert listed[other.pk]["revoked_at"] is not None
    assert listed[ApiToken.objects.get(key_hash=hash_token(raw)).pk]["revoked_at"] is None


def test_it_refuses_the_token_list_to_anonymous_callers(db):
    assert_error(APIClient().get("/api/v1/auth/tokens/"), 401, "not_authenticated")


def test_it_lets_an_unverified_researcher_manage_its_own_tokens(unverified):
    user, raw = unverified
    other, _ = _own_other_token(user)
    client = client_for(raw)
    assert client.get("/api/v1/auth/tokens/").json()["count"] == 2
    assert _revoke(client, other.pk).status_code == 200
