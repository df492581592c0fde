"""Recording the API's refusals without letting a flood of them flood the audit log.

Every error response of an API view is audited (issue 14, finding 3: 300 anonymous GETs made
300 audit rows). Here the first refusal of its kind from a source is written to the chain in
full, and identical ones that follow within ``AUDIT_REFUSAL_WINDOW_SECONDS`` are *counted* in a
:class:`~clearinghouse.models.RefusalTally` row outside the chain: one atomic ``UPDATE … SET
repeats = repeats + 1``, no hash, no chain lock. The tally becomes one ``api.refusals_repeated``
event with the exact count

* when its window has closed: the beat task ``clearinghouse.audit_refusals_flush`` every minute,
  or the next identical refusal from the same source (it opens a new window);
* before an auditor reads the log (list, export, chain check; API and portal), whether or not
  the window has closed, so that what the auditor sees is complete up to that moment.

A flush locks the tally row, appends the event and deletes the row in one transaction; a repeat
counted concurrently either commits before the lock (and is in the count) or finds the row gone
and is audited in full as the first of a new window. So every refusal is in the chain exactly
once, as itself or inside one count, and nothing is lost when a process dies (an uncommitted
count was never answered).

"Identical" means the same source (client address, and the authenticated user or a hash of the
credential presented, never the credential itself) and the same action, object and details: method,
path, status, code, message and what the view adds (the username of a failed login, the body's
summary of a refused hypothesis). A throttled source's 429s from one view are one tally whatever
their path, method and message ("available in 37 seconds"); the count's event names those as
``varying``. Server errors (5xx) are never aggregated.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from clearinghouse import context
from clearinghouse.models import AuditEvent, RefusalTally
from clearinghouse.services.audit import audit_record

__all__ = ["REPEATED_ACTION", "audit_refusal", "audit_refusals_flush"]

REPEATED_ACTION = "api.refusals_repeated"


def _outcome(status_code: int) -> str:
    if status_code in (401, 403):
        return AuditEvent.Outcome.DENIED
    return AuditEvent.Outcome.FAILED if status_code >= 500 else AuditEvent.Outcome.REFUSED


def _source(request) -> str:
    """Who sent it, as far as the server can tell: the user, a fingerprint of a rejected
    credential (so that each forged token is its own source), or nobody."""
    user = getattr(request, "_user", None)
    if user is not None and getattr(user, "is_authenticated", False):
        return f"user:{user.pk}"
    credential = request.META.get("HTTP_AUTHORIZATION", "")
    if credential:
        return "credential:" + hashlib.sha256(credential.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return "anonymous"


def _window() -> int:
    return int(getattr(settings, "AUDIT_REFUSAL_WINDOW_SECONDS", 0))


def audit_refusal(*, request, view, status_code: int, code: str, message: str) -> AuditEvent | None:
    """Record an API error response (called by the exception handler, after rollback).

    Returns the event written in full, or ``None`` when the refusal was counted as a repeat."""
    user = getattr(request, "_user", None)
    details: dict[str, Any] = {
        "status": status_code,
        "code": code,
        "message": message[:500],
        "method": request.method,
        "path": request.path[:300],
    }
    extra = getattr(view, "audit_context", None)
    if callable(extra):
        try:
            details.update(extra())
        except Exception:  # the request may be unparseable; the refusal is still recorded
            pass
    object_type, object_id = getattr(view, "audit_object", ("", ""))
    if not object_id:
        kwargs = getattr(view, "kwargs", {}) or {}
        object_id = next((str(v) for v in kwargs.values()), "")
    action = getattr(view, "audit_action", None) or f"api.{type(view).__name__}"
    outcome = _outcome(status_code)

    def record(**more) -> AuditEvent:
        return audit_record(action=action, outcome=outcome, actor=user, object_type=object_type,
                            object_id=object_id, details={**details, **more})

    window = _window()
    if window <= 0 or status_code >= 500:
        return record()
    source, ip = _source(request), context.current().client_ip
    # A throttled source's 429s differ in path and message ("available in 37 seconds"): one tally.
    varying = ("message", "path", "method") if status_code == 429 else ()
    shared = {k: v for k, v in details.items() if k not in varying}
    same = [source, ip or "", action, object_type, "" if varying else object_id,
            json.dumps(shared, sort_keys=True, default=str)]
    key = hashlib.sha256("\x1f".join(map(str, same)).encode("utf-8", "surrogatepass")).hexdigest()
    now = timezone.now()
    with transaction.atomic():
        counted = RefusalTally.objects.filter(key=key, opened_at__gt=now - timedelta(seconds=window)).update(
            repeats=F("repeats") + 1, last_at=now)
    if counted:
        return None
    # This key's closed window, if any, before a new one (a window opened meanwhile is kept).
    _flush(RefusalTally.objects.filter(key=key), closed_before=now - timedelta(seconds=window))
    event = record(repeats={"window_seconds": window, "counted_as": REPEATED_ACTION})
    summary = {"action": action, "outcome": outcome, "details": event.details, "varying": list(varying),
               "object_type": object_type, "object_id": event.object_id, "source": source.split(":")[0],
               "client_ip": ip, "channel": context.current().channel,
               "actor_id": user.pk if user is not None and getattr(user, "is_authenticated", False) else None}
    try:
        with transaction.atomic():
            RefusalTally.objects.create(key=key, first_seq=event.seq, opened_at=now, last_at=now, summary=summary)
    except IntegrityError:
        pass  # an identical refusal opened the window at the same moment; this one is in the chain in full
    return event


def _flush(tallies, *, closed_before=None) -> int:
    """Turn each of ``tallies`` with repeats into one event and delete it; a tally without repeats
    is deleted once its window has closed. Returns the number of refusals written as counts."""
    written = 0
    for pk in list(tallies.values_list("pk", flat=True)):
        with transaction.atomic():
            tally = RefusalTally.objects.select_for_update().filter(pk=pk).first()
            if tally is None:
                continue  # flushed by another process meanwhile
            if tally.repeats:
                _record_repeats(tally)
                written += tally.repeats
            elif closed_before is not None and tally.opened_at > closed_before:
                continue  # an open window with nothing to report yet: keep counting into it
            tally.delete()
    return written


def _record_repeats(tally: RefusalTally) -> None:
    summary = tally.summary
    actor = get_user_model().objects.filter(pk=summary.get("actor_id")).first() if summary.get("actor_id") else None
    # The first one's details (those of the repeats; for 429s, "varying" names what may differ).
    details = {key: value for key, value in summary["details"].items() if key != "repeats"}
    details.update(source=summary["source"], repeats=tally.repeats, first_seq=tally.first_seq, window_seconds=_window(),
                   first_at=tally.opened_at.isoformat(timespec="microseconds"),
                   last_at=tally.last_at.isoformat(timespec="microseconds"),
                   of_action=summary["action"], flushed_by=context.current().channel)
    if summary["varying"]:
        details["varying"] = summary["varying"]
    # The event carries the source's address and channel, like the refusals it counts.
    with context.bound(channel=summary.get("channel") or "api", client_ip=summary.get("client_ip")):
        audit_record(action=REPEATED_ACTION, outcome=summary.get("outcome") or AuditEvent.Outcome.REFUSED,
                     actor=actor, object_type=summary.get("object_type") or "", object_id=summary.get("object_id") or "",
                     details=details)


def audit_refusals_flush(*, now=None, open_windows: bool = False) -> int:
    """Write the counts of closed windows (``open_windows``: of every window with repeats, for an
    auditor about to read the log). Returns the number of refusals written as counts."""
    cutoff = (now or timezone.now()) - timedelta(seconds=_window())
    if open_windows:  # only the tallies with something to write or to remove: not every open window
        return _flush(RefusalTally.objects.filter(Q(repeats__gt=0) | Q(opened_at__lte=cutoff)), closed_before=cutoff)
    return _flush(RefusalTally.objects.filter(opened_at__lte=cutoff))
