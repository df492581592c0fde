"""Parsing hypotheses against the schema: every kind parses, every bad input raises
:class:`HypothesisError` with its code, and :meth:`Hypothesis.canonical` is the reuse key."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from clearinghouse.schema import Schema
from verification.core.hypothesis import KINDS, HypothesisError, parse_hypothesis

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "clearinghouse" / "fixtures" / "gbsg2.schema.json"
RAW_SCHEMA = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SCHEMA = Schema.from_dict(RAW_SCHEMA)
NO_SURVIVAL = Schema.from_dict({k: v for k, v in RAW_SCHEMA.items() if k != "survival"})
MAX_EPSILON = 10.0
CLAIM = {"direction": "greater", "value": 0.5}

VALID = {
    "count": {},
    "proportion": {"column": "horTh", "value": "yes"},
    "mean": {"column": "age"},
    "quantile": {"column": "age", "q": 0.5},
    "difference_in_means": {"column": "age", "group": {"column": "horTh", "a": "yes", "b": "no"}},
    "difference_in_proportions": {"column": "cens", "value": 1, "group": {"column": "horTh", "a": "yes", "b": "no"}},
    "correlation": {"x": "age", "y": "tsize"},
    "odds_ratio": {"a": {"column": "horTh", "value": "yes"}, "b": {"column": "menostat", "value": "Post"}},
    "logistic_odds_ratio": {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "age"},
                            "adjust_for": ["tgrade", "pnodes"]},
    "hazard_ratio": {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age"]},
    "km_median": {"group": {"column": "horTh", "value": "yes"}},
    "survival_at": {"time": 1000, "group": {"column": "tgrade", "value": "II"}},
    "logrank": {"group": {"column": "horTh", "a": "yes", "b": "no"}},
}


def spec(kind: str = "mean", params: dict | None = None, **extra) -> dict:
    out = {"release": 7, "kind": kind, "params": copy.deepcopy(VALID[kind] if params is None else params),
           "where": [], "claim": dict(CLAIM), "epsilon": 1.0}
    out.update(extra)
    return out


def parse(raw, schema: Schema = SCHEMA):
    return parse_hypothesis(raw, schema, max_epsilon=MAX_EPSILON)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_parses(kind):
    hypothesis = parse(spec(kind))
    assert hypothesis.kind == kind
    assert hypothesis.epsilon == 1.0
    json.loads(hypothesis.canonical())


def test_defaults_are_filled():
    assert parse(spec("quantile", {"column": "age"})).params == {"column": "age", "q": 0.5}
    assert parse(spec("km_median", {})).params == {"group": None}
    hr = parse(spec("hazard_ratio", {"exposure": {"column": "age"}})).params
    assert hr == {"exposure": {"column": "age", "value": None}, "adjust_for": []}
    lor = parse(spec("logistic_odds_ratio", {"outcome": {"column": "horTh", "value": "yes"},
                                             "exposure": {"column": "cens"}})).params
    assert lor["exposure"] == {"column": "cens", "value": 1}  # an event exposure defaults to 1


def test_release_is_accepted_and_ignored():
    with_release = parse(spec("mean", release=3))
    without = parse({k: v for k, v in spec("mean").items() if k != "release"})
    assert with_release.canonical() == without.canonical()


def bad(code: str, raw, schema: Schema = SCHEMA):
    return pytest.param(raw, schema, code, id=code)


def _where(*filters) -> dict:
    return spec("count", where=list(filters))


def _f(column, op, value) -> dict:
    return {"column": column, "op": op, "value": value}


BAD = [
    # malformed
    bad("malformed", []),
    bad("malformed", "mean"),
    bad("malformed", spec("mean", foo=1)),
    bad("malformed", spec("count", where={"column": "age"})),
    bad("malformed", _where({"column": "age", "op": "<"})),
    bad("malformed", _where({"column": "age", "op": "<", "value": 1, "extra": 0})),
    bad("malformed", spec("mean", params=["age"])),
    # kind
    bad("unknown_kind", {**spec("mean"), "kind": "median"}),
    bad("unknown_kind", {k: v for k, v in spec("mean").items() if k != "kind"}),
    bad("unknown_kind", {**spec("mean"), "kind": None}),
    # columns
    bad("unknown_column", spec("mean", {"column": "weight"})),
    bad("unknown_column", spec("mean", {"column": "pid"})),  # identifiers are dropped at import
    bad("unknown_column", _where(_f("weight", "<", 3))),
    bad("unknown_column", spec("correlation", {"x": "age", "y": "bmi"})),
    bad("unknown_column", spec("hazard_ratio", {"exposure": {"column": "age"}, "adjust_for": ["nope"]})),
    # categories
    bad("unknown_category", spec("proportion", {"column": "horTh", "value": "maybe"})),
    bad("unknown_category", spec("proportion", {"column": "cens", "value": 2})),
    bad("unknown_category", _where(_f("horTh", "==", "maybe"))),
    bad("unknown_category", _where(_f("tgrade", "in", ["I", "IV"]))),
    bad("unknown_category", spec("difference_in_means", {"column": "age", "group": {"column": "horTh", "a": "yes",
                                                                                      "b": "perhaps"}})),
    # a numeric column where a category is needed, or the reverse
    bad("wrong_column_type", spec("mean", {"column": "horTh"})),
    bad("wrong_column_type", spec("mean", {"column": "cens"})),
    bad("wrong_column_type", spec("quantile", {"column": "tgrade", "q": 0.5})),
    bad("wrong_column_type", spec("proportion", {"column": "age", "value": 50})),
    bad("wrong_column_type", spec("difference_in_means", {"column": "age", "group": {"column": "pnodes", "a": 1,
                                                                                       "b": 2}})),
    bad("wrong_column_type", spec("correlation", {"x": "age", "y": "horTh"})),
    bad("wrong_column_type", spec("odds_ratio", {"a": {"column": "age", "value": 50},
                                                 "b": {"column": "horTh", "value": "yes"}})),
    bad("wrong_column_type", spec("km_median", {"group": {"column": "age", "value": 50}})),
    bad("wrong_column_type", _where(_f("horTh", "<", "yes"))),
    # epsilon
    *[bad("bad_epsilon", spec("mean", epsilon=value))
      for value in (0, 0.0, -1, math.nan, math.inf, -math.inf, True, False, None, [1], 10**400,
                    # strings: only a plain decimal ("0.5") is ε
                    "", "0", "0.0", "-1", "+1", "1e-3", "1E0", " 1", "1 ", ".5", "1.", "NaN", "inf", "0x1",
                    "1_0", "１", "1" * 41)],
    bad("bad_epsilon", {k: v for k, v in spec("mean").items() if k != "epsilon"}),
    bad("epsilon_above_maximum", spec("mean", epsilon=10.5)),
    # filter values of the wrong type
    bad("bad_filter_value", _where(_f("age", ">", "old"))),
    bad("bad_filter_value", _where(_f("age", ">", True))),
    bad("bad_filter_value", _where(_f("age", ">", None))),
    bad("bad_filter_value", _where(_f("age", ">", math.nan))),
    bad("bad_filter_value", _where(_f("age", "==", 50.5))),  # an integer column is never 50.5
    bad("bad_filter_value", _where(_f("age", "in", []))),
    bad("bad_filter_value", _where(_f("age", "in", 50))),
    bad("bad_filter_value", _where(_f("age", "in", [50, "fifty"]))),
    bad("bad_filter_value", _where(_f("horTh", "==", 1.5))),
    bad("bad_filter_value", _where(_f("horTh", "==", ["yes"]))),
    bad("bad_filter_value", _where(_f("cens", "==", "1"))),
    bad("bad_filter_value", _where(_f("cens", "==", True))),
    # operators
    bad("unknown_op", _where(_f("age", "=~", 3))),
    bad("unknown_op", _where(_f("age", "like", 3))),
    bad("unknown_op", _where(_f("age", None, 3))),
    bad("unknown_op", _where(_f("age", "=", 3))),
    # groups
    bad("empty_group", spec("difference_in_means", {"column": "age", "group": {"column": "horTh", "a": "yes",
                                                                                 "b": "yes"}})),
    bad("empty_group", spec("difference_in_means", {"column": "age", "group": {"column": "horTh", "a": "yes"}})),
    bad("empty_group", spec("logrank", {"group": {"column": "horTh", "b": "no"}})),
    bad("empty_group", spec("difference_in_proportions", {"column": "cens", "value": 1,
                                                          "group": {"column": "horTh", "a": None, "b": "no"}})),
    bad("empty_group", spec("difference_in_means", {"column": "age", "group": {"column": "cens", "a": 1, "b": 1.0}})),
    # survival kinds without a survival pair
    *[bad("no_survival", spec(kind), NO_SURVIVAL) for kind in ("hazard_ratio", "km_median", "survival_at", "logrank")],
    # params missing or extra
    bad("missing_param", spec("mean", {})),
    bad("missing_param", spec("proportion", {"column": "horTh"})),
    bad("missing_param", spec("survival_at", {"group": None})),
    bad("missing_param", spec("hazard_ratio", {"adjust_for": []})),
    bad("missing_param", spec("logistic_odds_ratio", {"exposure": {"column": "age"}})),
    bad("missing_param", spec("hazard_ratio", {"exposure": {"column": "horTh"}})),  # a category needs its value
    bad("missing_param", spec("difference_in_means", {"column": "age", "group": {"a": "yes", "b": "no"}})),
    bad("unknown_param", spec("count", {"column": "age"})),
    bad("unknown_param", spec("mean", {"column": "age", "q": 0.5})),
    bad("unknown_param", spec("difference_in_means", {"column": "age", "group": {"column": "horTh", "a": "yes",
                                                                                   "b": "no", "c": "x"}})),
    bad("unknown_param", spec("odds_ratio", {"a": {"column": "horTh", "value": "yes", "level": 1},
                                             "b": {"column": "cens"}})),
    # params out of range or of the wrong type
    *[bad("bad_param", spec("quantile", {"column": "age", "q": q})) for q in (0, 1, 1.5, -0.1, "0.5", math.nan, True)],
    bad("bad_param", spec("correlation", {"x": "age", "y": "age"})),
    bad("bad_param", spec("survival_at", {"time": -1})),
    bad("bad_param", spec("survival_at", {"time": math.inf})),
    bad("bad_param", spec("hazard_ratio", {"exposure": {"column": "age"}, "adjust_for": ["age"]})),
    bad("bad_param", spec("hazard_ratio", {"exposure": {"column": "age"}, "adjust_for": ["time"]})),
    bad("bad_param", spec("hazard_ratio", {"exposure": {"column": "age"}, "adjust_for": "tgrade"})),
    bad("bad_param", spec("hazard_ratio", {"exposure": {"column": "age", "value": 50}})),
    bad("bad_param", spec("hazard_ratio", {"exposure": {"column": "time"}})),
    bad("bad_param", spec("odds_ratio", {"a": {"column": "horTh", "value": "yes"}, "b": {"column": "horTh",
                                                                                       "value": "no"}})),
    bad("bad_param", spec("mean", {"column": 3})),
    # claims
    bad("bad_claim", {k: v for k, v in spec("mean").items() if k != "claim"}),
    bad("bad_claim", spec("mean", claim={"direction": "more", "value": 1})),
    bad("bad_claim", spec("mean", claim={"direction": "greater"})),
    bad("bad_claim", spec("mean", claim={"direction": "greater", "value": math.nan})),
    bad("bad_claim", spec("mean", claim={"direction": "greater", "value": math.inf})),
    bad("bad_claim", spec("mean", claim={"direction": "greater", "value": "1"})),
    bad("bad_claim", spec("mean", claim={"direction": "greater", "value": True})),
    bad("bad_claim", spec("mean", claim={"direction": "less", "value": 1, "alpha": 0.05})),
    bad("bad_claim", spec("odds_ratio", claim={"direction": "greater", "value": 0})),
]


@pytest.mark.parametrize("raw, schema, code", BAD)
def test_bad_input_raises_with_its_code(raw, schema, code):
    with pytest.raises(HypothesisError) as info:
        parse(raw, schema)
    assert info.value.code == code, info.value.message
    assert info.value.message and str(info.value) == info.value.message
    assert info.value.to_dict() == {"code": code, "message": info.value.message}


def test_messages_name_the_problem():
    with pytest.raises(HypothesisError, match="unknown column 'weight'"):
        parse(spec("mean", {"column": "weight"}))
    with pytest.raises(HypothesisError, match="'maybe' is not a category of 'horTh'"):
        parse(_where(_f("horTh", "==", "maybe")))
    with pytest.raises(HypothesisError, match="above the per-query maximum 10"):
        parse(spec("mean", epsilon=11))
    with pytest.raises(HypothesisError, match="params.q"):
        parse(spec("quantile", {"column": "age", "q": 2}))


# --- canonical form (the reuse key) ---------------------------------------------------------------


def test_canonical_ignores_order_and_number_spelling():
    one = spec("mean", where=[_f("age", ">=", 50), _f("tgrade", "in", ["III", "II"]), _f("horTh", "==", "yes")],
               epsilon=0.5)
    two = {
        "epsilon": 0.50, "claim": {"value": 99, "direction": "less"},  # the claim is not part of the key
        "where": [_f("horTh", "==", "yes"), _f("tgrade", "in", ["II", "III", "II"]), _f("age", ">=", 50.0),
                  _f("age", ">=", 50)],  # a repeated filter changes nothing
        "params": {"column": "age"}, "kind": "mean", "release": 12,
    }
    assert parse(one).canonical() == parse(two).canonical()


def test_canonical_normalizes_equivalent_specs():
    pairs = [
        (spec("count", where=[_f("tgrade", "in", ["II"])]), spec("count", where=[_f("tgrade", "==", "II")])),
        (spec("quantile", {"column": "age"}), spec("quantile", {"column": "age", "q": 0.5})),
        (spec("correlation", {"x": "tsize", "y": "age"}), spec("correlation", {"x": "age", "y": "tsize"})),
        (spec("odds_ratio", {"a": {"column": "menostat", "value": "Post"}, "b": {"column": "horTh", "value": "yes"}}),
         spec("odds_ratio")),
        (spec("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["pnodes", "age"]}),
         spec("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age", "pnodes"]})),
        (spec("survival_at", {"time": 1000.0}), spec("survival_at", {"time": 1000, "group": None})),
        (spec("mean", epsilon=1), spec("mean", epsilon=1.0)),
    ]
    for a, b in pairs:
        assert parse(a).canonical() == parse(b).canonical(), (a, b)


def test_canonical_differs_for_different_specs():
    base = parse(spec("mean", epsilon=1.0)).canonical()
    assert parse(spec("mean", epsilon=0.5)).canonical() != base
    assert parse(spec("mean", epsilon=1.0000001)).canonical() != base
    assert parse(spec("mean", {"column": "tsize"})).canonical() != base
    assert parse(spec("mean", where=[_f("age", ">", 50)])).canonical() != base
    assert parse(spec("quantile", {"column": "age", "q": 0.25})).canonical() != parse(spec("quantile")).canonical()
    diff = parse(spec("difference_in_means")).canonical()
    swapped = parse(spec("difference_in_means", {"column": "age", "group": {"column": "horTh", "a": "no",
                                                                            "b": "yes"}})).canonical()
    assert diff != swapped  # a - b is directional


def test_canonical_text_form():
    text = parse(spec("count", where=[_f("age", "in", [60, 50.0, 55])], epsilon=0.10)).canonical()
    assert text == ('{"epsilon":"0.1","kind":"count","params":{},'
                    '"where":[{"column":"age","op":"in","value":[50,55,60]}]}')
    assert parse(spec("mean", epsilon=10)).canonical().startswith('{"epsilon":"10",')
    hypothesis = parse(spec("mean", claim={"direction": "not_equal", "value": 50}))
    assert hypothesis.to_dict()["claim"] == {"direction": "not_equal", "value": 50}


def test_an_epsilon_below_the_minimum_is_refused():
    from clearinghouse.schema import Schema
    from verification.core.hypothesis import MIN_EPSILON, HypothesisError, parse_hypothesis

    schema = Schema.from_dict({"columns": [{"name": "age", "type": "integer", "min": 0, "max": 100}]})
    raw = {"kind": "quantile", "params": {"column": "age", "q": 0.5}, "where": [],
           "claim": {"direction": "greater", "value": 50}, "epsilon": MIN_EPSILON / 10}
    with pytest.raises(HypothesisError) as caught:
        parse_hypothesis(raw, schema, max_epsilon=1.0)
    assert caught.value.code == "bad_epsilon" and "minimum" in caught.value.message
    assert parse_hypothesis({**raw, "epsilon": MIN_EPSILON}, schema, max_epsilon=1.0).epsilon == MIN_EPSILON


def test_a_regression_with_too_many_model_columns_is_refused():
    from clearinghouse.schema import Schema
    from verification.core.hypothesis import MAX_DESIGN_COLUMNS, HypothesisError, parse_hypothesis

    schema = Schema.from_dict({"columns": [
        {"name": "site", "type": "categorical", "categories": [f"s{i}" for i in range(MAX_DESIGN_COLUMNS + 5)]},
        {"name": "age", "type": "integer", "min": 0, "max": 100},
        {"name": "dead", "type": "event"}]})
    raw = {"kind": "logistic_odds_ratio", "where": [], "claim": {"direction": "greater", "value": 1}, "epsilon": 1,
           "params": {"outcome": {"column": "dead", "value": 1}, "exposure": {"column": "age"},
                      "adjust_for": ["site"]}}
    with pytest.raises(HypothesisError) as caught:
        parse_hypothesis(raw, schema, max_epsilon=1.0)
    assert caught.value.code == "bad_param" and f"at most {MAX_DESIGN_COLUMNS}" in caught.value.message
    assert parse_hypothesis({**raw, "params": {**raw["params"], "adjust_for": []}}, schema, max_epsilon=1.0)


# --- a comparison the filters make impossible (issue 11, bad input) -----------------------------------


@pytest.mark.parametrize("kind,params,where", [
    ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}},
     [{"column": "horTh", "op": "==", "value": "yes"}]),
    ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}},
     [{"column": "horTh", "op": "!=", "value": "yes"}]),
    ("logistic_odds_ratio", {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh", "value": "yes"}},
     [{"column": "cens", "op": "==", "value": 1}]),
    ("logrank", {"group": {"column": "tgrade", "a": "I", "b": "III"}},
     [{"column": "tgrade", "op": "in", "value": ["I", "II"]}]),
])
def test_a_filter_that_leaves_one_level_is_refused_before_any_charge(kind, params, where):
    raw = {"kind": kind, "params": params, "where": where, "claim": {"direction": "less", "value": 1}, "epsilon": 1}
    with pytest.raises(HypothesisError) as caught:
        parse_hypothesis(raw, SCHEMA, max_epsilon=10)
    assert caught.value.code == "single_level" and "filters leave" in caught.value.message


def test_a_filter_that_keeps_two_levels_is_accepted():
    raw = {"kind": "hazard_ratio", "params": {"exposure": {"column": "tgrade", "value": "III"}},
           "where": [{"column": "tgrade", "op": "in", "value": ["II", "III"]}],
           "claim": {"direction": "less", "value": 1}, "epsilon": 1}
    assert parse_hypothesis(raw, SCHEMA, max_epsilon=10).where[0].op == "in"
