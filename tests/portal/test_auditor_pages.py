"""The auditor's pages: the log's filters narrow the rows, bad filters are re-shown and audited, an event's
details, the chain check (intact, then broken after raw-SQL tampering), and the CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from clearinghouse.api.audit import EXPORT_FIELDS
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_record
from tests.clearinghouse.test_audit import TABLE, json_param, tamper
from tests.conftest import make_user
from tests.portal.conftest import session_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor():
    return make_user("otto", ["auditor"])[0]


@pytest.fixture
def client(auditor):
    return session_client(auditor)


@pytest.fixture
def seeded(auditor):
    """A few events of known shape beside whatever creating the users wrote."""
    alice = make_user("alice", ["researcher"])[0]
    written = [
        audit_record(action="dataset.read", actor=alice, object_type="dataset", object_id="gbsg2",
                     details={"note": "first"}),
        audit_record(action="dataset.read", actor=alice, object_type="dataset", object_id="rossi"),
        audit_record(action="release.read", actor=alice, outcome=AuditEvent.Outcome.DENIED,
                     object_type="release", object_id="7", details={"status": 403, "why": "not verified"}),
        audit_record(action="release.publish", actor=auditor, outcome=AuditEvent.Outcome.REFUSED,
                     object_type="release", object_id="7"),
    ]
    return written


def shown_seqs(response) -> list[int]:
    return [int(s) for s in re.findall(r'<tr data-seq="(\d+)">', response.content.decode())]


def portal_events_after(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq, channel="portal").order_by("seq"))


def head() -> int:
    return AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0


def test_the_log_is_newest_first_and_filters_narrow_the_rows(client, auditor, seeded):
    response = client.get("/audit/")
    assert response.status_code == 200
    seqs = shown_seqs(response)
    assert seqs == sorted(seqs, reverse=True) and set(e.seq for e in seeded) <= set(seqs)

    assert shown_seqs(client.get("/audit/", {"user": "alice", "action": "dataset.read"})) == [
        seeded[1].seq, seeded[0].seq]
    assert shown_seqs(client.get("/audit/", {"action": "release.*"})) == [seeded[3].seq, seeded[2].seq]
    assert shown_seqs(client.get("/audit/", {"outcome": "denied", "user": "alice"})) == [seeded[2].seq]
    assert shown_seqs(client.get("/audit/", {"object_type": "dataset", "object_id": "rossi"})) == [seeded[1].seq]
    portal_reads = shown_seqs(client.get("/audit/", {"channel": "portal"}))
    assert portal_reads and set(portal_reads) == set(
        AuditEvent.objects.filter(channel="portal", seq__lte=max(portal_reads)).values_list("seq", flat=True))
    assert not set(portal_reads) & {e.seq for e in seeded}  # written outside a request: channel "command"
    tomorrow = (timezone.now() + timedelta(days=1)).date().isoformat()
    assert shown_seqs(client.get("/audit/", {"since": tomorrow})) == []
    page = client.get("/audit/", {"action": "dataset.*", "until": tomorrow})
    assert shown_seqs(page) == [seeded[1].seq, seeded[0].seq]
    body = page.content.decode()
    assert "2 events match these filters" in body
    assert 'href="/audit/export.csv?action=dataset.%2A&amp;until=' in body  # the export keeps the filters
    assert f'href="/audit/events/{seeded[0].seq}/"' in body

    read = AuditEvent.objects.filter(action="audit.events.list", actor=auditor, channel="portal").last()
    assert read.outcome == "success" and read.details == {"query": {"action": "dataset.*", "until": tomorrow}}


def test_the_log_pages_by_fifty(client):
    for i in range(60):
        audit_record(action="bulk.event", object_type="thing", object_id=str(i))
    first = client.get("/audit/", {"action": "bulk.event"})
    assert len(shown_seqs(first)) == 50 and "Page 1 of 2" in first.content.decode()
    assert "?action=bulk.event&amp;page=2" in first.content.decode()
    second = client.get("/audit/", {"action": "bulk.event", "page": 2})
    assert len(shown_seqs(second)) == 10
    assert set(shown_seqs(first)).isdisjoint(shown_seqs(second))


@pytest.mark.parametrize("query, field, message", [
    ({"since": "31/02/2026"}, "since", "Enter a date as YYYY-MM-DD"),
    ({"outcome": "maybe", "user": "alice"}, "outcome", "Choose one of: success, denied, refused, failed."),
    ({"since": "2026-02-01", "until": "2026-01-01"}, "until", "Must be after"),
    ({"channel": "email"}, "channel", "Choose one of: portal, api, admin, command, task."),
])
@pytest.mark.parametrize("url, action", [("/audit/", "audit.events.list"), ("/audit/export.csv", "audit.events.export")])
def test_bad_filters_are_reshown_with_a_message_and_audited(client, auditor, seeded, query, field, message, url, action):
    seq = head()
    response = client.get(url, query)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    body = response.content.decode()
    assert message in body and 'class="field-error"' in body
    for value in query.values():  # the input is shown again as typed
        assert f'value="{value}"' in body or f'<option value="{value}" selected>' in body or field in ("outcome", "channel")
    assert "<tr data-seq=" not in body and "Export" not in body
    events = portal_events_after(seq)
    assert [(e.action, e.outcome, e.actor_id) for e in events] == [(action, "refused", auditor.pk)]
    assert events[0].details["code"] == "invalid" and events[0].details["status"] == 400
    assert message in events[0].details["message"]


def test_an_event_page_shows_its_fields_details_and_neighbours(client, auditor, seeded):
    target = seeded[2]
    response = client.get(f"/audit/events/{target.seq}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f"Audit event #{target.seq}: release.read" in body
    assert target.hash in body and target.prev_hash in body
    assert "&quot;why&quot;: &quot;not verified&quot;" in body and "&quot;status&quot;: 403" in body  # pretty JSON
    assert "Denied" in body and "alice" in body
    assert f'href="/audit/events/{seeded[1].seq}/" rel="prev"' in body
    assert f'href="/audit/events/{seeded[3].seq}/" rel="next"' in body
    read = AuditEvent.objects.filter(channel="portal").last()
    assert (read.action, read.actor_id, read.object_type, read.object_id) == (
        "audit.events.read", auditor.pk, "audit_event", str(target.seq))


def test_the_chain_check_reports_intact_then_broken_after_tampering(client, auditor, seeded):
    page = client.get("/audit/chain/")
    assert page.status_code == 200 and "Check the chain" in page.content.decode()
    assert 'id="chain-result"' not in page.content.decode()

    response = client.get("/audit/chain/", {"run": 1})
    body = response.content.decode()
    assert "The chain holds" in body
    checked = int(body.split('id="events-checked">')[1].split("<")[0])
    assert checked >= seeded[-1].seq
    check = AuditEvent.objects.filter(action="audit.verify").last()
    assert (check.actor_id, check.channel, check.details) == (
        auditor.pk, "portal", {"valid": True, "events_checked": checked, "first_broken_seq": None})

    target = seeded[1]
    tamper(f"UPDATE {TABLE} SET details = {json_param()} WHERE seq = %s", [json.dumps({"note": "edited"}), target.seq])
    body = client.get("/audit/chain/", {"run": 1}).content.decode()
    assert f"The chain is broken at event #{target.seq}" in body
    assert "changed after writing" in body
    assert f'href="/audit/events/{target.seq}/"' in body
    check = AuditEvent.objects.filter(action="audit.verify").last()
    assert check.details == {"valid": False, "events_checked": target.seq - 1, "first_broken_seq": target.seq}


def test_the_csv_export_has_the_apis_columns_and_the_filtered_rows(client, auditor, seeded):
    seq = head()
    response = client.get("/audit/export.csv", {"user": "alice", "object_type": "release"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="audit-events.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert list(rows[0].keys()) == EXPORT_FIELDS
    assert [int(r["seq"]) for r in rows] == [seeded[2].seq]
    row, event = rows[0], seeded[2]
    assert (row["action"], row["outcome"], row["actor_username"], row["hash"], row["prev_hash"]) == (
        "release.read", "denied", "alice", event.hash, event.prev_hash)
    assert json.loads(row["details"]) == {"status": 403, "why": "not verified"}
    events = portal_events_after(seq)
    assert [(e.action, e.outcome, e.actor_id) for e in events] == [("audit.events.export", "success", auditor.pk)]
    assert events[0].details == {"query": {"user": "alice", "object_type": "release"}}
