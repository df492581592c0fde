"""``Authorization: Bearer <token>``: expired, revoked, malformed and foreign credentials are refused with 401."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.authentication import hash_token
from accounts.models import ApiToken
from tests.accounts.conftest import assert_error
from tests.conftest import client_for, last_event

pytestmark = pytest.mark.django_db

ME = "/api/v1/accounts/me/"


def _token_row(raw: str) -> ApiToken:
    return ApiToken.objects.get(key_hash=hash_token(raw))


def _get_me(header: str | None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client.get(ME)


def _assert_challenge(response, code: str) -> dict:
    error = assert_error(response, 401, code)
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
    return error


def test_it_authenticates_a_valid_token_and_records_when_it_was_used(researcher):
    user, raw = researcher
    assert _token_row(raw).last_used_at is None
    response = _get_me(f"Bearer {raw}")
    assert response.status_code == 200 and response.json()["username"] == "rhea"
    assert _token_row(raw).last_used_at is not None


def test_it_accepts_the_scheme_name_in_any_case(researcher):
    assert _get_me(f"bearer {researcher[1]}").status_code == 200


def test_it_asks_anonymous_callers_to_authenticate(db):
    error = _assert_challenge(_get_me(None), "not_authenticated")
    assert error["details"] is None
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.details["status"]) == ("accounts.me", "denied", None, 401)


def test_it_refuses_an_expired_token_and_says_so(researcher):
    user, raw = researcher
    ApiToken.objects.filter(key_hash=hash_token(raw)).update(expires_at=timezone.now() - timedelta(seconds=1))
    error = _assert_challenge(_get_me(f"Bearer {raw}"), "authentication_failed")
    assert "expired" in error["message"]
    event = last_event()
    assert (event.action, event.outcome, event.actor_id) == ("accounts.me", "denied", None)
    assert event.details["code"] == "authentication_failed" and "expired" in event.details["message"]


def test_it_refuses_a_revoked_token_and_says_so(researcher):
    user, raw = researcher
    ApiToken.objects.filter(key_hash=hash_token(raw)).update(revoked_at=timezone.now())
    error = _assert_challenge(_get_me(f"Bearer {raw}"), "authentication_failed")
    assert "revoked" in error["message"]


def test_it_refuses_a_token_of_a_disabled_account(researcher):
    user, raw = researcher
    user.is_active = False
    user.save(update_fields=["is_active"])
    error = _assert_challenge(_get_me(f"Bearer {raw}"), "authentication_failed")
    assert "disabled" in error["message"]


def test_it_refuses_an_unknown_token(researcher):
    raw = researcher[1]
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    error = _assert_challenge(_get_me(f"Bearer {forged}"), "authentication_failed")
    assert error["message"] == "Invalid token."


@pytest.mark.parametrize("header", ["Bearer", "Bearer a b", "Bearer   ", "Bearer cht_x cht_y"])
def test_it_refuses_a_malformed_bearer_header(researcher, header):
    error = _assert_challenge(_get_me(header), "authentication_failed")
    assert "Malformed Authorization header" in error["message"]


@pytest.mark.parametrize("header", ["Bearer not-a-cht-token", "Bearer cht_" + "x" * 200])
def test_it_refuses_a_token_without_the_prefix_or_of_absurd_length(researcher, header):
    error = _assert_challenge(_get_me(header), "authentication_failed")
    assert error["message"] == "Invalid token."


@pytest.mark.parametrize("scheme", ["Token", "Basic", "JWT"])
def test_it_does_not_accept_a_valid_token_under_another_scheme(researcher, scheme):
    _assert_challenge(_get_me(f"{scheme} {researcher[1]}"), "not_authenticated")


@pytest.mark.parametrize("header", [" ", "   ", "\t"])
def test_it_treats_a_blank_authorization_header_as_no_credentials_not_a_crash(db, header):
    _assert_challenge(_get_me(header), "not_authenticated")


def test_it_refuses_a_token_with_non_ascii_bytes_without_a_server_error(researcher):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer cht_\u00e9\u00e9\u00e9")
    _assert_challenge(client.get(ME), "authentication_failed")


def test_it_stops_accepting_a_token_once_it_passes_its_expiry(researcher):
    user, raw = researcher
    client = client_for(raw)
    assert client.get(ME).status_code == 200
    ApiToken.objects.filter(key_hash=hash_token(raw)).update(expires_at=timezone.now() + timedelta(seconds=-5))
    assert client.get(ME).status_code == 401
