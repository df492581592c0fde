"""Writing and checking the hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timezone as dt_timezone
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from clearinghouse import context
from clearinghouse.models import AuditEvent

__all__ = ["GENESIS_HASH", "ChainReport", "audit_record", "audit_chain_verify", "event_hash"]

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 0x0A0D17  # pg_advisory_xact_lock key that serialises appends


def _canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def event_hash(event: AuditEvent) -> str:
    payload = {
        "seq": event.seq,
        "created_at": event.created_at.astimezone(dt_timezone.utc).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "outcome": event.outcome,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "request_id": event.request_id,
        "client_ip": event.client_ip,
        "channel": event.channel,
        "details": event.details,
    }
    return hashlib.sha256(f"{event.prev_hash}\n{_canonical(payload)}".encode("ascii")).hexdigest()


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable(value: Any) -> Any:
    """``value`` with every string made storable: PostgreSQL refuses U+0000 in text and jsonb, and
    lone surrogates cannot be encoded at all. Attacker-chosen strings (a path, a username) reach
    the log, and a refusal must never turn into a 500. Each is replaced by U+FFFD.

    Floats are given the value PostgreSQL's jsonb will give back (it keeps numbers as ``numeric``:
    ``1e+16`` returns as the int ``10000000000000000``, ``-0.0`` as ``0.0``), so that the hash of
    the event as written is the hash of the event as read."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, float):
        if value == 0:
            return 0.0
        if value.is_integer() and "e" in repr(value):
            return int(Decimal(repr(value)))
        return value
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    # SQLite: transactions begin IMMEDIATE (settings), so writers are already serialised.


def audit_record(
    *,
    action: str,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    actor=None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call inside the transaction of the change it records, so both commit or neither."""
    ctx = context.current()
    details = _storable(details or {})
    # Cut to the columns' lengths: an object id can come from the URL of a refused request.
    object_type = _storable(object_type)[: AuditEvent._meta.get_field("object_type").max_length]
    object_id = _storable(str(object_id))[: AuditEvent._meta.get_field("object_id").max_length]
    _canonical(details)  # refuse NaN or non-JSON values before anything is written
    actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    for _attempt in range(5):
        try:
            with transaction.atomic():
                _lock_chain()
                last = AuditEvent.objects.order_by("-seq").only("seq", "hash").first()
                event = AuditEvent(
                    seq=(last.seq + 1) if last else 1,
                    created_at=timezone.now(),
                    actor=actor,
                    actor_username=actor.get_username() if actor else "",
                    action=action,
                    outcome=str(outcome),
                    object_type=object_type,
                    object_id=str(object_id),
                    request_id=_storable(ctx.request_id),
                    client_ip=ctx.client_ip,
                    channel=ctx.channel,
                    details=details,
                    prev_hash=last.hash if last else GENESIS_HASH,
                )
                event.hash = event_hash(event)
                event.save()
                return event
        except IntegrityError:
            continue  # another writer took this seq (only possible without the advisory lock); re-read
    raise RuntimeError("Could not append to the audit chain after 5 attempts.")


@dataclass(frozen=True)
class ChainReport:
    valid: bool
    events_checked: int
    head_seq: int | None
    head_hash: str | None
    first_broken_seq: int | None = None
    first_broken_id: int | None = None
    reason: str | None = None


def audit_chain_verify(*, chunk_size: int = 2000) -> ChainReport:
    """Walk the chain in ``seq`` order; report the first event whose links or contents do not hold.

    A removed event shows as a gap in ``seq``; a changed one as a hash mismatch. Removing
    the newest events cannot be seen from inside the chain: keep ``head_hash`` elsewhere.
    """
    expected_prev, expected_seq, checked, last = GENESIS_HASH, 1, 0, None
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=chunk_size):
        reason = None
        if event.seq != expected_seq:
            reason = f"events {expected_seq}–{event.seq - 1} are missing before this one"
        elif event.prev_hash != expected_prev:
            reason = "prev_hash does not match the hash of the previous event"
        elif event_hash(event) != event.hash:
            reason = "the stored fields do not match the event's hash (changed after writing)"
        if reason:
            return ChainReport(False, checked, last.seq if last else None, last.hash if last else None,
                               event.seq, event.pk, reason)
        checked += 1
        expected_prev, expected_seq, last = event.hash, event.seq + 1, event
    return ChainReport(True, checked, last.seq if last else None, last.hash if last else None)
