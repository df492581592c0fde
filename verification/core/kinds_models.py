"""The regression kinds, ``logistic_odds_ratio`` and ``hazard_ratio``. Pure: no Django.

Each answer goes through one of three mechanisms, chosen from public facts only (the schema's
column types, the hypothesis, whether a synthetic release is at hand):

1. every covariate categorical (the exposure ``column == value``, adjusters categorical or event
   columns): a **noisy cell table** (:mod:`.tables`): on GBSG2 at ε = 1 the horTh HR's CI is
   1.15x lifelines' and the OR's 1.01x statsmodels';
2. a numeric covariate (a per-unit exposure, a numeric adjuster) and a synthetic release of at
   least :data:`MIN_SYNTHETIC_ROWS` complete cases: **DP Newton steps** from the release's fit
   (:mod:`.newton`): the age HR's CI is 1.8x lifelines';
3. otherwise, or a table of more than :data:`~verification.core.tables.MAX_CELLS` cells:
   **sample-and-aggregate** (Nissim, Raskhodnikova & Smith 2007; Smith 2011), below and in
   :mod:`.aggregate`, whose batched Newton fits are :mod:`clearinghouse.fitting`'s.

This module builds the designs, routes, wraps each mechanism's fit into an answer and gives the
exact statistics. A data-caused non-answer (an exposure level without rows, no events, a constant
outcome, a level without events) is read off the released table's noisy totals per exposure level, or
off the DP Newton's noisy size released per exposure side × outcome (:func:`_empty_level`; the
thresholds are :data:`~verification.core.kinds.MIN_NOISY_COUNT` and
:data:`~verification.core.kinds.NON_ANSWER_SDS`), never off the real counts. The rest of this docstring is about sample-and-aggregate.

Blocks and fits
---------------
Design: numeric columns (the exposure too) are clamped to their public bounds and scaled to
``u = (x - mid) / (R/4)`` (``R`` the public range, so ``u ∈ [-2, 2]``); categorical covariates
become 0/1 dummies for every declared category but the first (the reference); an event column is
its 0/1 indicator; a categorical exposure is the indicator of ``column == value`` against all
other levels. For a **numeric exposure the clamp applies to the log-ratio per quarter of the
public range** (``±3`` per ``R/4``, i.e. ``±12/R`` per unit) and the answer is converted back to
per unit (``exp(β_u · 4/R)``), so the clamp is as wide for "age" (``R = 82`` years) as for a
binary exposure. Everything here is public (schema and hypothesis), not read off the data.

The fits are batched damped Newton iterations over all blocks at once (numpy; about 0.1 s for
100 blocks at 10k rows with 5 covariates), checked against statsmodels and lifelines in the tests:

* logistic: intercept + exposure + covariates, **Firth's bias-reduced likelihood** (Jeffreys
  prior, as R's logistf) plus a ridge ``RIDGE/2·‖β‖²`` (intercept included). The plain MLE's
  ``O(1/m)`` bias away from 0 is ~7 % of the log-OR on blocks of 100 rows with a few covariates,
  enough to drop simulated coverage to 0.87 at ε = 20; Firth removes it (and is finite under
  separation);
* Cox: Efron's ties (what lifelines fits), ridge ``RIDGE/2·‖β‖²`` (the Cox MLE's small-block bias
  is ~3 % here, no correction).

``RIDGE = 0.01`` on the scaled design shrinks a block of 100 rows by well under 1 % (its
information is in the tens); its job is to make every block's problem strictly concave, so that
an all-zero dummy, a collinear column or complete separation still converges (separation goes to
a large finite value, then to the nearest clamp bound: "the clamp bound nearest its direction").
**Fallbacks**: a block with no information on the exposure (the exposure constant in the block,
or no events / a constant outcome) gets ``β_b = 0``, and so does a non-finite result; a block
whose iteration has not converged (step below 1e-7) in :data:`MAX_NEWTON` steps keeps its last
iterate, which every damped step has improved (these are near-separated blocks creeping towards a
large value: the clamp then takes them to the nearest bound). No fit ever raises. The number of
such blocks is *not* reported (it is not DP).

The target is the mean of the block estimates ``E[β_b]``. Per-block estimates carry a
small-sample bias; blocks hold ``m ≈ ñ/k`` = 100 rows for ``500 ≤ ñ < 10 000``, fewer below (at
least 20: ``k`` is at least 5) and more above (``k`` is at most 100). Why 100 and not fewer: the
bias grows like ``1/m`` while the sampling sd of ``β̄`` does not shrink with ``k``; why ``k`` up
to 100: the Laplace noise of ``β̄`` falls like ``1/k`` (sd ``≈ 8.5/(ε·k)`` on the log scale).

The EXACT (non-private) statistics for ``synthetic_estimate`` are the full-data statsmodels
``Logit`` OR and the Cox HR (Efron, no penalty: :func:`fit_cox` on one block, equal to lifelines'
``CoxPHFitter`` within 1e-5, checked in the tests; lifelines needs ~1.5 s at 10k rows) on the
same design; a frame where they cannot be fitted (constant exposure, separation, no events) gives
``None``. A frame of more than :data:`EXACT_ROWS` rows (in the service only a synthetic release reaches
these: ``answer``, the preview and a reused answer call them on the release) is fitted on a seeded
subsample of that many rows (:func:`~verification.core.tuning.release_sample`, seeded by the frame's size
alone, the same subsample each time). The release is public, so this costs no privacy; the value shown
is then the statistic of 100,000 of the release's rows, which differs from the whole release's by
sampling error (sd ``sqrt(1/100k - 1/n)`` per unit of a row's information). On bench/scale's 1M-row
release: HR per unit of the marker 1.00238 (whole release 1.00228), HR adjusted for age 1.5093 (1.4959),
OR adjusted for age and grade 1.945 (1.988), OR per unit 1.00395 (1.00375); the whole fits took
0.6-2.1 s of a 1M-row answer, the subsample's 0.05-0.2 s. Frames of at most EXACT_ROWS rows (every
release below a 100k-row one, the real data of the tests) are fitted whole, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from clearinghouse.fitting import fit_cox, fit_logistic
from clearinghouse.schema import Column, Schema

from .answer import Answer
from .hypothesis import (
    Hypothesis,
    HypothesisError,
    _adjust,
    _keys,
    _level,
    _survival_columns,
    adjust_schema,
    level_schema,
    params_schema,
)
from .kind import Kind
from .aggregate import LOG_BOUND, NOISE_DOMINANCE, block_estimates, sample_and_aggregate, varies
from .kinds import Request, level_mask, looks_empty, non_answer, noisy_figure, numeric_values, ratio_release, register
from .newton import NEWTON_ROWS, hazards_newton, logistic_newton
from .tables import (
    MAX_CELLS,
    Fit,
    Table,
    adjuster_levels,
    covariate_cells,
    exit_table,
    exposure_levels,
    first_level_totals,
    fit_grouped_hazards,
    fit_grouped_logistic,
    logistic_table,
    tabulable,
    time_edges,
)
from .tuning import release_sample

__all__ = ["EXACT_ROWS", "NUMERIC_SCALE_DIVISOR", "Design", "cox_design", "logistic_design"]

#: A numeric column is scaled to (x - mid) / (range / NUMERIC_SCALE_DIVISOR).
NUMERIC_SCALE_DIVISOR = 4.0
#: The exact (non-private) OR and HR read at most this many rows: a seeded subsample of a larger frame
#: (a big synthetic release; see the module docstring).
EXACT_ROWS = 100_000


def _exact_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``, or a seeded subsample of :data:`EXACT_ROWS` of its rows when it has more."""
    sample = release_sample(len(frame), EXACT_ROWS)
    return frame if sample is None else frame.iloc[sample]


# --- designs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """A model matrix over the complete cases. ``x[:, exposure]`` is the exposure column; its
    coefficient per unit of the exposure is ``beta / exposure_unit`` (``exposure_unit`` = 1 for a
    0/1 indicator, ``R/4`` for a numeric exposure of public range ``R``)."""

    x: np.ndarray
    exposure: int
    exposure_unit: float
    names: tuple[str, ...]
    keep: np.ndarray  # over the frame's rows: the complete cases


def _numeric_scaled(frame: pd.DataFrame, column: Column) -> tuple[np.ndarray, float]:
    values = numeric_values(frame, column)
    unit = (column.max - column.min) / NUMERIC_SCALE_DIVISOR
    return (values - (column.max + column.min) / 2.0) / unit, unit


def _indicator(frame: pd.DataFrame, name: str, value: Any) -> np.ndarray:
    """1.0 where ``frame[name] == value``, 0.0 where another value, NaN where missing."""
    out = level_mask(frame, name, value).astype(np.float64)
    out[frame[name].isna().to_numpy(dtype=bool)] = np.nan
    return out


def _covariate_columns(frame: pd.DataFrame, schema: Schema, names: list[str]) -> tuple[list[np.ndarray], list[str]]:
    columns, labels = [], []
    for name in names:
        column = schema[name]
        if column.is_numeric:
            columns.append(_numeric_scaled(frame, column)[0])
            labels.append(name)
        elif column.type == "event":
            columns.append(_indicator(frame, name, 1))
            labels.append(f"{name}=1")
        else:
            for category in column.categories[1:]:  # the first declared category is the reference
                columns.append(_indicator(frame, name, category))
                labels.append(f"{name}={category}")
    return columns, labels


def _exposure_column(frame: pd.DataFrame, schema: Schema, exposure: dict[str, Any]) -> tuple[np.ndarray, float, str]:
    column = schema[exposure["column"]]
    if exposure.get("value") is None and column.is_numeric:
        values, unit = _numeric_scaled(frame, column)
        return values, unit, column.name
    return _indicator(frame, column.name, exposure["value"]), 1.0, f"{column.name}={exposure['value']}"


def _assemble(columns: list[np.ndarray], names: list[str], exposure: int, unit: float,
              extra: list[np.ndarray], n: int) -> Design:
    matrix = np.column_stack(columns) if columns else np.empty((n, 0))
    keep = np.isfinite(matrix).all(axis=1)
    for values in extra:
        keep &= np.isfinite(values)
    return Design(x=matrix[keep], exposure=exposure, exposure_unit=unit, names=tuple(names), keep=keep)


def logistic_design(frame: pd.DataFrame, schema: Schema, params: dict[str, Any]) -> tuple[Design, np.ndarray]:
    """Intercept, exposure, covariates; and the 0/1 outcome, over the complete cases."""
    outcome = params["outcome"]
    y = _indicator(frame, outcome["column"], outcome["value"])
    exposure, unit, label = _exposure_column(frame, schema, params["exposure"])
    covariates, names = _covariate_columns(frame, schema, list(params.get("adjust_for") or []))
    design = _assemble([np.ones(len(frame)), exposure, *covariates], ["intercept", label, *names], 1, unit, [y],
                       len(frame))
    return design, y[design.keep]


def cox_design(frame: pd.DataFrame, schema: Schema, params: dict[str, Any]) -> tuple[Design, np.ndarray, np.ndarray]:
    """Exposure, covariates; durations (clamped to the public bounds) and 0/1 events, over the complete cases."""
    survival = schema.survival
    duration = numeric_values(frame, schema[survival.duration])
    event = frame[survival.event].to_numpy(dtype=np.float64, na_value=np.nan)
    exposure, unit, label = _exposure_column(frame, schema, params["exposure"])
    covariates, names = _covariate_columns(frame, schema, list(params.get("adjust_for") or []))
    design = _assemble([exposure, *covariates], [label, *names], 0, unit, [duration, event], len(frame))
    return design, duration[design.keep], event[design.keep] == 1


# --- logistic_odds_ratio --------------------------------------------------------------------------


LOGISTIC_METHOD = (
    "sample-and-aggregate: ridge-penalised logistic regression (Newton) on k disjoint random blocks, block log-ORs "
    f"clamped to [-{LOG_BOUND:g}, {LOG_BOUND:g}], DP mean and second moment by the integer-scaled geometric "
    "mechanism (k from a discrete-Laplace count); CI from the DP block spread (t, k-1 df) convolved with the "
    "Laplace noise"
)


def _model_levels(req: Request) -> list:
    levels = [exposure_levels(req.frame, req.params["exposure"])]
    return levels + [adjuster_levels(req.frame, req.schema, name) for name in req.params.get("adjust_for") or []]


LOGISTIC_TABLE_METHOD = (
    "noisy contingency table: outcome 1 / outcome 0 counts per public covariate cell (exposure level x adjuster "
    "levels; discrete Laplace, parallel composition), logistic score equations solved on the noisy table; CI from a "
    "sandwich variance that adds the noise's to the sampling variance"
)


def _logistic_odds_ratio(req: Request) -> Answer:
    if not tabulable(req.schema, req.params):
        return _logistic_odds_ratio_newton(req)
    outcome = req.params["outcome"]
    y = _indicator(req.frame, outcome["column"], outcome["value"])
    cells = covariate_cells(_model_levels(req), np.isfinite(y))
    if cells.count * 2 > MAX_CELLS:
        return _logistic_odds_ratio_blocks(req)
    table = logistic_table(cells, y[cells.keep], req.epsilon, req.rng)
    return _table_answer(req, table, fit_grouped_logistic, "OR", LOGISTIC_TABLE_METHOD)


def _table_answer(req: Request, table: Table, fitter, ratio: str, method: str) -> Answer:
    """Fit the released table and answer (all from noisy numbers)."""
    details: dict[str, Any] = {
        "composition": ("parallel within each released histogram (every row is in exactly one cell); sequential "
                        "across the histograms (their ε add up to the hypothesis's ε)"),
        "cells": table.cells.count,
        "levels": {lv.name: lv.count for lv in table.cells.levels},
    }
    if table.edges is not None:
        details["time_bins"] = [float(e) for e in table.edges]
    if req.too_small(table.noisy_n):
        return req.withhold(table.noisy_n, method, table.epsilon_split, details)
    result = _fitted_answer(req, fitter(table), table.noisy_n, table.epsilon_split, details, ratio, method, 1.0)
    empty = _empty_table_level(req, table, ratio)
    return result if empty is None else non_answer(result, *empty)


def _exposure_labels(exposure: dict[str, Any]) -> tuple[str, str]:
    """The exposure's two levels as a reason names them: (the rest, the level)."""
    return f"{exposure['column']}≠{exposure['value']}", f"{exposure['column']}={exposure['value']}"


def _empty_table_level(req: Request, table: Table, ratio: str) -> tuple[str, str] | None:
    """:func:`_empty_level` on the released table's noisy totals per exposure level."""
    survival = table.edges is not None
    rows, rows_sd = first_level_totals(table, *(("exit_event", "exit_censored") if survival else
                                                ("outcome_1", "outcome_0")))
    outcomes = [first_level_totals(table, name) for name in (("exit_event",) if survival else
                                                              ("outcome_1", "outcome_0"))]
    return _empty_level(req, rows, rows_sd, outcomes, _exposure_labels(req.params["exposure"]), ratio, survival)


def _outcome_nouns(req: Request, survival: bool) -> tuple[str, ...]:
    if survival:
        return ("events",)
    outcome = req.params["outcome"]
    return f"rows with {outcome['column']}={outcome['value']}", f"rows with {outcome['column']}≠{outcome['value']}"


def _empty_level(req: Request, rows: np.ndarray, rows_sd: float, outcomes: list[tuple[np.ndarray, float]],
                 labels: tuple[str, str] | None, ratio: str, survival: bool,
                 per_level: bool = True) -> tuple[str, str] | None:
    """(cause, reason) of a data-caused non-answer, else None, from noisy totals only (their noise sd beside
    them; :func:`~verification.core.kinds.looks_empty`): ``rows`` per exposure level (0: the rest or the lower
    side, 1: the level or the upper side; ``labels`` name them, None: no levels to check), ``outcomes`` the
    noisy events per level (for an OR: outcome 1, then outcome 0). An exposure level without rows: the
    exposure is constant within the filter; no events at all, or a constant outcome; with ``per_level``, a
    level without events (or, for an OR, without non-events): the ratio is then 0, infinite or 0/0."""
    size = float(np.sum(rows))
    if labels is not None:
        for level in (1, 0):
            if looks_empty(rows[level], rows_sd, size):
                return "constant_exposure", (
                    f"the exposure is (nearly) constant within the filter: no rows with {labels[level]} in the noisy "
                    f"table ({noisy_figure(rows[level], rows_sd)}); the {ratio} compares nothing")
    what = "the hazard ratio cannot be estimated" if survival else "the odds ratio is 0 or infinite, it cannot be estimated"
    for (totals, sd), noun in zip(outcomes, _outcome_nouns(req, survival)):
        total, total_sd = float(totals.sum()), sd * math.sqrt(len(totals))
        if looks_empty(total, total_sd, size):
            return ("no_events" if survival else "constant_outcome"), (
                f"too few {noun} in the noisy table ({noisy_figure(total, total_sd)}): the outcome is (nearly) "
                f"constant within the filter; {what}")
        if not (per_level and labels is not None):
            continue
        for level in (1, 0):
            if looks_empty(totals[level], sd, rows[level]):
                return ("no_events" if survival else "empty_cell"), (
                    f"too few {noun} in group {labels[level]} in the noisy table ({noisy_figure(totals[level], sd)}):"
                    f" {what}")
    return None


def _fitted_answer(req: Request, fit: Fit, noisy_n: int, split: dict[str, float], details: dict[str, Any],
                   ratio: str, method: str, unit: float) -> Answer:
    """The answer of a fit whose exposure coefficient is ``fit.beta[0]`` per ``unit`` of the exposure."""
    beta = float(fit.beta[0])
    half = req.z * fit.sd
    details.update(mean_log=beta, sampling_sd_log=fit.sampling_sd, noise_sd_log=fit.noise_sd,
                   ci_halfwidth_log=half, converged=fit.converged, exposure_unit=unit,
                   scale=f"{ratio} per unit of the exposure" if unit != 1.0 else f"{ratio} of the exposure level vs the rest")
    result = ratio_release(req, beta / unit, half / unit, noisy_n, method, split, details, ratio=ratio)
    if not result.informative:  # the CI reached the public cap: that reason stands
        return result
    if not fit.bounded:
        result.informative = False
        result.reason = (f"the fit ran to its public bound (a level of the model without events, or without "
                         f"non-events, after the noise): the {ratio} is not estimable at this ε")
    elif fit.noise_sd > NOISE_DOMINANCE * fit.sampling_sd:
        result.informative = False
        result.reason = (f"the privacy noise (sd {fit.noise_sd:.3g} on the log scale) is more than {NOISE_DOMINANCE:g} "
                         f"times the sampling error (sd {fit.sampling_sd:.3g}): spend more ε, or ask on more patients")
    return result


#: A synthetic release needs this many complete cases to start the DP Newton steps from.
MIN_SYNTHETIC_ROWS = 50


def _slope_bounds(schema: Schema, params: dict[str, Any]) -> tuple[float, float]:
    """Per-row L1 bounds of the exposure's column and of the adjusters' columns: 2 per numeric
    variable (scaled to [-2, 2] by its public range), 1 per categorical or event variable (at most
    one of its dummies is 1)."""
    def bound(name: str, level: bool = False) -> float:
        return NUMERIC_SCALE_DIVISOR / 2.0 if schema[name].is_numeric and not level else 1.0

    exposure = params["exposure"]
    return (bound(exposure["column"], exposure.get("value") is not None),
            sum(bound(name) for name in params.get("adjust_for") or []))


NEWTON_LOGISTIC_METHOD = (
    "DP Newton: two Newton steps of the logistic model from its fit on the synthetic release, each on the real "
    "data's score released with the Laplace mechanism (discrete, integer-scaled; public per-row L1 bounds) and the "
    "synthetic release's information scaled to the noisy size; CI from the model information plus the noise's"
)
NEWTON_HAZARDS_METHOD = (
    "DP Newton: two Newton steps of the piecewise-exponential proportional-hazards model (public time bins at the "
    "synthetic release's event-time quantiles) from its fit on the synthetic release, each on the real data's "
    "per-patient score (expected events clipped at a public bound) released with the Laplace mechanism and the "
    "synthetic release's information scaled to the noisy size; CI from the model information plus the noise's"
)
NEWTON_COMPOSITION = ("sequential: the noisy size and each step's releases look at the same rows (their ε add up to "
                      "the hypothesis's ε)")


def _newton_answer(req: Request, fit, method: str, ratio: str, unit: float,
                   sides: tuple[str, str] | None) -> Answer:
    details = {"composition": NEWTON_COMPOSITION, **fit.details}
    if req.too_small(fit.noisy_n):
        return req.withhold(fit.noisy_n, method, fit.split, details)
    result = _fitted_answer(req, fit, fit.noisy_n, fit.split, details, ratio, method, unit)
    # the noisy size's cells (exposure side × outcome): the data-caused non-answers, from noisy counts only
    cells = np.asarray(fit.noisy_cells, dtype=np.float64).reshape(-1, 2)
    survival = ratio == "HR"
    sd = fit.count_sd
    outcomes = [(cells[:, 1], sd)] if survival else [(cells[:, 1], sd), (cells[:, 0], sd)]
    # Not per level: at the count's 0.05 ε a level's noisy events carry noise sd 28 at ε = 1, and GBSG2's
    # 94 events of horTh=yes would look empty 8 % of the time; the levels' rows and the outcome's totals are
    # checked (a sum over cells, well above the bar on any cohort the steps can answer).
    empty = _empty_level(req, cells.sum(axis=1), math.sqrt(2.0) * sd, outcomes, sides, ratio, survival,
                         per_level=False)
    return result if empty is None else non_answer(result, *empty)


def _count_cells(req: Request, exposure: np.ndarray, public: np.ndarray, outcome: np.ndarray,
                 unit: float) -> tuple[tuple[np.ndarray, int], tuple[str, str] | None]:
    """Public cells for the DP Newton's noisy size: exposure side × outcome (event, or the logistic 1), and
    the sides' names. A level exposure's sides are its two levels; a numeric exposure's are at or below and
    above a cut read off the synthetic release (public: the value that splits the release most evenly), so
    that an exposure constant within the filter leaves one side empty. A release whose exposure takes one
    value gives no cut: one side (its name None), and only the outcome is checked."""
    spec = req.params["exposure"]
    if spec.get("value") is not None:
        side = exposure > 0.5
        names = _exposure_labels(spec)
    else:
        values = np.unique(public)
        if len(values) < 2:
            return (outcome.astype(np.int64), 2), None
        below = np.searchsorted(np.sort(public), values[:-1], side="right") / len(public)
        cut = float(values[:-1][int(np.argmax(np.minimum(below, 1.0 - below)))])
        side = exposure > cut
        column = req.schema[spec["column"]]
        raw = cut * unit + (column.max + column.min) / 2.0
        names = (f"{column.name} ≤ {raw:.4g}", f"{column.name} > {raw:.4g}")
    return (side.astype(np.int64) * 2 + outcome.astype(np.int64), 4), names


def _newton_release(synthetic: pd.DataFrame | None) -> pd.DataFrame | None:
    """The synthetic rows the DP Newton steps read: the release, or a seeded subsample of
    :data:`~verification.core.newton.NEWTON_ROWS` of its rows (public; see :mod:`.newton`)."""
    sample = None if synthetic is None else release_sample(len(synthetic), NEWTON_ROWS)
    return synthetic if sample is None else synthetic.iloc[sample]


def _logistic_odds_ratio_newton(req: Request) -> Answer:
    design, y = logistic_design(req.frame, req.schema, req.params)
    synthetic = _newton_release(req.synthetic)
    public = None if synthetic is None else logistic_design(synthetic, req.schema, req.params)
    if public is None or len(public[1]) < MIN_SYNTHETIC_ROWS or public[1].min() == public[1].max():
        return _logistic_odds_ratio_blocks(req)
    count_cells, sides = _count_cells(req, design.x[:, design.exposure], public[0].x[:, public[0].exposure], y,
                                      design.exposure_unit)
    fit = logistic_newton(design.x, y, public[0].x, public[1], _slope_bounds(req.schema, req.params), req.epsilon,
                          req.rng, count_cells=count_cells)
    return _newton_answer(req, fit, NEWTON_LOGISTIC_METHOD, "OR", design.exposure_unit, sides)


def _logistic_odds_ratio_blocks(req: Request) -> Answer:
    design, y = logistic_design(req.frame, req.schema, req.params)

    def fit(labels: np.ndarray, k: int) -> np.ndarray:
        beta, converged = fit_logistic(design.x, y, labels, k)
        informative = varies(y, labels, k) & varies(design.x[:, design.exposure], labels, k)
        return block_estimates(beta, converged, informative, design.exposure)

    return sample_and_aggregate(req, len(y), fit, unit=design.exposure_unit, ratio="OR", method=LOGISTIC_METHOD)


def _drop_constant(x: np.ndarray, keep_first: int) -> np.ndarray | None:
    """Columns of ``x`` that vary (the intercept, column 0 with ``keep_first = 1``, is kept);
    None if the exposure (the first column after the kept ones) is constant."""
    varies = x.std(axis=0) > 0
    varies[:keep_first] = True
    if not varies[keep_first]:
        return None
    return x[:, varies]


def _exact_logistic_odds_ratio(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    import warnings

    # statsmodels.api's Logit itself: the package's api also imports its time series and plots (1.3 s more
    # on a worker's first logistic answer)
    from statsmodels.discrete.discrete_model import Logit

    design, y = logistic_design(_exact_rows(frame), schema, hypothesis.params)
    if len(y) < 3 or y.min() == y.max():
        return None
    x = _drop_constant(design.x, 1)
    if x is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = Logit(y, x).fit(disp=0, maxiter=100)
    except Exception:  # singular design, perfect separation: no estimate
        return None
    beta = float(result.params[1])
    if not result.mle_retvals.get("converged", False) or not math.isfinite(beta) or abs(beta) > 30:
        return None
    return math.exp(beta / design.exposure_unit)


def _params_logistic_odds_ratio(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("outcome", "exposure"), ("adjust_for",))
    outcome = _level(p["outcome"], schema, "params.outcome", value_required=True)
    exposure = _level(p["exposure"], schema, "params.exposure", numeric=True)
    if exposure["column"] == outcome["column"]:
        raise HypothesisError("bad_param", "params.exposure.column: must differ from the outcome column")
    adjust = _adjust(p.get("adjust_for"), schema, "params.adjust_for", {outcome["column"], exposure["column"]})
    return {"outcome": outcome, "exposure": exposure, "adjust_for": adjust}


register(Kind(
    name="logistic_odds_ratio",
    parse_params=_params_logistic_odds_ratio,
    compute=_logistic_odds_ratio,
    exact=_exact_logistic_odds_ratio,
    description=("params: outcome {column, value} (a category, the 1 of the model), exposure {column, value} (a "
                 "category, or a numeric column without value: per unit), optional adjust_for (covariate columns)."
                 " Estimate: the exposure's odds ratio of a logistic regression: from a noisy contingency table when "
                 "every covariate is categorical, else by DP Newton steps from the synthetic release's fit (by "
                 "sample-and-aggregate without a release)."),
    example_params={"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh", "value": "yes"},
                    "adjust_for": ["age", "tgrade"]},
    params_schema=params_schema({
        "outcome": level_schema("the outcome: rows with column == value are the model's 1", value_required=True),
        "exposure": level_schema("the exposure, on another column than the outcome", numeric=True),
        "adjust_for": adjust_schema(),
    }, ("outcome", "exposure")),
    ratio=True,
))


# --- hazard_ratio ------------------------------------------------------------------------------


COX_METHOD = (
    "sample-and-aggregate: ridge-penalised Cox model (Efron ties, Newton) on k disjoint random blocks, block log-HRs "
    f"clamped to [-{LOG_BOUND:g}, {LOG_BOUND:g}], DP mean and second moment by the integer-scaled geometric "
    "mechanism (k from a discrete-Laplace count); CI from the DP block spread (t, k-1 df) convolved with the "
    "Laplace noise"
)


COX_TABLE_METHOD = (
    "noisy exit table: per public covariate cell x public time bin, the patients leaving follow-up with and without "
    "an event and the fractions of the bin they lived (discrete Laplace, parallel composition); person-time derived; "
    "piecewise-exponential proportional-hazards score equations solved on the noisy table; CI from a sandwich variance "
    "that adds the noise's to the sampling variance"
)


def _hazard_ratio(req: Request) -> Answer:
    if not tabulable(req.schema, req.params):
        return _hazard_ratio_newton(req)
    survival = req.schema.survival
    time = numeric_values(req.frame, req.schema[survival.duration])
    event = req.frame[survival.event].to_numpy(dtype=np.float64, na_value=np.nan)
    cells = covariate_cells(_model_levels(req), np.isfinite(time) & np.isfinite(event))
    edges = time_edges(req.schema, req.synthetic)
    if cells.count * (len(edges) - 1) * 2 > MAX_CELLS:
        return _hazard_ratio_blocks(req)
    table = exit_table(cells, time[cells.keep], event[cells.keep] == 1, edges, req.epsilon, req.rng)
    return _table_answer(req, table, fit_grouped_hazards, "HR", COX_TABLE_METHOD)


def _hazard_ratio_newton(req: Request) -> Answer:
    design, time, event = cox_design(req.frame, req.schema, req.params)
    synthetic = _newton_release(req.synthetic)
    public = None if synthetic is None else cox_design(synthetic, req.schema, req.params)
    if public is None or len(public[1]) < MIN_SYNTHETIC_ROWS or not public[2].any():
        return _hazard_ratio_blocks(req)
    count_cells, sides = _count_cells(req, design.x[:, design.exposure], public[0].x[:, public[0].exposure], event,
                                      design.exposure_unit)
    fit = hazards_newton(design.x, time, event, public[0].x, public[1], public[2], time_edges(req.schema, req.synthetic),
                         _slope_bounds(req.schema, req.params), req.epsilon, req.rng, count_cells=count_cells)
    return _newton_answer(req, fit, NEWTON_HAZARDS_METHOD, "HR", design.exposure_unit, sides)


def _hazard_ratio_blocks(req: Request) -> Answer:
    design, time, event = cox_design(req.frame, req.schema, req.params)

    def fit(labels: np.ndarray, k: int) -> np.ndarray:
        beta, converged = fit_cox(design.x, time, event, labels, k)
        informative = (np.bincount(labels[event], minlength=k) > 0) & varies(design.x[:, design.exposure], labels, k)
        return block_estimates(beta, converged, informative, design.exposure)

    return sample_and_aggregate(req, len(time), fit, unit=design.exposure_unit, ratio="HR", method=COX_METHOD)


def _exact_hazard_ratio(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    """The full-data Cox HR (Efron ties, no penalty): :func:`fit_cox` on one block, which the tests
    check against lifelines' CoxPHFitter (agreement ~1e-6 in log HR). lifelines itself takes ~1.5 s
    at 10k rows (it also computes a concordance index), ours ~30 ms. At most :data:`EXACT_ROWS` rows are
    read (a seeded subsample of a larger frame)."""
    design, time, event = cox_design(_exact_rows(frame), schema, hypothesis.params)
    if len(time) < 3 or not event.any():
        return None
    x = _drop_constant(design.x, 0)
    if x is None:
        return None
    beta, converged = fit_cox(x, time, event, ridge=0.0, max_iter=200)
    coefficient = float(beta[0, 0])
    if not converged[0] or not math.isfinite(coefficient) or abs(coefficient) > 30:
        return None  # separation (diverging) or an unidentified design: no estimate
    return math.exp(coefficient / design.exposure_unit)


def _params_hazard_ratio(p: dict, schema: Schema) -> dict:
    _keys(p, "params", ("exposure",), ("adjust_for",))
    exposure = _level(p["exposure"], schema, "params.exposure", numeric=True)
    survival = _survival_columns(schema)
    if exposure["column"] in survival:
        raise HypothesisError("bad_param", "params.exposure.column: cannot be the survival duration or event")
    adjust = _adjust(p.get("adjust_for"), schema, "params.adjust_for", survival | {exposure["column"]})
    return {"exposure": exposure, "adjust_for": adjust}


register(Kind(
    name="hazard_ratio",
    parse_params=_params_hazard_ratio,
    compute=_hazard_ratio,
    exact=_exact_hazard_ratio,
    description=("params: exposure {column, value} (a category, or a numeric column without value: per unit), "
                 "optional adjust_for (covariate columns); needs a survival pair. Estimate: the exposure's hazard "
                 "ratio of a proportional-hazards model: from a noisy exit table (piecewise-exponential, public time "
                 "bins) when every covariate is categorical, else by DP Newton steps from the synthetic release's "
                 "fit (by sample-and-aggregate without a release); the exact statistic is the Cox (Efron) fit."),
    example_params={"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age"]},
    params_schema=params_schema({
        "exposure": level_schema("the exposure (not the survival duration or event)", numeric=True),
        "adjust_for": adjust_schema(),
    }, ("exposure",)),
    needs_survival=True,
    ratio=True,
))

