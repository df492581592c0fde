"""`make fuzz`'s probes (bench/fuzz.py), in this process through Django's test client with tiny counts:
the same world, the same hostile requests, no 5xx, and each probe's expectation met (the refusals'
codes, nothing stored, every refusal audited, no formula cell in the audit CSV, 429s in a burst)."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from bench import fuzz
from clearinghouse.models import AuditEvent, Dataset
from clearinghouse.services.refusals import REPEATED_ACTION, audit_refusals_flush

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    from django.core.cache import cache

    if connection.vendor == "postgresql":
        pytest.skip("HTTP-level probes, the same on both databases: they run once per `make test`, on SQLite")
    cache.clear()
    yield fuzz.world_create()
    cache.clear()


#: ``GET /api/v1/datasets/`` as the API's document declares it (responses reduced to their statuses).
ONE_OPERATION = {
    "openapi": "3.0.3", "info": {"title": "one operation", "version": "1"},
    "paths": {"/api/v1/datasets/": {"get": {
        "operationId": "datasets_list",
        "parameters": [{"name": name, "in": "query", "required": False, "schema": {"type": "integer"}}
                       for name in ("page", "page_size")],
        "responses": {str(status): {"description": "-"} for status in (200, 400, 401, 403, 404, 406, 429)}}}},
}


def _seq() -> int:
    event = AuditEvent.objects.order_by("-seq").first()
    return event.seq if event else 0


def _clean(result: fuzz.ProbeResult) -> fuzz.ProbeResult:
    assert result.server_errors == 0 and result.problems == [], result.to_dict()
    return result


def test_the_probes_and_schemathesis_find_no_server_error_and_every_refusal_is_the_expected_one(world, monkeypatch):
    import schemathesis
    from rest_framework.throttling import AnonRateThrottle

    from clearinghouse.wsgi import application

    send = fuzz.django_sender()
    seq = _seq()
    deep = _clean(fuzz.probe_deep_json(send, world))
    assert deep.requests == len(fuzz.json_entry_points(world["known"])) == 11
    assert deep.statuses == {400: 11}
    upload = _clean(fuzz.probe_deep_upload_schema(send, world))
    wide = _clean(fuzz.probe_wide_header(send, world))
    assert upload.statuses == {400: 2} and wide.statuses == {400: 1} and wide.seconds < fuzz.WIDE_SECONDS
    assert list(Dataset.objects.values_list("slug", flat=True)) == [fuzz.SLUG]  # nothing stored
    audit_refusals_flush(open_windows=True)  # identical refusals are counted: write the counts
    refused = []
    for e in AuditEvent.objects.filter(seq__gt=seq):
        refused += [(e.details["code"], e.details["status"])] * (e.details["repeats"] if e.action == REPEATED_ACTION else 1)
    assert sorted(refused) == sorted([("malformed_request", 400)] * 13 + [("bad_header", 400)])

    formula = _clean(fuzz.probe_formula_cells(send, world))
    assert formula.statuses == {401: 2, 200: 1}
    planted = AuditEvent.objects.filter(seq__gt=seq).values_list("object_id", "request_id")
    assert any(object_id == '=HYPERLINK("x","y")' for object_id, _ in planted)
    assert all(request_id != fuzz.FORMULA_REQUEST_ID for _, request_id in planted)

    # schemathesis, as `make fuzz` drives it over HTTP, here on the WSGI app and one operation of the
    # document (generating the whole document takes seconds; test_api_contract.py drives all of it)
    schema = schemathesis.openapi.from_dict(ONE_OPERATION)
    schema.app, schema.location = application, "/api/v1/schema/"  # what from_wsgi sets
    contract = _clean(fuzz.probe_schemathesis(schema, world, examples=3, deadline=time.monotonic() + 8))
    assert contract.requests >= 2 * len(fuzz.ROLES)  # each role, data the schema allows and data it excludes
    assert {200, 401, 403, 404} <= set(contract.statuses), contract.statuses  # past the doors, not only to them

    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {**AnonRateThrottle.THROTTLE_RATES, "anon": "3/min"})
    burst = _clean(fuzz.probe_anonymous_burst(send, world, count=6))
    assert burst.requests == 6 and burst.statuses[429] >= 3


def test_a_5xx_or_a_dropped_answer_is_counted_and_fails_the_run():
    result = fuzz.ProbeResult("x")
    result.record(fuzz.Answer(200, {}, b"{}", 0.01))
    result.record(fuzz.Answer(503, {}, b"<html>oops</html>", 0.01))
    result.statuses["no answer"] += 1
    assert result.server_errors == 1 and result.problems == ["503: b'<html>oops</html>'"]
    assert result.to_dict()["statuses"] == {"200": 1, "503": 1, "no answer": 1}
    table = fuzz.summary_table([result])
    assert "x" in table and table.splitlines()[-1].split()[:3] == ["total", "2", "1"]


def test_the_server_is_gunicorn_in_one_process_on_loopback_or_runserver_without_it(monkeypatch):
    import sys

    command, server = fuzz._server_command(8123)
    assert server == "gunicorn" and command[command.index("--bind") + 1] == "127.0.0.1:8123"
    assert command[command.index("--workers") + 1] == "1"  # the rate limits count in one process's memory
    monkeypatch.setitem(sys.modules, "gunicorn", None)  # not installed
    command, server = fuzz._server_command(8123)
    assert server == "runserver" and command[-3:] == ["runserver", "127.0.0.1:8123", "--noreload"]
