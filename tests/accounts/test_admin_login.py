"""Admin-site logins: custodians only, audited, and subject to the same failed-login lockout."""

from __future__ import annotations

import pytest
from django.test import Client

from clearinghouse.models import AuditEvent
from tests.accounts.conftest import PASSWORD, assert_error, issue_token
from tests.conftest import last_event

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


def _admin_login(client: Client, username: str, password: str = PASSWORD):
    return client.post(LOGIN, {"username": username, "password": password, "next": "/admin/"})


def test_it_lets_a_custodian_log_into_the_admin_and_audits_it(custodian):
    client = Client()
    response = _admin_login(client, "cora")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    events = AuditEvent.objects.filter(action="auth.admin_login")
    assert events.count() == 1
    event = events.get()
    assert (event.outcome, event.actor_id, event.object_type, event.object_id, event.channel, event.client_ip) == (
        "success", custodian[0].pk, "user", str(custodian[0].pk), "admin", "127.0.0.1")


@pytest.mark.parametrize("fixture_name", ["researcher", "unverified", "auditor"])
def test_it_refuses_the_admin_to_non_custodians(request, fixture_name):
    user = request.getfixturevalue(fixture_name)[0]
    client = Client()
    response = _admin_login(client, user.username)
    assert response.status_code == 200
    assert "Only custodians may use the admin site." in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302
    assert not AuditEvent.objects.filter(action="auth.admin_login", outcome="success").exists()


def test_it_audits_a_non_custodian_refused_at_the_admin_login(researcher):
    _admin_login(Client(), "rhea")
    assert AuditEvent.objects.filter(action="auth.admin_login", outcome="denied").exists()


def test_it_audits_a_wrong_admin_password_with_the_attempted_username(custodian):
    response = _admin_login(Client(), "cora", password="not the password at all")
    assert response.status_code == 200 and "_auth_user_id" not in response.client.session
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.channel) == ("auth.admin_login", "denied", None, "admin")
    assert event.details == {"username": "cora"}


def test_it_does_not_audit_api_logins_as_admin_logins(researcher):
    from rest_framework.test import APIClient

    assert issue_token(APIClient(), "rhea").status_code == 201
    assert AuditEvent.objects.filter(action="auth.token.issue", channel="api", outcome="success").count() == 1
    assert not AuditEvent.objects.filter(action="auth.admin_login").exists()


def test_it_shares_the_failed_login_lockout_between_the_api_and_the_admin(custodian, settings):
    settings.LOGIN_FAILURES_PER_USERNAME = 5
    settings.LOGIN_FAILURES_PER_ADDRESS = 20
    for _ in range(3):
        _admin_login(Client(), "cora", password="not the password at all")
    from rest_framework.test import APIClient

    for _ in range(2):
        assert_error(issue_token(APIClient(), "cora", password="not the password at all"), 401, "invalid_credentials")
    client = Client()
    response = _admin_login(client, "cora")  # the right password, but locked out
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    denied = AuditEvent.objects.filter(action="auth.admin_login", outcome="denied")
    assert denied.count() == 4
    assert_error(issue_token(APIClient(), "cora"), 429, "throttled")


def test_it_does_not_let_an_admin_session_cookie_authenticate_the_api(custodian):
    client = Client()
    assert _admin_login(client, "cora").status_code == 302
    response = client.get("/api/v1/accounts/")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'
