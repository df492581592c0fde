"""read_csv_checked across chunks: a file many CHUNK_ROWS long is checked as one file (global row
numbers, counts over the whole file, the first failures overall), its structure and encoding are checked
in every chunk and read block, and only its typed columns are kept."""

from __future__ import annotations

import hashlib
import io

import pandas as pd
import pytest

import clearinghouse.tabular as tabular
from clearinghouse.tabular import TableError, read_csv_checked
from tests.clearinghouse.conftest import H, ROW, csv_bytes, row
from tests.clearinghouse.test_tabular import SCHEMA, refused


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """4 rows a chunk and 16 bytes a read: a 40-row file spans 10 chunks and ~100 reads."""
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 4)
    monkeypatch.setattr(tabular, "READ_BYTES", 16)


def rows(n: int, at: dict[int, dict[str, str]] | None = None) -> bytes:
    """``n`` good rows, the 1-based rows in ``at`` changed (``{7: {"age": "5"}}``)."""
    return csv_bytes(*[row(**(at or {}).get(i, {})) for i in range(1, n + 1)])


def test_a_file_of_many_chunks_gives_the_frame_a_single_chunk_gives(monkeypatch):
    varied = [row(age=str(20 + i), tgrade=("I", "II", "III")[i % 3], time=f"{i}.5", cens=str(i % 2), pid=f"q{i}")
              for i in range(41)]
    data = csv_bytes(*varied)
    chunked = read_csv_checked(data, SCHEMA)
    monkeypatch.setattr(tabular, "CHUNK_ROWS", 10_000)
    monkeypatch.setattr(tabular, "READ_BYTES", 1 << 20)
    whole = read_csv_checked(data, SCHEMA)
    pd.testing.assert_frame_equal(chunked, whole)
    assert isinstance(chunked.index, pd.RangeIndex) and len(chunked) == 41
    assert chunked["age"].tolist() == list(range(20, 61)) and str(chunked["age"].dtype) == "Int64"
    assert chunked["tgrade"].tolist()[:4] == ["I", "II", "III", "I"]
    assert list(chunked["tgrade"].cat.categories) == ["I", "II", "III"]


def test_a_bad_row_at_the_very_end_is_refused_naming_its_row_and_column():
    error = refused(rows(41, {41: {"estrec": "987654"}}), secrets=("987654",))
    assert error.code == "rows_failed_validation"
    assert error.details()["failures"] == [{"row": 41, "column": "estrec", "reason": "above the schema's maximum 2000"}]
    assert error.counts == {"estrec": 1}


def test_failures_on_both_sides_of_chunk_boundaries_keep_their_global_row_numbers():
    bad = {4: {"age": "5"}, 5: {"age": "5"}, 8: {"tgrade": "IV"}, 9: {"cens": "3"}, 37: {"age": "500"}}
    error = refused(rows(40, bad), secrets=("IV",))
    assert [(f["row"], f["column"]) for f in error.details()["failures"]] == [
        (4, "age"), (5, "age"), (8, "tgrade"), (9, "cens"), (37, "age")]
    assert error.counts == {"age": 3, "tgrade": 1, "cens": 1}
    assert error.message.startswith("5 cell(s) in 5+ row(s)")


def test_the_first_failures_overall_are_listed_and_every_failure_is_counted():
    bad = {i: {"age": "200"} for i in range(3, 41, 2)}  # 19 rows across every chunk
    error = refused(rows(40, bad), max_failures=5)
    assert [f["row"] for f in error.details()["failures"]] == [3, 5, 7, 9, 11]
    assert error.counts == {"age": 19}
    assert error.message.startswith("19 cell(s) in 5+ row(s)")


def test_a_short_row_in_a_late_chunk_names_its_missing_cells():
    data = csv_bytes(*[ROW] * 30, "p031,yes,56,Post", *[ROW] * 5)
    error = refused(data, secrets=("p031",))
    failures = error.details()["failures"]
    assert {f["row"] for f in failures} == {31}
    assert [f["column"] for f in failures] == ["tsize", "tgrade", "pnodes", "progrec", "estrec", "time", "cens"]


@pytest.mark.parametrize("at", [2, 9, 13, 30])  # 9 and 13 start a chunk (rows 8.. and 12.. 0-based)
def test_a_row_with_a_field_too_many_is_refused_wherever_it_falls(at):
    # pandas' chunked reader does not check the first row of a later chunk: it would drop the extra field.
    lines = [ROW] * 31
    lines[at - 1] = ROW + ",SECRET-EXTRA"
    error = refused(csv_bytes(*lines), secrets=("SECRET-EXTRA",))
    assert error.code == "malformed_csv"
    assert f"Expected 11 fields in line {at + 1}, saw 12" in error.message


def test_a_malformed_row_after_cell_failures_is_refused_as_malformed():
    lines = [row(age="5")] + [ROW] * 30 + [ROW + ",1"]
    error = refused(csv_bytes(*lines))
    assert error.code == "malformed_csv" and "line 33" in error.message


def test_an_undecodable_byte_in_a_late_chunk_is_refused_with_its_file_offset_despite_earlier_failures():
    data = csv_bytes(row(age="5"), *[ROW] * 30, row(menostat="Pr\u00e9"), ROW).decode().encode("latin-1")
    error = refused(data, secrets=("Pr\xe9",))
    assert error.code == "wrong_encoding"
    offset = data.index(b"\xe9")
    assert f"offset {offset}" in error.message
    assert error.failures == [] and error.counts == {}


def test_a_nul_byte_in_a_late_chunk_is_refused():
    text = csv_bytes(*[ROW] * 30, row(age="7\x000"), ROW).decode()
    error = refused(text.encode())
    assert error.code == "wrong_encoding" and f"offset {text.index(chr(0))}" in error.message


@pytest.mark.parametrize("read_bytes", [1, 2, 3, 5])
def test_a_byte_order_mark_and_multi_byte_characters_split_across_reads_are_decoded(monkeypatch, schema_with_e,
                                                                                   read_bytes):
    monkeypatch.setattr(tabular, "READ_BYTES", read_bytes)
    data = ("\ufeff" + H + "\n" + "\n".join(row(menostat="Pré", tgrade="ΙΙ€") for _ in range(9)) + "\n").encode()
    frame = read_csv_checked(data, schema_with_e)
    assert frame["menostat"].tolist() == ["Pré"] * 9 and frame["tgrade"].tolist() == ["ΙΙ€"] * 9


@pytest.fixture
def schema_with_e():
    from tests.clearinghouse.test_tabular import schema_with

    return schema_with(menostat={"type": "categorical", "categories": ["Pre", "Pré"]},
                       tgrade={"type": "categorical", "categories": ["I", "ΙΙ€"]})


def test_a_file_object_is_read_from_its_start_its_position_restored_and_its_bytes_digested(tmp_path):
    data = rows(23)
    handle = io.BytesIO(data)
    handle.seek(7)
    digest = hashlib.sha256()
    frame = read_csv_checked(handle, SCHEMA, digest=digest)
    assert len(frame) == 23 and handle.tell() == 7
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    path = tmp_path / "cohort.csv"
    path.write_bytes(data)
    pd.testing.assert_frame_equal(read_csv_checked(path, SCHEMA), frame)


def test_a_refused_file_object_gets_its_position_back_too():
    handle = io.BytesIO(rows(10, {10: {"age": "5"}}))
    with pytest.raises(TableError):
        read_csv_checked(handle, SCHEMA)
    assert handle.tell() == 0
