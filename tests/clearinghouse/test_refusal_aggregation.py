"""Repeated identical refusals are one audit event per source and window, with the exact count
(issue 14, finding 3: 300 anonymous GETs used to write 300 audit rows)."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.db.models import F, Sum
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from clearinghouse.models import AuditEvent, RefusalTally
from clearinghouse.services.audit import audit_chain_verify
from clearinghouse.services.refusals import REPEATED_ACTION, audit_refusals_flush
from clearinghouse.tasks import audit_refusals_flush_task
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

DATASETS = "/api/v1/datasets/"


@pytest.fixture
def unthrottled(monkeypatch):
    """Rates high enough that a flood stays a flood of 401s (the throttle is tested elsewhere)."""
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES",
                        {**AnonRateThrottle.THROTTLE_RATES, "anon": "100000/min", "user": "100000/min"})
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES",
                        {**UserRateThrottle.THROTTLE_RATES, "anon": "100000/min", "user": "100000/min"})


def refusals_of(action: str) -> int:
    """How many refusals of ``action`` the chain holds: in full, plus the counts of repeats."""
    full = AuditEvent.objects.filter(action=action).exclude(outcome=AuditEvent.Outcome.SUCCESS).count()
    counted = sum(e.details["repeats"] for e in AuditEvent.objects.filter(action=REPEATED_ACTION)
                  if e.details["of_action"] == action)
    return full + counted


def test_three_hundred_anonymous_refusals_are_one_event_and_one_exact_count(unthrottled):
    anonymous = client_for(None)
    before = AuditEvent.objects.count()
    assert {anonymous.get(DATASETS).status_code for _ in range(300)} == {401}
    # Only the first is in the chain so far; the other 299 are counted outside it.
    assert AuditEvent.objects.count() == before + 1
    first = AuditEvent.objects.get(action="dataset.list")
    assert first.outcome == "denied" and first.details["code"] == "not_authenticated"
    assert first.details["repeats"] == {"window_seconds": 60, "counted_as": REPEATED_ACTION}
    assert RefusalTally.objects.get().repeats == 299

    assert audit_refusals_flush(open_windows=True) == 299
    repeated = AuditEvent.objects.get(action=REPEATED_ACTION)
    assert repeated.outcome == "denied" and repeated.object_id == first.object_id
    assert repeated.client_ip == first.client_ip == "127.0.0.1" and repeated.channel == "api"
    assert repeated.details | {"first_at": None, "last_at": None} == {
        "repeats": 299, "first_seq": first.seq, "window_seconds": 60, "of_action": "dataset.list",
        "status": 401, "code": "not_authenticated", "method": "GET", "path": DATASETS,
        "message": first.details["message"], "source": "anonymous", "flushed_by": "command",
        "first_at": None, "last_at": None}
    assert repeated.details["first_at"] <= repeated.details["last_at"]
    assert not RefusalTally.objects.exists()
    assert refusals_of("dataset.list") == 300
    assert audit_chain_verify().valid


def test_refusals_that_differ_in_source_path_method_or_message_are_each_audited_in_full(unthrottled, researcher):
    client_for(None).get(DATASETS)
    client_for(None).get(DATASETS)                      # a repeat
    client_for("cht_" + "a" * 40).get(DATASETS)         # another source: a forged token
    client_for("cht_" + "b" * 40).get(DATASETS)         # and another
    client_for(None).get(DATASETS + "gbsg2/")           # another path (and view)
    client_for(None).post(DATASETS, {}, format="json")  # another method
    researcher_client = client_for(researcher[1])
    researcher_client.get("/api/v1/audit/events/")      # a researcher is not an auditor: 403, another source
    researcher_client.get("/api/v1/audit/events/")      # a repeat of that
    full = AuditEvent.objects.exclude(outcome=AuditEvent.Outcome.SUCCESS).order_by("seq")
    assert [(e.details["status"], e.details["method"], e.details["path"]) for e in full] == [
        (401, "GET", DATASETS), (401, "GET", DATASETS), (401, "GET", DATASETS),
        (401, "GET", DATASETS + "gbsg2/"), (401, "POST", DATASETS), (403, "GET", "/api/v1/audit/events/")]
    assert sorted(RefusalTally.objects.values_list("repeats", flat=True)) == [0, 0, 0, 0, 1, 1]
    # Only the sources' kinds: never the credential itself.
    assert "a" * 40 not in str(list(RefusalTally.objects.values_list("summary", flat=True)))


def test_a_closed_window_is_written_by_the_beat_task_and_the_next_refusal_opens_a_new_one(unthrottled):
    anonymous = client_for(None)
    for _ in range(5):
        anonymous.get(DATASETS)
    assert audit_refusals_flush() == 0  # the window is still open: nothing written yet
    assert RefusalTally.objects.get().repeats == 4
    RefusalTally.objects.update(opened_at=F("opened_at") - timedelta(seconds=61))
    assert audit_refusals_flush_task() == 4
    assert AuditEvent.objects.get(action=REPEATED_ACTION).details["repeats"] == 4
    assert AuditEvent.objects.get(action=REPEATED_ACTION).details["flushed_by"] == "task"
    # The next identical refusal is the first of a new window: in full again.
    anonymous.get(DATASETS)
    assert AuditEvent.objects.filter(action="dataset.list").count() == 2
    assert refusals_of("dataset.list") == 6


def test_an_identical_refusal_after_the_window_writes_the_old_count_itself(unthrottled):
    """Without the beat (the embedded broker is down), the next refusal flushes its own closed window."""
    anonymous = client_for(None)
    for _ in range(3):
        anonymous.get(DATASETS)
    RefusalTally.objects.update(opened_at=F("opened_at") - timedelta(seconds=61))
    anonymous.get(DATASETS)
    assert [e.action for e in AuditEvent.objects.order_by("seq")] == ["dataset.list", REPEATED_ACTION, "dataset.list"]
    assert AuditEvent.objects.get(action=REPEATED_ACTION).details["repeats"] == 2
    assert RefusalTally.objects.get().repeats == 0


def test_an_empty_closed_window_is_removed_without_an_event(unthrottled):
    client_for(None).get(DATASETS)
    RefusalTally.objects.update(opened_at=F("opened_at") - timedelta(seconds=61))
    assert audit_refusals_flush() == 0
    assert not RefusalTally.objects.exists() and not AuditEvent.objects.filter(action=REPEATED_ACTION).exists()


def test_an_auditor_reading_the_log_sees_the_counts_of_open_windows(unthrottled, auditor):
    anonymous = client_for(None)
    for _ in range(7):
        anonymous.get(DATASETS)
    body = client_for(auditor[1]).get("/api/v1/audit/events/", {"action": REPEATED_ACTION}).json()
    assert [event["details"]["repeats"] for event in body["results"]] == [6]
    # The export and the chain check flush too.
    for _ in range(3):
        anonymous.get(DATASETS)
    export = client_for(auditor[1]).get("/api/v1/audit/events/export.jsonl")
    assert export.status_code == 200
    text = b"".join(export.streaming_content).decode()
    assert '"repeats":2' in text.replace(" ", "")
    anonymous.get(DATASETS)
    verify = client_for(auditor[1]).get("/api/v1/audit/verify/").json()
    assert verify["valid"] is True
    assert refusals_of("dataset.list") == 11


def test_the_portal_log_flushes_before_it_is_read(unthrottled, auditor, client):
    for _ in range(4):
        client_for(None).get(DATASETS)
    client.force_login(auditor[0])
    page = client.get("/audit/", {"action": REPEATED_ACTION})
    assert page.status_code == 200
    assert AuditEvent.objects.get(action=REPEATED_ACTION).details["repeats"] == 3


def test_a_window_of_zero_audits_every_refusal_in_full(unthrottled, settings):
    settings.AUDIT_REFUSAL_WINDOW_SECONDS = 0
    for _ in range(4):
        client_for(None).get(DATASETS)
    assert AuditEvent.objects.filter(action="dataset.list").count() == 4
    assert "repeats" not in AuditEvent.objects.filter(action="dataset.list").first().details
    assert not RefusalTally.objects.exists()


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (row locks under concurrency)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_refusals_and_flushes_lose_and_double_count_nothing(unthrottled):
    """Eight clients refuse 40 times each while a ninth flushes open windows over and over: every
    refusal is in the chain exactly once, in full or inside one count."""
    clients, per_client = 8, 40
    barrier = threading.Barrier(clients + 1)
    failures: list[BaseException] = []
    done = threading.Event()

    def refuse(i: int) -> None:
        try:
            client = client_for(None) if i % 2 else client_for(f"cht_{i:040d}")
            barrier.wait(timeout=60)
            for _ in range(per_client):
                assert client.get(DATASETS).status_code == 401
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    def flush() -> None:
        try:
            barrier.wait(timeout=60)
            while not done.is_set():
                audit_refusals_flush(open_windows=True)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refuse, args=(i,)) for i in range(clients)]
    flusher = threading.Thread(target=flush)
    for thread in [*threads, flusher]:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    done.set()
    flusher.join(timeout=60)
    assert not failures, failures
    audit_refusals_flush(open_windows=True)
    assert refusals_of("dataset.list") == clients * per_client
    assert RefusalTally.objects.aggregate(left=Sum("repeats"))["left"] in (None, 0)
    assert audit_chain_verify().valid
    assert AuditEvent.objects.filter(action="dataset.list").count() < clients * per_client / 2
