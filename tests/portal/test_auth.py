"""Sign-in, lockout, sign-out, password change, CSRF and the house error pages."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, override_settings

from accounts import login_throttle
from clearinghouse.models import AuditEvent
from tests.conftest import make_user
from tests.portal.conftest import PASSWORD, session_client


@pytest.fixture(autouse=True)
def _fresh_lockouts():
    def clear():
        cache.delete_many([login_throttle._key("addr", "127.0.0.1")]
                          + [login_throttle._key("user", name) for name in ("rhea", "nobody")])

    clear()
    yield
    clear()


def events(action: str) -> list[tuple[str, str, str]]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq").values_list("outcome", "actor_username",
                                                                                       "channel"))


def test_root_sends_a_stranger_to_sign_in_and_a_user_home(researcher):
    assert Client().get("/")["Location"] == "/login/"
    assert session_client(researcher[0]).get("/")["Location"] == "/home/"


def test_it_signs_in_with_a_password_and_audits_it(researcher):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="csrfmiddlewaretoken"' in page.content
    response = client.post("/login/", {"username": "rhea", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/home/"
    home = client.get("/home/")
    assert home.status_code == 200 and b"Welcome, rhea" in home.content
    assert events("auth.portal_login") == [("success", "rhea", "portal")]


def test_a_wrong_password_re_shows_the_form_and_is_audited(researcher):
    response = Client().post("/login/", {"username": "rhea", "password": "wrong"})
    assert response.status_code == 200
    assert b"That username and password do not match an account." in response.content
    assert b'value="rhea"' in response.content  # the input is re-shown
    assert events("auth.portal_login") == [("denied", "", "portal")]


@override_settings(LOGIN_FAILURES_PER_USERNAME=3)
def test_it_locks_a_username_out_after_repeated_failures(researcher):
    client = Client()
    for _ in range(3):
        client.post("/login/", {"username": "rhea", "password": "wrong"})
    response = client.post("/login/", {"username": "rhea", "password": PASSWORD})  # right, but locked
    assert response.status_code == 200 and b"Too many failed sign-ins" in response.content
    assert "_auth_user_id" not in client.session
    assert events("auth.portal_login")[-1] == ("denied", "", "portal")


def test_sign_out_is_a_post_and_is_audited(researcher):
    client = session_client(researcher[0])
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert client.get("/home/").status_code == 302
    assert events("auth.portal_logout") == [("success", "rhea", "portal")]


def test_a_password_change_checks_the_old_password_and_the_rules(researcher):
    user = researcher[0]
    client = session_client(user)
    bad = client.post("/password/", {"old_password": "wrong", "new_password1": "x", "new_password2": "y"})
    assert bad.status_code == 400
    assert b"Your old password was entered incorrectly" in bad.content
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    good = client.post("/password/", {"old_password": PASSWORD, "new_password1": "a much longer passphrase 42",
                                      "new_password2": "a much longer passphrase 42"})
    assert good.status_code == 200 and b"Your password has been changed" in good.content
    user.refresh_from_db()
    assert user.check_password("a much longer passphrase 42")
    assert client.get("/home/").status_code == 200  # still signed in here
    assert [o for o, _u, _c in events("auth.password_change")] == ["refused", "success"]


def test_a_form_without_its_csrf_token_gets_the_403_page_not_a_500(researcher):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher[0])
    response = client.post("/logout/")
    assert response.status_code == 403
    assert b"This form had expired or did not come from this site" in response.content
    assert events("portal.csrf") == [("denied", "rhea", "portal")]
    assert client.get("/home/").status_code == 200  # not signed out


def test_an_unknown_page_gets_the_house_404_and_the_api_keeps_json():
    page = Client().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
    assert b"There is no page at this address." in page.content
    api = Client().get("/api/v1/no-such-endpoint/")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_an_unverified_researcher_is_told_to_wait(unverified):
    page = session_client(unverified[0]).get("/home/")
    assert page.status_code == 200 and b"Awaiting verification" in page.content


def test_sign_in_attempts_share_the_api_rate_limit_for_strangers(researcher):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import AnonRateThrottle

    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "anon": "2/min"}
    cache.delete("throttle_anon_127.0.0.1")
    try:
        AnonRateThrottle.THROTTLE_RATES = rates
        client = Client()
        api = client.post("/api/v1/auth/token/", {"username": "rhea", "password": "wrong"}, content_type="application/json")
        assert api.status_code == 401
        assert client.post("/login/", {"username": "rhea", "password": "wrong"}).status_code == 200
        response = client.post("/login/", {"username": "rhea", "password": PASSWORD})
        assert response.status_code == 429 and int(response["Retry-After"]) >= 1
        assert b"Too many requests" in response.content
        assert "_auth_user_id" not in client.session
        assert events("auth.portal_login")[-1] == ("refused", "", "portal")  # a 429, as the API records it
    finally:
        AnonRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        cache.delete("throttle_anon_127.0.0.1")
