"""POST /api/v1/auth/token/: password login that issues a hashed, expiring bearer token."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken
from clearinghouse.models import AuditEvent
from tests.accounts.conftest import PASSWORD, assert_error, issue_token
from tests.conftest import client_for, last_event

pytestmark = pytest.mark.django_db


def test_it_issues_a_token_that_is_shown_once_and_stored_only_as_its_sha256(researcher):
    user, _fixture_token = researcher
    response = issue_token(APIClient(), "rhea", name="laptop")
    assert response.status_code == 201, response.json()
    body = response.json()
    raw = body["token"]
    assert raw.startswith("cht_") and len(raw) > 40
    assert body["token_type"] == "Bearer"
    assert body["hint"] == raw[:10]
    assert body["user"]["username"] == "rhea" and body["user"]["roles"] == ["researcher"]
    assert "password" not in body["user"]

    token = ApiToken.objects.get(pk=body["id"])
    assert token.user_id == user.pk and token.name == "laptop"
    assert token.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    for column, value in row.items():
        assert raw not in str(value), f"the raw token is stored in ApiToken.{column}"
    # Nor does the raw token (or the password) reach the audit log.
    for event in AuditEvent.objects.all():
        assert raw not in str(event.details) and PASSWORD not in str(event.details)

    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "auth.token.issue", "success", user.pk, "token", str(token.pk))
    assert event.channel == "api" and event.client_ip == "127.0.0.1"
    assert event.details["hint"] == raw[:10]


def test_it_lists_the_token_afterwards_without_the_secret(researcher):
    raw = issue_token(APIClient(), "rhea").json()["token"]
    listed = client_for(raw).get("/api/v1/auth/tokens/").json()
    assert raw not in str(listed)


def test_it_accepts_the_issued_token_as_a_bearer_token_on_me(researcher):
    raw = issue_token(APIClient(), "rhea").json()["token"]
    response = client_for(raw).get("/api/v1/accounts/me/")
    assert response.status_code == 200
    body = response.json()
    assert (body["username"], body["roles"], body["verified"]) == ("rhea", ["researcher"], True)
    token = ApiToken.objects.get(key_hash=hashlib.sha256(raw.encode()).hexdigest())
    assert token.last_used_at is not None
    event = last_event()
    assert (event.action, event.outcome, event.actor_id) == ("accounts.me", "success", researcher[0].pk)


def test_it_expires_the_token_after_the_default_lifetime(researcher, settings):
    settings.API_TOKEN_TTL_DAYS = 30
    before = timezone.now()
    body = issue_token(APIClient(), "rhea").json()
    expires_at = ApiToken.objects.get(pk=body["id"]).expires_at
    assert before + timedelta(days=30) <= expires_at <= timezone.now() + timedelta(days=30)


@pytest.mark.parametrize("days", [1, 7, 365])
def test_it_honours_expires_in_days(researcher, days):
    before = timezone.now()
    response = issue_token(APIClient(), "rhea", expires_in_days=days)
    assert response.status_code == 201, response.json()
    expires_at = ApiToken.objects.get(pk=response.json()["id"]).expires_at
    assert before + timedelta(days=days) <= expires_at <= timezone.now() + timedelta(days=days)


@pytest.mark.parametrize("days", [0, -1, 366, "soon"])
def test_it_refuses_expires_in_days_out_of_bounds(researcher, days):
    response = issue_token(APIClient(), "rhea", expires_in_days=days)
    error = assert_error(response, 400, "invalid")
    assert "expires_in_days" in error["details"]
    assert not ApiToken.objects.filter(user=researcher[0]).exclude(name="").exists()
    assert ApiToken.objects.filter(user=researcher[0]).count() == 1  # only the fixture's token
    event = last_event()
    assert (event.action, event.outcome, event.details["username"]) == ("auth.token.issue", "refused", "rhea")


def test_it_refuses_a_wrong_password_with_401_and_audits_the_attempted_username(researcher):
    response = issue_token(APIClient(), "rhea", password="not the password at all")
    error = assert_error(response, 401, "invalid_credentials")
    assert error["message"] == "Wrong username or password."
    assert ApiToken.objects.filter(user=researcher[0]).count() == 1
    event = last_event()
    assert (event.action, event.outcome, event.actor_id) == ("auth.token.issue", "denied", None)
    assert event.details["username"] == "rhea"
    assert event.details["code"] == "invalid_credentials" and event.details["status"] == 401
    assert "not the password at all" not in str(event.details)


def test_it_answers_an_unknown_username_exactly_like_a_wrong_password(researcher):
    wrong_password = issue_token(APIClient(), "rhea", password="not the password at all")
    unknown_user = issue_token(APIClient(), "nobody-here", password="not the password at all")
    assert unknown_user.status_code == wrong_password.status_code == 401
    assert unknown_user.json() == wrong_password.json()
    event = last_event()
    assert (event.outcome, event.details["username"]) == ("denied", "nobody-here")


def test_it_refuses_a_disabled_account_even_with_the_right_password(researcher):
    user = researcher[0]
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_error(issue_token(APIClient(), "rhea"), 401, "invalid_credentials")
    assert ApiToken.objects.filter(user=user).count() == 1


def test_it_refuses_unknown_fields(researcher):
    response = issue_token(APIClient(), "rhea", is_custodian=True)
    error = assert_error(response, 400, "invalid")
    assert error["details"] == {"is_custodian": ["Unknown field."]}
    assert ApiToken.objects.filter(user=researcher[0]).count() == 1


@pytest.mark.parametrize("missing", ["username", "password"])
def test_it_refuses_a_missing_credential(researcher, missing):
    payload = {"username": "rhea", "password": PASSWORD}
    del payload[missing]
    response = APIClient().post("/api/v1/auth/token/", payload, format="json")
    error = assert_error(response, 400, "invalid")
    assert missing in error["details"]


def test_it_refuses_form_encoded_bodies_with_415(researcher):
    response = APIClient().post("/api/v1/auth/token/", {"username": "rhea", "password": PASSWORD})  # multipart
    assert_error(response, 415, "unsupported_media_type")
    response = APIClient().post("/api/v1/auth/token/", f"username=rhea&password={PASSWORD}",
                                content_type="application/x-www-form-urlencoded")
    assert_error(response, 415, "unsupported_media_type")
    assert ApiToken.objects.filter(user=researcher[0]).count() == 1
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("auth.token.issue", "refused", "unsupported_media_type")


def test_it_refuses_malformed_json_with_400(researcher):
    response = APIClient().post("/api/v1/auth/token/", '{"username": "rhea", "password": ', content_type="application/json")
    assert_error(response, 400, "malformed_request")
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("auth.token.issue", "refused", "malformed_request")


@pytest.mark.parametrize("body", ["[1, 2]", '"rhea"', "null", "42"])
def test_it_refuses_json_that_is_not_an_object(researcher, body):
    response = APIClient().post("/api/v1/auth/token/", body, content_type="application/json")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize("username", [r"rh\u0000ea", r"rh\ud800ea"])
def test_it_refuses_a_username_that_postgresql_cannot_store_without_a_server_error(researcher, username):
    # U+0000 and lone surrogates are valid JSON but cannot go into a PostgreSQL text or jsonb
    # column, so the refusal's audit row must not carry them as they are.
    body = '{"username": "%s", "password": "whatever-it-is"}' % username
    response = APIClient().post("/api/v1/auth/token/", body, content_type="application/json")
    assert_error(response, 400, "invalid")
    event = last_event()
    assert (event.action, event.outcome) == ("auth.token.issue", "refused")
    assert event.details["username"].startswith("rh") and event.details["username"].endswith("ea")
    assert "\x00" not in event.details["username"]
    event.details["username"].encode("utf-8")  # no lone surrogate left


def test_it_refuses_get_on_the_token_endpoint():
    assert_error(APIClient().get("/api/v1/auth/token/"), 405, "method_not_allowed")


def test_it_refuses_an_unknown_field_whose_name_holds_a_null_character(researcher):
    body = '{"username": "rhea", "password": "whatever-it-is", "na\\u0000me": 1}'
    response = APIClient().post("/api/v1/auth/token/", body, content_type="application/json")
    assert_error(response, 400, "invalid")
    event = last_event()
    assert event.outcome == "refused"
    assert "\x00" not in str(event.details) and "\ufffd" in str(event.details)
