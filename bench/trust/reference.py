"""The non-private estimate and 95 % CI of each kind: what a researcher with the real rows would report.

Cox (lifelines ``CoxPHFitter``, Efron ties) and logistic regression (statsmodels ``Logit``) with their
Wald CIs; Kaplan–Meier (lifelines) with its log-log Greenwood band for ``km_median`` and
``survival_at``; the log-rank O/E hazard ratio with ``var log HR = 1/E_a + 1/E_b``; Wald for
proportions, means and their differences; Fisher's z for the correlation; the order-statistic
interval for quantiles. Numbers are clamped to the schema's public bounds and rows with a missing
value in a column the statistic uses are left out, as the engine does.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd

Z = 1.959963984540054


def _values(frame: pd.DataFrame, column) -> np.ndarray:
    values = frame[column.name].to_numpy(dtype=np.float64, na_value=np.nan)
    return np.clip(values, column.min, column.max)


def _indicator(frame: pd.DataFrame, column, value: Any) -> np.ndarray:
    from verification.core.kinds import level_mask

    out = level_mask(frame, column.name, value).astype(np.float64)
    out[frame[column.name].isna().to_numpy(dtype=bool)] = np.nan
    return out


def _design(frame: pd.DataFrame, schema, exposure: dict, adjust: list[str]) -> pd.DataFrame:
    """Exposure first (an indicator, or the numeric column per unit), then the covariates (numbers
    as they are, categories as indicators against the first declared category)."""
    column = schema[exposure["column"]]
    cols: dict[str, np.ndarray] = {}
    if exposure.get("value") is None and column.is_numeric:
        cols["exposure"] = _values(frame, column)
    else:
        cols["exposure"] = _indicator(frame, column, exposure["value"])
    for name in adjust:
        c = schema[name]
        if c.is_numeric:
            cols[name] = _values(frame, c)
        elif c.type == "event":
            cols[name] = _indicator(frame, c, 1)
        else:
            for category in c.categories[1:]:
                cols[f"{name}={category}"] = _indicator(frame, c, category)
    return pd.DataFrame(cols, index=frame.index)


def _ratio(log_estimate: float, se: float) -> tuple[float, float, float]:
    return math.exp(log_estimate), math.exp(log_estimate - Z * se), math.exp(log_estimate + Z * se)


def hazard_ratio(frame, schema, params) -> tuple[float, float, float]:
    from lifelines import CoxPHFitter

    s = schema.survival
    x = _design(frame, schema, params["exposure"], list(params.get("adjust_for") or []))
    x["T"] = _values(frame, schema[s.duration])
    x["E"] = frame[s.event].to_numpy(dtype=np.float64, na_value=np.nan)
    x = x.dropna()
    x = x.loc[:, (x.nunique() > 1) | x.columns.isin(["exposure", "T", "E"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = CoxPHFitter().fit(x, duration_col="T", event_col="E")
    return _ratio(float(fit.params_["exposure"]), float(fit.standard_errors_["exposure"]))


def logistic_odds_ratio(frame, schema, params) -> tuple[float, float, float]:
    import statsmodels.api as sm

    outcome = params["outcome"]
    x = _design(frame, schema, params["exposure"], list(params.get("adjust_for") or []))
    x["y"] = _indicator(frame, schema[outcome["column"]], outcome["value"])
    x = x.dropna()
    y = x.pop("y")
    x = x.loc[:, (x.nunique() > 1) | (x.columns == "exposure")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.Logit(y.to_numpy(), sm.add_constant(x.to_numpy(), has_constant="add")).fit(disp=0, maxiter=100)
    return _ratio(float(fit.params[1]), float(fit.bse[1]))


def _survival(frame, schema, group: dict | None):
    s = schema.survival
    if group is not None:
        frame = frame.loc[_indicator(frame, schema[group["column"]], group["value"]) == 1]
    t = _values(frame, schema[s.duration])
    e = frame[s.event].to_numpy(dtype=np.float64, na_value=np.nan)
    keep = np.isfinite(t) & np.isfinite(e)
    return t[keep], e[keep] == 1


def _km(frame, schema, group):
    from lifelines import KaplanMeierFitter

    t, e = _survival(frame, schema, group)
    return KaplanMeierFitter().fit(t, e)


def km_median(frame, schema, params):
    from lifelines.utils import median_survival_times

    km = _km(frame, schema, params.get("group"))
    median = float(km.median_survival_time_)
    band = median_survival_times(km.confidence_interval_).to_numpy(dtype=float).ravel()
    return median, float(band[0]), float(band[1])


def survival_at(frame, schema, params):
    km = _km(frame, schema, params.get("group"))
    t = float(params["time"])
    estimate = float(km.survival_function_at_times(t).iloc[0])
    band = km.confidence_interval_survival_function_
    row = band.loc[band.index <= t].iloc[-1]
    return estimate, float(row.iloc[0]), float(row.iloc[1])


def logrank(frame, schema, params):
    g = params["group"]
    column = schema[g["column"]]
    t, e = _survival(frame, schema, None)
    a = _indicator(frame, column, g["a"])
    b = _indicator(frame, column, g["b"])
    s = schema.survival
    keep = np.isfinite(_values(frame, schema[s.duration])) & np.isfinite(frame[s.event].to_numpy(np.float64, na_value=np.nan))
    a, b = a[keep] == 1, b[keep] == 1
    inside = a | b
    t, e, a = t[inside], e[inside], a[inside]
    times = np.unique(t[e])
    order = np.sort(t)
    at_risk = len(t) - np.searchsorted(order, times, side="left")
    order_a = np.sort(t[a])
    at_risk_a = len(order_a) - np.searchsorted(order_a, times, side="left")
    deaths = np.bincount(np.searchsorted(times, t[e]), minlength=len(times))
    expected_a = float(np.sum(deaths * at_risk_a / at_risk))
    observed_a, observed = float(np.sum(e & a)), float(np.sum(e))
    expected_b, observed_b = observed - expected_a, observed - observed_a
    if min(expected_a, expected_b, observed_a, observed_b) <= 0:
        return math.nan, math.nan, math.nan
    log_hr = math.log((observed_a / expected_a) / (observed_b / expected_b))
    return _ratio(log_hr, math.sqrt(1 / expected_a + 1 / expected_b))


def _present(frame, schema, name):
    values = _values(frame, schema[name])
    return values[np.isfinite(values)]


def mean(frame, schema, params):
    v = _present(frame, schema, params["column"])
    m, se = float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - Z * se, m + Z * se


def quantile(frame, schema, params):
    """The sample quantile (``inverted_cdf``: an order statistic, a whole number on an integer column)
    and the distribution-free interval of order statistics ``n q ± z √(n q (1 − q))``."""
    v = np.sort(_present(frame, schema, params["column"]))
    n, q = len(v), float(params.get("q", 0.5))
    half = Z * math.sqrt(n * q * (1 - q))
    lo = int(max(math.floor(n * q - half), 1)) - 1
    hi = int(min(math.ceil(n * q + half), n)) - 1
    return float(np.quantile(v, q, method="inverted_cdf")), float(v[lo]), float(v[hi])


def _proportion_of(frame, schema, name, value):
    x = _indicator(frame, schema[name], value)
    x = x[np.isfinite(x)]
    return float(x.mean()), len(x)


def proportion(frame, schema, params):
    p, n = _proportion_of(frame, schema, params["column"], params["value"])
    se = math.sqrt(p * (1 - p) / n)
    return p, max(p - Z * se, 0.0), min(p + Z * se, 1.0)


def _groups(frame, schema, group):
    column = schema[group["column"]]
    return (frame.loc[_indicator(frame, column, group["a"]) == 1], frame.loc[_indicator(frame, column, group["b"]) == 1])


def difference_in_means(frame, schema, params):
    a, b = _groups(frame, schema, params["group"])
    va, vb = _present(a, schema, params["column"]), _present(b, schema, params["column"])
    d = float(va.mean() - vb.mean())
    se = math.sqrt(va.var(ddof=1) / len(va) + vb.var(ddof=1) / len(vb))
    return d, d - Z * se, d + Z * se


def difference_in_proportions(frame, schema, params):
    a, b = _groups(frame, schema, params["group"])
    pa, na = _proportion_of(a, schema, params["column"], params["value"])
    pb, nb = _proportion_of(b, schema, params["column"], params["value"])
    d = pa - pb
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    return d, d - Z * se, d + Z * se


def correlation(frame, schema, params):
    x, y = _values(frame, schema[params["x"]]), _values(frame, schema[params["y"]])
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    r = float(np.corrcoef(x, y)[0, 1])
    z, se = math.atanh(max(min(r, 1 - 1e-12), -1 + 1e-12)), 1 / math.sqrt(len(x) - 3)
    return r, math.tanh(z - Z * se), math.tanh(z + Z * se)


ESTIMATORS = {f.__name__: f for f in (hazard_ratio, logistic_odds_ratio, km_median, survival_at, logrank, mean,
                                      quantile, proportion, difference_in_means, difference_in_proportions,
                                      correlation)}


def reference(frame: pd.DataFrame, schema, hypothesis) -> dict[str, Any]:
    """The non-private estimate, CI and verdict of a parsed hypothesis on ``frame`` (after its where)."""
    from verification.core.kinds import apply_where

    rows = apply_where(frame, hypothesis.where)
    try:
        estimate, low, high = ESTIMATORS[hypothesis.kind](rows, schema, hypothesis.params)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError, KeyError, IndexError) as exc:
        return {"estimate": None, "ci": [None, None], "verdict": None, "error": f"{type(exc).__name__}: {exc}"}

    def finite(x):
        return x if x is not None and math.isfinite(x) else None

    estimate, low, high = finite(estimate), finite(low), finite(high)
    return {"estimate": estimate, "ci": [low, high], "verdict": verdict([low, high], hypothesis.claim)}


def verdict(ci, claim) -> str:
    """The engine's verdict rule on a non-private CI (an open side is unbounded)."""
    from verification.core import verdict_for

    return verdict_for(ci[0], ci[1], claim)
