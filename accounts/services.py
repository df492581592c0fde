"""Account writes: users, registration, verification, tokens. Each write is audited in its transaction."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import Throttled

from accounts import login_throttle
from accounts.authentication import hash_token
from accounts.models import ApiToken, Role, User
from clearinghouse import context
from clearinghouse.errors import ApplicationError
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_record

__all__ = [
    "researcher_register",
    "researcher_verify",
    "token_issue",
    "token_issue_for",
    "token_revoke",
    "user_create",
]


def _check_password(password: str, user: User) -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise ApplicationError(
            "The password is too weak: " + " ".join(exc.messages), code="weak_password", details={"password": exc.messages}
        ) from None


@transaction.atomic
def user_create(
    *,
    username: str,
    roles: list[str],
    password: str | None = None,
    email: str = "",
    verified: bool = False,
    by: User | None = None,
) -> tuple[User, str | None]:
    """Create a user (operator path: ``add_user``). Returns the user and a generated password, if any."""
    username = User.normalize_username(username)  # NFKC, as Django's own forms do: no look-alike twins
    unknown = sorted(set(roles) - set(Role.values))
    if not roles or unknown:
        raise ApplicationError(f"Unknown role(s): {', '.join(unknown) or '(none given)'}; use {', '.join(Role.values)}.",
                               code="unknown_role")
    if User.objects.filter(username__iexact=username).exists():
        raise ApplicationError(f"A user named {username!r} already exists.", code="duplicate_username", status_code=409)
    user = User(
        username=username,
        email=email,
        is_custodian=Role.CUSTODIAN in roles,
        is_researcher=Role.RESEARCHER in roles,
        is_auditor=Role.AUDITOR in roles,
    )
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(18)
    _check_password(password, user)
    user.set_password(password)
    if verified or not user.is_researcher:
        user.verified_at = timezone.now()
        user.verified_by = by
    user.save()
    audit_record(action="accounts.create", actor=by, object_type="user", object_id=user.pk,
                 details={"username": user.username, "roles": user.roles, "verified": user.verified_at is not None})
    return user, generated


@transaction.atomic
def researcher_register(
    *, username: str, password: str, email: str, first_name: str = "", last_name: str = "", affiliation: str = ""
) -> User | None:
    """Self-registration: an unverified researcher, who can do nothing until a custodian verifies them.

    Returns the new user, or None when the username is taken (whatever its case). The caller answers
    both the same way, so that registration does not tell who has an account: the password is checked
    and hashed before the name is looked up (the same refusals, the same work either way), the existing
    account is not changed, and only the audit row says which it was (outcome ``refused``, code
    ``duplicate_username``, the existing account as its object)."""
    username = User.normalize_username(username)  # NFKC: "ｒｈｅａ" is "rhea"
    user = User(username=username, email=email, first_name=first_name, last_name=last_name,
                affiliation=affiliation, is_researcher=True)
    _check_password(password, user)
    user.set_password(password)
    existing = User.objects.filter(username__iexact=username).only("pk").first()
    if existing is None:
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:  # registered by a concurrent request since the look-up
            existing = User.objects.filter(username__iexact=username).only("pk").first()
        else:
            audit_record(action="accounts.register", actor=user, object_type="user", object_id=user.pk,
                         details={"username": user.username, "affiliation": affiliation})
            return user
    audit_record(action="accounts.register", outcome=AuditEvent.Outcome.REFUSED, object_type="user",
                 object_id=existing.pk if existing else "",
                 details={"username": username, "affiliation": affiliation, "code": "duplicate_username",
                          "message": "The username is taken; nothing was changed, and the caller was answered "
                                     "as for a new registration."})
    return None


@transaction.atomic
def researcher_verify(*, user: User, by: User) -> User:
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_researcher:
        raise ApplicationError(f"User {user.username!r} is not a researcher.", code="not_a_researcher", status_code=409)
    if user.verified_at is not None:
        raise ApplicationError(f"User {user.username!r} is already verified.", code="already_verified", status_code=409)
    if not user.is_active:
        raise ApplicationError(f"User {user.username!r} is disabled.", code="user_disabled", status_code=409)
    user.verified_at = timezone.now()
    user.verified_by = by
    user.save(update_fields=["verified_at", "verified_by"])
    audit_record(action="accounts.verify", actor=by, object_type="user", object_id=user.pk,
                 details={"username": user.username})
    return user


def _new_token(*, user: User, name: str, ttl_days: int | None) -> tuple[ApiToken, str]:
    ttl = settings.API_TOKEN_TTL_DAYS if ttl_days is None else ttl_days  # 0 is refused, not "default"
    if not 1 <= ttl <= 365:
        raise ApplicationError("expires_in_days must be between 1 and 365.", code="invalid_ttl")
    raw = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, key_hash=hash_token(raw), hint=raw[:10], expires_at=timezone.now() + timedelta(days=ttl)
    )
    return token, raw


def token_issue(*, username: str, password: str, name: str = "", ttl_days: int | None = None) -> tuple[ApiToken, str]:
    """Password login: returns the token row and the raw token (shown once, never stored)."""
    username = User.normalize_username(username)  # as stored (and as Django's login form does)
    address = context.current().client_ip
    wait = login_throttle.locked_for(username, address)
    if wait:
        raise Throttled(wait=wait, detail="Too many failed logins; wait before trying again.")
    user = authenticate(request=None, username=username, password=password)  # counts failures
    if user is None:
        raise ApplicationError("Wrong username or password.", code="invalid_credentials", status_code=401,
                               headers={"WWW-Authenticate": 'Bearer realm="api"'})
    with transaction.atomic():
        token, raw = _new_token(user=user, name=name, ttl_days=ttl_days)
        audit_record(action="auth.token.issue", actor=user, object_type="token", object_id=token.pk,
                     details={"hint": token.hint, "expires_at": token.expires_at.isoformat()})
    return token, raw


@transaction.atomic
def token_issue_for(*, user: User, name: str = "", ttl_days: int | None = None) -> tuple[ApiToken, str]:
    """Operator path (``add_user``): a token without a password login."""
    token, raw = _new_token(user=user, name=name, ttl_days=ttl_days)
    audit_record(action="auth.token.issue", actor=user, object_type="token", object_id=token.pk,
                 details={"hint": token.hint, "expires_at": token.expires_at.isoformat(), "via": "add_user"})
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken, by: User) -> ApiToken:
    token = ApiToken.objects.select_for_update().get(pk=token.pk)
    if token.revoked_at is not None:
        raise ApplicationError("This token is already revoked.", code="already_revoked", status_code=409)
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    audit_record(action="auth.token.revoke", actor=by, object_type="token", object_id=token.pk,
                 details={"hint": token.hint})
    return token
