"""Issue 14, finding 2: spreadsheet formulas planted in the audit log or a release's categories.

Anyone can plant a formula: an anonymous ``GET /api/v1/datasets/=HYPERLINK(...)/`` puts it in the refusal's
object_id, a client's ``X-Request-ID`` in request_id, a custodian's category in a release's data.csv.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from datetime import datetime
from types import SimpleNamespace

import pytest
from django.test import Client

from clearinghouse.models import AuditEvent
from clearinghouse.schema import Schema
from clearinghouse.selectors import EXPORT_FIELDS, csv_unsafe
from clearinghouse.services.audit import GENESIS_HASH, audit_record, event_hash
from tests.clearinghouse.test_datasets_api import assert_refused, data_dir, post  # noqa: F401 (fixture)
from tests.conftest import GBSG2_SCHEMA, last_event, upload_payload
from tests.portal.conftest import session_client


@pytest.mark.django_db
@pytest.mark.parametrize("supplied", ["-A1.A1.A1", ".A1+A1.A1", "_cmd.exe.x"])
def test_a_request_id_that_does_not_start_with_a_letter_or_digit_is_replaced(supplied):
    before = AuditEvent.objects.count()
    response = Client().get("/api/v1/datasets/", HTTP_X_REQUEST_ID=supplied)
    assert response.status_code == 401
    generated = response["X-Request-ID"]
    assert generated != supplied and len(generated) == 32 and generated.isalnum()
    assert AuditEvent.objects.count() == before + 1
    assert last_event().request_id == generated


@pytest.mark.django_db
def test_a_well_formed_request_id_is_kept_in_the_audit_row():
    response = Client().get("/api/v1/datasets/", HTTP_X_REQUEST_ID="A1-trace.0001_x")
    assert response["X-Request-ID"] == "A1-trace.0001_x"
    assert last_event().request_id == "A1-trace.0001_x"


# --- the audit export: CSV escaped, JSON Lines exact ---------------------------------------

EVIL = '=HYPERLINK("https:evil.example","x")'
PLANTED = [EVIL, "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=already quoted", "plain", "a=b"]


def plant() -> None:
    """A formula in object_id the way anyone can (an anonymous, refused GET), then each lead character directly."""
    assert Client().get(f"/api/v1/datasets/{EVIL}/").status_code == 401
    assert last_event().object_id == EVIL
    for value in PLANTED[1:]:
        audit_record(action="test.planted", object_type="thing", object_id=value, details={"v": value})


def body(response) -> str:
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content).decode("utf-8")


def recheck_chain(rows: list[dict]) -> None:
    """The chain recomputed from exported values alone (as an auditor would offline)."""
    previous = GENESIS_HASH
    for values in rows:
        event = SimpleNamespace(**{**values, "seq": int(values["seq"]),
                                   "created_at": datetime.fromisoformat(values["created_at"])})
        assert event.prev_hash == previous and event_hash(event) == values["hash"], values["seq"]
        previous = values["hash"]
    assert previous == AuditEvent.objects.order_by("seq").last().hash


@pytest.mark.django_db
def test_the_csv_export_escapes_formula_leading_cells_and_can_be_undone_to_recheck_the_chain(clients):
    plant()
    rows = list(csv.DictReader(io.StringIO(body(clients["auditor"].get("/api/v1/audit/events/export.csv")))))
    cells = {r["object_id"] for r in rows}
    assert {"'" + EVIL, "'+1+2", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "''=already quoted", "plain", "a=b"} <= cells
    for row in rows:  # nothing a spreadsheet would evaluate
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row.values()), row
    exact = []
    for row in rows:
        values = {k: csv_unsafe(v) for k, v in row.items()}
        values["details"] = json.loads(values["details"])
        values["actor_id"] = int(values["actor_id"]) if values["actor_id"] else None
        values["client_ip"] = values["client_ip"] or None
        exact.append(values)
    assert {v["object_id"] for v in exact} >= set(PLANTED)
    recheck_chain(exact)


@pytest.mark.django_db
def test_the_jsonl_export_has_the_exact_values_is_filtered_and_audited(clients, auditor):
    plant()
    response = clients["auditor"].get("/api/v1/audit/events/export.jsonl", {"action": "test.planted"})
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-events.jsonl"'
    lines = [json.loads(line) for line in body(response).splitlines()]
    assert [line["object_id"] for line in lines] == PLANTED[1:]
    assert all(list(line) == EXPORT_FIELDS for line in lines)
    assert lines[0]["details"] == {"v": "+1+2"}
    own = last_event()
    assert (own.action, own.outcome, own.actor_id) == ("audit.events.export", "success", auditor[0].pk)
    assert own.details == {"query": {"action": "test.planted"}, "format": "jsonl"}
    everything = [json.loads(line) for line in body(clients["auditor"].get("/api/v1/audit/events/export.jsonl")).splitlines()]
    assert EVIL in {line["object_id"] for line in everything}
    recheck_chain(everything)


@pytest.mark.django_db
def test_the_jsonl_export_refuses_a_bad_filter_with_a_json_error_and_audits_it(clients, auditor):
    before = AuditEvent.objects.count()
    response = clients["auditor"].get("/api/v1/audit/events/export.jsonl", {"outcome": "maybe"})
    assert response.status_code == 400 and response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "invalid" and set(response.json()["error"]["details"]) == {"outcome"}
    assert AuditEvent.objects.count() == before + 1
    event = last_event()
    assert (event.action, event.outcome, event.details["status"]) == ("audit.events.export", "refused", 400)
    assert clients["researcher"].get("/api/v1/audit/events/export.jsonl").status_code == 403


@pytest.mark.django_db
def test_the_portal_offers_both_exports_escaped_and_exact(auditor):
    plant()
    client = session_client(auditor[0])
    page = client.get("/audit/").content.decode()
    assert 'href="/audit/export.csv"' in page and 'href="/audit/export.jsonl"' in page
    rows = list(csv.DictReader(io.StringIO(body(client.get("/audit/export.csv", {"action": "test.planted"})))))
    assert [r["object_id"] for r in rows][:3] == ["'+1+2", "'-2+3", "'@SUM(A1)"]
    lines = [json.loads(x) for x in body(client.get("/audit/export.jsonl", {"action": "test.planted"})).splitlines()]
    assert [x["object_id"] for x in lines] == PLANTED[1:]
    assert last_event().details == {"query": {"action": "test.planted"}, "format": "jsonl"}


# --- release CSVs: formula-leading categories and column names are refused at upload ---------

@pytest.mark.django_db
@pytest.mark.parametrize("categories, position", [(["no", "=cmd|' /C calc'!A0"], 1), (["@SUM(1)", "yes"], 0),
                                                  (["no", "+x"], 1), (["-A1", "yes"], 0)])
def test_an_upload_declaring_a_formula_leading_category_is_refused_and_nothing_is_stored(
        clients, custodian, data_dir, categories, position):
    schema = copy.deepcopy(GBSG2_SCHEMA)
    schema["columns"][1] = {"name": "horTh", "type": "categorical", "categories": categories}
    response = post(clients["custodian"], upload_payload(schema=schema))
    error = assert_refused(response, 400, "invalid_schema", f"columns[1].categories[{position}]: must not start with =",
                           actor=custodian[0])
    assert error["details"]


@pytest.mark.django_db
def test_an_upload_naming_a_column_like_a_formula_is_refused(clients, custodian, data_dir):
    schema = copy.deepcopy(GBSG2_SCHEMA)
    schema["columns"][0]["name"] = "=pid"
    assert_refused(post(clients["custodian"], upload_payload(schema=schema)), 400, "invalid_schema",
                   "columns[0].name: must not start with =", actor=custodian[0])


def test_plain_negative_or_signed_numbers_stay_allowed_as_categories():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["columns"][1] = {"name": "horTh", "type": "categorical", "categories": [-1, "0", "+1", "-2.5"]}
    assert Schema.from_dict(raw)["horTh"].categories == ("-1", "0", "+1", "-2.5")
