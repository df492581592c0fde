"""The simulated data (its known truth), each kind's template and error scale, seeds and the targets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit
from scipy.stats import norm

from bench.verification import project

SEED = 20240611

# The targets (never lower them).
LATENCY_TARGETS_S = {"count": 0.050, "mean": 0.050, "proportion": 0.050, "hazard_ratio": 1.0}
LATENCY_TARGET_ROWS = 10_000
RMSE_RATIO_TARGET = 1.2
COVERAGE_RANGE = (0.93, 0.97)
EPSILONS = (0.1, 0.5, 1.0, 5.0)
#: Sample-and-aggregate kinds: tens of milliseconds per answer at 10k rows (fewer repetitions, larger
#: coverage samples so that the blocks hold 100 rows).
SLOW_KINDS = {"logistic_odds_ratio", "hazard_ratio"}
#: A few milliseconds to tens per answer: repetitions in between.
MEDIUM_KINDS = {"quantile", "logrank"}


# ------------------------------------------------------------------------------------- simulated data
SIM_SCHEMA_DICT: dict[str, Any] = {
    "columns": [
        {"name": "age", "type": "integer", "min": 18, "max": 100},
        {"name": "group", "type": "categorical", "categories": ["a", "b"]},
        {"name": "grade", "type": "categorical", "categories": ["I", "II", "III"]},
        {"name": "marker", "type": "continuous", "min": 0, "max": 250},
        {"name": "score", "type": "continuous", "min": 0, "max": 100},
        {"name": "response", "type": "categorical", "categories": ["no", "yes"]},
        {"name": "time", "type": "duration", "min": 0, "max": 3000},
        {"name": "event", "type": "event"},
    ],
    "survival": {"duration": "time", "event": "event"},
}
SIM_SCHEMA = project.schema_from_dict(SIM_SCHEMA_DICT)

# The data-generating process (known truth):
P_B = 0.4                                   # P(group = b)
P_III = {"a": 0.15, "b": 0.30}              # P(grade = III | group)
P_I = 0.30                                  # P(grade = I), either group
MARKER_MEAN, MARKER_SHIFT, MARKER_SD = 100.0, 10.0, 20.0   # marker = 100 + 10·[b] + 20·z1
RHO = 0.5                                   # score = 50 + 10·(ρ z1 + √(1-ρ²) z2)
LOGIT_BASE, LOG_OR = -0.5, math.log(2.0)    # P(response = yes) = expit(-0.5 + log 2 · [b])
LAMBDA0, LOG_HR = math.log(2) / 1200.0, math.log(1.5)      # event time ~ Exp(λ0 · 1.5^[b])
CENSOR = (300.0, 3000.0)                    # censoring time ~ U(300, 3000)
SURVIVAL_T = 1000.0



def typed_frame(data: dict[str, np.ndarray], schema) -> pd.DataFrame:
    """The frame as custody types it (see ``clearinghouse.tabular.read_csv_checked``)."""
    out = {}
    for column in schema.kept:
        values = data[column.name]
        if column.type == "categorical":
            out[column.name] = pd.Categorical(values, categories=list(column.categories))
        elif column.type == "integer":
            out[column.name] = pd.array(np.asarray(values, dtype=np.int64), dtype="Int64")
        elif column.type == "event":
            out[column.name] = pd.array(np.asarray(values, dtype=np.int64), dtype="Int8")
        else:
            out[column.name] = np.asarray(values, dtype=np.float64)
    return pd.DataFrame(out)


def simulate(n: int, seed: Any) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    b = rng.random(n) < P_B
    u = rng.random(n)
    p_iii = np.where(b, P_III["b"], P_III["a"])
    grade = np.where(u < P_I, "I", np.where(u < 1 - p_iii, "II", "III"))
    z1, z2 = rng.standard_normal(n), rng.standard_normal(n)
    marker = np.clip(MARKER_MEAN + MARKER_SHIFT * b + MARKER_SD * z1, 0, 250)
    score = np.clip(50 + 10 * (RHO * z1 + math.sqrt(1 - RHO**2) * z2), 0, 100)
    age = np.clip(np.rint(rng.normal(55, 10, n)), 18, 100)
    response = np.where(rng.random(n) < expit(LOGIT_BASE + LOG_OR * b), "yes", "no")
    event_time = rng.exponential(1.0 / (LAMBDA0 * np.exp(LOG_HR * b)))
    censor = rng.uniform(*CENSOR, n)
    time_ = np.round(np.minimum(event_time, censor), 1)
    event = (event_time <= censor).astype(np.int64)
    return typed_frame({"age": age, "group": np.where(b, "b", "a"), "grade": grade, "marker": marker,
                        "score": score, "response": response, "time": time_, "event": event}, SIM_SCHEMA)


def _mixture_survival(t: float) -> float:
    return (1 - P_B) * math.exp(-LAMBDA0 * t) + P_B * math.exp(-LAMBDA0 * math.exp(LOG_HR) * t)


def _true_marker_median() -> float:
    def cdf(m):
        return ((1 - P_B) * norm.cdf((m - MARKER_MEAN) / MARKER_SD)
                + P_B * norm.cdf((m - MARKER_MEAN - MARKER_SHIFT) / MARKER_SD) - 0.5)
    return float(brentq(cdf, 0, 250))


_MARKER_VAR = MARKER_SD**2 + MARKER_SHIFT**2 * P_B * (1 - P_B)
TRUTH: dict[str, Callable[[pd.DataFrame], float]] = {
    "count": lambda frame: float((frame["marker"] > 120).sum()),  # the estimand is this cohort's count
    "proportion": lambda frame: (1 - P_B) * P_III["a"] + P_B * P_III["b"],
    "mean": lambda frame: 55.0,
    "quantile": lambda frame: _true_marker_median(),
    "difference_in_means": lambda frame: MARKER_SHIFT,
    "difference_in_proportions": lambda frame: P_III["b"] - P_III["a"],
    "correlation": lambda frame: MARKER_SD * 10 * RHO / (math.sqrt(_MARKER_VAR) * 10),
    "odds_ratio": lambda frame: (P_III["b"] / (1 - P_III["b"])) / (P_III["a"] / (1 - P_III["a"])),
    "logistic_odds_ratio": lambda frame: math.exp(LOG_OR),
    "hazard_ratio": lambda frame: math.exp(LOG_HR),
    "km_median": lambda frame: float(brentq(lambda t: _mixture_survival(t) - 0.5, 0, 3000)),
    "survival_at": lambda frame: _mixture_survival(SURVIVAL_T),
    # The log-rank answer's estimate is a hazard ratio of a vs b (see KIND_SPECS); under proportional
    # hazards its population value is 1/1.5.
    "logrank": lambda frame: math.exp(-LOG_HR),
}


@dataclass(frozen=True)
class KindSpec:
    """How a kind is asked on the simulated schema and how its error is measured.

    ``scale``: ``linear`` (estimate - twin), ``log`` (log estimate, or ``details[value_key]``), or
    ``rank`` (the quantile). ``noise_key``: the ``details`` entry with the noise sd on that scale
    (None: the count's analytic sd)."""

    hypothesis: dict[str, Any]
    scale: str = "linear"
    noise_key: str | None = "noise_sd"
    value_key: str | None = None
    coverage_n: int = 2000
    #: The theoretical noise sd from the mechanism when the kind reports none: f(result, twin, ε).
    theory: Callable[[Any, Any, float], float | None] | None = None
    theory_doc: str = ""


KIND_SPECS: dict[str, KindSpec] = {
    "count": KindSpec({"kind": "count", "where": [{"column": "marker", "op": ">", "value": 120}],
                       "claim": {"direction": "greater", "value": 100}}, noise_key=None),
    "proportion": KindSpec({"kind": "proportion", "params": {"column": "grade", "value": "III"},
                            "claim": {"direction": "less", "value": 0.5}}),
    "mean": KindSpec({"kind": "mean", "params": {"column": "age"}, "claim": {"direction": "greater", "value": 50}}),
    "quantile": KindSpec({"kind": "quantile", "params": {"column": "marker", "q": 0.5},
                          "claim": {"direction": "greater", "value": 90}}, scale="rank", noise_key=None),
    "difference_in_means": KindSpec({"kind": "difference_in_means",
                                     "params": {"column": "marker", "group": {"column": "group", "a": "b", "b": "a"}},
                                     "claim": {"direction": "greater", "value": 0}}),
    "difference_in_proportions": KindSpec({"kind": "difference_in_proportions",
                                           "params": {"column": "grade", "value": "III",
                                                      "group": {"column": "group", "a": "b", "b": "a"}},
                                           "claim": {"direction": "greater", "value": 0}}),
    "correlation": KindSpec({"kind": "correlation", "params": {"x": "marker", "y": "score"},
                             "claim": {"direction": "greater", "value": 0}}, noise_key="noise_sd_r"),
    "odds_ratio": KindSpec({"kind": "odds_ratio", "params": {"a": {"column": "group", "value": "b"},
                                                              "b": {"column": "grade", "value": "III"}},
                            "claim": {"direction": "greater", "value": 1}}, scale="log", noise_key="noise_sd_log"),
    "logistic_odds_ratio": KindSpec({"kind": "logistic_odds_ratio",
                                     "params": {"outcome": {"column": "response", "value": "yes"},
                                                "exposure": {"column": "group", "value": "b"}},
                                     "claim": {"direction": "greater", "value": 1}},
                                    scale="log", noise_key="noise_sd_log", value_key="mean_log", coverage_n=10_000),
    "hazard_ratio": KindSpec({"kind": "hazard_ratio", "params": {"exposure": {"column": "group", "value": "b"}},
                              "claim": {"direction": "greater", "value": 1}},
                             scale="log", noise_key="noise_sd_log", value_key="mean_log", coverage_n=10_000),
    "km_median": KindSpec({"kind": "km_median", "params": {}, "claim": {"direction": "greater", "value": 500}},
                          noise_key=None, theory=lambda result, twin, epsilon: _km_median_noise_sd(twin, epsilon),
                          theory_doc="delta method: the noise sd of S at the median / |dS/dt| there"),
    "survival_at": KindSpec({"kind": "survival_at", "params": {"time": SURVIVAL_T},
                             "claim": {"direction": "greater", "value": 0.5}}),
    "logrank": KindSpec({"kind": "logrank", "params": {"group": {"column": "group", "a": "a", "b": "b"}},
                         "claim": {"direction": "less", "value": 1}}, scale="log", noise_key="noise_sd_log"),
}


def _km_median_noise_sd(twin, epsilon: float) -> float | None:
    """The noise sd of the life-table median by the delta method: the noise sd of S at the median
    (the kind's own Jacobian of S over the cells, at the noise-free cells, times the cells'
    discrete-Laplace variance) divided by |dS/dt| there (S is linear within a bin)."""
    life_table = project.life_table()
    discrete_laplace_sd = project.mechanisms().discrete_laplace_sd

    if twin.estimate is None or "life_table" not in twin.details:
        return None
    lt = twin.details["life_table"]
    edges = np.linspace(lt["start"], lt["stop"], lt["bins"] + 1)
    table = life_table(np.asarray(lt["events"], float), np.asarray(lt["censored"], float), edges,
                       discrete_laplace_sd(1.0 / epsilon) ** 2)
    _s, _greenwood, noise_var = table.at(twin.estimate)
    j = int(min(np.searchsorted(edges, twin.estimate, side="right") - 1, len(edges) - 2))
    slope = (table.survival[j + 1] - table.survival[j]) / (edges[j + 1] - edges[j])
    return math.sqrt(noise_var) / abs(slope) if slope != 0 else None


def rng_for(*key: int) -> np.random.Generator:
    return np.random.default_rng([SEED, *key])


def kind_index(kind: str) -> int:
    """A stable number per kind (its place in the hypothesis format), so kinds get independent seeds."""
    names = project.hypothesis_names()
    return names.index(kind) if kind in names else 100 + sorted(KIND_SPECS).index(kind)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if values else math.nan
