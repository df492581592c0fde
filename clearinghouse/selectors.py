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


#: A text cell starting with one of these is read as a formula by spreadsheets (OWASP "CSV injection");
#: a leading ``'`` is in the set too, so that the escaping can be undone without ambiguity.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_safe(value: str) -> str:
    """``value`` with a ``'`` in front if it starts with ``= + - @``, a tab, a CR or ``'``; else unchanged.

    The stored value is recovered by dropping that one leading ``'`` (:func:`csv_unsafe`)."""
    return "'" + value if value.startswith(FORMULA_LEADS) else value


def csv_unsafe(cell: str) -> str:
    """The stored value of a cell :func:`csv_safe` wrote."""
    return cell[1:] if cell.startswith("'") else cell


def _export_values(event: AuditEvent) -> dict:
    """The stored, canonical values of ``event`` under :data:`EXPORT_FIELDS` (``details`` as a JSON value)."""
    values = {f: getattr(event, f) for f in EXPORT_FIELDS}
    values["created_at"] = event.created_at.isoformat()
    return values


def audit_events_csv(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The CSV lines of ``events`` (a header, then one line per event; ``details`` as sorted JSON), lazily,
    for a streamed export. Every text cell goes through :func:`csv_safe`, so a formula planted in the log
    (an object id, a username, a request id) opens as text in a spreadsheet; numbers are written as they are.
    The hash chain is over the stored values: undo the escaping (:func:`csv_unsafe`) before rechecking it,
    or use :func:`audit_events_jsonl`, which carries the exact values."""
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_FIELDS)
    for event in events:
        values = _export_values(event)
        values["details"] = json.dumps(event.details, sort_keys=True)
        yield writer.writerow(["" if v is None else csv_safe(v) if isinstance(v, str) else v for v in values.values()])


def audit_events_jsonl(events: Iterable[AuditEvent]) -> Iterator[str]:
    """JSON Lines: one object per event with the exact stored values (``details`` as an object, a missing
    actor or client address as null), keys in :data:`EXPORT_FIELDS` order, lazily, for a streamed export."""
    for event in events:
        yield json.dumps(_export_values(event), ensure_ascii=False) + "\n"
