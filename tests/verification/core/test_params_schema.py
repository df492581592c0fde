"""Each kind's ``params_schema`` (JSON Schema) and its ``parse_params`` agree: every example validates,
and bodies the schema refuses are refused by the parser with the right code (so they cannot drift
apart silently). ε is read from an exact decimal string or a number, with one reuse key."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from clearinghouse.schema import Schema
from verification.core.hypothesis import HypothesisError, parse_hypothesis
from verification.core.kinds import KINDS

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "clearinghouse" / "fixtures" / "gbsg2.schema.json"
SCHEMA = Schema.from_dict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
CLAIM = {"direction": "greater", "value": 0.5}
HORTH = {"column": "horTh", "a": "yes", "b": "no"}


def validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(KINDS[kind].params_schema)


def parse(kind: str, params, epsilon="1"):
    raw = {"kind": kind, "params": params, "where": [], "claim": CLAIM, "epsilon": epsilon}
    return parse_hypothesis(raw, SCHEMA, max_epsilon=10.0)


def refused_code(kind: str, params) -> str | None:
    try:
        parse(kind, params)
    except HypothesisError as exc:
        return exc.code
    return None


def test_every_kind_has_a_valid_params_schema_that_its_example_satisfies():
    assert len(KINDS) == 13
    for name, kind in KINDS.items():
        jsonschema.Draft202012Validator.check_schema(kind.params_schema)
        assert kind.params_schema["type"] == "object" and kind.params_schema["additionalProperties"] is False, name
        validator(name).validate(kind.example_params)
        assert refused_code(name, kind.example_params) is None, name


def test_dropping_or_adding_a_key_is_judged_alike_by_schema_and_parser():
    """Per kind: each key left out (a required one: missing_param; an optional one: accepted by
    both) and an unknown key added (unknown_param from both)."""
    for name, kind in KINDS.items():
        schema = kind.params_schema
        required = set(schema.get("required", ()))
        assert required <= set(schema["properties"]), name
        for key in schema["properties"]:
            params = {**kind.example_params, "q": 0.5} if name == "quantile" else dict(kind.example_params)
            if name == "survival_at":
                params.setdefault("group", {"column": "horTh", "value": "yes"})
            if name in ("logistic_odds_ratio", "hazard_ratio"):
                params.setdefault("adjust_for", ["age"])
            params.pop(key, None)
            schema_ok = validator(name).is_valid(params)
            code = refused_code(name, params)
            if key in required:
                assert not schema_ok and code == "missing_param", (name, key, code)
            else:
                assert schema_ok and code is None, (name, key, code)
        extra = {**kind.example_params, "colour": "red"}
        assert not validator(name).is_valid(extra) and refused_code(name, extra) == "unknown_param", name


# (kind, params, code): the schema refuses each of these, and so does the parser, with this code.
REFUSED = [
    ("mean", {"column": 5}, "bad_param"),
    ("mean", {"column": None}, "bad_param"),
    ("proportion", {"column": "horTh", "value": True}, "bad_param"),
    ("proportion", {"column": "horTh", "value": None}, "bad_param"),
    ("quantile", {"column": "tsize", "q": 0}, "bad_param"),
    ("quantile", {"column": "tsize", "q": 1}, "bad_param"),
    ("quantile", {"column": "tsize", "q": "0.5"}, "bad_param"),
    ("quantile", {"column": "tsize", "q": None}, "bad_param"),
    ("difference_in_means", {"column": "age", "group": "horTh"}, "bad_param"),
    ("difference_in_means", {"column": "age", "group": {"column": "horTh", "a": "yes"}}, "empty_group"),
    ("difference_in_means", {"column": "age", "group": {"column": "horTh", "a": "yes", "b": None}}, "empty_group"),
    ("difference_in_means", {"column": "age", "group": {**HORTH, "c": "x"}}, "unknown_param"),
    ("difference_in_means", {"column": "age", "group": {"a": "yes", "b": "no"}}, "missing_param"),
    ("odds_ratio", {"a": {"value": "yes"}, "b": {"column": "cens"}}, "missing_param"),
    ("odds_ratio", {"a": {"column": "horTh", "value": "yes", "level": 1}, "b": {"column": "cens"}}, "unknown_param"),
    ("odds_ratio", {"a": None, "b": {"column": "cens"}}, "bad_param"),
    ("logistic_odds_ratio", {"outcome": {"column": "cens"}, "exposure": {"column": "age"}}, "missing_param"),
    ("logistic_odds_ratio", {"outcome": {"column": "cens", "value": None}, "exposure": {"column": "age"}},
     "missing_param"),
    ("hazard_ratio", {"exposure": {"column": "age"}, "adjust_for": "tgrade"}, "bad_param"),
    ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age", "age"]}, "bad_param"),
    ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age"] * 21}, "bad_param"),
    ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": [3]}, "bad_param"),
    ("survival_at", {"time": -1}, "bad_param"),
    ("survival_at", {"time": "1000"}, "bad_param"),
    ("km_median", {"group": {"column": "horTh", "value": "yes", "x": 1}}, "unknown_param"),
    ("km_median", {"group": "horTh"}, "bad_param"),
    ("logrank", {"group": {"column": "horTh", "a": "yes", "b": None}}, "empty_group"),
    ("correlation", {"x": "age"}, "missing_param"),
    ("count", {"column": "age"}, "unknown_param"),
]

# Bodies both accept: nulls and defaults the parser fills in.
ACCEPTED = [
    ("quantile", {"column": "tsize"}),
    ("odds_ratio", {"a": {"column": "horTh", "value": "yes"}, "b": {"column": "cens", "value": None}}),
    ("odds_ratio", {"a": {"column": "horTh", "value": "yes"}, "b": {"column": "cens"}}),
    ("hazard_ratio", {"exposure": {"column": "age", "value": None}, "adjust_for": None}),
    ("logistic_odds_ratio", {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "age"},
                             "adjust_for": []}),
    ("km_median", {"group": None}),
    ("survival_at", {"time": 0.5, "group": None}),
    ("proportion", {"column": "cens", "value": 0}),
]


@pytest.mark.parametrize("kind, params, code", REFUSED)
def test_what_the_schema_refuses_the_parser_refuses_with_its_code(kind, params, code):
    assert not validator(kind).is_valid(params)
    assert refused_code(kind, copy.deepcopy(params)) == code


@pytest.mark.parametrize("kind, params", ACCEPTED)
def test_what_the_schema_accepts_with_nulls_and_defaults_the_parser_accepts(kind, params):
    validator(kind).validate(params)
    assert refused_code(kind, copy.deepcopy(params)) is None


def test_epsilon_as_a_decimal_string_or_a_number_is_one_hypothesis():
    keys = {parse("mean", {"column": "age"}, epsilon=e).canonical() for e in ("0.5", "0.50", "00.5", 0.5)}
    assert len(keys) == 1 and '"epsilon":"0.5"' in keys.pop()
    assert parse("mean", {"column": "age"}, epsilon="0.1").epsilon_text == "0.1"
    assert parse("mean", {"column": "age"}, epsilon=0.1).epsilon_text == "0.1"
    assert parse("mean", {"column": "age"}, epsilon="2").epsilon == 2.0
    assert parse("mean", {"column": "age"}, epsilon="10").epsilon_text == "10"
    # the text is kept exactly: a digit beyond a float's precision is not rounded away
    assert parse("mean", {"column": "age"}, epsilon="0.10000000000000000001").epsilon_text == "0.10000000000000000001"
    with pytest.raises(HypothesisError) as caught:
        parse("mean", {"column": "age"}, epsilon="10.0000000000000000001")
    assert caught.value.code == "epsilon_above_maximum"
    with pytest.raises(HypothesisError) as caught:
        parse("mean", {"column": "age"}, epsilon="0.0009")
    assert caught.value.code == "bad_epsilon" and "minimum" in caught.value.message
