"""The fast ``where`` path (the columns' own buffers compared, and ``count`` answered from the number of
rows passing without copying them) against the reference path it replaced: the same rows on every dtype
custody and the release cache hand the engine (nullable Int64/Int8, float64 with NaN, categoricals with
missing values) and on the dtypes only the reference path handles (object text), for every operator and
for combined filters; and the same answer, noise included, for the same seed. Fixed seeds."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from clearinghouse.framecache import freeze
from clearinghouse.schema import Schema
from verification.core import kinds
from verification.core.hypothesis import Filter

from .conftest import hyp

N = 2000
SCHEMA = Schema.from_dict({"columns": [
    {"name": "c", "type": "categorical", "categories": ["u", "v", "w"], "nullable": True},
    {"name": "k", "type": "integer", "min": 0, "max": 10, "nullable": True},
    {"name": "x", "type": "continuous", "min": -5, "max": 5, "nullable": True},
    {"name": "e", "type": "event", "nullable": True},
    {"name": "t", "type": "duration", "min": 0, "max": 100},
]})


def _frame(seed: int = 7) -> pd.DataFrame:
    """Every custody dtype, each nullable column about 10 % missing."""
    rng = np.random.default_rng(seed)
    gone = lambda: rng.random(N) < 0.1  # noqa: E731
    c = pd.Categorical(rng.choice(["u", "v", "w"], N), categories=["u", "v", "w"])
    c[gone()] = np.nan
    k = pd.array(rng.integers(0, 11, N), dtype="Int64")
    k[gone()] = pd.NA
    x = rng.normal(0, 2, N).round(1)
    x[gone()] = np.nan
    e = pd.array(rng.integers(0, 2, N), dtype="Int8")
    e[gone()] = pd.NA
    return pd.DataFrame({"c": c, "k": k, "x": x, "e": e, "t": rng.uniform(0, 100, N).round(0)})


def _reference_mask(frame: pd.DataFrame, where) -> np.ndarray:
    mask = np.ones(len(frame), dtype=bool)
    for item in where:
        mask &= kinds._filter_mask(frame, item)
    return mask


FILTERS = [
    {"column": "c", "op": "==", "value": "u"}, {"column": "c", "op": "!=", "value": "v"},
    {"column": "c", "op": "in", "value": ["u", "w"]}, {"column": "c", "op": "in", "value": ["u", "v", "w"]},
    {"column": "k", "op": "==", "value": 3}, {"column": "k", "op": "!=", "value": 3},
    {"column": "k", "op": "<", "value": 4}, {"column": "k", "op": "<=", "value": 4},
    {"column": "k", "op": ">", "value": 4.5}, {"column": "k", "op": ">=", "value": 0},
    {"column": "k", "op": "in", "value": [1, 4, 7]},
    {"column": "x", "op": "==", "value": 0.5}, {"column": "x", "op": "!=", "value": 0.5},
    {"column": "x", "op": "<", "value": -1.25}, {"column": "x", "op": ">=", "value": 1.3},
    {"column": "x", "op": "in", "value": [0.1, -0.2, 3]},
    {"column": "e", "op": "==", "value": 1}, {"column": "e", "op": "!=", "value": 1},
    {"column": "t", "op": ">", "value": 50}, {"column": "t", "op": "<=", "value": 20.5},
    {"column": "t", "op": "!=", "value": 50},
]


@pytest.mark.parametrize("raw", FILTERS, ids=lambda f: f"{f['column']}{f['op']}{f['value']}")
def test_one_filter_selects_the_reference_rows(raw):
    frame = _frame()
    where = hyp(SCHEMA, "count", where=[raw]).where
    expected = _reference_mask(frame, where)
    assert 0 < expected.sum() < N or raw["op"] in ("in", ">=")  # the filters do select something
    assert np.array_equal(kinds.where_mask(frame, where), expected)
    assert list(kinds.apply_where(frame, where).index) == list(np.flatnonzero(expected))
    assert len(kinds.rows_passing(frame, where)) == int(expected.sum())


def test_combined_filters_select_the_reference_rows():
    frame = _frame(11)
    checked = 0
    for a, b, c in itertools.combinations(range(len(FILTERS)), 3):
        if (a + b + c) % 7:  # a fixed spread of the 1330 triples
            continue
        where = hyp(SCHEMA, "count", where=[FILTERS[a], FILTERS[b], FILTERS[c]]).where
        expected = _reference_mask(frame, where)
        assert np.array_equal(kinds.where_mask(frame, where), expected), where
        checked += 1
    assert checked > 150
    assert kinds.where_mask(frame, ()) is None


def test_exact_counts_on_a_small_frame():
    """Known rows, missing values failing every comparison (``!=`` included) on the fast path."""
    frame = pd.DataFrame({"c": pd.Categorical(["u", "v", None, "u"], categories=["u", "v", "w"]),
                          "k": pd.array([1, None, 3, 4], dtype="Int64"),
                          "x": [0.5, np.nan, -1.0, 2.0],
                          "e": pd.array([1, 0, None, 1], dtype="Int8"),
                          "t": [10.0, 20.0, 30.0, 40.0]})

    def rows(*filters):
        return list(np.flatnonzero(kinds.where_mask(frame, hyp(SCHEMA, "count", where=list(filters)).where)))

    assert rows({"column": "c", "op": "!=", "value": "u"}) == [1]
    assert rows({"column": "c", "op": "==", "value": "w"}) == []
    assert rows({"column": "k", "op": "!=", "value": 3}) == [0, 3]
    assert rows({"column": "x", "op": "!=", "value": 0.5}) == [2, 3]
    assert rows({"column": "x", "op": "<", "value": 1}) == [0, 2]
    assert rows({"column": "e", "op": "!=", "value": 1}) == [1]
    assert rows({"column": "e", "op": "==", "value": 1}, {"column": "t", "op": ">", "value": 10}) == [3]
    assert rows({"column": "k", "op": "in", "value": [1, 3]}, {"column": "c", "op": "in", "value": ["u", "v"]}) == [0]


def test_other_dtypes_select_the_reference_rows():
    """Object text (the reference path answers it), plain int and bool columns (the fast path): same rows."""
    frame = pd.DataFrame({"c": np.array(["u", "v", None, "u", "w"], dtype=object),
                          "k": np.array([1, 2, 3, 4, 5], dtype=np.int64),
                          "b": np.array([True, False, True, False, True])})
    for item, expected in [(Filter("c", "==", "u"), [0, 3]), (Filter("c", "!=", "u"), [1, 4]),
                           (Filter("c", "in", ("v", "w")), [1, 4]), (Filter("k", "!=", 2), [0, 2, 3, 4]),
                           (Filter("k", ">", 2.5), [2, 3, 4]), (Filter("b", "==", 1), [0, 2, 4]),
                           (Filter("b", "!=", 1), [1, 3])]:
        assert list(np.flatnonzero(kinds.where_mask(frame, (item,)))) == expected, item
        assert np.array_equal(kinds.where_mask(frame, (item,)), kinds._filter_mask(frame, item)), item


def test_cached_read_only_buffers_are_neither_written_nor_refused():
    """The custody cache freezes its frames' buffers: the mask is and-ed in place, never into a column."""
    frame = _frame(3)
    before = frame.copy(deep=True)
    assert freeze(frame)
    where = hyp(SCHEMA, "count", where=[FILTERS[2], FILTERS[6], FILTERS[13], FILTERS[16]]).where
    mask = kinds.where_mask(frame, where)
    assert mask.flags.writeable and np.array_equal(mask, _reference_mask(frame, where))
    pd.testing.assert_frame_equal(frame, before)


@pytest.mark.parametrize("filters", [[FILTERS[0]], [FILTERS[6], FILTERS[1]], [FILTERS[13], FILTERS[16], FILTERS[18]],
                                     []])
def test_count_answer_is_the_same_as_on_the_copied_rows(filters, monkeypatch):
    """The count answered from the rows passing (no copy) equals the count on the copied filtered rows
    (the path before): noisy value, CI, synthetic estimate, everything, for the same noise seed."""
    frame, synthetic = _frame(5), _frame(6)
    hypothesis = hyp(SCHEMA, "count", where=filters, epsilon=0.5)
    fast = kinds.answer(frame, SCHEMA, hypothesis, rng=np.random.default_rng(42), synthetic=synthetic)
    assert kinds.KINDS["count"].rows_only
    monkeypatch.setitem(kinds.KINDS, "count", dataclasses.replace(kinds.KINDS["count"], rows_only=False))
    copied = kinds.answer(frame, SCHEMA, hypothesis, rng=np.random.default_rng(42), synthetic=synthetic)
    assert fast.to_dict() == copied.to_dict()
    assert fast.synthetic_estimate == float(_reference_mask(synthetic, hypothesis.where).sum())
    truth = int(_reference_mask(frame, hypothesis.where).sum())
    exact = kinds.answer(frame, SCHEMA, hyp(SCHEMA, "count", where=filters, epsilon=100.0),
                         rng=np.random.default_rng(0))
    assert abs(exact.estimate - truth) <= 1  # ε = 100: the noise is almost always 0


def test_gbsg2_as_custody_types_it(gbsg2, gbsg2_schema):
    """The frame custody stores (read_csv_checked: Int64, Int8, categoricals), with a few cells blanked."""
    frame = gbsg2.copy()
    frame.loc[frame.index % 13 == 0, "age"] = pd.NA
    frame.loc[frame.index % 17 == 0, "tgrade"] = np.nan
    frame.loc[frame.index % 19 == 0, "cens"] = pd.NA
    assert str(frame["age"].dtype) == "Int64" and str(frame["cens"].dtype) == "Int8"
    wheres = [
        [{"column": "tgrade", "op": "in", "value": ["II", "III"]}, {"column": "age", "op": ">=", "value": 50}],
        [{"column": "horTh", "op": "!=", "value": "yes"}, {"column": "time", "op": ">", "value": 500.5}],
        [{"column": "cens", "op": "==", "value": 1}, {"column": "pnodes", "op": "<", "value": 4},
         {"column": "menostat", "op": "==", "value": "Post"}],
        [{"column": "age", "op": "!=", "value": 50}, {"column": "tgrade", "op": "!=", "value": "I"}],
    ]
    for raw in wheres:
        where = hyp(gbsg2_schema, "count", where=raw).where
        expected = _reference_mask(frame, where)
        assert 0 < expected.sum() < len(frame)
        assert np.array_equal(kinds.where_mask(frame, where), expected), raw
        assert len(kinds.rows_for(frame, gbsg2_schema, hyp(gbsg2_schema, "count", where=raw))) == expected.sum()
        mean = hyp(gbsg2_schema, "mean", {"column": "tsize"}, where=raw)
        copied = kinds.rows_for(frame, gbsg2_schema, mean)
        assert list(copied.index) == list(np.flatnonzero(expected)) and list(copied.columns) == sorted(
            {"tsize", *(f["column"] for f in raw)}, key=list(frame.columns).index)
