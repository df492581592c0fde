"""manage.py import_dataset SLUG FILE.csv (--schema SCHEMA.json | --infer-schema OUT.json).

An import stores the checked table encrypted and prints the slug last; a draft stores nothing and
never writes an observed extreme; a refusal is a CommandError naming the problem (never a cell's
value), stores nothing and is audited like a refused upload.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from clearinghouse.custody import custody_read
from clearinghouse.models import AuditEvent, Dataset
from tests.clearinghouse.conftest import H, ROW, csv_bytes, files_in, row
from tests.conftest import DATA, GBSG2_SCHEMA, last_event, make_user

pytestmark = pytest.mark.django_db

SLUG = "gbsg2-small"
CSV = DATA / "gbsg2_small.csv"


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path) -> Path:
    root = tmp_path / "data"
    spool = root / "upload-tmp"
    spool.mkdir(parents=True, mode=0o700)
    settings.DATA_DIR = root
    settings.CUSTODY_DIR = root / "custody"
    settings.UPLOAD_TEMP_DIR = spool
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    return root


@pytest.fixture
def schema_path(tmp_path) -> Path:
    path = tmp_path / "gbsg2.schema.json"
    path.write_text(json.dumps(GBSG2_SCHEMA), encoding="utf-8")
    return path


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def run(*args, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_dataset", *[str(a) for a in args], stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def assert_nothing_stored() -> None:
    assert not Dataset.objects.exists()
    assert files_in(django_settings.DATA_DIR) == set()


def assert_refusal_audited(code: str, actor, slug: str = SLUG) -> AuditEvent:
    event = last_event()
    assert (event.action, event.outcome, event.channel) == ("dataset.upload", AuditEvent.Outcome.REFUSED, "command")
    assert (event.actor_id, event.object_type) == (actor.pk, "dataset")
    assert (event.details["code"], event.details["slug"], event.details["command"]) == (code, slug, "import_dataset")
    return event


# --- import ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["keyword str", "keyword Path", "argv"])
def test_it_imports_prints_the_slug_last_and_audits(custodian, schema_path, data_dir, form):
    if form == "argv":
        out, err = run(SLUG, CSV, "--schema", schema_path)
    else:
        out, err = run(SLUG, CSV, schema=str(schema_path) if form == "keyword str" else schema_path)
    assert out.splitlines()[-1] == SLUG
    assert "Imported 6 rows × 10 columns; dropped identifier column(s) pid" in err
    dataset = Dataset.objects.get()
    assert (dataset.slug, dataset.name, dataset.created_by_id) == (SLUG, SLUG, custodian[0].pk)
    assert (dataset.n_rows, dataset.n_columns, dataset.dropped_columns) == (6, 10, ["pid"])
    frame = custody_read(dataset.storage_name)
    assert "pid" not in frame.columns and frame.shape == (6, 10)
    assert frame["time"].tolist() == [1814.0, 2018.0, 712.0, 1807.0, 772.0, 448.0]
    assert files_in(data_dir) == {f"custody/{dataset.storage_name}"}
    raw = (data_dir / "custody" / dataset.storage_name).read_bytes()
    assert raw.startswith(b"gAAAAA") and re.fullmatch(rb"[A-Za-z0-9_=-]+", raw.strip())  # a token, no Parquet bytes
    event = last_event()
    assert (event.action, event.outcome, event.channel) == ("dataset.upload", "success", "command")
    assert (event.actor_id, event.object_type, event.object_id) == (custodian[0].pk, "dataset", SLUG)
    assert event.details == {"rows": 6, "columns": 10, "dropped_columns": ["pid"]}


def test_name_description_and_by_are_used(custodian, schema_path):
    other = make_user("carl", ["custodian"])[0]
    run(SLUG, CSV, schema=schema_path, name="GBSG2 (six)", description="a sample", by="carl")
    dataset = Dataset.objects.get()
    assert (dataset.name, dataset.description, dataset.created_by_id) == ("GBSG2 (six)", "a sample", other.pk)
    assert last_event().actor_id == other.pk


def test_with_several_custodians_it_asks_which_one_and_stores_nothing(custodian, schema_path):
    make_user("carl", ["custodian"])
    with pytest.raises(CommandError, match="Name the custodian with --by"):
        run(SLUG, CSV, schema=schema_path)
    assert_nothing_stored()


def test_by_must_name_an_active_custodian(custodian, researcher, schema_path):
    with pytest.raises(CommandError, match="'rhea' is not an active custodian"):
        run(SLUG, CSV, schema=schema_path, by="rhea")
    assert_nothing_stored()


def test_schema_and_infer_schema_are_exclusive_and_one_is_required(custodian, schema_path, tmp_path):
    with pytest.raises(CommandError, match="not allowed with argument"):
        run(SLUG, CSV, "--schema", schema_path, "--infer-schema", tmp_path / "draft.json")
    with pytest.raises(CommandError, match="one of the arguments --schema --infer-schema is required"):
        run(SLUG, CSV)
    assert_nothing_stored()
    assert not (tmp_path / "draft.json").exists()


# --- refusals -------------------------------------------------------------------------------


BAD_FILES = {
    "malformed": (csv_bytes(ROW, ROW + ",1"), "malformed_csv", "not well-formed CSV"),
    "latin-1": (csv_bytes(row(menostat="Pr\u00e9Canary")).decode().encode("latin-1"), "wrong_encoding", "not UTF-8"),
    "missing column": (b"pid,horTh,age\np1,no,70\n", "bad_header", "missing column(s) menostat"),
    "extra column": (csv_bytes(ROW + ",24.5", header=H + ",bmi"), "bad_header", "column(s) not in the schema bmi"),
    "out of bounds": (csv_bytes(ROW, row(estrec="98765")), "rows_failed_validation", "do not fit the schema"),
    "empty": (b"", "empty_file", "The file is empty"),
}


@pytest.mark.parametrize("content, code, phrase", BAD_FILES.values(), ids=list(BAD_FILES))
def test_a_bad_file_is_a_command_error_naming_the_problem_stores_nothing_and_is_audited(
        custodian, schema_path, tmp_path, content, code, phrase):
    path = write(tmp_path, "cohort.csv", content)
    with pytest.raises(CommandError) as info:
        run(SLUG, path, schema=schema_path)
    message = str(info.value)
    assert phrase in message and f"[{code}]" in message, message
    assert "98765" not in message and "Canary" not in message
    assert_nothing_stored()
    event = assert_refusal_audited(code, custodian[0])
    assert "98765" not in json.dumps(event.details) and "Canary" not in json.dumps(event.details)


def test_an_out_of_bounds_refusal_lists_row_column_and_reason(custodian, schema_path, tmp_path):
    path = write(tmp_path, "cohort.csv", csv_bytes(ROW, row(estrec="98765"), row(age="17")))
    with pytest.raises(CommandError) as info:
        run(SLUG, path, schema=schema_path)
    message = str(info.value)
    assert "'row': 2, 'column': 'estrec', 'reason': \"above the schema's maximum 2000\"" in message
    assert "'row': 3, 'column': 'age', 'reason': \"below the schema's minimum 18\"" in message
    assert "98765" not in message and ", 17" not in message and "'17'" not in message


def test_a_schema_file_that_is_not_json_is_refused_and_audited(custodian, tmp_path):
    bad = write(tmp_path, "schema.json", '{"columns": [')
    with pytest.raises(CommandError, match=r"schema.json is not valid JSON: .*\(line 1\) \[invalid_schema\]"):
        run(SLUG, CSV, schema=bad)
    assert_nothing_stored()
    assert_refusal_audited("invalid_schema", custodian[0])


def test_a_schema_file_that_is_not_utf8_is_refused_not_a_traceback(custodian, tmp_path):
    bad = write(tmp_path, "schema.json", '{"columns": [], "x": "\u00e9"}'.encode("latin-1"))
    with pytest.raises(CommandError, match=r"not valid JSON: not UTF-8 text \[invalid_schema\]"):
        run(SLUG, CSV, schema=bad)
    assert_nothing_stored()


def test_an_inconsistent_schema_is_refused_naming_the_problem(custodian, tmp_path):
    schema = json.loads(json.dumps(GBSG2_SCHEMA))
    schema["survival"]["duration"] = "days"
    schema["columns"][2].update(min=100, max=18)
    path = write(tmp_path, "schema.json", json.dumps(schema))
    with pytest.raises(CommandError) as info:
        run(SLUG, CSV, schema=path)
    message = str(info.value)
    assert "The schema is invalid: columns[2]: min (100) must be below max (18) (and 1 more)" in message
    assert "survival.duration: names unknown column 'days'" in message and "[invalid_schema]" in message
    assert_nothing_stored()
    assert_refusal_audited("invalid_schema", custodian[0])


def test_a_missing_schema_or_csv_file_is_named(custodian, schema_path, tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*nowhere.json: No such file or directory"):
        run(SLUG, CSV, schema=tmp_path / "nowhere.json")
    with pytest.raises(CommandError, match=r"Cannot read .*nowhere.csv: No such file or directory"):
        run(SLUG, tmp_path / "nowhere.csv", schema=schema_path)
    assert_nothing_stored()


def test_a_duplicate_slug_is_refused_and_the_first_dataset_is_untouched(custodian, dataset, schema_path, data_dir):
    with pytest.raises(CommandError, match=rf"A dataset with slug '{dataset.slug}' already exists. \[duplicate_slug\]"):
        run(dataset.slug, CSV, schema=schema_path)
    assert list(Dataset.objects.values_list("pk", flat=True)) == [dataset.pk]
    assert files_in(data_dir) == {f"custody/{dataset.storage_name}"}
    assert_refusal_audited("duplicate_slug", custodian[0], slug=dataset.slug)


def test_an_invalid_slug_is_refused(custodian, schema_path):
    with pytest.raises(CommandError, match=r"slug: Use 1–64 lower-case letters.*\[invalid_slug\]"):
        run("Not A Slug", CSV, schema=schema_path)
    assert_nothing_stored()
    assert_refusal_audited("invalid_slug", custodian[0], slug="Not A Slug")


def test_a_file_over_the_size_limit_is_refused(custodian, schema_path, settings):
    settings.MAX_UPLOAD_BYTES = CSV.stat().st_size - 1
    with pytest.raises(CommandError, match=rf"larger than the limit of {settings.MAX_UPLOAD_BYTES} bytes"
                                           r".*\[upload_too_large\]"):
        run(SLUG, CSV, schema=schema_path)
    assert_nothing_stored()
    assert_refusal_audited("upload_too_large", custodian[0])
    settings.MAX_UPLOAD_BYTES = CSV.stat().st_size
    run(SLUG, CSV, schema=schema_path)
    assert Dataset.objects.get().slug == SLUG


# --- --infer-schema -------------------------------------------------------------------------


def _observed(path: Path) -> pd.DataFrame:
    return pd.read_csv(path)


def test_infer_schema_writes_a_draft_with_outward_bounds_and_stores_nothing(custodian, tmp_path):
    out_path = tmp_path / "draft.json"
    events = AuditEvent.objects.count()
    out, err = run(SLUG, CSV, infer_schema=str(out_path))
    assert out.splitlines()[-1] == str(out_path)
    assert "review types, bounds, categories and the survival pair" in err
    draft = json.loads(out_path.read_text(encoding="utf-8"))
    by_name = {c["name"]: c for c in draft["columns"]}
    assert list(by_name) == _observed(CSV).columns.tolist()
    assert by_name["pid"] == {"name": "pid", "type": "identifier"}
    assert by_name["horTh"] == {"name": "horTh", "type": "categorical", "categories": ["no", "yes"]}
    assert by_name["cens"]["type"] == "event" and by_name["time"]["type"] == "duration"
    assert draft["survival"] == {"duration": "time", "event": "cens"}
    observed = _observed(CSV)
    numeric = [c for c in draft["columns"] if "min" in c]
    assert {c["name"] for c in numeric} == {"age", "tsize", "pnodes", "progrec", "estrec", "time"}
    for column in numeric:
        lo, hi = observed[column["name"]].min(), observed[column["name"]].max()
        assert column["max"] > hi, column
        assert column["min"] < lo or column["min"] == 0 <= lo, column  # 0 is a public floor, not a patient's value
    assert (by_name["age"]["min"], by_name["age"]["max"]) == (30, 80)  # observed 32 and 73
    assert (by_name["time"]["min"], by_name["time"]["max"]) == (0, 3000)  # observed 448 and 2018
    assert_nothing_stored()
    assert AuditEvent.objects.count() == events


def test_infer_schema_never_writes_an_observed_extreme_of_fractional_or_negative_data(custodian, tmp_path):
    content = "id,bmi,delta,score\na,18.37,-3.7,7.3\nb,41.92,2.2,7.9\nc,27.05,-0.4,7.5\nd,22.4,1.1,7.61\n"
    path = write(tmp_path, "measures.csv", content)
    out_path = tmp_path / "draft.json"
    run("measures", path, infer_schema=out_path)
    columns = {c["name"]: c for c in json.loads(out_path.read_text())["columns"]}
    assert columns["id"]["type"] == "identifier"
    assert (columns["bmi"]["type"], columns["bmi"]["min"], columns["bmi"]["max"]) == ("continuous", 10, 50)
    assert columns["delta"]["min"] < -3.7 and columns["delta"]["max"] > 2.2
    assert columns["score"]["min"] < 7.3 and columns["score"]["max"] > 7.9
    observed = {"18.37", "41.92", "-3.7", "2.2", "7.3", "7.9"}
    assert not observed & {str(c.get(k)) for c in columns.values() for k in ("min", "max")}
    assert_nothing_stored()


def test_a_reviewed_draft_imports(custodian, tmp_path):
    out_path = tmp_path / "draft.json"
    run(SLUG, CSV, infer_schema=out_path)
    out, _err = run(SLUG, CSV, schema=out_path)
    assert out.splitlines()[-1] == SLUG
    assert Dataset.objects.get().dropped_columns == ["pid"]


def test_infer_schema_of_a_bad_file_is_a_command_error_and_writes_no_draft(custodian, tmp_path):
    path = write(tmp_path, "cohort.csv", "a,b\n1,caf\u00e9\n".encode("latin-1"))
    out_path = tmp_path / "draft.json"
    with pytest.raises(CommandError, match="not UTF-8"):
        run(SLUG, path, infer_schema=out_path)
    assert not out_path.exists()
    assert_nothing_stored()
