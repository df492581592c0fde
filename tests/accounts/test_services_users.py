"""The accounts services and selectors, called directly (no HTTP)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.exceptions import Throttled

from accounts import selectors, services
from accounts.authentication import hash_token
from accounts.models import ApiToken, Role, User
from clearinghouse import context
from clearinghouse.errors import ApplicationError
from clearinghouse.models import AuditEvent
from tests.accounts.conftest import PASSWORD
from tests.conftest import last_event, make_user

pytestmark = pytest.mark.django_db

STRONG = "violet-harbour-engine-19"


# --- user_create --------------------------------------------------------------------


def test_it_creates_a_user_with_the_given_roles_and_password():
    by, _ = make_user("cora", ["custodian"])
    user, generated = services.user_create(username="ines", roles=["auditor", "researcher"], password=STRONG,
                                           email="ines@example.org", verified=True, by=by)
    assert generated is None
    user.refresh_from_db()
    assert (user.roles, user.email, user.verified_by_id) == (["researcher", "auditor"], "ines@example.org", by.pk)
    assert user.check_password(STRONG) and user.is_verified_researcher and user.is_verified_user
    event = last_event()
    assert (event.action, event.actor_id, event.object_id, event.details) == (
        "accounts.create", by.pk, str(user.pk), {"username": "ines", "roles": ["researcher", "auditor"], "verified": True})


def test_it_generates_a_strong_password_when_none_is_given():
    user, generated = services.user_create(username="ines", roles=["auditor"])
    assert generated and len(generated) >= 20
    assert user.check_password(generated)
    other, other_generated = services.user_create(username="ivo", roles=["auditor"])
    assert other_generated != generated


@pytest.mark.parametrize("roles, verified, expect_verified", [
    (["researcher"], False, False),
    (["researcher"], True, True),
    (["custodian"], False, True),
    (["auditor"], False, True),
    (["custodian", "researcher"], False, False),
])
def test_it_verifies_operators_but_not_researchers_unless_asked(roles, verified, expect_verified):
    user, _ = services.user_create(username="ines", roles=roles, password=STRONG, verified=verified)
    assert (user.verified_at is not None) is expect_verified


@pytest.mark.parametrize("roles", [[], ["admin"], ["researcher", "superuser"]])
def test_it_refuses_unknown_or_missing_roles(roles):
    with pytest.raises(ApplicationError) as info:
        services.user_create(username="ines", roles=roles, password=STRONG)
    assert info.value.code == "unknown_role" and info.value.status_code == 400
    assert not User.objects.exists() and not AuditEvent.objects.exists()


def test_it_refuses_a_duplicate_username_whatever_its_case():
    services.user_create(username="Ines", roles=["auditor"], password=STRONG)
    with pytest.raises(ApplicationError) as info:
        services.user_create(username="iNES", roles=["auditor"], password=STRONG)
    assert (info.value.code, info.value.status_code) == ("duplicate_username", 409)
    assert User.objects.count() == 1 and AuditEvent.objects.count() == 1


def test_it_refuses_a_weak_password_and_writes_nothing():
    with pytest.raises(ApplicationError) as info:
        services.user_create(username="ines", roles=["auditor"], password="ines")
    assert info.value.code == "weak_password"
    assert info.value.details["password"]
    assert not User.objects.exists() and not AuditEvent.objects.exists()


# --- registration and verification --------------------------------------------------


def test_it_registers_a_researcher_who_is_not_verified():
    user = services.researcher_register(username="nadia", password=STRONG, email="n@example.org", affiliation="EU")
    assert user.roles == ["researcher"] and user.verified_at is None
    assert not user.is_verified_researcher and not user.is_verified_user
    event = last_event()
    assert (event.action, event.actor_id, event.details) == (
        "accounts.register", user.pk, {"username": "nadia", "affiliation": "EU"})


def test_it_verifies_a_researcher_once():
    custodian, _ = make_user("cora", ["custodian"])
    user = services.researcher_register(username="nadia", password=STRONG, email="n@example.org")
    verified = services.researcher_verify(user=user, by=custodian)
    assert verified.verified_at is not None and verified.verified_by_id == custodian.pk
    with pytest.raises(ApplicationError) as info:
        services.researcher_verify(user=user, by=custodian)  # a stale instance: the service re-reads the row
    assert (info.value.code, info.value.status_code) == ("already_verified", 409)
    assert AuditEvent.objects.filter(action="accounts.verify").count() == 1


def test_it_does_not_count_a_disabled_verified_researcher_as_verified():
    user, _ = make_user("rhea", ["researcher"], verified=True)
    user.is_active = False
    assert not user.is_verified_researcher and not user.is_verified_user


# --- tokens -------------------------------------------------------------------------


def test_it_issues_a_token_for_a_password_and_audits_it():
    user, _ = make_user("rhea", ["researcher"])
    token, raw = services.token_issue(username="rhea", password=PASSWORD, name="cli", ttl_days=2)
    assert token.user_id == user.pk and token.key_hash == hash_token(raw) and token.hint == raw[:10]
    assert timezone.now() + timedelta(days=1, hours=23) < token.expires_at <= timezone.now() + timedelta(days=2)
    assert token.is_usable
    event = last_event()
    assert (event.action, event.actor_id, event.object_id) == ("auth.token.issue", user.pk, str(token.pk))


def test_it_issues_distinct_tokens_each_time():
    user, _ = make_user("rhea", ["researcher"])
    raws = {services.token_issue_for(user=user)[1] for _ in range(5)}
    assert len(raws) == 5
    assert ApiToken.objects.filter(user=user).values("key_hash").distinct().count() == 6


@pytest.mark.parametrize("days", [0, -3, 366])
def test_it_refuses_a_token_lifetime_out_of_range(days):
    user, _ = make_user("rhea", ["researcher"])
    before = ApiToken.objects.count()
    with pytest.raises(ApplicationError) as info:
        services.token_issue_for(user=user, ttl_days=days)
    assert info.value.code == "invalid_ttl"
    assert ApiToken.objects.count() == before


def test_it_raises_invalid_credentials_for_a_wrong_password():
    make_user("rhea", ["researcher"])
    with pytest.raises(ApplicationError) as info:
        services.token_issue(username="rhea", password="wrong wrong wrong")
    assert (info.value.code, info.value.status_code) == ("invalid_credentials", 401)


def test_it_raises_throttled_once_the_address_is_locked(settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 2
    settings.LOGIN_FAILURE_WINDOW_SECONDS = 60
    make_user("rhea", ["researcher"])
    with context.bound(channel="api", client_ip="198.51.100.4"):
        for name in ("a", "b"):
            with pytest.raises(ApplicationError):
                services.token_issue(username=name, password="wrong wrong wrong")
        with pytest.raises(Throttled) as info:
            services.token_issue(username="rhea", password=PASSWORD)
    assert info.value.wait == 60
    # Without an address (a command), only the username counts.
    assert services.token_issue(username="rhea", password=PASSWORD)[0].pk


def test_it_revokes_a_token_once():
    user, raw = make_user("rhea", ["researcher"])
    token = ApiToken.objects.get(key_hash=hash_token(raw))
    revoked = services.token_revoke(token=token, by=user)
    assert revoked.revoked_at is not None and not revoked.is_usable
    with pytest.raises(ApplicationError) as info:
        services.token_revoke(token=token, by=user)
    assert (info.value.code, info.value.status_code) == ("already_revoked", 409)
    assert AuditEvent.objects.filter(action="auth.token.revoke").count() == 1


def test_it_calls_an_expired_token_unusable():
    user, raw = make_user("rhea", ["researcher"])
    token = ApiToken.objects.get(key_hash=hash_token(raw))
    token.expires_at = timezone.now() - timedelta(seconds=1)
    assert not token.is_usable
    assert str(token) == f"{token.hint}… (rhea)"


# --- selectors ----------------------------------------------------------------------


def test_it_selects_users_by_role_and_verification():
    make_user("cora", ["custodian"])
    make_user("rhea", ["researcher"], verified=True)
    make_user("uma", ["researcher"], verified=False)
    names = lambda qs: [u.username for u in qs]  # noqa: E731
    assert names(selectors.user_list()) == ["cora", "rhea", "uma"]
    assert names(selectors.user_list(role=Role.RESEARCHER, verified=False)) == ["uma"]
    assert names(selectors.user_list(role=Role.RESEARCHER, verified=True)) == ["rhea"]
    assert names(selectors.user_list(verified=True)) == ["cora", "rhea"]


def test_it_selects_only_a_users_own_tokens_newest_first():
    user, raw = make_user("rhea", ["researcher"])
    make_user("uma", ["researcher"])
    services.token_issue_for(user=user, name="newer")
    assert [t.name for t in selectors.token_list(user=user)] == ["newer", ""]
    assert all(t.user_id == user.pk for t in selectors.token_list(user=user))
