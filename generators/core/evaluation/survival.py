"""Survival metrics of the validation report: do the synthetic rows tell the real cohort's
time-to-event story (its Kaplan–Meier curve, follow-up, covariate hazard ratios, prognosis)?

* ``km_divergence``, ``optimism``, ``short_sightedness``: Norcliffe et al. as in synthcity and the
  AML paper (normalised so 1 is optimal). The curves are compared exactly, as step functions:
  the mean over ``[0, T]`` of ``S_syn − S_real`` is ``(RMST_syn − RMST_real) / T``;
* ``logrank_p``, ``median_follow_up`` (reverse Kaplan–Meier), ``indicator_p``: two-cohort tests;
* ``cox_sign_agreement``, ``cox_significance_agreement``: the AML paper's univariable tables;
* ``c_index_real``, ``c_index_synthetic``: a multivariable Cox model fitted on the training or the
  synthetic rows, scored on the real holdout (:func:`cox_c_indices` serves the utility section).

Real curves, hazard ratios and follow-up times go to ``real_details``; ``details`` holds
agreement scores only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test
from lifelines.utils import concordance_index
from scipy import stats

from clearinghouse.fitting import cox_information, fit_cox
from clearinghouse.schema import Column, Schema
from generators.core.evaluation.encoding import labels
from generators.core.evaluation.report import EvalContext, Metric, sample_note, sampled

__all__ = ["ALPHA", "CURVE_POINTS", "MAX_LEVELS", "MIN_EVENTS", "NAMES", "PENALIZER", "SAMPLE_COX", "CoxFitError",
           "cox_c_indices", "covariates", "efron_cox", "metrics"]

#: Fewer events than this in a cohort make its curve and its Cox fits noise.
MIN_EVENTS = 10
#: Significance level of the univariable tables (AML paper).
ALPHA = 0.05
#: Ridge penalty of the multivariable Cox models (lifelines' ``penalizer``), for stability.
PENALIZER = 0.01
#: A categorical covariate with more levels than this is left out of the Cox models.
MAX_LEVELS = 50
#: Kaplan–Meier curves in the details are thinned to at most this many points.
CURVE_POINTS = 200
#: The Cox models (about 60 univariable fits, two multivariable lifelines fits of ~40 s each at a
#: million rows) are fitted on a seeded sample of at most this many rows of each fitting cohort
#: (the univariable tables: real and synthetic alike, so their significance has the same power);
#: the holdout that scores the C-indices, the curves and the tests use every row.
SAMPLE_COX = 50_000
#: Separates this section's draws from the other sections' (same report seed).
_STREAM = 2
#: A coefficient beyond this (per standard deviation, or per level) means the fit diverges.
_MAX_COEF = 25.0
_MAX_STEPS = 50
_NO_PAIR = "the schema has no survival pair"

_DESCRIPTIONS = {
    "km_divergence": "1 − (1/T)∫₀ᵀ |S_real(t) − S_syn(t)| dt, the time-averaged absolute gap between the real and "
                     "synthetic Kaplan–Meier curves up to T, the shorter of the two cohorts' largest observed times "
                     "(Norcliffe et al., normalised so that 1 means identical curves).",
    "optimism": "1 − |(1/T)∫₀ᵀ (S_syn(t) − S_real(t)) dt| over the same horizon as the KM divergence, i.e. one minus "
                "the restricted-mean-survival difference over T; the signed mean (positive: synthetic survival too "
                "optimistic) is in the details.",
    "short_sightedness": "1 − max(0, (T_real − T_syn) / T_real), where T is each cohort's largest observed time "
                         "(event or censoring); below 1 the synthetic follow-up stops short of the real one.",
    "logrank_p": "p-value of the two-sample log-rank test of the real against the synthetic survival times; high "
                 "means no detectable difference between the two curves.",
    "median_follow_up": "1 − min(1, |m_syn − m_real| / m_real), where m is each cohort's median follow-up by the "
                        "reverse Kaplan–Meier method (censoring taken as the event).",
    "cox_sign_agreement": "Share of univariable Cox hazard ratios (one model per covariate: numbers per unit, "
                          "categories as dummies against a reference level) that lie on the same side of 1 in the "
                          "real and the synthetic rows.",
    "cox_significance_agreement": "Share of the same univariable Cox hazard ratios whose significance (Wald p < 0.05) "
                                  "is the same in the real and the synthetic rows.",
    "c_index_real": "Harrell's C on the real holdout rows of a multivariable Cox model (every covariate, penalizer "
                    "0.01, missing values imputed with the fitting rows' median or mode) fitted on the real "
                    "training rows.",
    "c_index_synthetic": "Harrell's C on the real holdout rows of the same multivariable Cox model fitted on the "
                         "synthetic rows instead of the real training rows.",
    "indicator_p": "Wald p-value of a real/synthetic indicator, the only covariate of a Cox model fitted on the real "
                   "and synthetic rows together; high means no detectable hazard difference (its hazard ratio, "
                   "synthetic over real, is in the details).",
}
_LABELS = {
    "km_divergence": "Kaplan–Meier divergence",
    "optimism": "Optimism",
    "short_sightedness": "Short-sightedness",
    "logrank_p": "Log-rank p-value (real vs synthetic)",
    "median_follow_up": "Median follow-up (reverse Kaplan–Meier)",
    "cox_sign_agreement": "Hazard-ratio direction agreement",
    "cox_significance_agreement": "Hazard-ratio significance agreement",
    "c_index_real": "C-index, trained on real",
    "c_index_synthetic": "C-index, trained on synthetic",
    "indicator_p": "Real/synthetic indicator p-value (Cox)",
}
NAMES = tuple(_DESCRIPTIONS)


def _metric(name: str, value: float | None, *, reason: str = "", **parts) -> Metric:
    key, label, description = f"survival.{name}", _LABELS[name], _DESCRIPTIONS[name]
    if value is None or not np.isfinite(value):
        return Metric.not_applicable(key, label, reason or "the value could not be computed on these rows",
                                     low=0.0, high=1.0, better="higher", description=description)
    return Metric(key=key, label=label, value=min(1.0, max(0.0, float(value))), low=0.0, high=1.0, better="higher",
                  description=description, **parts)


# ------------------------------------------------------------------------------------------ cohorts
@dataclass(frozen=True)
class _Cohort:
    """Durations and events of one frame, rows with either missing dropped."""

    time: np.ndarray
    event: np.ndarray  # bool
    keep: np.ndarray  # bool mask of the frame's rows used

    @classmethod
    def of(cls, frame: pd.DataFrame, schema: Schema) -> "_Cohort":
        duration = pd.to_numeric(frame[schema.survival.duration], errors="coerce").to_numpy("float64", na_value=np.nan)
        event = pd.to_numeric(frame[schema.survival.event], errors="coerce").to_numpy("float64", na_value=np.nan)
        keep = np.isfinite(duration) & np.isfinite(event)
        return cls(duration[keep], event[keep] > 0, keep)

    def problem(self, who: str) -> str | None:
        """Why this cohort cannot carry a survival curve or a Cox fit (None: it can)."""
        if not self.event.any():
            return f"the {who} rows have no events"
        if self.event.sum() < MIN_EVENTS:
            return f"the {who} rows have fewer than {MIN_EVENTS} events"
        if np.ptp(self.time) == 0:
            return f"every duration of the {who} rows is the same"
        return None


def _kaplan_meier(time: np.ndarray, event: np.ndarray) -> KaplanMeierFitter:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return KaplanMeierFitter().fit(time, event)


def _curve(fitter: KaplanMeierFitter) -> dict[str, list[float]]:
    """The Kaplan–Meier curve with its 95 % band, thinned evenly to at most CURVE_POINTS points."""
    times = fitter.survival_function_.index.to_numpy(dtype="float64")
    keep = np.unique(np.linspace(0, len(times) - 1, min(len(times), CURVE_POINTS)).round().astype(int))
    band = fitter.confidence_interval_.to_numpy(dtype="float64")
    return {"times": times[keep], "survival": fitter.survival_function_.to_numpy(dtype="float64")[keep, 0],
            "lower": band[keep, 0], "upper": band[keep, 1]}


def _step(fitter: KaplanMeierFitter, at: np.ndarray) -> np.ndarray:
    """S(t) of the right-continuous step function (the timeline starts at 0)."""
    times = fitter.survival_function_.index.to_numpy(dtype="float64")
    values = fitter.survival_function_.to_numpy(dtype="float64")[:, 0]
    return values[np.clip(np.searchsorted(times, at, side="right") - 1, 0, None)]


# -------------------------------------------------------------------------------------- curve metrics
def _curve_metrics(real: _Cohort, synthetic: _Cohort) -> list[Metric]:
    km_real, km_syn = _kaplan_meier(real.time, real.event), _kaplan_meier(synthetic.time, synthetic.event)
    t_real, t_syn = float(real.time.max()), float(synthetic.time.max())
    horizon = min(t_real, t_syn)
    counts = lambda c: {"rows": int(len(c.time)), "events": int(c.event.sum()), "max_time": float(c.time.max())}
    out: list[Metric] = []
    if horizon <= 0:
        reason = "a cohort's largest observed time is 0"
        out += [_metric("km_divergence", None, reason=reason), _metric("optimism", None, reason=reason)]
    else:
        # Both curves are steps: the integral over [0, T] is exact on the union of their jumps.
        knots = np.union1d(km_real.survival_function_.index, km_syn.survival_function_.index)
        knots = np.union1d([0.0], knots[knots < horizon])
        widths = np.diff(np.append(knots, horizon))
        gap = _step(km_syn, knots) - _step(km_real, knots)
        absolute, signed = float(widths @ np.abs(gap) / horizon), float(widths @ gap / horizon)
        out.append(_metric("km_divergence", 1.0 - absolute, details={"mean_absolute_gap": absolute,
                                                                     "max_absolute_gap": float(np.abs(gap).max())},
                           synthetic_details={"km": _curve(km_syn), **counts(synthetic)},
                           real_details={"km": _curve(km_real), "horizon": horizon, **counts(real)}))
        out.append(_metric("optimism", 1.0 - abs(signed), details={"signed_optimism": signed},
                           real_details={"horizon": horizon}))
    shortfall = max(0.0, (t_real - t_syn) / t_real) if t_real > 0 else 0.0
    out.append(_metric("short_sightedness", 1.0 - shortfall, details={"shortfall": shortfall},
                       synthetic_details={"max_time": t_syn}, real_details={"max_time": t_real}))
    return out


def _logrank(real: _Cohort, synthetic: _Cohort) -> Metric:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = logrank_test(real.time, synthetic.time, event_observed_A=real.event, event_observed_B=synthetic.event)
    return _metric("logrank_p", float(result.p_value), reason="the log-rank test could not be computed",
                   details={"test_statistic": float(result.test_statistic), "degrees_of_freedom": 1})


def _median_follow_up(real: _Cohort, synthetic: _Cohort) -> Metric:
    medians = {}
    for who, cohort in (("real", real), ("synthetic", synthetic)):
        median = float(_kaplan_meier(cohort.time, ~cohort.event).median_survival_time_)  # reverse KM
        if not np.isfinite(median):
            return _metric("median_follow_up", None,
                           reason=f"the median follow-up of the {who} rows is not reached (too few censored rows)")
        medians[who] = median
    if medians["real"] <= 0:
        return _metric("median_follow_up", None, reason="the median follow-up of the real rows is 0")
    difference = min(1.0, abs(medians["synthetic"] - medians["real"]) / medians["real"])
    return _metric("median_follow_up", 1.0 - difference, details={"relative_difference": difference},
                   synthetic_details={"median_follow_up": medians["synthetic"]},
                   real_details={"median_follow_up": medians["real"]})


# ------------------------------------------------------------------------------------ Cox models
class CoxFitError(ValueError):
    """A Cox model that cannot be estimated on these rows; the message is the reason."""


def efron_cox(time: np.ndarray, event: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and standard errors of a Cox model with Efron's ties (what lifelines'
    CoxPHFitter fits): :func:`clearinghouse.fitting.fit_cox` (Newton–Raphson on risk-set sums built
    with cumulative sums, no penalty; shared with the verification engine), standard errors from
    the inverse of :func:`~clearinghouse.fitting.cox_information` at the estimate. lifelines loops
    over rows in Python (~0.5 s a fit at 10k rows); a report makes ~60 univariable fits.

    ``x`` (rows × p) is one column, or exclusive 0/1 dummies (at most one 1 a row). A single column
    is standardised for the iterations and the result scaled back. Raises :class:`CoxFitError`."""
    x = np.asarray(x, dtype="float64").reshape(len(time), -1)
    p = x.shape[1]
    shift, scale = np.zeros(p), np.ones(p)
    if p == 1:
        shift[:], scale[:] = x.mean(), x.std()
        if not scale[0] > 0:
            raise CoxFitError("it is constant")
    elif (x.sum(axis=0) == 0).any() or (x.sum(axis=0) == len(x)).any():
        raise CoxFitError("a level is absent or covers every row")
    z = (x - shift) / scale
    t, died = np.asarray(time, dtype="float64"), np.asarray(event, dtype=bool)
    if not died.any():
        raise CoxFitError("there are no events")
    beta, converged = fit_cox(z, t, died, ridge=0.0, max_iter=_MAX_STEPS)
    beta = beta[0]
    if not np.isfinite(beta).all() or np.abs(beta).max() > _MAX_COEF:
        raise CoxFitError("it diverges (complete separation)")
    if not converged[0]:
        raise CoxFitError(f"it did not converge in {_MAX_STEPS} Newton steps")
    try:
        covariance = np.linalg.inv(cox_information(z, t, died, beta))
    except np.linalg.LinAlgError:
        raise CoxFitError("its information matrix is singular") from None
    se = np.sqrt(np.diag(covariance))
    if not (np.isfinite(se).all() and (se > 0).all()):
        raise CoxFitError("its standard errors are not finite")
    return beta / scale, se / scale


def _summary(coef: float, se: float) -> dict[str, float]:
    """HR, its 95 % Wald interval and p, as lifelines reports them."""
    z = stats.norm.ppf(1 - ALPHA / 2)
    return {"hr": float(np.exp(coef)), "ci_low": float(np.exp(coef - z * se)), "ci_high": float(np.exp(coef + z * se)),
            "p": float(stats.chi2.sf((coef / se) ** 2, 1)), "coef": float(coef)}


def covariates(schema: Schema) -> list[Column]:
    """Every stored column but the survival pair."""
    pair = {schema.survival.duration, schema.survival.event} if schema.survival else set()
    return [c for c in schema.kept if c.name not in pair]


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


@dataclass
class _Design:
    """One covariate's univariable design in both cohorts: row masks, x, and item names."""

    items: list[str]
    reference: str | None
    x: dict[str, np.ndarray]
    rows: dict[str, np.ndarray]


def _univariable_design(column: Column, frames: dict[str, pd.DataFrame],
                        skipped: dict[str, str], real_skipped: dict[str, str]) -> _Design | None:
    """Numbers (and 0/1 events) per unit; a categorical as dummies of the levels that occur in
    both cohorts against the first such level of the schema. Levels that cannot be compared are
    listed as skipped (publicly without saying what the real rows lack)."""
    if column.type != "categorical":
        x = {who: _numbers(frame[column.name]) for who, frame in frames.items()}
        return _Design([column.name], None, {w: v[:, None] for w, v in x.items()},
                       {w: np.isfinite(v) for w, v in x.items()})
    values = {who: labels(frame[column.name], column).to_numpy() for who, frame in frames.items()}
    if len(column.categories) > MAX_LEVELS + 1:
        skipped[column.name] = f"more than {MAX_LEVELS + 1} categories"
        return None
    usable = []
    for level in column.categories:
        item = f"{column.name}={level}"
        if not (values["synthetic"] == level).any():
            skipped[item] = "the level does not occur in the synthetic rows"
        elif not (values["real"] == level).any():
            skipped[item], real_skipped[item] = "cannot be estimated on the real rows", "the level does not occur"
        else:
            usable.append(level)
    if len(usable) < 2:
        skipped[column.name] = "fewer than two categories occur in both cohorts"
        return None
    reference, levels = usable[0], usable[1:]
    return _Design([f"{column.name}={level}" for level in levels], reference,
                   {w: np.stack([v == level for level in levels], axis=1) for w, v in values.items()},
                   {w: np.isin(v, usable) for w, v in values.items()})


def _univariable(ctx: EvalContext, real_frame: pd.DataFrame) -> tuple[dict, dict, dict, dict, dict]:
    """The AML paper's tables S6–S8: one Cox model per covariate in each cohort. Returns the
    per-item agreement, real and synthetic summaries, and the skipped items (public, custodian)."""
    frames = {"real": real_frame, "synthetic": ctx.synthetic}
    cohorts = {who: _Cohort.of(frame, ctx.schema) for who, frame in frames.items()}
    frames = {who: frame[cohorts[who].keep].reset_index(drop=True) for who, frame in frames.items()}
    agreement: dict[str, dict] = {}
    summaries: dict[str, dict[str, dict]] = {"real": {}, "synthetic": {}}
    skipped: dict[str, str] = {}
    real_skipped: dict[str, str] = {}
    for column in covariates(ctx.schema):
        design = _univariable_design(column, frames, skipped, real_skipped)
        if design is None:
            continue
        fits = {}
        for who in ("synthetic", "real"):
            rows = design.rows[who]
            try:
                if cohorts[who].event[rows].sum() < MIN_EVENTS:
                    raise CoxFitError(f"fewer than {MIN_EVENTS} events have a value")
                fits[who] = efron_cox(cohorts[who].time[rows], cohorts[who].event[rows], design.x[who][rows])
            except CoxFitError as error:
                if who == "real":
                    skipped[column.name], real_skipped[column.name] = "cannot be estimated on the real rows", str(error)
                else:
                    skipped[column.name] = f"cannot be estimated on the synthetic rows: {error}"
                break
        if len(fits) < 2:
            continue
        for index, item in enumerate(design.items):
            real, synthetic = (_summary(fits[w][0][index], fits[w][1][index]) for w in ("real", "synthetic"))
            if design.reference is not None:
                real["reference"] = synthetic["reference"] = design.reference
            summaries["real"][item], summaries["synthetic"][item] = real, synthetic
            agreement[item] = {
                "agree_sign": bool(np.sign(real["coef"]) == np.sign(synthetic["coef"])),
                "agree_significance": bool((real["p"] < ALPHA) == (synthetic["p"] < ALPHA)),
            }
            if design.reference is not None:
                agreement[item]["reference"] = design.reference
    return agreement, summaries["real"], summaries["synthetic"], skipped, real_skipped


def _agreement_metrics(ctx: EvalContext, real_frame: pd.DataFrame) -> list[Metric]:
    real_sample = sampled(real_frame, SAMPLE_COX, ctx.seed, _STREAM * 10)
    synthetic_sample = sampled(ctx.synthetic, SAMPLE_COX, ctx.seed, _STREAM * 10 + 1)
    sample_note(ctx, "survival", ["survival.cox_sign_agreement", "survival.cox_significance_agreement"],
                {"real": (len(real_sample), len(real_frame)), "synthetic": (len(synthetic_sample), len(ctx.synthetic))},
                "The univariable Cox models were fitted on")
    agreement, real, synthetic, skipped, real_skipped = _univariable(replace(ctx, synthetic=synthetic_sample),
                                                                     real_sample)
    if not agreement:
        reason = ("no covariate could be fitted in both cohorts" if covariates(ctx.schema)
                  else "the schema has no covariate besides the survival pair")
        return [_metric(name, None, reason=reason) for name in ("cox_sign_agreement", "cox_significance_agreement")]
    details = {"covariates": agreement, "compared": len(agreement), "skipped": skipped, "alpha": ALPHA}
    parts = {"synthetic_details": {"covariates": synthetic},
             "real_details": {"covariates": real, "skipped": real_skipped}}
    return [_metric(name, np.mean([item[flag] for item in agreement.values()]), details=details, **parts)
            for name, flag in (("cox_sign_agreement", "agree_sign"),
                               ("cox_significance_agreement", "agree_significance"))]


def _multivariable_design(fit: pd.DataFrame, score: pd.DataFrame, columns: list[Column],
                          skipped: dict[str, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Covariates of the fitting rows and of the holdout, missing values filled with the fitting
    rows' median (numbers) or mode (categories, events); categories as dummies against the first
    category that occurs in the fitting rows; what is constant there is left out."""
    fit_parts: dict[str, np.ndarray] = {}
    score_parts: dict[str, np.ndarray] = {}
    for column in columns:
        if column.type == "categorical":
            if len(column.categories) > MAX_LEVELS + 1:
                skipped[column.name] = f"more than {MAX_LEVELS + 1} categories"
                continue
            a, b = labels(fit[column.name], column), labels(score[column.name], column)
            if a.isna().all():
                skipped[column.name] = "every value is missing"
                continue
            fill = a.mode().iloc[0]
            a, b = a.fillna(fill).to_numpy(), b.fillna(fill).to_numpy()
            present = [level for level in column.categories if (a == level).any()]
            for level in present[1:]:
                fit_parts[f"{column.name}={level}"] = (a == level).astype("float64")
                score_parts[f"{column.name}={level}"] = (b == level).astype("float64")
            if len(present) < 2:
                skipped[column.name] = "constant in the fitting rows"
            continue
        a, b = _numbers(fit[column.name]), _numbers(score[column.name])
        if np.isnan(a).all():
            skipped[column.name] = "every value is missing"
            continue
        fill = float(pd.Series(a).mode().iloc[0]) if column.type == "event" else float(np.nanmedian(a))
        a, b = np.where(np.isnan(a), fill, a), np.where(np.isnan(b), fill, b)
        if np.ptp(a) == 0:
            skipped[column.name] = "constant in the fitting rows"
            continue
        fit_parts[column.name], score_parts[column.name] = a, b
    return pd.DataFrame(fit_parts), pd.DataFrame(score_parts)


def _c_index(fit: pd.DataFrame, holdout: pd.DataFrame, schema: Schema, who: str) -> tuple[float | str, dict]:
    """Harrell's C on the holdout of a penalised multivariable Cox model fitted on ``fit``."""
    cohort, scored = _Cohort.of(fit, schema), _Cohort.of(holdout, schema)
    problem = cohort.problem(who) or scored.problem("holdout")
    if problem:
        return problem, {}
    skipped: dict[str, str] = {}
    x_fit, x_score = _multivariable_design(fit[cohort.keep], holdout[scored.keep], covariates(schema), skipped)
    info = {"covariates": list(x_fit.columns), "skipped": skipped}
    if x_fit.shape[1] == 0:
        return "no covariate varies in the fitting rows", info
    names = {name: f"x{i}" for i, name in enumerate(x_fit.columns)}  # no clash with the duration/event names
    table = x_fit.rename(columns=names).assign(_time=cohort.time, _event=cohort.event.astype(int))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = CoxPHFitter(penalizer=PENALIZER).fit(table, "_time", "_event")
            risk = model.predict_partial_hazard(x_score.rename(columns=names)).to_numpy(dtype="float64")
            value = float(concordance_index(scored.time, -risk, scored.event))
    except Exception as error:  # lifelines raises ConvergenceError, LinAlgError, ZeroDivisionError, ValueError
        return f"the Cox model on the {who} rows could not be fitted: {type(error).__name__}", info
    if not np.isfinite(value):
        return f"the C-index of the model fitted on the {who} rows is not finite", info
    return value, info


def _c_indices(ctx: EvalContext) -> dict[str, tuple[float | str, dict]]:
    """Both C-indices, computed once per context (the utility section asks again)."""
    cached = ctx.__dict__.get("_survival_c_indices")
    if cached is None:
        if ctx.schema.survival is None:
            cached = {"real": (_NO_PAIR, {}), "synthetic": (_NO_PAIR, {})}
        else:
            train = sampled(ctx.train, SAMPLE_COX, ctx.seed, _STREAM * 10 + 2)
            synthetic = sampled(ctx.synthetic, SAMPLE_COX, ctx.seed, _STREAM * 10 + 3)
            sample_note(ctx, "survival",
                        ["survival.c_index_real", "survival.c_index_synthetic", "utility.c_index_ratio"],
                        {"training": (len(train), len(ctx.train)), "synthetic": (len(synthetic), len(ctx.synthetic))},
                        "The multivariable Cox models were fitted on", ", and scored on every holdout row")
            cached = {"real": _c_index(train, ctx.holdout, ctx.schema, "training"),
                      "synthetic": _c_index(synthetic, ctx.holdout, ctx.schema, "synthetic")}
        ctx.__dict__["_survival_c_indices"] = cached
    return cached


def cox_c_indices(ctx: EvalContext) -> tuple[float, float] | str:
    """(C of the model trained on real, C of the model trained on synthetic), both on the real
    holdout, or why they cannot be computed. Cached on ``ctx``."""
    results = _c_indices(ctx)
    for value, _ in results.values():
        if isinstance(value, str):
            return value
    return results["real"][0], results["synthetic"][0]


def _c_index_metrics(ctx: EvalContext) -> list[Metric]:
    out = []
    for who, (value, info) in _c_indices(ctx).items():
        name = f"c_index_{who}"
        if isinstance(value, str):
            out.append(_metric(name, None, reason=value))
        else:
            out.append(_metric(name, value, details=info))
    return out


def _indicator(real: _Cohort, synthetic: _Cohort) -> Metric:
    time = np.concatenate([real.time, synthetic.time])
    event = np.concatenate([real.event, synthetic.event])
    is_synthetic = np.r_[np.zeros(len(real.time)), np.ones(len(synthetic.time))]
    try:
        coef, se = efron_cox(time, event, is_synthetic)
    except CoxFitError as error:
        return _metric("indicator_p", None, reason=f"the indicator model cannot be fitted: {error}")
    summary = _summary(coef[0], se[0])
    return _metric("indicator_p", summary.pop("p"), details=summary)


# ------------------------------------------------------------------------------------------ entry
def metrics(ctx: EvalContext) -> list[Metric]:
    if ctx.schema.survival is None:
        return [_metric(name, None, reason=_NO_PAIR) for name in NAMES]
    real_frame = ctx.real
    real, synthetic = _Cohort.of(real_frame, ctx.schema), _Cohort.of(ctx.synthetic, ctx.schema)
    problem = real.problem("real") or synthetic.problem("synthetic")
    if problem:
        # The C-index models need only their own fitting rows and the holdout.
        c_index = {m.key: m for m in _c_index_metrics(ctx)}
        return [c_index.get(f"survival.{name}") or _metric(name, None, reason=problem) for name in NAMES]
    return [*_curve_metrics(real, synthetic), _logrank(real, synthetic), _median_follow_up(real, synthetic),
            *_agreement_metrics(ctx, real_frame), *_c_index_metrics(ctx), _indicator(real, synthetic)]
