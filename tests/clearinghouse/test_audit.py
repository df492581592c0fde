"""The hash-chained, append-only audit log: the chain and its check, tampering caught by
``/api/v1/audit/verify/``, the append-only guards (ORM and database triggers), concurrent
writers, the list and its filters, the CSV export, and strings the database cannot store.

Tampering is done the way an attacker with database superuser rights would do it: the
append-only triggers are switched off (PostgreSQL: ``ALTER TABLE ... DISABLE TRIGGER``;
SQLite: the triggers are dropped) for one raw SQL statement, then switched on again. The
test's transaction is rolled back afterwards, so the triggers come back either way.

PostgreSQL-only tests carry the ``postgres`` marker and are skipped on SQLite.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from types import SimpleNamespace
from unittest import mock

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import ProtectedError

from clearinghouse import context
from clearinghouse.api.audit import EXPORT_FIELDS
from clearinghouse.migrations._append_only import append_only_sql
from clearinghouse.models import AppendOnlyError, AuditEvent
from clearinghouse.services.audit import (
    GENESIS_HASH,
    _storable,
    audit_chain_verify,
    audit_record,
    event_hash,
)
from tests.clearinghouse.conftest import assert_error
from tests.conftest import last_event

TABLE = AuditEvent._meta.db_table
PG_ROW_TRIGGER = f"{TABLE}_no_update_delete"
HASHED_FIELDS = ["seq", "created_at", "actor_id", "actor_username", "action", "outcome", "object_type", "object_id",
                 "request_id", "client_ip", "channel", "details", "prev_hash"]
LIST_FIELDS = {"id", *EXPORT_FIELDS}
T0 = datetime(2020, 3, 1, 12, 0, tzinfo=dt_timezone.utc)  # before any event the fixtures write
LIST, EXPORT, VERIFY = "/api/v1/audit/events/", "/api/v1/audit/events/export.csv", "/api/v1/audit/verify/"


def postgres_only(test):
    """``@pytest.mark.postgres``, skipped unless the suite runs on PostgreSQL (``DATABASE_URL``)."""
    skip = pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL")
    return pytest.mark.postgres(skip(test))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def chain() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("seq"))


def assert_chain_holds(events: list[AuditEvent]) -> None:
    """Gap-free ``seq`` from 1, each ``prev_hash`` the hash before it, each hash recomputable."""
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    previous = GENESIS_HASH
    for event in events:
        assert event.prev_hash == previous, event.seq
        assert event.hash == event_hash(event), event.seq
        previous = event.hash


def seed(n: int, **common) -> list[AuditEvent]:
    """``n`` events with varied fields (some from a bound request context, so client_ip is set)."""
    written = []
    for i in range(n):
        outcome = [AuditEvent.Outcome.SUCCESS, AuditEvent.Outcome.DENIED, AuditEvent.Outcome.REFUSED][i % 3]
        fields = {"action": f"test.event{i}", "outcome": outcome, "object_type": "thing", "object_id": i,
                  "details": {"i": i, "note": f"event {i}", "nested": {"list": [i, "x"]}}, **common}
        if i % 2:
            with context.bound(channel="api", request_id=f"req-{i:04d}-abcdef", client_ip="10.0.0.7"):
                written.append(audit_record(**fields))
        else:
            written.append(audit_record(**fields))
    return written


def json_param() -> str:
    return "CAST(%s AS jsonb)" if connection.vendor == "postgresql" else "%s"


@contextmanager
def triggers_lifted():
    """A cursor with the append-only triggers off, as a database superuser could arrange."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no ALTER TABLE while foreign-key checks are pending
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER {PG_ROW_TRIGGER}")
        else:
            for sql in append_only_sql(TABLE, "sqlite")[1]:
                cursor.execute(sql)
        try:
            yield cursor
        finally:
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER {PG_ROW_TRIGGER}")
            else:
                for sql in append_only_sql(TABLE, "sqlite")[0]:
                    cursor.execute(sql)


def tamper(sql: str, params: list) -> None:
    with triggers_lifted() as cursor:
        cursor.execute(sql, params)
        assert cursor.rowcount == 1


def verify(client) -> dict:
    response = client.get(VERIFY)
    assert response.status_code == 200, response.content
    return response.json()


def content_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content_of(response).decode("utf-8"))))


def api_event(event: AuditEvent) -> dict:
    """What the list answers for ``event``."""
    created = event.created_at.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z")
    return {"id": event.pk, "seq": event.seq, "created_at": created, "actor_id": event.actor_id,
            "actor_username": event.actor_username, "action": event.action, "outcome": event.outcome,
            "object_type": event.object_type, "object_id": event.object_id, "request_id": event.request_id,
            "client_ip": event.client_ip, "channel": event.channel, "details": event.details,
            "prev_hash": event.prev_hash, "hash": event.hash}


def assert_refusal_audited(before: int, *, action: str, actor, status: int, code: str, path: str,
                           outcome: str = "refused") -> AuditEvent:
    """Exactly one new event: the refusal, naming the caller; the chain still holds."""
    assert AuditEvent.objects.count() == before + 1
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.channel) == (action, outcome, actor.pk, "api")
    assert (event.details["status"], event.details["code"], event.details["method"], event.details["path"]) == (
        status, code, "GET", path)
    assert audit_chain_verify().valid
    return event


# --------------------------------------------------------------------------------------------
# 1. The chain
# --------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_chains_each_event_to_the_one_before_with_gap_free_seq_and_recomputable_hashes(researcher):
    user = researcher[0]
    written = seed(6, actor=user)
    stored = chain()
    assert_chain_holds(stored)
    assert stored[0].prev_hash == GENESIS_HASH == "0" * 64
    assert len({e.hash for e in stored}) == len(stored)
    assert all(len(e.hash) == 64 and set(e.hash) <= set("0123456789abcdef") for e in stored)
    # What audit_record returned is what was stored, field for field.
    for mine in written:
        row = AuditEvent.objects.get(pk=mine.pk)
        fields = [*HASHED_FIELDS, "hash"]
        assert [getattr(row, f) for f in fields] == [getattr(mine, f) for f in fields]
    assert (written[1].actor_id, written[1].actor_username, written[1].client_ip, written[1].channel,
            written[1].request_id) == (user.pk, "rhea", "10.0.0.7", "api", "req-0001-abcdef")
    assert (written[0].client_ip, written[0].channel, written[0].object_id) == (None, "command", "0")
    report = audit_chain_verify(chunk_size=2)  # several chunks
    assert (report.valid, report.events_checked, report.head_seq, report.head_hash) == (
        True, len(stored), stored[-1].seq, stored[-1].hash)
    assert report.first_broken_seq is report.first_broken_id is report.reason is None


@pytest.mark.django_db
def test_it_hashes_the_previous_hash_and_the_canonical_json_of_every_field(db):
    with context.bound(channel="task", request_id="known-answer-1", client_ip="192.0.2.1"):
        event = audit_record(action="test.known", object_type="thing", object_id="x1",
                             details={"b": [1, 2.5, None, True], "a": "é"})
    assert event.seq == 1 and event.prev_hash == GENESIS_HASH
    created = event.created_at.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    payload = {"seq": 1, "created_at": created, "actor_id": None, "actor_username": "", "action": "test.known",
               "outcome": "success", "object_type": "thing", "object_id": "x1", "request_id": "known-answer-1",
               "client_ip": "192.0.2.1", "channel": "task", "details": {"a": "é", "b": [1, 2.5, None, True]}}
    text = GENESIS_HASH + "\n" + json.dumps(payload, sort_keys=True, separators=(",", ":"))
    assert event.hash == hashlib.sha256(text.encode("ascii")).hexdigest()
    assert AuditEvent.objects.get().hash == event.hash


@pytest.mark.django_db
@pytest.mark.parametrize("field", HASHED_FIELDS)
def test_it_changes_the_hash_when_any_hashed_field_changes(db, field):
    audit_record(action="test.first")
    with context.bound(channel="api", request_id="req-hash-field", client_ip="10.0.0.1"):
        event = audit_record(action="test.field", object_type="t", object_id="1", details={"k": "v"})
    event = AuditEvent.objects.get(pk=event.pk)
    original = event.hash
    changed = {"seq": 99, "created_at": event.created_at + timedelta(microseconds=1), "actor_id": 12345,
               "actor_username": "mallory", "action": "test.other", "outcome": "denied", "object_type": "u",
               "object_id": "2", "request_id": "req-other-field", "client_ip": "10.0.0.2", "channel": "admin",
               "details": {"k": "w"}, "prev_hash": "f" * 64}[field]
    setattr(event, field, changed)
    assert event_hash(event) != original


@pytest.mark.django_db
def test_it_reports_a_valid_chain_and_its_head_over_the_api_and_audits_the_check(clients, auditor):
    seed(4)
    before = chain()
    body = verify(clients["auditor"])
    assert body == {"valid": True, "events_checked": len(before), "head_seq": before[-1].seq,
                    "head_hash": before[-1].hash, "first_broken": None}
    event = last_event()
    assert (event.seq, event.action, event.outcome, event.actor_id, event.channel) == (
        len(before) + 1, "audit.verify", "success", auditor[0].pk, "api")
    assert event.details == {"valid": True, "events_checked": len(before), "first_broken_seq": None}
    assert event.prev_hash == before[-1].hash
    # The check itself is now part of the chain.
    again = verify(clients["auditor"])
    assert (again["valid"], again["events_checked"], again["head_seq"], again["head_hash"]) == (
        True, len(before) + 1, event.seq, event.hash)


@pytest.mark.django_db
def test_it_reports_an_empty_log_as_valid(db):
    assert not AuditEvent.objects.exists()
    report = audit_chain_verify()
    assert (report.valid, report.events_checked, report.head_seq, report.head_hash, report.first_broken_seq) == (
        True, 0, None, None, None)


# --------------------------------------------------------------------------------------------
# 2. Tampering is caught
# --------------------------------------------------------------------------------------------

TAMPERINGS = {
    "action": ("UPDATE {t} SET action = %s WHERE seq = %s", lambda e: "test.innocuous"),
    "outcome": ("UPDATE {t} SET outcome = %s WHERE seq = %s",
                lambda e: "success" if e.outcome != "success" else "denied"),
    "actor_username": ("UPDATE {t} SET actor_username = %s WHERE seq = %s", lambda e: "someone-else"),
    "object_id": ("UPDATE {t} SET object_id = %s WHERE seq = %s", lambda e: "other-object"),
    "details": ("UPDATE {t} SET details = {j} WHERE seq = %s", lambda e: json.dumps({**e.details, "note": "edited"})),
    "created_at": ("UPDATE {t} SET created_at = %s WHERE seq = %s", lambda e: e.created_at - timedelta(days=1)),
    "seq": ("UPDATE {t} SET seq = %s WHERE seq = %s", lambda e: e.seq + 1000),
}


@pytest.mark.django_db
@pytest.mark.parametrize("column", sorted(TAMPERINGS))
def test_it_names_the_first_event_changed_with_raw_sql_with_the_trigger_off(clients, auditor, column):
    seed(5)
    events = chain()
    target, previous = events[4], events[3]
    sql, new_value = TAMPERINGS[column]
    tamper(sql.format(t=TABLE, j=json_param()), [new_value(target), target.seq])
    assert AuditEvent.objects.count() == len(events)  # the row is still there, only changed

    body = verify(clients["auditor"])
    assert body["valid"] is False
    assert body["events_checked"] == previous.seq
    assert (body["head_seq"], body["head_hash"]) == (previous.seq, previous.hash)  # the last event that holds
    if column == "seq":  # moved: a gap where it was
        assert body["first_broken"]["seq"] == target.seq + 1
        assert body["first_broken"]["id"] == events[5].pk
        assert "missing" in body["first_broken"]["reason"]
    else:
        assert body["first_broken"] == {
            "seq": target.seq, "id": target.pk,
            "reason": "the stored fields do not match the event's hash (changed after writing)"}
    check = last_event()
    assert (check.action, check.actor_id) == ("audit.verify", auditor[0].pk)
    assert check.details == {"valid": False, "events_checked": previous.seq,
                             "first_broken_seq": body["first_broken"]["seq"]}


@pytest.mark.django_db
def test_it_catches_a_middle_event_deleted_with_raw_sql(clients):
    seed(5)
    events = chain()
    gone, after = events[3], events[4]
    tamper(f"DELETE FROM {TABLE} WHERE id = %s", [gone.pk])
    body = verify(clients["auditor"])
    assert (body["valid"], body["events_checked"], body["head_seq"], body["head_hash"]) == (
        False, gone.seq - 1, gone.seq - 1, events[2].hash)
    assert body["first_broken"] == {"seq": after.seq, "id": after.pk,
                                    "reason": f"events {gone.seq}–{gone.seq} are missing before this one"}


@pytest.mark.django_db
def test_it_catches_the_first_event_deleted_with_raw_sql(clients):
    first = chain()[0]
    tamper(f"DELETE FROM {TABLE} WHERE id = %s", [first.pk])
    body = verify(clients["auditor"])
    assert (body["valid"], body["events_checked"], body["head_seq"], body["head_hash"]) == (False, 0, None, None)
    assert body["first_broken"]["seq"] == 2 and "events 1–1 are missing" in body["first_broken"]["reason"]


@pytest.mark.django_db
def test_it_catches_an_event_rehashed_consistently_at_the_link_to_the_next_one(clients):
    seed(5)
    events = chain()
    target, following = events[4], events[5]
    forged = AuditEvent.objects.get(pk=target.pk)
    forged.action = "test.innocuous"
    forged.hash = event_hash(forged)  # the row now checks out on its own
    tamper(f"UPDATE {TABLE} SET action = %s, hash = %s WHERE id = %s", [forged.action, forged.hash, target.pk])
    row = AuditEvent.objects.get(pk=target.pk)
    assert event_hash(row) == row.hash

    body = verify(clients["auditor"])
    assert body["valid"] is False
    assert body["events_checked"] == target.seq  # the forged row itself passes...
    assert (body["head_seq"], body["head_hash"]) == (target.seq, forged.hash)
    assert body["first_broken"] == {"seq": following.seq, "id": following.pk,  # ...its successor does not
                                    "reason": "prev_hash does not match the hash of the previous event"}


@pytest.mark.django_db
def test_it_catches_a_hash_overwritten_without_its_fields(clients):
    seed(3)
    target = chain()[2]
    tamper(f"UPDATE {TABLE} SET hash = %s WHERE id = %s", ["e" * 64, target.pk])
    body = verify(clients["auditor"])
    assert body["valid"] is False and body["first_broken"]["seq"] == target.seq
    assert body["first_broken"]["id"] == target.pk


@pytest.mark.django_db
def test_it_changes_the_head_hash_when_the_whole_tail_is_rewritten(clients):
    """Rewriting an event and re-hashing every later one leaves a chain that holds; only a head
    hash kept elsewhere shows it (the documented limit of an in-database chain)."""
    seed(4)
    kept = verify(clients["auditor"])
    events = chain()
    with triggers_lifted() as cursor:
        previous = events[1].hash
        for event in events[2:]:
            event.prev_hash = previous
            if event.seq == 3:
                event.action = "test.rewritten"
            event.hash = event_hash(event)
            cursor.execute(f"UPDATE {TABLE} SET action = %s, prev_hash = %s, hash = %s WHERE id = %s",
                           [event.action, event.prev_hash, event.hash, event.pk])
            previous = event.hash
    body = verify(clients["auditor"])
    assert body["valid"] is True and body["events_checked"] == kept["events_checked"] + 1
    assert AuditEvent.objects.get(seq=kept["head_seq"]).hash != kept["head_hash"]


# --------------------------------------------------------------------------------------------
# 3. Append-only
# --------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_refuses_to_change_or_remove_an_event_through_the_orm(researcher):
    seed(3)
    event = AuditEvent.objects.get(seq=2)
    snapshot = [(e.pk, e.action, e.details, e.hash) for e in chain()]

    event.action = "test.changed"
    with pytest.raises(AppendOnlyError, match="cannot be updated"):
        event.save()
    with pytest.raises(AppendOnlyError, match="cannot be updated"):
        event.save(update_fields=["action"])
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        event.delete()
    with pytest.raises(AppendOnlyError, match="cannot be updated"):
        AuditEvent.objects.filter(pk=event.pk).update(action="test.changed")
    with pytest.raises(AppendOnlyError, match="cannot be updated"):
        AuditEvent.objects.bulk_update([event], ["action"])
    with pytest.raises(AppendOnlyError, match="cannot be updated"):
        AuditEvent.objects.update_or_create(pk=event.pk, defaults={"action": "test.changed"})
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError, match="cannot be deleted"):
        AuditEvent.objects.all().delete()
    # A new instance carrying an existing primary key is an INSERT, and the database refuses it.
    copy = AuditEvent.objects.get(pk=event.pk)
    copy._state.adding = True
    copy.action = "test.changed"
    with pytest.raises(IntegrityError), transaction.atomic():
        copy.save()

    assert [(e.pk, e.action, e.details, e.hash) for e in chain()] == snapshot
    assert audit_chain_verify().valid


@pytest.mark.django_db
def test_it_refuses_to_delete_a_user_named_by_the_log(researcher):
    user = researcher[0]
    audit_record(action="test.by_user", actor=user)
    with pytest.raises(ProtectedError), transaction.atomic():
        user.delete()
    assert AuditEvent.objects.filter(actor=user).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("sql", ["UPDATE {t} SET action = 'test.changed' WHERE seq = 2",
                                 "UPDATE {t} SET details = details",
                                 "DELETE FROM {t} WHERE seq = 2",
                                 "DELETE FROM {t}"])
def test_it_refuses_raw_sql_changes_with_a_database_trigger(db, sql):
    seed(3)
    snapshot = [(e.pk, e.action, e.hash) for e in chain()]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql.format(t=TABLE))
    assert [(e.pk, e.action, e.hash) for e in chain()] == snapshot


@postgres_only
@pytest.mark.django_db
def test_it_has_the_postgresql_triggers_enabled_and_refuses_update_delete_and_truncate(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal "
                       "ORDER BY tgname", [TABLE])
        assert cursor.fetchall() == [(f"{TABLE}_no_truncate", "O"), (PG_ROW_TRIGGER, "O")]
    seed(2)
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE waits for no pending foreign-key checks
    for sql in [f"UPDATE {TABLE} SET action = 'test.changed'", f"DELETE FROM {TABLE} WHERE seq = 1",
                f"TRUNCATE {TABLE}"]:
        with pytest.raises(DatabaseError, match=f"table {TABLE} is append-only") as caught, transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql)
        assert caught.value.__cause__.sqlstate == "42501"  # insufficient_privilege
    assert AuditEvent.objects.count() == 2 and audit_chain_verify().valid


@pytest.mark.django_db
def test_it_has_the_sqlite_triggers(db):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite only (the PostgreSQL triggers have their own test)")
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s ORDER BY name", [TABLE])
        assert [r[0] for r in cursor.fetchall()] == [f"{TABLE}_no_delete", f"{TABLE}_no_update"]


# --------------------------------------------------------------------------------------------
# 4. Concurrent writers (PostgreSQL)
# --------------------------------------------------------------------------------------------

def run_threads(n: int, work) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def target(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(index)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return errors


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_keeps_seq_gap_free_and_the_chain_whole_under_concurrent_writers():
    threads, each = 8, 10

    def work(index: int) -> None:
        for i in range(each):
            audit_record(action="test.concurrent", object_type="thread", object_id=f"{index}-{i}",
                         details={"thread": index, "i": i})

    assert run_threads(threads, work) == []
    events = chain()
    assert len(events) == threads * each
    assert_chain_holds(events)
    assert sorted(e.object_id for e in events) == sorted(f"{t}-{i}" for t in range(threads) for i in range(each))
    for t in range(threads):  # each writer's events are in the order it wrote them
        mine = [e.details["i"] for e in events if e.details["thread"] == t]
        assert mine == list(range(each))
    report = audit_chain_verify()
    assert (report.valid, report.events_checked, report.head_seq) == (True, threads * each, threads * each)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_events_of_one_transaction_together_under_concurrent_writers():
    """The chain lock is held until the writer's own transaction commits."""
    threads, transactions = 4, 4

    def work(index: int) -> None:
        for i in range(transactions):
            with transaction.atomic():
                audit_record(action="test.pair", details={"thread": index, "i": i, "half": 0})
                time.sleep(0.005)
                audit_record(action="test.pair", details={"thread": index, "i": i, "half": 1})

    assert run_threads(threads, work) == []
    events = chain()
    assert len(events) == threads * transactions * 2
    assert_chain_holds(events)
    for first, second in zip(events[::2], events[1::2]):
        assert (first.details["thread"], first.details["i"]) == (second.details["thread"], second.details["i"])
        assert (first.details["half"], second.details["half"]) == (0, 1)


# --------------------------------------------------------------------------------------------
# 5. The list
# --------------------------------------------------------------------------------------------

@pytest.fixture
def log(custodian, researcher, auditor):
    """Five events an hour apart from T0 (2020), by known actors, on known objects."""
    cora, rhea = custodian[0], researcher[0]
    spec = [
        dict(action="dataset.upload", actor=cora, object_type="dataset", object_id="gbsg2", details={"rows": 6}),
        dict(action="dataset.read", actor=rhea, object_type="dataset", object_id="gbsg2"),
        dict(action="release.download", actor=rhea, object_type="release", object_id=7,
             outcome=AuditEvent.Outcome.DENIED),
        dict(action="dataset.upload", actor=cora, object_type="dataset", object_id="other",
             outcome=AuditEvent.Outcome.REFUSED, details={"code": "rows_failed_validation"}),
        dict(action="datasetx", object_type="dataset", object_id="gbsg2"),  # not under "dataset.*"
    ]
    written = []
    for hour, fields in enumerate(spec):
        with mock.patch("clearinghouse.services.audit.timezone.now", return_value=T0 + timedelta(hours=hour)):
            written.append(audit_record(**fields))
    return [AuditEvent.objects.get(pk=e.pk) for e in written]


def listed(client, **params) -> dict:
    response = client.get(LIST, params)
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert all(set(item) == LIST_FIELDS for item in body["results"])
    return body


def seqs(body: dict) -> list[int]:
    return [item["seq"] for item in body["results"]]


@pytest.mark.django_db
def test_it_lists_events_oldest_first_with_every_stored_field(clients, log):
    everything = chain()
    body = listed(clients["auditor"], page_size=200)
    assert body["count"] == len(everything) and body["next"] is None and body["previous"] is None
    assert body["results"] == [api_event(e) for e in everything]
    assert body["results"][-5]["created_at"] == "2020-03-01T12:00:00Z"


WINDOW = {"since": "2020-03-01T00:00:00Z", "until": "2020-03-02T00:00:00Z"}


@pytest.mark.django_db
@pytest.mark.parametrize("params, expected", [
    ({**WINDOW, "user": "cora"}, [0, 3]),
    ({**WINDOW, "user": "rhea"}, [1, 2]),
    ({**WINDOW, "user": "nobody"}, []),
    ({**WINDOW, "action": "dataset.upload"}, [0, 3]),
    ({**WINDOW, "action": "dataset.*"}, [0, 1, 3]),
    ({**WINDOW, "action": "dataset."}, [0, 1, 3]),
    ({**WINDOW, "action": "dataset*"}, [0, 1, 3, 4]),
    ({**WINDOW, "action": "dataset"}, []),
    ({**WINDOW, "outcome": "denied"}, [2]),
    ({**WINDOW, "object_type": "dataset"}, [0, 1, 3, 4]),
    ({**WINDOW, "object_type": "dataset", "object_id": "gbsg2"}, [0, 1, 4]),
    ({**WINDOW, "object_type": "release", "object_id": "7"}, [2]),
    ({**WINDOW, "object_id": "other"}, [3]),
    ({**WINDOW, "user": "rhea", "action": "dataset.*", "object_id": "gbsg2"}, [1]),
    (WINDOW, [0, 1, 2, 3, 4]),
    ({"since": "2020-03-01T13:00:00Z", "until": "2020-03-01T15:00:00Z"}, [1, 2]),  # since inclusive, until exclusive
    ({"since": "2020-03-01T14:00:00+02:00", "until": "2020-03-01T14:00:00"}, [0, 1]),  # offsets; naive is UTC
    ({"until": "2020-03-01T12:00:00.000001Z"}, [0]),
])
def test_it_filters_by_user_action_outcome_object_and_time_range(clients, log, params, expected):
    body = listed(clients["auditor"], **params)
    assert seqs(body) == [log[i].seq for i in expected]
    assert body["count"] == len(expected)
    assert body["results"] == [api_event(log[i]) for i in expected]


@pytest.mark.django_db
def test_it_filters_by_user_over_the_whole_log(clients, log, custodian):
    expected = [e.seq for e in chain() if e.actor_username == "cora"]
    body = listed(clients["auditor"], user="cora", page_size=200)
    assert seqs(body) == expected and len(expected) >= 3  # the fixture's token issue, and two of ours
    assert all(item["actor_id"] == custodian[0].pk for item in body["results"])
    expected = [e.seq for e in chain() if e.created_at >= T0 + timedelta(hours=2)]
    body = listed(clients["auditor"], since="2020-03-01T14:00:00Z", page_size=200)
    assert seqs(body) == expected


@pytest.mark.django_db
def test_it_audits_a_read_of_the_list_with_its_query(clients, auditor, log):
    before = AuditEvent.objects.count()
    response = clients["auditor"].get(LIST, {"action": "dataset.*", "page_size": "2"})
    assert response.status_code == 200
    assert response.json()["count"] == 3  # its own read is written after the answer, and is not a dataset.*
    assert AuditEvent.objects.count() == before + 1
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.actor_username, event.channel, event.client_ip) == (
        "audit.events.list", "success", auditor[0].pk, "otto", "api", "127.0.0.1")
    assert event.details == {"query": {"action": "dataset.*", "page_size": "2"}}
    assert event.request_id == response["X-Request-ID"]
    assert audit_chain_verify().valid


@pytest.mark.django_db
def test_it_paginates_the_list(clients, log):
    client = clients["auditor"]
    first = listed(client, **WINDOW, page_size=2)
    assert (first["count"], seqs(first), first["previous"]) == (5, [log[0].seq, log[1].seq], None)
    assert first["next"].startswith("http://testserver/api/v1/audit/events/?") and "page=2" in first["next"]
    second = listed(client, **WINDOW, page_size=2, page=2)
    assert seqs(second) == [log[2].seq, log[3].seq] and second["previous"] and second["next"]
    third = listed(client, **WINDOW, page_size=2, page=3)
    assert (seqs(third), third["next"]) == ([log[4].seq], None)
    assert "page_size=2" in third["previous"]


@pytest.mark.django_db
def test_it_pages_fifty_by_default_and_two_hundred_at_most(clients):
    for i in range(205):
        audit_record(action="test.bulk", details={"i": i})
    total = AuditEvent.objects.count()
    body = listed(clients["auditor"])
    assert (body["count"], len(body["results"]), seqs(body)) == (total, 50, list(range(1, 51)))
    body = listed(clients["auditor"], page_size=1000)
    assert (body["count"], len(body["results"]), seqs(body)) == (total + 1, 200, list(range(1, 201)))
    assert "page=2" in body["next"]


@pytest.mark.django_db
@pytest.mark.parametrize("params, field", [
    ({"since": "yesterday"}, "since"),
    ({"until": "2020-13-01T00:00:00Z"}, "until"),
    ({"since": "2020-03-02T00:00:00Z", "until": "2020-03-01T00:00:00Z"}, "until"),
    ({"since": "2020-03-01T00:00:00Z", "until": "2020-03-01T00:00:00Z"}, "until"),
    ({"outcome": "maybe"}, "outcome"),
    ({"page": "0"}, "page"),
    ({"page": "last"}, "page"),
    ({"page_size": "0"}, "page_size"),
    ({"user": "u" * 151}, "user"),
    ({"action": "a" * 65}, "action"),
    ({"user": "a\x00b"}, "user"),
    ({"object": "dataset"}, "object"),  # unknown parameters are refused, not ignored
])
def test_it_refuses_a_bad_filter_with_the_error_body_and_audits_the_refusal(clients, auditor, log, params, field):
    before = AuditEvent.objects.count()
    response = clients["auditor"].get(LIST, params)
    error = assert_error(response, 400, "invalid")
    assert set(error["details"]) == {field}
    assert error["message"].startswith(f"{field}: ")
    event = assert_refusal_audited(before, action="audit.events.list", actor=auditor[0], status=400, code="invalid",
                                   path=LIST)
    assert event.details["message"] == error["message"].replace("\x00", "\ufffd")
    assert "results" not in response.json()


@pytest.mark.django_db
def test_it_answers_not_found_for_a_page_past_the_end_and_audits_it(clients, auditor, log):
    before = AuditEvent.objects.count()
    response = clients["auditor"].get(LIST, {**WINDOW, "page": "9"})
    assert_error(response, 404, "not_found")
    assert_refusal_audited(before, action="audit.events.list", actor=auditor[0], status=404, code="not_found",
                           path=LIST)


@pytest.mark.django_db
@pytest.mark.parametrize("path, action", [(LIST, "audit.events.list"), (EXPORT, "audit.events.export"),
                                          (VERIFY, "audit.verify")])
@pytest.mark.parametrize("role, status, code", [("anonymous", 401, "not_authenticated"),
                                                ("researcher", 403, "permission_denied"),
                                                ("custodian", 403, "permission_denied")])
def test_it_lets_only_auditors_read_the_log(clients, researcher, custodian, log, path, action, role, status, code):
    before = AuditEvent.objects.count()
    response = clients[role].get(path)
    assert_error(response, status, code)
    assert b"dataset.upload" not in content_of(response)
    assert AuditEvent.objects.count() == before + 1
    event = last_event()
    actor = {"anonymous": None, "researcher": researcher[0], "custodian": custodian[0]}[role]
    assert (event.action, event.outcome, event.actor_id, event.details["status"]) == (
        action, "denied", actor.pk if actor else None, status)
    assert clients["auditor"].get(path).status_code == 200


# --------------------------------------------------------------------------------------------
# 6. The CSV export
# --------------------------------------------------------------------------------------------

def export_row(event: AuditEvent) -> dict:
    return {"seq": str(event.seq), "created_at": event.created_at.isoformat(),
            "actor_id": "" if event.actor_id is None else str(event.actor_id), "actor_username": event.actor_username,
            "action": event.action, "outcome": event.outcome, "object_type": event.object_type,
            "object_id": event.object_id, "request_id": event.request_id, "client_ip": event.client_ip or "",
            "channel": event.channel, "prev_hash": event.prev_hash, "hash": event.hash}


@pytest.mark.django_db
def test_it_exports_one_csv_row_per_event_with_the_stored_values_and_audits_the_export(clients, auditor, log):
    audit_record(action="test.awkward", object_id="a,b", details={"text": 'quote " comma , newline \n é ✓'})
    before = AuditEvent.objects.count()
    response = clients["auditor"].get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-events.csv"'
    rows = csv_rows(response)
    assert rows[0] == EXPORT_FIELDS
    # The export's own event is written before the body streams, so it is the last row.
    assert AuditEvent.objects.count() == before + 1 == len(rows) - 1
    for row, event in zip(rows[1:], chain(), strict=True):
        values = dict(zip(EXPORT_FIELDS, row, strict=True))
        assert json.loads(values.pop("details")) == event.details
        assert values == export_row(event)
    own = last_event()
    assert (own.action, own.outcome, own.actor_id, own.details) == ("audit.events.export", "success", auditor[0].pk, {})
    assert audit_chain_verify().valid


@pytest.mark.django_db
def test_it_exports_only_the_filtered_events_and_audits_the_query(clients, auditor, log):
    response = clients["auditor"].get(EXPORT, {"action": "dataset.*", "until": "2020-03-02T00:00:00Z"})
    rows = csv_rows(response)
    assert rows[0] == EXPORT_FIELDS
    assert [int(r[0]) for r in rows[1:]] == [log[0].seq, log[1].seq, log[3].seq]
    assert [r[EXPORT_FIELDS.index("hash")] for r in rows[1:]] == [log[0].hash, log[1].hash, log[3].hash]
    event = last_event()
    assert (event.action, event.actor_id) == ("audit.events.export", auditor[0].pk)
    assert event.details == {"query": {"action": "dataset.*", "until": "2020-03-02T00:00:00Z"}}


@pytest.mark.django_db
def test_it_exports_a_log_whose_chain_can_be_rechecked_offline(clients, log):
    audit_record(action="test.awkward", details={"text": 'quote " comma , newline \n é ✓', "n": [1.5, None]})
    rows = csv_rows(clients["auditor"].get(EXPORT))
    previous = GENESIS_HASH
    for row in rows[1:]:
        values = dict(zip(EXPORT_FIELDS, row, strict=True))
        event = SimpleNamespace(
            seq=int(values["seq"]), created_at=datetime.fromisoformat(values["created_at"]),
            actor_id=int(values["actor_id"]) if values["actor_id"] else None,
            actor_username=values["actor_username"], action=values["action"], outcome=values["outcome"],
            object_type=values["object_type"], object_id=values["object_id"], request_id=values["request_id"],
            client_ip=values["client_ip"] or None, channel=values["channel"], details=json.loads(values["details"]),
            prev_hash=values["prev_hash"])
        assert event.prev_hash == previous
        assert event_hash(event) == values["hash"], values["seq"]
        previous = values["hash"]
    assert previous == last_event().hash


@pytest.mark.django_db
def test_it_refuses_a_bad_export_filter_with_a_json_error_and_audits_it(clients, auditor, log):
    before = AuditEvent.objects.count()
    response = clients["auditor"].get(EXPORT, {"since": "not-a-time"})
    assert response["Content-Type"].startswith("application/json")
    error = assert_error(response, 400, "invalid")
    assert set(error["details"]) == {"since"}
    assert_refusal_audited(before, action="audit.events.export", actor=auditor[0], status=400, code="invalid",
                           path=EXPORT)


# --------------------------------------------------------------------------------------------
# 7. Strings and numbers the database would not store as given
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("plain", "plain"),
    ("a\x00b", "a\ufffdb"),
    ("\x00\x00", "\ufffd\ufffd"),
    ("lone \ud800 high", "lone \ufffd high"),
    ("lone \udfff low", "lone \ufffd low"),
    ("\udc80\x00", "\ufffd\ufffd"),
    ("fine 😀 é", "fine 😀 é"),
    ({"k\x00": ["v\ud800", ("t\x00",), {"deep\udfff": "\x00"}]},
     {"k\ufffd": ["v\ufffd", ["t\ufffd"], {"deep\ufffd": "\ufffd"}]}),
    ([1, 2.5, None, True], [1, 2.5, None, True]),
])
def test_it_makes_strings_storable_with_the_replacement_character(value, expected):
    assert _storable(value) == expected


@pytest.mark.parametrize("value, expected", [
    (1e16, 10 ** 16), (1.5e300, 15 * 10 ** 299), (-2e17, -2 * 10 ** 17), (5.0, 5.0), (0.34, 0.34), (1e-7, 1e-7),
    ([-0.0, {"x": 3e20}], [0.0, {"x": 3 * 10 ** 20}]),
])
def test_it_gives_floats_the_value_the_database_gives_back(value, expected):
    stored = _storable(value)
    assert stored == expected and type(stored) is type(expected)
    assert json.dumps(stored) == json.dumps(expected)  # -0.0 and 0.0 differ here


@pytest.mark.django_db
def test_it_stores_nul_and_lone_surrogates_as_replacement_characters_and_the_chain_holds(clients):
    event = audit_record(action="test.odd", object_type="ty\x00pe", object_id="id\x00\ud800x",
                         details={"path": "/x\x00y", "k\udfff": ["\ud83d", "ok 😀"]})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.object_type, stored.object_id) == ("ty\ufffdpe", "id\ufffd\ufffdx")
    assert stored.details == {"path": "/x\ufffdy", "k\ufffd": ["\ufffd", "ok 😀"]}
    assert [getattr(stored, f) for f in HASHED_FIELDS] == [getattr(event, f) for f in HASHED_FIELDS]
    assert event_hash(stored) == stored.hash == event.hash
    assert audit_chain_verify().valid
    assert verify(clients["auditor"])["valid"] is True


@pytest.mark.django_db
def test_it_audits_a_refusal_whose_message_holds_a_nul_without_a_server_error(clients, auditor):
    before = AuditEvent.objects.count()
    response = clients["auditor"].get(LIST + "?a%00b=1")
    error = assert_error(response, 400, "invalid")
    assert error["details"] == {"a\x00b": ["Unknown field."]}
    event = assert_refusal_audited(before, action="audit.events.list", actor=auditor[0], status=400, code="invalid",
                                   path=LIST)
    assert event.details["message"] == "a\ufffdb: Unknown field."
    assert verify(clients["auditor"])["valid"] is True


@pytest.mark.django_db
def test_it_keeps_the_chain_valid_for_numbers_the_database_writes_differently(clients):
    """PostgreSQL's jsonb stores numbers as ``numeric``: ``1e+16`` comes back as ``10000000000000000``
    (an int) and ``-0.0`` as ``0.0``. The hash must cover what comes back."""
    details = {"big": 1e16, "huge": 1.5e300, "negative_zero": -0.0, "tiny": 1e-7, "ratio": 0.34, "whole": 5.0,
               "int": 10 ** 20, "list": [2e17, -3e22]}
    event = audit_record(action="test.numbers", details=details)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.details == event.details
    assert json.dumps(stored.details, sort_keys=True) == json.dumps(event.details, sort_keys=True)
    assert event_hash(stored) == stored.hash
    assert audit_chain_verify().valid
    assert verify(clients["auditor"])["valid"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("details", [{"x": float("nan")}, {"x": float("inf")}, {"x": object()}])
def test_it_refuses_details_that_are_not_json_before_writing_anything(db, details):
    audit_record(action="test.first")
    with pytest.raises((ValueError, TypeError)):
        audit_record(action="test.bad", details=details)
    assert AuditEvent.objects.count() == 1 and audit_chain_verify().valid


@pytest.mark.django_db
def test_it_records_an_overlong_object_id_without_a_server_error(clients, researcher):
    """The object id of a refusal comes from the URL; the column holds 128 characters."""
    before = AuditEvent.objects.count()
    response = clients["researcher"].get(f"/api/v1/datasets/{'s' * 300}/")
    assert_error(response, 404, "not_found")
    assert AuditEvent.objects.count() == before + 1
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type) == (
        "dataset.read", "refused", researcher[0].pk, "dataset")
    assert event.object_id == "s" * 128  # cut to the column; the path (its first 300 characters) is in the details
    assert event.details["path"] == f"/api/v1/datasets/{'s' * 300}/"[:300]
    assert audit_chain_verify().valid


@pytest.mark.django_db
def test_it_cuts_an_overlong_object_type_and_id_to_their_columns(db):
    event = audit_record(action="test.long", object_type="t" * 100, object_id="9" * 400)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.object_type, stored.object_id) == ("t" * 64, "9" * 128)
    assert event_hash(stored) == stored.hash == event.hash
