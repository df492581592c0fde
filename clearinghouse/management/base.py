"""Base for the operator commands: one request id per run, refusals printed, not traced."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User

from clearinghouse import context
from clearinghouse.errors import ApplicationError


class AuditedCommand(BaseCommand):
    def execute(self, *args, **options):
        with context.bound(channel="command"):
            try:
                return super().execute(*args, **options)
            except ApplicationError as exc:
                raise CommandError(f"{exc.message} [{exc.code}]" + (f"\n{exc.details}" if exc.details else "")) from None


def custodian_for(username: str | None) -> User:
    """The custodian a command acts as: ``--by USERNAME``, or the only active custodian."""
    custodians = User.objects.filter(is_custodian=True, is_active=True)
    if username:
        user = custodians.filter(username=username).first()
        if user is None:
            raise CommandError(f"{username!r} is not an active custodian.")
        return user
    if custodians.count() != 1:
        raise CommandError("Name the custodian with --by USERNAME (there is not exactly one).")
    return custodians.get()
