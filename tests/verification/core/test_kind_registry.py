"""One kind, one object: every kind of the hypothesis format is registered as exactly one
:class:`~verification.core.kind.Kind` with a parser, a DP computation, an exact statistic, a
description and example params that parse against the GBSG2 schema (and can be answered)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import verification.core
from verification.core import kinds
from verification.core.hypothesis import KINDS as KIND_NAMES
from verification.core.hypothesis import parse_hypothesis
from verification.core.kind import REGISTRY, Kind


def test_the_registry_holds_exactly_the_format_s_kinds_in_its_order():
    assert list(REGISTRY) == list(KIND_NAMES)
    assert verification.core.KINDS is REGISTRY is kinds.KINDS
    assert set(kinds.EXACT) == set(KIND_NAMES)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_kind_is_one_complete_kind(name):
    kind = REGISTRY[name]
    assert isinstance(kind, Kind) and kind.name == name
    assert callable(kind.parse_params) and callable(kind.compute) and callable(kind.exact)
    assert kinds.EXACT[name] is kind.exact
    assert isinstance(kind.description, str) and kind.description.strip()
    assert isinstance(kind.example_params, dict)
    # no two kinds share a function: each kind is defined once, by its own functions
    others = [other for other in REGISTRY.values() if other.name != name]
    for part in ("parse_params", "compute", "exact"):
        assert all(getattr(other, part) is not getattr(kind, part) for other in others), part


@pytest.mark.parametrize("name", KIND_NAMES)
def test_the_example_params_parse_and_are_answered_on_gbsg2(name, gbsg2, gbsg2_schema):
    kind = REGISTRY[name]
    raw = {"kind": name, "params": kind.example_params, "claim": {"direction": "greater", "value": 0.5},
           "epsilon": 5.0}
    hypothesis = parse_hypothesis(raw, gbsg2_schema, max_epsilon=10.0)
    assert hypothesis.kind == name
    assert hypothesis.params == kind.parse_params(dict(kind.example_params), gbsg2_schema)
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), synthetic=gbsg2)
    assert result.kind == name and not result.withheld
    assert result.synthetic_estimate is not None and math.isfinite(result.synthetic_estimate)


def test_each_kind_carries_its_survival_and_ratio_flags():
    """The flags the parser checks before the params live on the kind (they were two sets in
    hypothesis.py): survival kinds need a survival pair, ratio kinds a positive claimed value."""
    assert {name for name, kind in REGISTRY.items() if kind.needs_survival} == {
        "hazard_ratio", "km_median", "survival_at", "logrank"}
    assert {name for name, kind in REGISTRY.items() if kind.ratio} == {
        "odds_ratio", "logistic_odds_ratio", "hazard_ratio", "logrank"}
