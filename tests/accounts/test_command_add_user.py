"""``manage.py add_user USERNAME --role ROLE [--verified]``: password from stdin or generated; token on the last line."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from accounts.authentication import hash_token
from accounts.models import ApiToken, User
from clearinghouse.models import AuditEvent
from tests.accounts.conftest import issue_token
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

STRONG = "amber-canyon-window-82"


class _Terminal(io.StringIO):
    """A stdin that claims to be a terminal; reading from it is a test failure."""

    def isatty(self) -> bool:
        return True

    def readline(self, *args):  # pragma: no cover - must not be called
        raise AssertionError("add_user read a password from a terminal")


def add_user(*args: str, stdin: str | io.StringIO = "") -> tuple[list[str], str]:
    """Run the command with ``stdin`` piped; return stdout's lines and stderr."""
    out, err = io.StringIO(), io.StringIO()
    pipe = stdin if isinstance(stdin, io.StringIO) else io.StringIO(stdin)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", pipe)
        call_command("add_user", *args, stdout=out, stderr=err)
    return out.getvalue().splitlines(), err.getvalue()


def test_it_creates_a_verified_researcher_with_the_piped_password_and_prints_a_token_last(db):
    lines, err = add_user("nadia", "--role", "researcher", "--verified", "--email", "nadia@example.org",
                          stdin=STRONG + "\n")
    raw = lines[-1]
    assert raw.startswith("cht_")
    user = User.objects.get(username="nadia")
    assert user.check_password(STRONG)
    assert (user.roles, user.email, user.is_verified_researcher, user.verified_by) == (
        ["researcher"], "nadia@example.org", True, None)
    assert "Created nadia with roles researcher (verified)" in err
    assert "Generated password" not in err and STRONG not in err and STRONG not in "\n".join(lines)

    token = ApiToken.objects.get(user=user)
    assert token.key_hash == hash_token(raw) and token.name == "add_user"
    me = client_for(raw).get("/api/v1/accounts/me/")
    assert me.status_code == 200 and me.json()["username"] == "nadia" and me.json()["verified"] is True
    assert client_for(raw).get("/api/v1/datasets/").status_code == 200
    # The piped password is the real password.
    assert issue_token(APIClient(), "nadia", password=STRONG).status_code == 201


def test_it_audits_the_creation_and_the_token_under_one_command_request_id(db):
    lines, _ = add_user("nadia", "--role", "researcher", "--verified", stdin=STRONG)
    user = User.objects.get(username="nadia")
    token = ApiToken.objects.get(user=user)
    created, issued = AuditEvent.objects.order_by("seq")
    assert (created.action, created.outcome, created.actor_id, created.object_type, created.object_id) == (
        "accounts.create", "success", None, "user", str(user.pk))
    assert created.details == {"username": "nadia", "roles": ["researcher"], "verified": True}
    assert (issued.action, issued.outcome, issued.actor_id, issued.object_type, issued.object_id) == (
        "auth.token.issue", "success", user.pk, "token", str(token.pk))
    assert issued.details["via"] == "add_user" and issued.details["hint"] == lines[-1][:10]
    assert created.channel == issued.channel == "command"
    assert created.request_id == issued.request_id and len(created.request_id) >= 8
    assert created.client_ip is None
    assert lines[-1] not in str(issued.details) and STRONG not in str(created.details)

    add_user("nadia2", "--role", "auditor", stdin=STRONG)
    later = AuditEvent.objects.order_by("-seq").first()
    assert later.request_id != created.request_id


def test_it_generates_a_password_when_stdin_is_empty(db):
    lines, err = add_user("otis", "--role", "auditor", stdin="")
    marker = "Generated password (shown once): "
    generated = next(line for line in err.splitlines() if line.startswith(marker))[len(marker):]
    assert len(generated) >= 20
    user = User.objects.get(username="otis")
    assert user.check_password(generated)
    assert generated not in "\n".join(lines)
    assert lines[-1].startswith("cht_")
    assert issue_token(APIClient(), "otis", password=generated).status_code == 201


def test_it_generates_a_password_when_the_piped_line_is_blank(db):
    _, err = add_user("otis", "--role", "auditor", stdin="\n")
    assert "Generated password (shown once): " in err


def test_it_does_not_read_a_password_from_a_terminal(db):
    _, err = add_user("otis", "--role", "auditor", stdin=_Terminal())
    assert "Generated password (shown once): " in err


def test_it_reads_only_the_first_line_and_keeps_inner_spaces(db):
    add_user("nadia", "--role", "researcher", stdin="  spaced out pass phrase  \r\nsecond line\n")
    assert User.objects.get(username="nadia").check_password("  spaced out pass phrase  ")


def test_it_accepts_several_roles(db):
    lines, err = add_user("multi", "--role", "custodian", "--role", "auditor", "--role", "researcher", stdin=STRONG)
    user = User.objects.get(username="multi")
    assert user.roles == ["custodian", "researcher", "auditor"]
    assert user.verified_at is None  # a researcher stays unverified without --verified
    assert "(not verified)" in err
    me = client_for(lines[-1]).get("/api/v1/accounts/me/").json()
    assert me["roles"] == ["custodian", "researcher", "auditor"]


def test_it_leaves_a_researcher_unverified_without_the_flag(db):
    lines, _ = add_user("nadia", "--role", "researcher", stdin=STRONG)
    assert User.objects.get(username="nadia").verified_at is None
    assert client_for(lines[-1]).get("/api/v1/datasets/").status_code == 403


def test_it_needs_no_verification_for_a_custodian(db):
    lines, _ = add_user("cato", "--role", "custodian", stdin=STRONG)
    assert User.objects.get(username="cato").verified_at is not None
    assert client_for(lines[-1]).get("/api/v1/accounts/").status_code == 200


@pytest.mark.parametrize("existing", ["nadia", "NADIA"])
def test_it_refuses_a_duplicate_username(db, existing):
    add_user("nadia", "--role", "researcher", stdin=STRONG)
    events = AuditEvent.objects.count()
    with pytest.raises(CommandError, match="already exists.*duplicate_username"):
        add_user(existing, "--role", "auditor", stdin=STRONG)
    assert User.objects.filter(username__iexact="nadia").count() == 1
    assert ApiToken.objects.count() == 1
    assert AuditEvent.objects.count() == events


def test_it_refuses_a_weak_piped_password_and_creates_nothing(db):
    with pytest.raises(CommandError, match="weak_password"):
        add_user("nadia", "--role", "researcher", stdin="short\n")
    assert not User.objects.exists() and not AuditEvent.objects.exists()


def test_it_refuses_an_unknown_role(db):
    with pytest.raises(CommandError, match="invalid choice"):
        add_user("nadia", "--role", "admin", stdin=STRONG)
    assert not User.objects.exists()


def test_it_needs_a_role(db):
    with pytest.raises(CommandError, match="--role"):
        add_user("nadia", stdin=STRONG)


def test_it_honours_token_days(db):
    from datetime import timedelta

    from django.utils import timezone

    add_user("nadia", "--role", "auditor", "--token-days", "3", stdin=STRONG)
    expires_at = ApiToken.objects.get(user__username="nadia").expires_at
    assert timezone.now() + timedelta(days=2, hours=23) < expires_at <= timezone.now() + timedelta(days=3)


@pytest.mark.parametrize("days", ["0", "-1", "366"])
def test_it_refuses_out_of_range_token_days_and_creates_nothing(db, days):
    with pytest.raises(CommandError, match="invalid_ttl"):
        add_user("nadia", "--role", "auditor", "--token-days", days, stdin=STRONG)
    assert not User.objects.filter(username="nadia").exists()
    assert not ApiToken.objects.exists() and not AuditEvent.objects.exists()
