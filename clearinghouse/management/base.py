"""Base for the operator commands: one request id per run, refusals printed, not traced."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from clearinghouse import context
from clearinghouse.api.errors import ApplicationError


class AuditedCommand(BaseCommand):
    def execute(self, *args, **options):
        with context.bound(channel="command"):
            try:
                return super().execute(*args, **options)
            except ApplicationError as exc:
                raise CommandError(f"{exc.message} [{exc.code}]" + (f"\n{exc.details}" if exc.details else "")) from None
