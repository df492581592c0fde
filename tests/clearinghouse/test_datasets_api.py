"""POST /api/v1/datasets/ as a custodian: every bad input is refused with a 4xx that names the
problem, nothing is stored (no row, no file anywhere under DATA_DIR, the upload spool included),
and the refusal is audited. The success path stores the table encrypted, without identifiers,
and answers with metadata only.

The pure CSV and schema checks are covered in depth by test_tabular.py and test_schema.py;
here each family of refusal is driven once through the HTTP layer.
"""

from __future__ import annotations

import re

import json
from pathlib import Path

import pandas as pd
import pytest
from cryptography.fernet import Fernet
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile

from clearinghouse.custody import custody_read
from clearinghouse.models import AuditEvent, Dataset
from tests.clearinghouse.conftest import H, ROW, assert_error, csv_bytes, files_in, mode, row
from tests.conftest import DATA, GBSG2_SCHEMA, last_event, upload_payload

pytestmark = pytest.mark.django_db

URL = "/api/v1/datasets/"
SMALL_CSV = (DATA / "gbsg2_small.csv").read_bytes()
OUTPUT_FIELDS = {"slug", "name", "description", "schema", "n_rows", "n_columns", "dropped_columns", "stored_bytes",
                 "created_by", "created_at"}


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path) -> Path:
    """A private DATA_DIR per test, so that "nothing stored" means an empty tree, spool included."""
    root = tmp_path / "data"
    spool = root / "upload-tmp"
    spool.mkdir(parents=True, mode=0o700)
    settings.DATA_DIR = root
    settings.CUSTODY_DIR = root / "custody"
    settings.UPLOAD_TEMP_DIR = spool
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    return root


def post(client, payload, **kwargs):
    return client.post(URL, payload, format=kwargs.pop("format", "multipart"), **kwargs)


def assert_refused(response, status: int, code: str, *phrases: str, actor=None) -> dict:
    """The error names the problem; nothing is stored; one refusal is audited as dataset.upload."""
    error = assert_error(response, status, code)
    for phrase in phrases:
        assert phrase in error["message"], (phrase, error["message"])
    assert not Dataset.objects.exists()
    assert files_in(django_settings.DATA_DIR) == set(), "a file was left under DATA_DIR"
    assert AuditEvent.objects.filter(action="dataset.upload").count() == 1
    event = last_event()
    assert (event.action, event.outcome, event.channel) == ("dataset.upload", AuditEvent.Outcome.REFUSED, "api")
    assert (event.details["status"], event.details["code"]) == (status, code)
    assert event.details["message"] == error["message"][:500]
    assert (event.details["method"], event.details["path"]) == ("POST", URL)
    assert event.object_type == "dataset"
    assert event.actor_username == "cora"  # the custodian of tests.conftest
    if actor is not None:
        assert event.actor_id == actor.pk
    return error


# --- the CSV --------------------------------------------------------------------------------


BAD_FILES = {
    "malformed: a row with a field too many": (
        csv_bytes(ROW, ROW + ",1"), "malformed_csv", ["not well-formed CSV", "line 3"]),
    "malformed: an unclosed quote": (
        csv_bytes(ROW, row(menostat='"Post')), "malformed_csv", ["not well-formed CSV"]),
    "wrong encoding: latin-1": (
        csv_bytes(row(menostat="Pr\u00e9")).decode().encode("latin-1"),
        "wrong_encoding", ["not UTF-8", "offset"]),
    "missing column": (
        b"pid,horTh,age,menostat,tgrade,pnodes,progrec,estrec,time,cens\np001,no,70,Post,II,3,48,66,1814,1\n",
        "bad_header", ["missing column(s) tsize"]),
    "extra column": (
        csv_bytes(ROW + ",24.5", header=H + ",bmi"), "bad_header", ["column(s) not in the schema bmi"]),
    "empty file": (b"", "empty_file", ["empty"]),
    "header only": (csv_bytes(), "empty_file", ["no data rows"]),
}


@pytest.mark.parametrize("content, code, phrases", BAD_FILES.values(), ids=list(BAD_FILES))
def test_it_refuses_a_bad_file_naming_the_problem_and_stores_nothing(clients, custodian, content, code, phrases):
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    assert_refused(response, 400, code, *phrases, actor=custodian[0])
    assert json.loads(response.content)["error"]["details"]["failures"] == []


def test_it_refuses_out_of_bounds_values_naming_row_column_and_reason_but_never_the_value(clients, custodian):
    # distinctive values, so that an echo anywhere (body or audit log) would be found
    content = csv_bytes(ROW, row(estrec="98765"), ROW, row(pnodes="-4321", horTh="maybe"))
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    error = assert_refused(response, 400, "rows_failed_validation", "3 cell(s)", "nothing was stored",
                           actor=custodian[0])
    assert error["details"]["failures"] == [
        {"row": 2, "column": "estrec", "reason": "above the schema's maximum 2000"},
        {"row": 4, "column": "horTh", "reason": "not one of the declared categories (no, yes)"},
        {"row": 4, "column": "pnodes", "reason": "below the schema's minimum 0"},
    ]
    assert error["details"]["failure_counts"] == {"estrec": 1, "horTh": 1, "pnodes": 1}
    event = last_event()
    for value in ("98765", "4321", "maybe"):
        assert value not in response.content.decode(), value
        assert value not in json.dumps(event.details), value


def test_it_does_not_echo_the_undecodable_bytes_of_a_latin1_file(clients):
    content = csv_bytes(row(menostat="Zo\u00e9Canary")).decode().encode("latin-1")
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    assert_refused(response, 400, "wrong_encoding", "UTF-8")
    assert b"Canary" not in response.content and "Canary" not in json.dumps(last_event().details)


# --- the size limit -------------------------------------------------------------------------


def test_a_file_over_the_limit_by_its_declared_length_is_refused_with_413_before_reading(clients, custodian,
                                                                                        settings):
    settings.MAX_UPLOAD_BYTES = 2048
    content = csv_bytes(*[ROW] * 3000)  # ~110 kB: past the limit plus the room left for form fields
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    assert_refused(response, 413, "upload_too_large", "2048 bytes", actor=custodian[0])


def test_a_file_over_the_limit_while_streaming_is_refused_with_413_and_nothing_stays_spooled(clients, custodian,
                                                                                            settings):
    settings.MAX_UPLOAD_BYTES = 100_000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # spool to UPLOAD_TEMP_DIR, as a large upload would
    content = csv_bytes(*[ROW] * 4000)  # ~150 kB: a first 64 kB chunk is spooled before the limit trips
    assert 100_000 < len(content) < 100_000 + 64 * 1024
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    # the request (and the upload handlers it holds) is still alive here: nothing may remain on disk
    assert response.wsgi_request is not None
    assert_refused(response, 413, "upload_too_large", "100000 bytes", actor=custodian[0])


def test_an_earlier_part_already_spooled_whole_is_removed_too_when_a_later_part_trips_the_limit(clients, settings):
    settings.MAX_UPLOAD_BYTES = 100_000
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    content = csv_bytes(*[ROW] * 1800)  # ~68 kB: spooled whole and completed first
    schema = SimpleUploadedFile("schema.json", json.dumps(GBSG2_SCHEMA).encode() + b" " * 40_000,
                                content_type="application/json")
    payload = {"slug": "gbsg2", "name": "GBSG2", "file": SimpleUploadedFile("c.csv", content, "text/csv"),
               "schema": schema}
    response = post(clients["custodian"], payload)
    assert response.wsgi_request is not None
    assert_refused(response, 413, "upload_too_large")


def test_a_file_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not(clients, settings):
    settings.MAX_UPLOAD_BYTES = len(SMALL_CSV)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    assert post(clients["custodian"], upload_payload(slug="at-limit")).status_code == 201
    settings.MAX_UPLOAD_BYTES = len(SMALL_CSV) - 1
    response = post(clients["custodian"], upload_payload(slug="over-limit"))
    assert_error(response, 413, "upload_too_large")
    assert list(Dataset.objects.values_list("slug", flat=True)) == ["at-limit"]
    assert files_in(django_settings.UPLOAD_TEMP_DIR) == set()
    assert len(files_in(django_settings.CUSTODY_DIR)) == 1


# --- the schema -----------------------------------------------------------------------------


def test_it_refuses_a_schema_that_is_not_json(clients, custodian):
    response = post(clients["custodian"], upload_payload(schema='{"columns": [}'))
    error = assert_refused(response, 400, "invalid", "schema: Not valid JSON", "line 1 column 14",
                           actor=custodian[0])
    assert error["details"] == {"schema": [error["message"].removeprefix("schema: ")]}


def test_it_refuses_a_schema_file_part_that_is_not_json(clients):
    payload = upload_payload()
    payload["schema"] = SimpleUploadedFile("schema.json", b"columns: []", "application/json")
    assert_refused(post(clients["custodian"], payload), 400, "invalid", "schema: Not valid JSON")


def test_it_refuses_a_schema_that_is_json_but_not_an_object(clients):
    assert_refused(post(clients["custodian"], upload_payload(schema="[1, 2]")), 400, "invalid_schema",
                   "The schema is invalid")


def _schema(**survival) -> dict:
    schema = json.loads(json.dumps(GBSG2_SCHEMA))
    schema["survival"].update(survival)
    return schema


def test_it_refuses_a_survival_pair_naming_an_unknown_column(clients):
    response = post(clients["custodian"], upload_payload(schema=_schema(duration="days")))
    error = assert_refused(response, 400, "invalid_schema", "survival.duration", "unknown column 'days'")
    assert error["details"]["problems"] == ["survival.duration: names unknown column 'days'"]


def test_it_refuses_bounds_with_min_above_max(clients):
    schema = json.loads(json.dumps(GBSG2_SCHEMA))
    schema["columns"][2].update(min=100, max=18)  # age
    response = post(clients["custodian"], upload_payload(schema=schema))
    assert_refused(response, 400, "invalid_schema", "columns[2]", "min (100) must be below max (18)")


def test_it_reports_how_many_more_schema_problems_there_are(clients):
    schema = json.loads(json.dumps(GBSG2_SCHEMA))
    schema["columns"][2].update(min=100, max=18)
    schema["survival"]["event"] = "dead"
    response = post(clients["custodian"], upload_payload(schema=schema))
    error = assert_refused(response, 400, "invalid_schema", "(and 1 more)")
    assert len(error["details"]["problems"]) == 2


# --- the slug -------------------------------------------------------------------------------


def test_a_duplicate_slug_is_refused_with_409_and_the_first_dataset_is_untouched(clients, custodian, dataset):
    before = files_in(django_settings.CUSTODY_DIR)
    assert before == {dataset.storage_name}
    response = post(clients["custodian"], upload_payload(slug=dataset.slug))
    error = assert_error(response, 409, "duplicate_slug")
    assert dataset.slug in error["message"] and "already exists" in error["message"]
    assert list(Dataset.objects.values_list("pk", flat=True)) == [dataset.pk]
    assert files_in(django_settings.DATA_DIR) == {f"custody/{dataset.storage_name}"}
    event = last_event()
    assert (event.action, event.outcome, event.details["code"], event.details["slug"]) == (
        "dataset.upload", "refused", "duplicate_slug", dataset.slug)
    assert custody_read(dataset.storage_name).shape == (6, 10)


def test_a_slug_taken_between_the_check_and_the_insert_is_a_409_and_the_written_file_is_removed(
        clients, dataset, monkeypatch):
    # the race: another upload commits the slug after this one checked it
    monkeypatch.setattr("clearinghouse.services.datasets.Dataset.objects.filter",
                        lambda **kw: Dataset.objects.none())
    response = post(clients["custodian"], upload_payload(slug=dataset.slug))
    assert_error(response, 409, "duplicate_slug")
    assert files_in(django_settings.DATA_DIR) == {f"custody/{dataset.storage_name}"}
    assert Dataset.objects.count() == 1


@pytest.mark.parametrize("slug, code, phrase", [
    ("Bad Slug!", "invalid_slug", "slug: Use 1–64 lower-case letters"),
    ("-leading-hyphen", "invalid_slug", "slug: Use 1–64"),
    ("trailing-", "invalid_slug", "slug: Use 1–64"),
    ("../escape", "invalid_slug", "slug: Use 1–64"),
    ("x" * 65, "invalid", "slug: Ensure this field has no more than 64 characters"),
    ("", "invalid", "slug: This field may not be blank"),
])
def test_an_invalid_slug_is_refused(clients, slug, code, phrase):
    assert_refused(post(clients["custodian"], upload_payload(slug=slug)), 400, code, phrase)


# --- the form -------------------------------------------------------------------------------


@pytest.mark.parametrize("extra, field", [
    ({"rows": "10"}, "rows"),
    ({"n_rows": "6"}, "n_rows"),
    ({"schema_file": SimpleUploadedFile("s.json", b"{}")}, "schema_file"),
])
def test_unknown_form_fields_are_refused_by_name(clients, extra, field):
    error = assert_refused(post(clients["custodian"], upload_payload(**extra)), 400, "invalid",
                           f"{field}: Unknown field.")
    assert error["details"] == {field: ["Unknown field."]}


@pytest.mark.parametrize("missing", ["file", "schema", "slug", "name"])
def test_a_missing_part_is_refused_by_name(clients, missing):
    payload = upload_payload()
    del payload[missing]
    error = assert_refused(post(clients["custodian"], payload), 400, "invalid", f"{missing}:")
    assert missing in error["details"]


def test_a_file_sent_as_a_plain_field_is_refused(clients):
    payload = upload_payload(file=SMALL_CSV.decode())
    assert_refused(post(clients["custodian"], payload), 400, "invalid", "file: The submitted data was not a file")


@pytest.mark.parametrize("fmt, content_type", [("json", "application/json"), (None, None)])
def test_a_body_that_is_not_multipart_is_refused_with_415(clients, fmt, content_type):
    body = {"slug": "gbsg2", "name": "GBSG2", "schema": GBSG2_SCHEMA, "file": SMALL_CSV.decode()}
    if fmt == "json":
        response = clients["custodian"].post(URL, body, format="json")
    else:
        response = clients["custodian"].generic("POST", URL, "slug=gbsg2&name=GBSG2",
                                                content_type="application/x-www-form-urlencoded")
    error = assert_refused(response, 415, "unsupported_media_type")
    assert "Unsupported media type" in error["message"]


# --- success --------------------------------------------------------------------------------


def _expected_frame() -> pd.DataFrame:
    return pd.read_csv(DATA / "gbsg2_small.csv").drop(columns=["pid"])


def test_an_upload_answers_201_with_metadata_and_schema_but_no_rows(clients, custodian):
    response = post(clients["custodian"], upload_payload(description="six patients"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == OUTPUT_FIELDS
    assert body["slug"] == "gbsg2-small" and body["name"] == "GBSG2 (small)" and body["description"] == "six patients"
    assert body["schema"] == GBSG2_SCHEMA
    assert (body["n_rows"], body["n_columns"], body["dropped_columns"]) == (6, 10, ["pid"])
    assert body["created_by"] == custodian[0].username
    dataset = Dataset.objects.get()
    path = Path(django_settings.CUSTODY_DIR) / dataset.storage_name
    assert body["stored_bytes"] == dataset.stored_bytes == path.stat().st_size
    # identifiers and cell values of the file; the server's timestamps are left out of the search (their
    # microseconds can hold any digits: "...19.222713Z" contains "271")
    text = json.dumps({key: value for key, value in body.items() if not key.endswith("_at")})
    for cell in ("p001", "p006", "1814", "2018", "271"):
        assert cell not in text, cell


def test_the_identifier_column_is_dropped_before_storage(clients):
    assert post(clients["custodian"], upload_payload()).status_code == 201
    dataset = Dataset.objects.get()
    frame = custody_read(dataset.storage_name)
    assert list(frame.columns) == [c["name"] for c in GBSG2_SCHEMA["columns"] if c["type"] != "identifier"]
    assert "pid" not in frame.columns
    expected = _expected_frame()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.CategoricalDtype):
            assert frame[name].astype(str).tolist() == expected[name].tolist(), name
        else:
            assert frame[name].astype(float).tolist() == expected[name].astype(float).tolist(), name
    assert str(frame["horTh"].dtype) == "category" and list(frame["horTh"].cat.categories) == ["no", "yes"]
    assert str(frame["age"].dtype) == "Int64" and str(frame["cens"].dtype) == "Int8"
    assert str(frame["time"].dtype) == "float64"


def test_the_stored_file_is_encrypted_private_and_alone(clients, data_dir):
    assert post(clients["custodian"], upload_payload()).status_code == 201
    dataset = Dataset.objects.get()
    custody = Path(django_settings.CUSTODY_DIR)
    path = custody / dataset.storage_name
    raw = path.read_bytes()
    assert raw.startswith(b"gAAAAA")  # a Fernet token (version byte 0x80, base64)
    # Only the token's base64 alphabet, so no Parquet bytes; and no column name in clear. (Names
    # of five letters or more: a shorter one turns up by chance in a random token, one run in ~40.)
    assert re.fullmatch(rb"[A-Za-z0-9_=-]+", raw.strip())
    parquet = Fernet(django_settings.DATA_ENCRYPTION_KEYS[0].encode()).decrypt(raw)
    assert parquet[:4] == parquet[-4:] == b"PAR1"
    for plain in (b"horTh", b"menostat", b"tgrade", b"progrec", b"estrec"):
        assert plain in parquet and plain not in raw, plain
    assert mode(path) == 0o600 and mode(custody) == 0o700
    # nothing else: no temporary file beside it, no plaintext in the upload spool
    assert files_in(data_dir) == {f"custody/{dataset.storage_name}"}
    assert dataset.source_sha256 and len(dataset.source_sha256) == 64


def test_a_spooled_upload_leaves_no_plaintext_behind_once_answered(clients, settings, data_dir):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every file part goes through UPLOAD_TEMP_DIR
    response = post(clients["custodian"], upload_payload())
    assert response.status_code == 201, response.content
    assert files_in(settings.UPLOAD_TEMP_DIR) == set()
    assert mode(settings.UPLOAD_TEMP_DIR) == 0o700


def test_the_schema_may_be_sent_as_a_file_part(clients):
    schema = SimpleUploadedFile("gbsg2.schema.json", b"\xef\xbb\xbf" + json.dumps(GBSG2_SCHEMA).encode(),
                                content_type="application/json")
    payload = upload_payload()
    payload["schema"] = schema
    response = post(clients["custodian"], payload)
    assert response.status_code == 201, response.content
    assert response.json()["schema"] == GBSG2_SCHEMA


def test_the_upload_is_audited_once_with_its_actor_and_object(clients, custodian):
    before = AuditEvent.objects.count()
    response = post(clients["custodian"], upload_payload(), HTTP_X_REQUEST_ID="req-upload-1")
    assert response.status_code == 201
    events = list(AuditEvent.objects.order_by("seq")[before:])
    assert [e.action for e in events] == ["dataset.upload"]
    event = events[0]
    assert (event.outcome, event.actor_id, event.actor_username) == ("success", custodian[0].pk, "cora")
    assert (event.object_type, event.object_id, event.channel) == ("dataset", "gbsg2-small", "api")
    assert event.details == {"rows": 6, "columns": 10, "dropped_columns": ["pid"]}
    assert event.request_id == "req-upload-1"


def test_the_detail_endpoint_serves_the_same_metadata_and_no_rows(clients):
    created = post(clients["custodian"], upload_payload()).json()
    response = clients["researcher"].get(f"{URL}gbsg2-small/")
    assert response.status_code == 200
    assert response.json() == created


# --- a file of many chunks ----------------------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch, settings):
    """4 rows a chunk, 64 bytes a read, and every upload spooled to UPLOAD_TEMP_DIR, as a large one is."""
    import clearinghouse.tabular as tabular

    monkeypatch.setattr(tabular, "CHUNK_ROWS", 4)
    monkeypatch.setattr(tabular, "READ_BYTES", 64)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024


def test_a_bad_row_at_the_end_of_a_file_of_many_chunks_is_refused_by_row_and_column(clients, custodian,
                                                                                  small_chunks):
    content = csv_bytes(*[ROW] * 399, row(pnodes="98765"))  # 100 chunks, spooled (~15 kB)
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    error = assert_refused(response, 400, "rows_failed_validation", "1 cell(s)", "nothing was stored",
                           actor=custodian[0])
    assert error["details"]["failures"] == [{"row": 400, "column": "pnodes", "reason": "above the schema's maximum 60"}]
    assert files_in(django_settings.CUSTODY_DIR) == set() and files_in(django_settings.UPLOAD_TEMP_DIR) == set()
    assert "98765" not in response.content.decode() and "98765" not in json.dumps(last_event().details)


def test_an_undecodable_byte_in_a_late_chunk_is_refused_and_stores_nothing(clients, small_chunks):
    content = csv_bytes(*[ROW] * 300, row(menostat="Pr\u00e9"), ROW).decode().encode("latin-1")
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    assert_refused(response, 400, "wrong_encoding", "not UTF-8", f"offset {content.index(bytes([0xe9]))}")


def test_a_file_of_many_chunks_is_stored_whole_with_the_digest_of_its_bytes(clients, small_chunks):
    import hashlib

    content = csv_bytes(*[row(pid=f"p{i:03}", age=str(18 + i % 80)) for i in range(401)])
    response = post(clients["custodian"], upload_payload(csv_bytes=content))
    assert response.status_code == 201, response.content
    dataset = Dataset.objects.get()
    assert dataset.n_rows == 401 and dataset.source_sha256 == hashlib.sha256(content).hexdigest()
    assert custody_read(dataset.storage_name)["age"].tolist() == [18 + i % 80 for i in range(401)]
    assert files_in(django_settings.UPLOAD_TEMP_DIR) == set()
