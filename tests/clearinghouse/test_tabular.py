"""read_csv_checked: typed output, and every refusal names row, column and reason, never the cell's value."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema
from clearinghouse.tabular import TableError, read_csv_checked
from tests.clearinghouse.conftest import H, ROW, csv_bytes, row
from tests.conftest import DATA, GBSG2_SCHEMA

SCHEMA = Schema.from_dict(GBSG2_SCHEMA)


def schema_with(**column_changes) -> Schema:
    raw = copy.deepcopy(GBSG2_SCHEMA)
    for name, entry in column_changes.items():
        index = next(i for i, c in enumerate(raw["columns"]) if c["name"] == name)
        raw["columns"][index] = {"name": name, **entry}
    return Schema.from_dict(raw)


def refused(data: bytes, schema: Schema = SCHEMA, *, secrets: tuple[str, ...] = (), **kwargs) -> TableError:
    """The TableError for ``data``; none of ``secrets`` (cell values) appears in what it reports."""
    with pytest.raises(TableError) as caught:
        read_csv_checked(data, schema, **kwargs)
    error = caught.value
    reported = " ".join([str(error), error.message, json.dumps(error.details())])
    for secret in secrets:
        assert secret not in reported, f"the refusal echoes the cell value {secret!r}: {reported}"
    assert set(error.details()) == {"failures", "failure_counts"}
    return error


# --- accepted files ---------------------------------------------------------------------


def test_it_returns_typed_columns_in_schema_order_without_identifiers():
    frame = read_csv_checked((DATA / "gbsg2_small.csv").read_bytes(), SCHEMA)
    assert list(frame.columns) == ["horTh", "age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec",
                                   "time", "cens"]
    assert "pid" not in frame.columns
    assert len(frame) == 6 and isinstance(frame.index, pd.RangeIndex)
    for name in ("age", "tsize", "pnodes", "progrec", "estrec"):
        assert frame[name].dtype == "Int64", name
    assert frame["time"].dtype == np.float64
    assert frame["cens"].dtype == "Int8"
    assert isinstance(frame["horTh"].dtype, pd.CategoricalDtype)
    assert list(frame["horTh"].cat.categories) == ["no", "yes"]
    assert list(frame["menostat"].cat.categories) == ["Pre", "Post"]  # declared, not observed, categories
    assert list(frame["tgrade"].cat.categories) == ["I", "II", "III"]
    assert frame["age"].tolist() == [70, 56, 58, 59, 73, 32]
    assert frame["time"].tolist() == [1814.0, 2018.0, 712.0, 1807.0, 772.0, 448.0]
    assert frame["tgrade"].tolist() == ["II", "II", "II", "II", "II", "III"]
    assert frame["cens"].tolist() == [1] * 6


def test_it_reads_columns_in_any_order_and_returns_them_in_schema_order():
    names = H.split(",")
    cells = ROW.split(",")
    order = list(reversed(range(len(names))))
    data = (",".join(names[i] for i in order) + "\n" + ",".join(cells[i] for i in order) + "\n").encode()
    frame = read_csv_checked(data, SCHEMA)
    assert list(frame.columns) == [c.name for c in SCHEMA.kept]
    assert frame.iloc[0]["age"] == 70 and frame.iloc[0]["horTh"] == "no"


def test_it_accepts_a_byte_order_mark_crlf_lines_blank_lines_and_padded_cells():
    data = ("\ufeff" + H + "\r\n\r\n" + row(age=" 70 ", horTh=" no") + "\r\n").encode("utf-8")
    frame = read_csv_checked(data, SCHEMA)
    assert len(frame) == 1
    assert frame.iloc[0]["age"] == 70 and frame.iloc[0]["horTh"] == "no"


def test_it_accepts_whole_numbers_written_as_decimals_in_integer_and_event_columns():
    frame = read_csv_checked(csv_bytes(row(age="70.0", cens="0.0")), SCHEMA)
    assert frame["age"].tolist() == [70] and frame["cens"].tolist() == [0]


def test_it_accepts_values_on_the_bounds():
    frame = read_csv_checked(csv_bytes(row(age="18", time="0"), row(age="100", time="3000")), SCHEMA)
    assert frame["age"].tolist() == [18, 100] and frame["time"].tolist() == [0.0, 3000.0]


def test_it_accepts_empty_and_na_cells_in_a_nullable_column_as_missing():
    schema = schema_with(pnodes={"type": "integer", "min": 0, "max": 60, "nullable": True},
                         horTh={"type": "categorical", "categories": ["no", "yes"], "nullable": True})
    frame = read_csv_checked(csv_bytes(row(pnodes=""), row(pnodes="NA", horTh="NA"), row(pnodes="null"),
                                       row(pnodes="5", horTh="")), schema)
    assert frame["pnodes"].dtype == "Int64"
    assert frame["pnodes"].isna().tolist() == [True, True, True, False]
    assert frame["pnodes"].iloc[3] == 5
    assert frame["horTh"].isna().tolist() == [False, True, False, True]


def test_it_treats_a_category_literally_named_na_as_a_value():
    schema = schema_with(tgrade={"type": "categorical", "categories": ["I", "II", "NA"]})
    frame = read_csv_checked(csv_bytes(row(tgrade="NA"), row(tgrade="II")), schema)
    assert frame["tgrade"].tolist() == ["NA", "II"]
    assert not frame["tgrade"].isna().any()


def test_it_refuses_an_empty_cell_in_a_non_nullable_column_even_when_na_is_a_category():
    schema = schema_with(tgrade={"type": "categorical", "categories": ["I", "II", "NA"]})
    error = refused(csv_bytes(row(tgrade="")), schema)
    assert error.details()["failures"] == [
        {"row": 1, "column": "tgrade", "reason": "missing value in a column that is not nullable"}]


def test_it_accepts_a_continuous_column_with_fractional_values():
    schema = schema_with(tsize={"type": "continuous", "min": 0, "max": 200})
    frame = read_csv_checked(csv_bytes(row(tsize="21.75"), row(tsize="1e1")), schema)
    assert frame["tsize"].dtype == np.float64 and frame["tsize"].tolist() == [21.75, 10.0]


# --- refusals of the whole file ----------------------------------------------------------


def test_it_refuses_a_row_with_too_many_fields_naming_the_line():
    error = refused(csv_bytes(ROW, ROW + ",SECRET-EXTRA"), secrets=("SECRET-EXTRA",))
    assert error.code == "malformed_csv"
    assert "line 3" in error.message and "Expected 11 fields" in error.message
    assert error.failures == [] and error.counts == {}


def test_it_refuses_a_first_data_row_with_too_many_fields_instead_of_shifting_the_columns():
    # pandas would take the extra leading field as an index and shift every value one column right.
    error = refused(csv_bytes(ROW + ",SECRET-EXTRA", ROW), secrets=("SECRET-EXTRA", "p001"))
    assert error.code == "malformed_csv"
    assert "line 2" in error.message and "11 fields" in error.message


def test_it_refuses_a_file_whose_every_row_has_one_field_more_than_the_header():
    error = refused(csv_bytes(ROW + ",x", ROW + ",y"))
    assert error.code == "malformed_csv" and "line 2" in error.message


def test_it_refuses_an_unclosed_quote():
    error = refused(csv_bytes(ROW, 'p002,"no,70,Post,21,II,3,48,66,1814,1'))
    assert error.code == "malformed_csv" and "row 2" in error.message


def test_it_refuses_a_short_row_naming_the_row_and_each_missing_cell():
    error = refused(csv_bytes(ROW, "p002,yes,56,Post"), secrets=("p002",))
    assert error.code == "rows_failed_validation"
    failures = error.details()["failures"]
    assert {f["row"] for f in failures} == {2}
    assert [f["column"] for f in failures] == ["tsize", "tgrade", "pnodes", "progrec", "estrec", "time", "cens"]
    assert error.counts == {name: 1 for name in ["tsize", "tgrade", "pnodes", "progrec", "estrec", "time", "cens"]}


def test_it_refuses_a_short_row_even_in_nullable_columns():
    schema = schema_with(estrec={"type": "integer", "min": 0, "max": 2000, "nullable": True})
    error = refused(csv_bytes("p001,no,70,Post,21,II,3,48"), schema)
    failures = {f["column"]: f["reason"] for f in error.details()["failures"]}
    assert failures["estrec"] == "the row has fewer fields than the header"


def test_it_refuses_latin1_bytes_as_wrong_encoding_without_echoing_them():
    data = (H + "\n" + row(horTh="s\xe9cr\xe8t") + "\n").encode("latin-1")
    offset = data.index(b"\xe9")
    error = refused(data, secrets=("s\xe9cr\xe8t",))
    assert error.code == "wrong_encoding"
    assert "not UTF-8" in error.message and f"offset {offset}" in error.message


def test_it_refuses_a_nul_byte_that_pandas_would_silently_truncate_at():
    error = refused(csv_bytes(row(age="7\x000")))
    assert error.code == "wrong_encoding" and "NUL" in error.message


@pytest.mark.parametrize("data", [b"", b"   \n\n", b"\xef\xbb\xbf"])
def test_it_refuses_an_empty_file(data):
    error = refused(data)
    assert (error.code, error.message) == ("empty_file", "The file is empty.")


def test_it_refuses_a_header_without_rows():
    error = refused((H + "\n").encode())
    assert (error.code, error.message) == ("empty_file", "The file has a header but no data rows.")


def test_it_refuses_missing_columns_naming_them():
    header = H.replace(",tgrade", "").replace(",cens", "")
    cells = ROW.split(",")
    del cells[10], cells[5]
    error = refused(csv_bytes(",".join(cells), header=header))
    assert error.code == "bad_header"
    assert error.message == "The header does not match the schema: missing column(s) tgrade, cens."


def test_it_refuses_extra_columns_naming_them():
    error = refused(csv_bytes(ROW + ",x,y", header=H + ",ssn,zip"))
    assert error.code == "bad_header"
    assert error.message == "The header does not match the schema: column(s) not in the schema ssn, zip."


def test_it_names_missing_and_extra_columns_together():
    error = refused(csv_bytes(ROW, header=H.replace("pnodes", "nodes")))
    assert error.message == ("The header does not match the schema: missing column(s) pnodes; "
                             "column(s) not in the schema nodes.")


def test_it_refuses_a_duplicate_header():
    error = refused(csv_bytes(ROW + ",71", header=H + ",age"))
    assert (error.code, error.message) == ("bad_header", "The header repeats column(s): age.")


# --- refusals of cells: row, column and reason; never the value -------------------------


def single_failure(data: bytes, secret: str, schema: Schema = SCHEMA) -> dict:
    error = refused(data, schema, secrets=(secret,))
    assert error.code == "rows_failed_validation"
    assert "nothing was stored" in error.message
    failures = error.details()["failures"]
    assert len(failures) == 1, failures
    return failures[0]


def test_it_refuses_a_value_above_the_maximum():
    failure = single_failure(csv_bytes(ROW, row(age="987654")), "987654")
    assert failure == {"row": 2, "column": "age", "reason": "above the schema's maximum 100"}


def test_it_refuses_a_value_below_the_minimum():
    failure = single_failure(csv_bytes(row(time="-4321.5")), "4321")
    assert failure == {"row": 1, "column": "time", "reason": "below the schema's minimum 0"}


def test_it_refuses_a_value_that_is_not_a_number():
    failure = single_failure(csv_bytes(row(tsize="SECRET-TEXT")), "SECRET-TEXT")
    assert failure == {"row": 1, "column": "tsize", "reason": "not a number"}


def test_it_refuses_a_fraction_in_an_integer_column():
    failure = single_failure(csv_bytes(row(pnodes="3.141")), "3.141")
    assert failure == {"row": 1, "column": "pnodes", "reason": "not a whole number"}


def test_it_refuses_a_huge_whole_number_in_an_integer_column_without_crashing():
    failure = single_failure(csv_bytes(row(progrec="1e30")), "1e30")
    assert failure == {"row": 1, "column": "progrec", "reason": "above the schema's maximum 3000"}


def test_it_refuses_an_unknown_category_listing_the_declared_ones():
    failure = single_failure(csv_bytes(row(tgrade="SECRET-GRADE")), "SECRET-GRADE")
    assert failure == {"row": 1, "column": "tgrade", "reason": "not one of the declared categories (I, II, III)"}


def test_it_refuses_a_category_in_the_wrong_case():
    failure = single_failure(csv_bytes(row(menostat="post")), "post")
    assert failure["column"] == "menostat" and failure["reason"].startswith("not one of the declared categories")


@pytest.mark.parametrize("value", ["2", "-1", "0.5", "1e30"])
def test_it_refuses_an_event_that_is_not_zero_or_one(value):
    failure = single_failure(csv_bytes(row(cens=value)), "SECRET")
    assert failure == {"row": 1, "column": "cens", "reason": "an event must be 0 (censored) or 1 (event)"}


@pytest.mark.parametrize("value", ["", "NA", "nan", "null", "None"])
def test_it_refuses_a_missing_value_in_a_non_nullable_column(value):
    failure = single_failure(csv_bytes(ROW, row(estrec=value)), "SECRET")
    assert failure == {"row": 2, "column": "estrec", "reason": "missing value in a column that is not nullable"}


@pytest.mark.parametrize("column", ["time", "age", "cens"])
@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity"])
def test_it_refuses_infinity(column, value):
    failure = single_failure(csv_bytes(row(**{column: value})), "Infinity")
    assert failure == {"row": 1, "column": column, "reason": "not a finite number"}


def test_it_refuses_a_nullable_column_value_that_is_present_but_invalid():
    schema = schema_with(pnodes={"type": "integer", "min": 0, "max": 60, "nullable": True})
    failure = single_failure(csv_bytes(row(pnodes=""), row(pnodes="61")), "61", schema)
    assert failure == {"row": 2, "column": "pnodes", "reason": "above the schema's maximum 60"}


def test_it_does_not_check_identifier_cells():
    frame = read_csv_checked(csv_bytes(row(pid=""), row(pid="NA"), row(pid="anything at all")), SCHEMA)
    assert len(frame) == 3 and "pid" not in frame


def test_it_reports_at_most_max_failures_sorted_by_row_with_totals_per_column():
    rows = [row(age="200", tgrade="IV") for _ in range(30)] + [row(cens="7")]
    error = refused(csv_bytes(*rows), max_failures=5, secrets=("IV",))
    assert error.code == "rows_failed_validation"
    assert error.counts == {"age": 30, "tgrade": 30, "cens": 1}
    failures = error.details()["failures"]
    assert len(failures) == 5
    assert [(f["row"], f["column"]) for f in failures] == [
        (1, "age"), (1, "tgrade"), (2, "age"), (2, "tgrade"), (3, "age")]
    assert error.details()["failure_counts"] == {"age": 30, "tgrade": 30, "cens": 1}
    assert error.message.startswith("61 cell(s) in ")


def test_it_reports_every_failure_when_there_are_few():
    error = refused(csv_bytes(row(age="5"), ROW, row(horTh="maybe", cens="3")))
    assert error.details()["failures"] == [
        {"row": 1, "column": "age", "reason": "below the schema's minimum 18"},
        {"row": 3, "column": "horTh", "reason": "not one of the declared categories (no, yes)"},
        {"row": 3, "column": "cens", "reason": "an event must be 0 (censored) or 1 (event)"},
    ]
    assert error.counts == {"age": 1, "horTh": 1, "cens": 1}
