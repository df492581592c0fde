"""Differentially private answers per hypothesis kind (pure: DataFrames and a schema in, an
:class:`~verification.core.answer.Answer` out).

:func:`answer` applies the ``where`` filter, dispatches on the kind through :data:`KINDS`, adds
the synthetic estimate (the kind's ``exact``, the same statistic without noise on the synthetic
release) and the verdict. Each kind is one :class:`~verification.core.kind.Kind` (its params
parser, ``compute``, ``exact``, description), defined once next to its computation and added with
:func:`register`; a kind that the hypothesis format knows but nobody has registered raises
:class:`NotImplementedError`.

Privacy
-------
Unit: one row (patient), neighbouring datasets differ by adding or removing one row, pure ε-DP
per answer. The ``where`` filter, the groups and the levels are public (they come from the
hypothesis), so restricting to a subgroup costs nothing. Parts that look at the same rows
compose sequentially (their ε add up to the hypothesis's ε); parts that look at **disjoint**
rows (two groups ``column == a`` and ``column == b``; the cells of a 2x2 table; matches and
non-matches of a proportion) compose in **parallel**: adding or removing one row changes only
the part it falls in, so each part may use the full ε. Each answer lists its parts in
``epsilon_split`` and says how they compose in ``details["composition"]``.

ε split and CI per kind (``z`` the normal quantile of the confidence level):

``count``
    all ε to one discrete-Laplace count. The estimand is the cohort's own count, so the CI is the
    exact discrete-Laplace interval ``ñ ± k`` (``P(|noise| <= k) >= confidence``), no sampling term.
``proportion``
    matches ``k`` and non-matches ``m`` (rows with the column present) are disjoint: each gets
    the full ε. ``p = k̃/(k̃ + m̃)``; variance ``p(1-p)/ñ`` (sampling) ``+ σ²(k̃² + m̃²)/ñ⁴``
    (noise, delta method), Wald CI clipped to [0, 1].
``mean``
    :func:`~verification.core.mechanisms.noisy_mean` with the clipping range, centre and split
    chosen on the synthetic release (:mod:`~verification.core.tuning`; without a release: the
    schema's bounds, the midpoint, 20 % count, 60 % centred sum, 20 % centred sum of squares,
    sequential); the clipping bias measured on the release is added back. Variance ``s̃²/ñ +
    noise variance + the correction's sampling variance``, normal CI.
``quantile``
    :func:`~verification.core.mechanisms.noisy_quantile` (on the integer grid for an integer
    column, so tied whole numbers answer in whole numbers): 5 % count, 15 % estimate, 40 % per CI
    endpoint (sequential); the CI is the order-statistic interval widened for the mechanism's rank
    error and released by two more exponential mechanisms.
``difference_in_means``
    the groups are disjoint: each group's ``noisy_mean`` gets the full ε (its own 20/60/20 split);
    variances add; normal CI.
``difference_in_proportions``
    four disjoint cells (group × match): each gets the full ε; variances of the two proportions add.
``correlation``
    rows with both values present; each value is clamped to a public range and scaled into
    ``[-1, 1]``; six sufficient statistics ``n, Σu, Σv, Σu², Σv², Σuv`` (each of sensitivity at
    most 1) share ε sequentially. With a release the ranges, centres, split and (where it helps) a
    tighter bound on each row's ``uv`` are tuned on it (:mod:`~verification.core.tuning`) and the
    clipping bias is added back on Fisher's z; without
    one: the schema's bounds, 10 % count, 15 % each linear sum, 20 % each quadratic sum. Pearson's
    r from the noisy statistics; CI on Fisher's z with variance ``1/(ñ - 3)`` (sampling) plus the
    noise variance of r (delta method) divided by ``(1 - r²)²``, plus the correction's variance.
``odds_ratio``
    four disjoint cells of the 2x2 table: each gets the full ε. Cells are clamped at 0 and, if one
    is below 0.5, all get +0.5 (Haldane–Anscombe). CI on log OR with variance
    ``Σ (1/c + σ²/c²)``: Woolf's sampling variance plus the noise variance (delta method).

If a noisy subgroup size is below ``min_subgroup`` (for two groups: either of them), the answer
is withheld as "insufficient data"; its ε is still spent (withholding is for accuracy only).

Data-caused non-answers (issue 14; see :func:`non_answer`): a 2x2 odds ratio with a noisy margin or
cell that cannot be told apart from empty (:func:`looks_empty`: below ``max(MIN_NOISY_COUNT,
NON_ANSWER_SDS × its noise sd)``), and a correlation whose noisy spread of x or y is not positive or
within ``FLAT_SPREAD_SDS`` noise sd of 0, are answered ``informative: false`` with the cause in
``details["non_answer"]``; decided from the noisy outputs only, never from the real counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clearinghouse.schema import Column, Schema

from .answer import Answer, verdict_for
from .hypothesis import KINDS as KIND_NAMES
from .hypothesis import (
    Filter,
    Hypothesis,
    HypothesisError,
    _category,
    _column,
    _group,
    _keys,
    _level,
    _need_category,
    _need_numeric,
    _number,
    _plain,
    category_schema,
    column_schema,
    group_schema,
    level_schema,
    params_schema,
)
from .kind import REGISTRY, ExactFunction, Kind, KindFunction  # noqa: F401  (KindFunction: re-exported)
from .mechanisms import (
    count_noise_sd,
    discrete_laplace_quantile,
    discrete_laplace_sd,
    noisy_count,
    noisy_mean,
    noisy_quantile,
    noisy_sum,
    normal_quantile,
)
from .tuning import (
    CORRELATION_SPLIT,
    R_MAX,
    MeanSettings,
    correlation_settings,
    mean_settings,
    pearson,
    scaled,
)

__all__ = [
    "CORRELATION_SPLIT",
    "EXACT",
    "KINDS",
    "Kind",
    "FLAT_SPREAD_SDS",
    "MIN_NOISY_COUNT",
    "NON_ANSWER_SDS",
    "Request",
    "TELLING_SHARE",
    "answer",
    "apply_where",
    "hypothesis_columns",
    "level_mask",
    "looks_empty",
    "non_answer",
    "numeric_values",
    "register",
    "rows_for",
    "rows_passing",
    "where_mask",
]



# --- frames -----------------------------------------------------------------------------------


def numeric_values(frame: pd.DataFrame, column: Column) -> np.ndarray:
    """The column as float64, clamped to its public bounds, NaN where missing."""
    values = frame[column.name].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.clip(values, column.min, column.max)


def present_mask(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].notna().to_numpy(dtype=bool)


def level_mask(frame: pd.DataFrame, name: str, value: Any) -> np.ndarray:
    """``frame[name] == value`` as a boolean array; missing values are False."""
    series = frame[name]
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = series.cat.categories
        if value not in categories:
            return np.zeros(len(series), dtype=bool)
        return series.cat.codes.to_numpy() == categories.get_loc(value)
    if pd.api.types.is_numeric_dtype(series.dtype) and not isinstance(value, str):
        return series.to_numpy(dtype=np.float64, na_value=np.nan) == float(value)
    return (series.astype(object) == value).fillna(False).to_numpy(dtype=bool)


def _filter_mask(frame: pd.DataFrame, item: Filter) -> np.ndarray:
    """One filter as a boolean array, the reference path (any dtype): :func:`_fast_filter_mask` must
    agree with it everywhere it answers."""
    if item.op == "in":
        mask = np.zeros(len(frame), dtype=bool)
        for value in item.value:
            mask |= level_mask(frame, item.column, value)
        return mask
    if item.op in ("==", "!="):
        equal = level_mask(frame, item.column, item.value)
        return equal if item.op == "==" else ~equal & present_mask(frame, item.column)
    values = frame[item.column].to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        return {"<": values < item.value, "<=": values <= item.value,
                ">": values > item.value, ">=": values >= item.value}[item.op]


_MASKED_ARRAYS = (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)
_ORDER = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def _fast_filter_mask(series: pd.Series, item: Filter) -> np.ndarray | None:
    """:func:`_filter_mask` on the column's own buffers, without converting or copying the column: a
    categorical's codes against the value's code, a numeric column's values (a nullable column's data
    and its missing mask) against the value as a float (what the reference path compares after its
    float64 copy). None for a column of another kind (object or string values; an order on a
    categorical), which the reference path answers."""
    array = series.array
    if isinstance(series.dtype, pd.CategoricalDtype):
        if item.op not in ("==", "!=", "in"):
            return None
        codes = array.codes
        categories = array.categories
        values = item.value if item.op == "in" else (item.value,)
        # level_mask: a value that is not a category matches no row
        wanted = [categories.get_loc(value) for value in values if value in categories]
        if not wanted:
            equal = np.zeros(len(codes), dtype=bool)
        elif len(wanted) == 1:
            equal = codes == wanted[0]
        else:
            equal = np.isin(codes, wanted)
        return ~equal & (codes >= 0) if item.op == "!=" else equal
    if isinstance(array, _MASKED_ARRAYS):
        data, missing = array._data, array._mask  # the values (arbitrary where missing) and the missing flags
    elif isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiub":
        data, missing = series.to_numpy(), None  # a view: NaN (if any) compares False, as after the copy
    else:
        return None
    if data.dtype.kind not in "fiub":
        return None
    if item.op in ("==", "!=", "in"):
        if any(isinstance(value, str) for value in (item.value if item.op == "in" else (item.value,))):
            return None  # level_mask compares a text value as an object; not on this path
        values = item.value if item.op == "in" else (item.value,)
        equal = data == float(values[0])
        for value in values[1:]:
            equal |= data == float(value)
        if missing is not None:
            equal &= ~missing
        if item.op != "!=":
            return equal
        present = ~missing if missing is not None else (~np.isnan(data) if data.dtype.kind == "f" else True)
        return ~equal & present
    with np.errstate(invalid="ignore"):
        passed = _ORDER[item.op](data, float(item.value))
    return passed & ~missing if missing is not None else passed


def where_mask(frame: pd.DataFrame, where: tuple[Filter, ...]) -> np.ndarray | None:
    """The rows that pass every filter (AND) as a boolean array over ``frame``'s rows, None without
    filters. A missing value fails every comparison, ``!=`` included. Compares the columns' own
    buffers where it can (:func:`_fast_filter_mask`), the same rows as the reference
    :func:`_filter_mask`."""
    mask = None
    for item in where:
        series = frame[item.column]
        part = _fast_filter_mask(series, item)
        if part is None:
            part = _filter_mask(frame, item)
        if mask is None:
            mask = np.asarray(part, dtype=bool)  # a fresh array (a comparison's result), and-ed in place below
        else:
            mask &= part
    return mask


def apply_where(frame: pd.DataFrame, where: tuple[Filter, ...], columns: list[str] | None = None) -> pd.DataFrame:
    """The rows that pass every filter (AND). A missing value fails every comparison, ``!=`` included.
    ``columns`` (optional) keeps only those columns of the filtered rows: the copy of a million rows'
    every column cost more than the count asked of them."""
    mask = where_mask(frame, where)
    if mask is None:
        return frame
    return frame.loc[mask] if columns is None else frame.loc[mask, columns]


def rows_passing(frame: pd.DataFrame, where: tuple[Filter, ...]) -> pd.DataFrame:
    """As many rows as pass ``where``, with no columns (index 0..n-1): what a kind that reads only
    the number of rows (:attr:`Kind.rows_only`, ``count``) gets, instead of a copy of the rows."""
    mask = where_mask(frame, where)
    return pd.DataFrame(index=pd.RangeIndex(len(frame) if mask is None else int(np.count_nonzero(mask))))


def rows_for(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> pd.DataFrame:
    """What a hypothesis's kind reads of ``frame``: the rows passing ``where`` with only the
    :func:`hypothesis_columns`, or for a :attr:`~verification.core.kind.Kind.rows_only` kind (``count``)
    just as many rows and no columns (:func:`rows_passing`: counted, not copied). For ``compute`` on the
    real rows and ``exact`` on a synthetic release alike."""
    if KINDS[hypothesis.kind].rows_only:
        return rows_passing(frame, hypothesis.where)
    return apply_where(frame, hypothesis.where, hypothesis_columns(schema, hypothesis))


def hypothesis_columns(schema: Schema, hypothesis: Hypothesis) -> list[str]:
    """The columns a hypothesis's kind may read, in the schema's order: every column named in its params
    (at any depth; a category that happens to share a column's name only adds that column) and its
    where filter, and the survival pair of a kind that reads it (``needs_survival``)."""
    names: set[str] = {item.column for item in hypothesis.where}

    def visit(value: Any) -> None:
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                visit(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit(hypothesis.params)
    if KINDS[hypothesis.kind].needs_survival and schema.survival is not None:
        names |= {schema.survival.duration, schema.survival.event}
    return [column.name for column in schema.kept if column.name in names]


# --- the request a kind receives -------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """What a kind's function gets: the real rows after ``where`` and everything to answer with."""

    frame: pd.DataFrame
    schema: Schema
    hypothesis: Hypothesis
    rng: np.random.Generator
    min_subgroup: int
    confidence: float
    #: The published synthetic release after ``where`` (public: a mechanism may take its bins
    #: from it at no ε), or None.
    synthetic: pd.DataFrame | None = None

    @property
    def epsilon(self) -> float:
        return self.hypothesis.epsilon

    @property
    def params(self) -> dict[str, Any]:
        return self.hypothesis.params

    @property
    def z(self) -> float:
        return normal_quantile(self.confidence)

    def too_small(self, *noisy_ns: int) -> bool:
        return any(n < self.min_subgroup for n in noisy_ns)

    def withhold(self, noisy_n: int, method: str, split: dict[str, float], details: dict[str, Any]) -> Answer:
        return Answer(
            kind=self.hypothesis.kind, estimate=None, ci_low=None, ci_high=None, confidence=self.confidence,
            noisy_n=int(noisy_n), method=method, epsilon=self.epsilon, epsilon_split=split, withheld=True,
            reason=f"insufficient data: the noisy subgroup size is below the minimum of {self.min_subgroup}",
            details=details,
        )

    def release(self, estimate: float | None, ci_low: float | None, ci_high: float | None, noisy_n: int,
                method: str, split: dict[str, float], details: dict[str, Any], reason: str = "") -> Answer:
        return Answer(
            kind=self.hypothesis.kind, estimate=estimate, ci_low=ci_low, ci_high=ci_high, confidence=self.confidence,
            noisy_n=int(noisy_n), method=method, epsilon=self.epsilon, epsilon_split=split, reason=reason,
            details=details,
        )


#: kind name -> its :class:`~verification.core.kind.Kind` (the registry; filled by :func:`register`).
KINDS: dict[str, Kind] = REGISTRY
#: kind name -> its ``exact`` function (a view kept by :func:`register`, for callers that only need
#: the noiseless statistic on an already filtered frame).
EXACT: dict[str, ExactFunction] = {}


def register(kind: Kind) -> None:
    """Add (or replace) a kind: one :class:`Kind` with its params parser, DP ``compute`` (gets a
    :class:`Request`, returns an :class:`Answer` without verdict) and noiseless ``exact``."""
    if not isinstance(kind, Kind):
        raise TypeError("register takes a verification.core.kind.Kind")
    if kind.name not in KIND_NAMES:
        raise ValueError(f"{kind.name!r} is not a hypothesis kind; add it to verification.core.hypothesis first")
    KINDS[kind.name] = kind
    EXACT[kind.name] = kind.exact


def answer(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis, *, rng: np.random.Generator,
           min_subgroup: int = 10, synthetic: pd.DataFrame | None = None, confidence: float = 0.95) -> Answer:
    """The ε-DP answer to ``hypothesis`` on the real ``frame``; ``hypothesis.epsilon`` is what it costs.

    ``synthetic`` (optional) is the release the hypothesis came from: the same statistic is computed
    on it exactly (no noise; it is synthetic) as ``synthetic_estimate``.
    """
    if hypothesis.kind not in KINDS:
        raise NotImplementedError(
            f"kind {hypothesis.kind!r} is parsed but its DP computation is not registered yet; the survival and "
            "regression kinds are added to verification.core.kinds.KINDS by their own module"
        )
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    if isinstance(min_subgroup, bool) or not isinstance(min_subgroup, (int, np.integer)) or min_subgroup < 1:
        raise ValueError("min_subgroup must be a positive integer")
    public = None if synthetic is None else rows_for(synthetic, schema, hypothesis)
    request = Request(frame=rows_for(frame, schema, hypothesis), schema=schema, hypothesis=hypothesis,
                      rng=rng, min_subgroup=int(min_subgroup), confidence=float(confidence), synthetic=public)
    result = KINDS[hypothesis.kind].compute(request)
    result.epsilon = hypothesis.epsilon
    result.confidence = float(confidence)
    if synthetic is not None:
        try:
            estimate = EXACT[hypothesis.kind](public, schema, hypothesis)
        except (ArithmeticError, ValueError, np.linalg.LinAlgError):
            # the synthetic side is a courtesy (a fit that cannot converge on the release): the DP answer stands
            estimate = None
        result.synthetic_estimate = None if estimate is None or not math.isfinite(estimate) else float(estimate)
    if result.withheld:
        result.verdict = None
    elif not result.informative:
        result.verdict = "inconclusive"  # paid for, shown, but never a finding
    else:
        result.verdict = verdict_for(result.ci_low, result.ci_high, hypothesis.claim)
    return result


# --- shared pieces -----------------------------------------------------------------------------

#: The widest log-scale CI a ratio answer shows (a ratio of e^±30 ≈ 1e±13): past it nothing is learnt, and
#: exp would overflow. A public constant, like the fits' bounds.
LOG_CI_CAP = 30.0

# Data-caused non-answers (issue 14): a hypothesis the data cannot answer (no events in a group, an exposure
# that is constant within the filter, a constant outcome, an empty cell of a 2x2 table, a variable without
# spread) is answered paid for, with ``informative: false``, a reason naming the cause, and the cause's code
# in ``details["non_answer"]``; the verdict is then inconclusive. Its estimate and CI are the values the
# mechanism released (paid for: shown as they are), or None where it released none.
#
# PRIVACY: the decision is taken ONLY from the mechanism's noisy outputs (noisy counts and event totals,
# noisy sufficient statistics) and public constants, never from an exact statistic of the real rows (no
# ``if real_events == 0``): the flag and its reason are then post-processing of what was released, and cost
# no ε. Branching on an exact count would leak it through the presence of the flag.

#: A noisy count (rows at an exposure level, events in a group, a cell of a 2x2 table) below
#: ``max(MIN_NOISY_COUNT, NON_ANSWER_SDS × its noise sd)`` cannot be told apart from an empty one: the
#: answer built on it is a non-answer. Public constants: with no real rows behind it, a noisy total
#: passes the bar with probability about 2-4 % (its noise is ~Laplace); a real group with ~5 noise sds of
#: events never trips it.
MIN_NOISY_COUNT = 1.0
NON_ANSWER_SDS = 2.0
#: A correlation's variable "has no spread" when its noisy spread ``n·Σu² - (Σu)²`` is not positive, or
#: below FLAT_SPREAD_SDS of its (delta-method) noise sd. Lower than NON_ANSWER_SDS on purpose: at ε = 1 on
#: GBSG2 the spread of tsize on its tuned range is only ~2 noise sds, so a bar of 2 sds made 38 % of the good
#: age-tsize answers non-answers (0.5 sds: 4 %, 1 % for pnodes-tsize), while a constant age is caught in ~3/4
#: of the draws at ε = 1 (the rest come back as an r near 0 with its CI).
FLAT_SPREAD_SDS = 0.5


#: A count is only tested when its bar is at most TELLING_SHARE of the noisy rows it is about (the noisy size
#: for a level's rows or an outcome's total, a level's noisy rows for its events): where the noise is too large
#: for the bar to tell an empty group from a populated one (a small subgroup at a small ε), nothing is claimed
#: and the older rules (noise dominance, bounds) speak. (Not the release's expected share: a release faithful
#: to a cohort without events in a group expects none there, and the check would never run.) At the gate's
#: edge a group holding 37 % of those rows (GBSG2's events per patient) trips the bar ~2 % of the time, half of
#: them ~0.3 %; a small level (20 % of the rows) up to ~5 % (measured: 2 of 30 for horTh=yes among the 290
#: premenopausal patients at ε = 0.5 without a release).
TELLING_SHARE = 1.0 / 6.0


def looks_empty(noisy: float, noise_sd: float, rows: float | None = None) -> bool:
    """Whether a noisy count (or noisy total of counts with noise sd ``noise_sd``) cannot be told
    apart from zero (see :data:`NON_ANSWER_SDS`); with ``rows`` (the noisy rows the count is about),
    only where the bar is at most :data:`TELLING_SHARE` of them. Reads DP outputs and public constants
    only."""
    bar = max(MIN_NOISY_COUNT, NON_ANSWER_SDS * float(noise_sd))
    if rows is not None and bar > TELLING_SHARE * float(rows):
        return False
    return float(noisy) < bar


def non_answer(result: Answer, cause: str, reason: str) -> Answer:
    """Mark ``result`` a data-caused non-answer: uninformative (so its verdict is inconclusive), ``reason``
    in plain words, ``cause`` a short code in ``details["non_answer"]``; ε stays charged. ``reason`` must
    be written from noisy outputs only (see the comment above :data:`MIN_NOISY_COUNT`)."""
    result.informative = False
    result.reason = reason
    result.details["non_answer"] = cause
    return result


def noisy_figure(noisy: float, noise_sd: float) -> str:
    """A noisy count as a reason quotes it: the released value and its noise sd."""
    return f"noisy count {float(noisy):.3g}, noise sd {float(noise_sd):.2g}"


def ratio_release(req: Request, log_estimate: float, half: float, noisy_n: int, method: str,
                  split: dict[str, float], details: dict[str, Any], *, ratio: str) -> Answer:
    """The answer of a ratio estimated on the log scale, ``exp(log_estimate ± half)``. Bounds past
    ±:data:`LOG_CI_CAP` (or not finite: no information left after the noise) are set at the cap and the
    answer is marked uninformative, so its verdict is never a finding."""
    low, high = log_estimate - half, log_estimate + half
    capped = not (-LOG_CI_CAP < low <= high < LOG_CI_CAP)
    low = low if low > -LOG_CI_CAP else -LOG_CI_CAP
    high = high if high < LOG_CI_CAP else LOG_CI_CAP
    estimate = min(max(log_estimate, low), high) if math.isfinite(log_estimate) else 0.0
    result = req.release(math.exp(estimate), math.exp(low), math.exp(high), noisy_n, method, split, details)
    if capped:
        result.informative = False
        result.reason = (f"the {ratio}'s CI reaches the public cap e^±{LOG_CI_CAP:g} on the log scale: the noise "
                         "leaves nothing to estimate at this ε; spend more ε, or ask on more patients")
    return result



def _normal_ci(estimate: float, variance: float, z: float) -> tuple[float, float]:
    half = z * math.sqrt(max(variance, 0.0))
    return estimate - half, estimate + half


def _values(frame: pd.DataFrame, column: Column) -> np.ndarray:
    values = numeric_values(frame, column)
    return values[~np.isnan(values)]


def _public(frame: pd.DataFrame | None, column: Column) -> np.ndarray | None:
    """The column's values on the synthetic release (public), or None without one."""
    return None if frame is None else _values(frame, column)


def _noisy_proportion(k: int, m: int, epsilon: float, rng: np.random.Generator) -> dict[str, float]:
    """``k`` matches and ``m`` non-matches (disjoint rows): each gets a noisy count at full ε."""
    k_noisy, m_noisy = noisy_count(k, epsilon, rng), noisy_count(m, epsilon, rng)
    kc, mc = max(k_noisy, 0), max(m_noisy, 0)
    n = kc + mc
    noise_var = discrete_laplace_sd(1.0 / epsilon) ** 2
    if n == 0:
        return {"noisy_n": k_noisy + m_noisy, "p": math.nan, "sampling_var": math.nan, "noise_var": math.nan,
                "k": k_noisy, "m": m_noisy}
    p = kc / n
    return {"noisy_n": k_noisy + m_noisy, "p": p, "sampling_var": p * (1 - p) / n,
            "noise_var": noise_var * (kc * kc + mc * mc) / n**4, "k": k_noisy, "m": m_noisy}


def _parallel(note: str) -> dict[str, str]:
    return {"composition": f"parallel: {note} are disjoint rows, so each part uses the full ε"}


SEQUENTIAL = {"composition": "sequential: the parts' ε add up to the hypothesis's ε"}


# --- count ---------------------------------------------------------------------------------------


def _count(req: Request) -> Answer:
    method = "discrete Laplace (two-sided geometric) count, sensitivity 1"
    split = {"count": req.epsilon}
    noisy = noisy_count(len(req.frame), req.epsilon, req.rng)
    details = dict(SEQUENTIAL, noise_sd=count_noise_sd(req.epsilon))
    if req.too_small(noisy):
        return req.withhold(noisy, method, split, details)
    k = discrete_laplace_quantile(1.0 / req.epsilon, req.confidence)
    details["ci"] = "exact discrete-Laplace interval around the noisy count (the estimand is the cohort's count)"
    return req.release(float(noisy), float(max(noisy - k, 0)), float(noisy + k), noisy, method, split, details)


def _exact_count(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float:
    return float(len(frame))


def _params_count(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ())
    return {}


register(Kind(
    name="count",
    parse_params=_params_count,
    compute=_count,
    exact=_exact_count,
    description=("No params. Estimate: the number of rows that pass the where filter (a discrete-Laplace count)."),
    example_params={},
    params_schema=params_schema({}, description="no params"),
    rows_only=True,
))


# --- proportion ----------------------------------------------------------------------------------


def _proportion_counts(frame: pd.DataFrame, name: str, value: Any) -> tuple[int, int]:
    present = present_mask(frame, name)
    match = level_mask(frame, name, value)
    k = int(match.sum())
    return k, int(present.sum()) - k


def _proportion(req: Request) -> Answer:
    method = "proportion from two discrete-Laplace counts (matches, non-matches), Wald CI with noise variance"
    split = {"matches": req.epsilon, "non_matches": req.epsilon}
    k, m = _proportion_counts(req.frame, req.params["column"], req.params["value"])
    part = _noisy_proportion(k, m, req.epsilon, req.rng)
    details = dict(_parallel("matches and non-matches"), noisy_matches=part["k"], noisy_non_matches=part["m"])
    if req.too_small(part["noisy_n"]) or not math.isfinite(part["p"]):
        return req.withhold(part["noisy_n"], method, split, details)
    details.update(sampling_sd=math.sqrt(part["sampling_var"]), noise_sd=math.sqrt(part["noise_var"]))
    low, high = _normal_ci(part["p"], part["sampling_var"] + part["noise_var"], req.z)
    return req.release(part["p"], max(low, 0.0), min(high, 1.0), part["noisy_n"], method, split, details)


def _exact_proportion(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    k, m = _proportion_counts(frame, hypothesis.params["column"], hypothesis.params["value"])
    return k / (k + m) if k + m else None


def _params_proportion(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("column", "value"))
    column = _need_category(_column(schema, p["column"], "params.column"), "params.column")
    return {"column": column.name, "value": _category(column, p["value"], "params.value", "bad_param")}


register(Kind(
    name="proportion",
    parse_params=_params_proportion,
    compute=_proportion,
    exact=_exact_proportion,
    description=("params: column (categorical or event) and value (one of its categories; 0/1 for an event). "
                 "Estimate: the share of rows with the column present whose value equals value."),
    example_params={"column": "horTh", "value": "yes"},
    params_schema=params_schema({"column": column_schema("a categorical or event column"),
                                 "value": category_schema("the category whose share is estimated")},
                                ("column", "value")),
))


# --- mean ------------------------------------------------------------------------------------------


MEAN_METHOD = ("mean from an integer-scaled geometric sum and a discrete-Laplace count of values clamped to a "
               "public range (the schema's bounds, narrowed to where the synthetic release puts its values, with "
               "the clipping bias measured on the release added back); CI = noisy sample variance / n + noise "
               "variance")


def _tuned_mean(values: np.ndarray, public: np.ndarray | None, column: Column, req: Request):
    """One DP mean with the settings tuned on the release's ``public`` values: the release, its
    settings, and the estimate with the clipping bias added back (within the schema's bounds)."""
    settings: MeanSettings = mean_settings(public, column.min, column.max, req.epsilon, req.min_subgroup)
    release = noisy_mean(values, settings.lo, settings.hi, req.epsilon, req.rng, split=settings.split,
                         center=settings.center)
    return release, settings, min(max(release.estimate + settings.bias, column.min), column.max)


def _mean(req: Request) -> Answer:
    column = req.schema[req.params["column"]]
    release, settings, estimate = _tuned_mean(_values(req.frame, column), _public(req.synthetic, column), column, req)
    split = dict(release.epsilon_split)
    details = dict(SEQUENTIAL, **settings.details())
    if req.too_small(release.noisy_n):
        return req.withhold(release.noisy_n, MEAN_METHOD, split, details)
    details.update(sampling_sd=math.sqrt(release.sampling_variance), noise_sd=math.sqrt(release.noise_variance),
                   noisy_sd=math.sqrt(release.variance))
    low, high = _normal_ci(estimate, release.total_variance + settings.bias_variance, req.z)
    return req.release(estimate, low, high, release.noisy_n, MEAN_METHOD, split, details)


def _exact_mean(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    values = _values(frame, schema[hypothesis.params["column"]])
    return float(values.mean()) if len(values) else None


def _params_mean(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("column",))
    return {"column": _need_numeric(_column(schema, p["column"], "params.column"), "params.column").name}


register(Kind(
    name="mean",
    parse_params=_params_mean,
    compute=_mean,
    exact=_exact_mean,
    description=("params: column (numeric). Estimate: the mean of the column, values clamped to its public bounds."),
    example_params={"column": "age"},
    params_schema=params_schema({"column": column_schema("a numeric column")}, ("column",)),
))


# --- quantile ----------------------------------------------------------------------------------


def _quantile(req: Request) -> Answer:
    method = ("exponential mechanism (Smith 2011) over the public grid points of the clamped range, Gumbel-max; "
              "CI endpoints by two more exponential mechanisms at the order-statistic ranks widened for their noise")
    column = req.schema[req.params["column"]]
    q = float(req.params["q"])
    grid = 1.0 if column.type == "integer" else None  # public: whole numbers answer in whole numbers
    release = noisy_quantile(_values(req.frame, column), column.min, column.max, q, req.epsilon, req.rng,
                             confidence=req.confidence, grid=grid)
    split = dict(release.epsilon_split)
    details = dict(SEQUENTIAL, rank_halfwidth=release.rank_halfwidth, grid="integers" if grid else "default")
    if req.too_small(release.noisy_n):
        return req.withhold(release.noisy_n, method, split, details)
    return req.release(release.estimate, release.ci_low, release.ci_high, release.noisy_n, method, split, details)


def _exact_quantile(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    values = _values(frame, schema[hypothesis.params["column"]])
    return float(np.quantile(values, float(hypothesis.params["q"]))) if len(values) else None


def _params_quantile(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("column",), ("q",))
    column = _need_numeric(_column(schema, p["column"], "params.column"), "params.column")
    q = _number(p.get("q", 0.5), "params.q", "bad_param")
    if not 0 < q < 1:
        raise HypothesisError("bad_param", f"params.q: must lie strictly between 0 and 1, not {p.get('q')!r}")
    return {"column": column.name, "q": _plain(q)}


register(Kind(
    name="quantile",
    parse_params=_params_quantile,
    compute=_quantile,
    exact=_exact_quantile,
    description=("params: column (numeric) and q in (0, 1), default 0.5. Estimate: the q-quantile of the column "
                 "(exponential mechanism over the public range)."),
    example_params={"column": "tsize", "q": 0.5},
    params_schema=params_schema({"column": column_schema("a numeric column"),
                                 "q": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.5,
                                       "description": "the quantile's level, strictly between 0 and 1"}},
                                ("column",)),
))


# --- differences between two groups ---------------------------------------------------------------


def _groups(frame: pd.DataFrame, group: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    return (frame.loc[level_mask(frame, group["column"], group["a"])],
            frame.loc[level_mask(frame, group["column"], group["b"])])


def _difference_in_means(req: Request) -> Answer:
    method = "difference of two DP means (each: " + MEAN_METHOD + ")"
    column = req.schema[req.params["column"]]
    frame_a, frame_b = _groups(req.frame, req.params["group"])
    public_a, public_b = (None, None) if req.synthetic is None else _groups(req.synthetic, req.params["group"])
    a, settings_a, estimate_a = _tuned_mean(_values(frame_a, column), _public(public_a, column), column, req)
    b, settings_b, estimate_b = _tuned_mean(_values(frame_b, column), _public(public_b, column), column, req)
    split = {f"a.{part}": eps for part, eps in a.epsilon_split.items()}
    split.update({f"b.{part}": eps for part, eps in b.epsilon_split.items()})
    details = dict(_parallel("groups a and b"), noisy_n_a=a.noisy_n, noisy_n_b=b.noisy_n,
                   **{f"a.{k}": v for k, v in settings_a.details().items()},
                   **{f"b.{k}": v for k, v in settings_b.details().items()})
    if req.too_small(a.noisy_n, b.noisy_n):
        return req.withhold(a.noisy_n + b.noisy_n, method, split, details)
    estimate = estimate_a - estimate_b
    details.update(estimate_a=estimate_a, estimate_b=estimate_b,
                   sampling_sd=math.sqrt(a.sampling_variance + b.sampling_variance),
                   noise_sd=math.sqrt(a.noise_variance + b.noise_variance))
    variance = a.total_variance + b.total_variance + settings_a.bias_variance + settings_b.bias_variance
    low, high = _normal_ci(estimate, variance, req.z)
    return req.release(estimate, low, high, a.noisy_n + b.noisy_n, method, split, details)


def _exact_difference_in_means(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    column = schema[hypothesis.params["column"]]
    frame_a, frame_b = _groups(frame, hypothesis.params["group"])
    a, b = _values(frame_a, column), _values(frame_b, column)
    return float(a.mean() - b.mean()) if len(a) and len(b) else None


def _params_difference_in_means(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("column", "group"))
    column = _need_numeric(_column(schema, p["column"], "params.column"), "params.column")
    return {"column": column.name, "group": _group(p["group"], schema, "params.group")}


register(Kind(
    name="difference_in_means",
    parse_params=_params_difference_in_means,
    compute=_difference_in_means,
    exact=_exact_difference_in_means,
    description=("params: column (numeric) and group {column, a, b} (two categories of a categorical or event "
                 "column). Estimate: mean in group a minus mean in group b."),
    example_params={"column": "age", "group": {"column": "horTh", "a": "yes", "b": "no"}},
    params_schema=params_schema({"column": column_schema("a numeric column"),
                                 "group": group_schema("the two groups compared: mean in a minus mean in b")},
                                ("column", "group")),
))


def _difference_in_proportions(req: Request) -> Answer:
    method = "difference of two proportions from four discrete-Laplace cell counts, Wald CI with noise variance"
    name, value = req.params["column"], req.params["value"]
    frame_a, frame_b = _groups(req.frame, req.params["group"])
    a = _noisy_proportion(*_proportion_counts(frame_a, name, value), req.epsilon, req.rng)
    b = _noisy_proportion(*_proportion_counts(frame_b, name, value), req.epsilon, req.rng)
    split = {"a.matches": req.epsilon, "a.non_matches": req.epsilon,
             "b.matches": req.epsilon, "b.non_matches": req.epsilon}
    details = dict(_parallel("the four cells (group x match)"), noisy_n_a=a["noisy_n"], noisy_n_b=b["noisy_n"])
    if req.too_small(a["noisy_n"], b["noisy_n"]) or not (math.isfinite(a["p"]) and math.isfinite(b["p"])):
        return req.withhold(a["noisy_n"] + b["noisy_n"], method, split, details)
    estimate = a["p"] - b["p"]
    sampling, noise = a["sampling_var"] + b["sampling_var"], a["noise_var"] + b["noise_var"]
    details.update(estimate_a=a["p"], estimate_b=b["p"], sampling_sd=math.sqrt(sampling), noise_sd=math.sqrt(noise))
    low, high = _normal_ci(estimate, sampling + noise, req.z)
    return req.release(estimate, max(low, -1.0), min(high, 1.0), a["noisy_n"] + b["noisy_n"], method, split, details)


def _exact_difference_in_proportions(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    name, value = hypothesis.params["column"], hypothesis.params["value"]
    frame_a, frame_b = _groups(frame, hypothesis.params["group"])
    (ka, ma), (kb, mb) = _proportion_counts(frame_a, name, value), _proportion_counts(frame_b, name, value)
    return ka / (ka + ma) - kb / (kb + mb) if ka + ma and kb + mb else None


def _params_difference_in_proportions(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("column", "value", "group"))
    column = _need_category(_column(schema, p["column"], "params.column"), "params.column")
    value = _category(column, p["value"], "params.value", "bad_param")
    group = _group(p["group"], schema, "params.group")
    if group["column"] == column.name:
        raise HypothesisError("bad_param", "params.group.column: must differ from params.column")
    return {"column": column.name, "value": value, "group": group}


register(Kind(
    name="difference_in_proportions",
    parse_params=_params_difference_in_proportions,
    compute=_difference_in_proportions,
    exact=_exact_difference_in_proportions,
    description=("params: column and value (a category), group {column, a, b} on another column. Estimate: the "
                 "proportion of value in group a minus that in group b."),
    example_params={"column": "cens", "value": 1, "group": {"column": "horTh", "a": "yes", "b": "no"}},
    params_schema=params_schema({"column": column_schema("a categorical or event column"),
                                 "value": category_schema("the category whose share is compared"),
                                 "group": group_schema("the two groups compared, on another column than column")},
                                ("column", "value", "group")),
))


# --- correlation -------------------------------------------------------------------------------------


def _pairs(frame: pd.DataFrame, schema: Schema, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The complete pairs (x, y), unclamped."""
    x, y = numeric_values(frame, schema[params["x"]]), numeric_values(frame, schema[params["y"]])
    keep = ~(np.isnan(x) | np.isnan(y))
    return x[keep], y[keep]


CORRELATION_METHOD = (
    "Pearson r from six noisy sufficient statistics (discrete-Laplace count, integer-scaled geometric sums) of the "
    "values clamped to public ranges and scaled into [-1, 1] (the schema's bounds, narrowed to where the synthetic "
    "release puts its values, each row's product uv clamped to a bound read off the release where that helps; the ε "
    "split minimises the noise predicted on the release; the clipping bias measured "
    "on the release is added back on Fisher's z); Fisher-z CI with sampling and noise variance")


def _correlation(req: Request) -> Answer:
    x_col, y_col = req.schema[req.params["x"]], req.schema[req.params["y"]]
    public = (None, None) if req.synthetic is None else _pairs(req.synthetic, req.schema, req.params)
    settings = correlation_settings(*public, (x_col.min, x_col.max), (y_col.min, y_col.max), req.epsilon,
                                    req.min_subgroup)
    x, y = _pairs(req.frame, req.schema, req.params)
    u, v = scaled(x, settings.x), scaled(y, settings.y)
    eps = {part: share * req.epsilon for part, share in settings.split.items()}
    noisy_n = noisy_count(len(u), eps["count"], req.rng)
    bounds = settings.bounds()
    sums = {}
    for part, values in (("sum_x", u), ("sum_y", v), ("sum_xx", u * u), ("sum_yy", v * v), ("sum_xy", u * v)):
        sums[part] = noisy_sum(values, *bounds[part], eps[part], req.rng)
    details = dict(SEQUENTIAL, **settings.details())
    if req.too_small(noisy_n) or noisy_n <= 3:
        return req.withhold(noisy_n, CORRELATION_METHOD, eps, details)
    parts = ("sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")
    stats = [float(noisy_n)] + [sums[p][0] for p in parts]
    sds = np.array([count_noise_sd(eps["count"])] + [sums[p][1] for p in parts])
    r, gradient = pearson(*stats)
    if r is None:
        result = req.release(None, -1.0, 1.0, noisy_n, CORRELATION_METHOD, eps, details)
        return non_answer(result, "no_spread",
                          "the noisy variance of x or y is not positive: the column is constant within the filter, "
                          "or the noise swamps its spread; r is not defined (spend more ε, or ask on more patients)")
    flat = _flat_variable(req, stats, sds)
    r = min(max(r, -R_MAX), R_MAX)
    noise_var = float(np.sum((gradient * sds) ** 2))
    sampling_var_z = 1.0 / (noisy_n - 3)
    noise_var_z = noise_var / (1 - r * r) ** 2
    half = req.z * math.sqrt(sampling_var_z + noise_var_z + settings.bias_variance_z)
    z = math.atanh(r) + settings.bias_z
    details.update(sampling_sd_z=math.sqrt(sampling_var_z), noise_sd_z=math.sqrt(noise_var_z), noise_sd_r=math.sqrt(noise_var))
    result = req.release(math.tanh(z), math.tanh(z - half), math.tanh(z + half), noisy_n, CORRELATION_METHOD, eps,
                         details)
    return result if flat is None else non_answer(result, "no_spread", flat)


def _flat_variable(req: Request, stats: list[float], sds: np.ndarray) -> str | None:
    """The reason why r is not defined when a variable's noisy spread ``n·Σu² - (Σu)²`` (from the noisy
    statistics only) is below :data:`FLAT_SPREAD_SDS` of its delta-method noise sd, else None."""
    n, su, sv, suu, svv, _suv = stats
    for name, spread, gradient in ((req.params["x"], n * suu - su * su, np.array([suu, -2 * su, 0.0, n, 0.0, 0.0])),
                                   (req.params["y"], n * svv - sv * sv, np.array([svv, 0.0, -2 * sv, 0.0, n, 0.0]))):
        sd = float(np.sqrt(np.sum((gradient * sds) ** 2)))
        if spread < FLAT_SPREAD_SDS * sd:
            return (f"{name} has no spread above the noise: its noisy spread n·Σu² - (Σu)² = {spread:.3g} is within "
                    f"{FLAT_SPREAD_SDS:g} noise sd ({sd:.2g}) of 0 (the column is constant within the filter, or the "
                    "noise swamps its spread), so r is not defined")
    return None


def _exact_correlation(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    x_col, y_col = schema[hypothesis.params["x"]], schema[hypothesis.params["y"]]
    x, y = _pairs(frame, schema, hypothesis.params)
    u, v = np.clip(x, x_col.min, x_col.max), np.clip(y, y_col.min, y_col.max)
    if len(u) < 2 or u.std() == 0 or v.std() == 0:
        return None
    return float(np.corrcoef(u, v)[0, 1])


def _params_correlation(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("x", "y"))
    x = _need_numeric(_column(schema, p["x"], "params.x"), "params.x").name
    y = _need_numeric(_column(schema, p["y"], "params.y"), "params.y").name
    if x == y:
        raise HypothesisError("bad_param", "params: x and y must be different columns")
    x, y = sorted((x, y))  # Pearson's r is symmetric
    return {"x": x, "y": y}


register(Kind(
    name="correlation",
    parse_params=_params_correlation,
    compute=_correlation,
    exact=_exact_correlation,
    description=("params: x and y (two different numeric columns). Estimate: Pearson's r of the pairs with both "
                 "values present (values clamped to the public bounds)."),
    example_params={"x": "age", "y": "tsize"},
    params_schema=params_schema({"x": column_schema("a numeric column"),
                                 "y": column_schema("another numeric column")}, ("x", "y")),
))


# --- odds ratio of a 2x2 table ----------------------------------------------------------------------


def _cells(frame: pd.DataFrame, params: dict[str, Any]) -> dict[str, int]:
    a, b = params["a"], params["b"]
    both = present_mask(frame, a["column"]) & present_mask(frame, b["column"])
    in_a = level_mask(frame, a["column"], a["value"]) & both
    in_b = level_mask(frame, b["column"], b["value"]) & both
    return {"a1_b1": int((in_a & in_b).sum()), "a1_b0": int((in_a & ~in_b & both).sum()),
            "a0_b1": int((~in_a & in_b & both).sum()), "a0_b0": int((~in_a & ~in_b & both).sum())}


def _corrected(cells: dict[str, float]) -> dict[str, float]:
    """Clamp at 0; if any cell is below 0.5, add 0.5 to all (Haldane–Anscombe)."""
    clamped = {k: max(float(c), 0.0) for k, c in cells.items()}
    if min(clamped.values()) < 0.5:
        clamped = {k: c + 0.5 for k, c in clamped.items()}
    return clamped


def _odds(cells: dict[str, float]) -> float:
    return (cells["a1_b1"] * cells["a0_b0"]) / (cells["a1_b0"] * cells["a0_b1"])


def _odds_ratio(req: Request) -> Answer:
    method = ("2x2 odds ratio from four discrete-Laplace cell counts (Haldane–Anscombe +0.5 if a cell is empty); "
              "log-OR CI with Woolf's sampling variance plus the noise variance")
    noisy = {cell: noisy_count(n, req.epsilon, req.rng) for cell, n in _cells(req.frame, req.params).items()}
    split = {f"cell.{cell}": req.epsilon for cell in noisy}
    noisy_n = sum(noisy.values())
    details = dict(_parallel("the four cells of the 2x2 table"), noisy_cells=dict(noisy))
    if req.too_small(noisy_n):
        return req.withhold(noisy_n, method, split, details)
    empty = _empty_table_part(noisy, req.params, count_noise_sd(req.epsilon))
    cells = _corrected(noisy)
    sigma2 = discrete_laplace_sd(1.0 / req.epsilon) ** 2
    sampling = sum(1.0 / c for c in cells.values())
    noise = sum(sigma2 / c**2 for c in cells.values())
    log_or = math.log(_odds(cells))
    half = req.z * math.sqrt(sampling + noise)
    details.update(sampling_sd_log=math.sqrt(sampling), noise_sd_log=math.sqrt(noise))
    result = ratio_release(req, log_or, half, noisy_n, method, split, details, ratio="odds ratio")
    return result if empty is None else non_answer(result, *empty)


def _label(level: dict[str, Any], match: bool) -> str:
    return f"{level['column']}={level['value']}" if match else f"{level['column']}≠{level['value']}"


def _empty_table_part(noisy: dict[str, int], params: dict[str, Any], sd: float) -> tuple[str, str] | None:
    """(cause, reason) when a margin or a cell of the noisy 2x2 table cannot be told apart from empty
    (:func:`looks_empty`; noisy counts only), else None. An empty margin: that variable is constant within
    the filter, the OR is 0/0. An empty cell: the OR is 0 or infinite; the +0.5 correction's value is shown."""
    a, b = params["a"], params["b"]
    size = float(sum(noisy.values()))
    margins = {(_label(a, True), "a"): noisy["a1_b1"] + noisy["a1_b0"], (_label(a, False), "a"): noisy["a0_b1"] + noisy["a0_b0"],
               (_label(b, True), "b"): noisy["a1_b1"] + noisy["a0_b1"], (_label(b, False), "b"): noisy["a1_b0"] + noisy["a0_b0"]}
    for (label, side), count in margins.items():
        if looks_empty(count, math.sqrt(2.0) * sd, size):
            return "constant_margin", (
                f"{params[side]['column']} is (nearly) constant within the filter: no rows with {label} in the noisy "
                f"table ({noisy_figure(count, math.sqrt(2.0) * sd)}); the odds ratio is not defined")
    for cell, count in noisy.items():
        if looks_empty(count, sd, size):
            rows = f"{_label(a, cell[1] == '1')} and {_label(b, cell[4] == '1')}"
            return "empty_cell", (
                f"too few rows with {rows} in the noisy table ({noisy_figure(count, sd)}): the odds ratio is 0 or "
                "infinite, it cannot be estimated (the value shown carries the +0.5 correction)")
    return None


def _exact_odds_ratio(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    cells = _cells(frame, hypothesis.params)
    return _odds(_corrected(cells)) if sum(cells.values()) else None


def _params_odds_ratio(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("a", "b"))
    a = _level(p["a"], schema, "params.a")
    b = _level(p["b"], schema, "params.b")
    if a["column"] == b["column"]:
        raise HypothesisError("bad_param", "params: a and b must use different columns")
    a, b = sorted((a, b), key=lambda level: level["column"])  # the 2x2 odds ratio is symmetric
    return {"a": a, "b": b}


register(Kind(
    name="odds_ratio",
    parse_params=_params_odds_ratio,
    compute=_odds_ratio,
    exact=_exact_odds_ratio,
    description=("params: a and b, each {column, value} (a category of a categorical or event column; an event "
                 "defaults to 1), on different columns. Estimate: the odds ratio of the 2x2 table a x b."),
    example_params={"a": {"column": "horTh", "value": "yes"}, "b": {"column": "cens", "value": 1}},
    params_schema=params_schema({"a": level_schema("the table's first margin: rows with column == value"),
                                 "b": level_schema("the second margin, on another column than a")}, ("a", "b")),
    ratio=True,
))

