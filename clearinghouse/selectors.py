"""Reads of the core domain (no side effects)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

from django.db.models import QuerySet

from clearinghouse.models import AuditEvent, Dataset

#: The audit export's columns (the API's and the portal's CSV), in order.
EXPORT_FIELDS = ["seq", "created_at", "actor_id", "actor_username", "action", "outcome", "object_type", "object_id",
                 "request_id", "client_ip", "channel", "details", "prev_hash", "hash"]


def dataset_list() -> QuerySet[Dataset]:
    return Dataset.objects.select_related("created_by").order_by("slug")


def audit_event_list(
    *,
    username: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    channel: str | None = None,
) -> QuerySet[AuditEvent]:
    """Events in chain order. ``action`` ending in ``.`` or ``*`` matches a prefix (``dataset.*``)."""
    qs = AuditEvent.objects.order_by("seq")
    if username:
        qs = qs.filter(actor_username=username)
    if action:
        qs = qs.filter(action__startswith=action.rstrip("*")) if action.endswith(("*", ".")) else qs.filter(action=action)
    if outcome:
        qs = qs.filter(outcome=outcome)
    if object_type:
        qs = qs.filter(object_type=object_type)
    if object_id:
        qs = qs.filter(object_id=object_id)
    if since:
        qs = qs.filter(created_at__gte=since)
    if until:
        qs = qs.filter(created_at__lt=until)
    if channel:
        qs = qs.filter(channel=channel)
    return qs


class _Echo:
    def write(self, value):
        return value


def audit_events_csv(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The CSV lines of ``events`` (a header, then one line per event; ``details`` as sorted JSON), lazily,
    for a streamed export."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events:
        values = [getattr(event, f) for f in EXPORT_FIELDS]
        values[EXPORT_FIELDS.index("created_at")] = event.created_at.isoformat()
        values[EXPORT_FIELDS.index("details")] = json.dumps(event.details, sort_keys=True)
        yield writer.writerow(["" if v is None else v for v in values])
