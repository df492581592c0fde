"""The dataset schema: parsing, every inconsistency named by its path, and the round trip."""

from __future__ import annotations

import copy
import json

import pytest

from clearinghouse.schema import MAX_CATEGORIES, Column, Schema, SchemaError
from tests.conftest import GBSG2_SCHEMA


def problems_of(raw) -> list[str]:
    with pytest.raises(SchemaError) as caught:
        Schema.from_dict(raw)
    assert caught.value.problems, "a SchemaError always lists its problems"
    assert str(caught.value) == "; ".join(caught.value.problems)
    return caught.value.problems


def gbsg2(**column_changes) -> dict:
    """GBSG2_SCHEMA with some columns' entries replaced (``age={...}``), deep-copied."""
    raw = copy.deepcopy(GBSG2_SCHEMA)
    for name, entry in column_changes.items():
        index = next(i for i, c in enumerate(raw["columns"]) if c["name"] == name)
        raw["columns"][index] = {"name": name, **entry}
    return raw


def one(column: dict, **extra) -> dict:
    return {"columns": [{"name": "keep", "type": "continuous", "min": 0, "max": 1}, column], **extra}


# --- the valid schema ------------------------------------------------------------------


def test_it_round_trips_the_gbsg2_schema_through_to_dict():
    schema = Schema.from_dict(GBSG2_SCHEMA)
    assert schema.to_dict() == GBSG2_SCHEMA
    assert Schema.from_dict(schema.to_dict()) == schema
    assert json.loads(json.dumps(schema.to_dict())) == GBSG2_SCHEMA


def test_it_exposes_kept_columns_identifiers_and_the_survival_pair():
    schema = Schema.from_dict(GBSG2_SCHEMA)
    assert schema.identifiers == ("pid",)
    assert [c.name for c in schema.kept] == [c["name"] for c in GBSG2_SCHEMA["columns"][1:]]
    assert (schema.survival.duration, schema.survival.event) == ("time", "cens")
    assert "age" in schema and "nope" not in schema
    age = schema["age"]
    assert (age.type, age.min, age.max, age.is_numeric) == ("integer", 18.0, 100.0, True)
    assert schema["horTh"].categories == ("no", "yes") and not schema["horTh"].is_numeric


def test_it_keeps_nullable_descriptions_and_fractional_bounds_in_to_dict():
    raw = {"columns": [
        {"name": "bmi", "type": "continuous", "min": 10.5, "max": 60.25, "nullable": True, "description": "kg/m2"},
        {"name": "grade", "type": "categorical", "categories": [1, 2, 3]},
    ]}
    out = Schema.from_dict(raw).to_dict()
    assert out["columns"][0] == {"name": "bmi", "type": "continuous", "min": 10.5, "max": 60.25, "nullable": True,
                                 "description": "kg/m2"}
    assert out["columns"][1] == {"name": "grade", "type": "categorical", "categories": ["1", "2", "3"]}
    assert "survival" not in out


def test_it_writes_whole_bounds_as_integers():
    schema = Schema.from_dict(one({"name": "x", "type": "continuous", "min": 0.0, "max": 10.0}))
    assert schema.to_dict()["columns"][1] == {"name": "x", "type": "continuous", "min": 0, "max": 10}
    assert isinstance(schema.to_dict()["columns"][1]["min"], int)


def test_it_accepts_a_null_survival_as_no_survival():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["survival"] = None
    assert Schema.from_dict(raw).survival is None


def test_it_allows_a_nullable_column_that_is_not_in_the_survival_pair():
    schema = Schema.from_dict(gbsg2(pnodes={"type": "integer", "min": 0, "max": 60, "nullable": True}))
    assert schema["pnodes"].nullable is True and Column(name="x", type="event").nullable is False


# --- each inconsistency is named by its path -------------------------------------------


def test_it_names_an_unknown_type():
    problems = problems_of(one({"name": "x", "type": "float"}))
    assert len(problems) == 1
    assert problems[0].startswith("columns[1].type: 'float' is not one of identifier, continuous")


def test_it_names_a_minimum_above_the_maximum():
    problems = problems_of(gbsg2(age={"type": "integer", "min": 100, "max": 18}))
    assert problems == ["columns[2]: min (100) must be below max (18)"]


def test_it_names_a_minimum_equal_to_the_maximum():
    problems = problems_of(gbsg2(age={"type": "integer", "min": 50, "max": 50}))
    assert problems == ["columns[2]: min (50) must be below max (50)"]


@pytest.mark.parametrize("missing", ["min", "max"])
def test_it_names_a_missing_bound(missing):
    entry = {"type": "continuous", "min": 0, "max": 1}
    del entry[missing]
    problems = problems_of(gbsg2(age=entry))
    assert len(problems) == 1
    assert problems[0].startswith(f"columns[2].{missing}: required for a continuous column")


def test_it_names_both_missing_bounds_of_a_duration():
    problems = problems_of(gbsg2(time={"type": "duration"}))
    assert [p.split(":")[0] for p in problems] == ["columns[9].min", "columns[9].max"]


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_it_names_a_non_finite_bound(value):
    problems = problems_of(gbsg2(time={"type": "duration", "min": 0, "max": value}))
    assert problems == ["columns[9].max: must be finite"]


def test_it_names_a_non_finite_bound_parsed_from_json_text():
    raw = json.loads('{"columns": [{"name": "x", "type": "continuous", "min": -Infinity, "max": 1e400}]}')
    assert problems_of(raw) == ["columns[0].min: must be finite", "columns[0].max: must be finite"]


def test_it_names_a_bound_too_large_for_a_float_instead_of_crashing():
    raw = json.loads('{"columns": [{"name": "x", "type": "integer", "min": 0, "max": 1' + "0" * 400 + "}]}")
    assert problems_of(raw) == ["columns[0].max: must be finite"]


@pytest.mark.parametrize("value", ["10", None, True, [1], {"v": 1}])
def test_it_names_a_bound_that_is_not_a_number(value):
    problems = problems_of(gbsg2(tsize={"type": "integer", "min": value, "max": 200}))
    assert problems == ["columns[4].min: must be a number"]


def test_it_names_non_integer_bounds_on_an_integer_column():
    problems = problems_of(gbsg2(pnodes={"type": "integer", "min": 0.5, "max": 60.5}))
    assert problems == ["columns[6].min: must be a whole number for an integer column",
                        "columns[6].max: must be a whole number for an integer column"]


def test_it_accepts_whole_float_bounds_on_an_integer_column():
    schema = Schema.from_dict(gbsg2(pnodes={"type": "integer", "min": 0.0, "max": 60.0}))
    assert schema.to_dict() == GBSG2_SCHEMA


def test_it_names_a_negative_duration_minimum():
    problems = problems_of(gbsg2(time={"type": "duration", "min": -1, "max": 3000}))
    assert problems == ["columns[9].min: a duration cannot be negative"]


def test_it_names_a_duplicate_column_name():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["columns"].append({"name": "age", "type": "continuous", "min": 0, "max": 1})
    assert problems_of(raw) == ["columns[11].name: duplicate column name 'age'"]


@pytest.mark.parametrize("categories", [[], None, "no,yes"])
def test_it_names_missing_or_empty_categories(categories):
    entry = {"type": "categorical"} if categories is None else {"type": "categorical", "categories": categories}
    problems = problems_of(gbsg2(horTh=entry))
    assert problems == ["columns[1].categories: required, a non-empty list of strings"]


def test_it_names_duplicate_categories():
    problems = problems_of(gbsg2(tgrade={"type": "categorical", "categories": ["I", "II", "I"]}))
    assert problems == ["columns[5].categories: has duplicates"]


def test_it_treats_integer_categories_as_their_text_when_checking_duplicates():
    problems = problems_of(gbsg2(tgrade={"type": "categorical", "categories": [1, "1"]}))
    assert problems == ["columns[5].categories: has duplicates"]


@pytest.mark.parametrize("bad", ["", "  ", " yes", 1.5, None, True])
def test_it_names_a_blank_padded_or_non_text_category_by_position(bad):
    problems = problems_of(gbsg2(horTh={"type": "categorical", "categories": ["no", bad]}))
    assert problems == ["columns[1].categories[1]: must be a non-empty string without surrounding spaces"]


def test_it_names_too_many_categories():
    many = [f"c{i}" for i in range(MAX_CATEGORIES + 1)]
    assert problems_of(gbsg2(horTh={"type": "categorical", "categories": many})) == [
        f"columns[1].categories: at most {MAX_CATEGORIES} categories"]


def test_it_names_a_survival_pair_naming_unknown_columns():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["survival"] = {"duration": "futime", "event": "status"}
    assert problems_of(raw) == ["survival.duration: names unknown column 'futime'",
                                "survival.event: names unknown column 'status'"]


def test_it_names_a_survival_pair_of_the_wrong_types():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["survival"] = {"duration": "age", "event": "horTh"}
    assert problems_of(raw) == ["survival.duration: column 'age' has type integer, not duration",
                                "survival.event: column 'horTh' has type categorical, not event"]


def test_it_names_nullable_survival_columns():
    raw = gbsg2(time={"type": "duration", "min": 0, "max": 3000, "nullable": True},
                cens={"type": "event", "nullable": True})
    assert problems_of(raw) == ["survival.duration: column 'time' cannot be nullable",
                                "survival.event: column 'cens' cannot be nullable"]


@pytest.mark.parametrize("survival", ["time", ["time", "cens"], {"duration": "time"},
                                      {"duration": "time", "event": "cens", "start": "t0"}])
def test_it_names_a_survival_entry_that_is_not_the_pair(survival):
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["survival"] = survival
    assert problems_of(raw) == ["survival: must be an object with exactly 'duration' and 'event'"]


def test_it_names_a_survival_column_name_that_is_not_text():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["survival"] = {"duration": ["time"], "event": "cens"}
    assert problems_of(raw) == ["survival.duration: names unknown column ['time']"]


def test_it_names_unknown_top_level_keys():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["version"] = 2
    raw["comment"] = "x"
    assert problems_of(raw) == ["comment: unknown key (allowed: columns, survival)",
                                "version: unknown key (allowed: columns, survival)"]


def test_it_names_keys_that_do_not_belong_to_the_column_type():
    problems = problems_of(gbsg2(horTh={"type": "categorical", "categories": ["no", "yes"], "min": 0, "units": "x"}))
    assert [p.split(":")[0] for p in problems] == ["columns[1].min", "columns[1].units"]
    assert "not allowed for a categorical column" in problems[0]
    problems = problems_of(gbsg2(age={"type": "integer", "min": 18, "max": 100, "categories": ["a"]}))
    assert problems[0].startswith("columns[2].categories: not allowed for") and "integer" in problems[0]


def test_it_names_an_all_identifier_schema():
    raw = {"columns": [{"name": "pid", "type": "identifier"}, {"name": "mrn", "type": "identifier"}]}
    assert problems_of(raw) == ["columns: every column is an identifier; nothing would be stored"]


@pytest.mark.parametrize("raw", [None, [], "schema", 3, ["columns"]])
def test_it_refuses_input_that_is_not_an_object(raw):
    problems = problems_of(raw)
    assert problems == ["schema: must be a JSON object with 'columns' (and optionally 'survival')"]


@pytest.mark.parametrize("columns", [None, [], {"name": "x"}, "x"])
def test_it_names_missing_or_empty_columns(columns):
    raw = {} if columns is None else {"columns": columns}
    assert problems_of(raw) == ["columns: must be a non-empty list"]


def test_it_names_columns_that_are_not_objects_or_lack_a_proper_name():
    raw = {"columns": [
        "age", {"type": "integer"}, {"name": "", "type": "event"}, {"name": " padded", "type": "event"},
        {"name": "x" * 65, "type": "event"}, {"name": 7, "type": "event"}, {"name": "ok", "type": "event"},
    ]}
    problems = problems_of(raw)
    assert problems[0] == "columns[0]: must be an object with 'name' and 'type'"
    assert [p.split(":")[0] for p in problems[1:]] == [f"columns[{i}].name" for i in range(1, 6)]


def test_it_names_non_boolean_nullable_and_non_text_description():
    problems = problems_of(gbsg2(age={"type": "integer", "min": 18, "max": 100, "nullable": "yes",
                                      "description": 5}))
    assert problems == ["columns[2].nullable: must be true or false", "columns[2].description: must be a string"]


def test_it_lists_every_problem_at_once_in_document_order():
    raw = copy.deepcopy(GBSG2_SCHEMA)
    raw["columns"][2] = {"name": "age", "type": "integer", "min": 100, "max": 18}
    raw["columns"][9] = {"name": "time", "type": "duration", "min": -5, "max": 3000}
    raw["survival"] = {"duration": "time", "event": "dead"}
    raw["extra"] = True
    problems = problems_of(raw)
    assert [p.split(":")[0] for p in problems] == [
        "extra", "columns[2]", "columns[9].min", "survival.event"]
