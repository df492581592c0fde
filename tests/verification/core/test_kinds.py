"""DP answers per kind: CI coverage on simulated data with known truth, agreement with the exact
non-private values at large ε on GBSG2, noise that is really there, withholding, verdicts, the
synthetic estimate and the dispatch table. Fixed seeds; each tolerance is stated where it is used."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import Table2x2
from statsmodels.stats.proportion import proportion_confint

from clearinghouse.schema import Schema
from verification.core import kinds
from verification.core.answer import Answer, verdict_for
from tests.verification.core.conftest import hyp
from verification.core.hypothesis import Claim
from verification.core.kind import Kind



GBSG2_SPECS = {
    "count": {},
    "proportion": {"column": "cens", "value": 1},
    "mean": {"column": "age"},
    "quantile": {"column": "age", "q": 0.5},
    "difference_in_means": {"column": "age", "group": {"column": "menostat", "a": "Post", "b": "Pre"}},
    "difference_in_proportions": {"column": "cens", "value": 1, "group": {"column": "horTh", "a": "yes", "b": "no"}},
    "correlation": {"x": "age", "y": "time"},
    "odds_ratio": {"a": {"column": "horTh", "value": "yes"}, "b": {"column": "cens", "value": 1}},
}


# --- coverage on simulated data with known truth -------------------------------------------------

SIM_SCHEMA = Schema.from_dict({"columns": [
    {"name": "g", "type": "categorical", "categories": ["a", "b"]},
    {"name": "x", "type": "continuous", "min": 0, "max": 100},
    {"name": "y", "type": "continuous", "min": 0, "max": 100},
    {"name": "e", "type": "event"},
    {"name": "f", "type": "event"},
]})
P_A, P_E = 0.4, 0.3
#: x ~ N(50 + 5·[g = a], 10) (clamping at 0/100 is 5 sd away), y = 50 + (x - 50)/2 + N(0, 75),
#: e ~ Bernoulli(0.3), f ~ Bernoulli(0.5 if e else 0.25).
VAR_X = 100 + 25 * P_A * (1 - P_A)
TRUTH = {
    "proportion": P_E,
    "mean": 50 + 5 * P_A,
    "difference_in_means": 5.0,
    "difference_in_proportions": 0.0,
    "correlation": 0.5 * VAR_X / math.sqrt(VAR_X * (0.25 * VAR_X + 75)),
    "odds_ratio": (0.5 / 0.5) / (0.25 / 0.75),
}
SIM_SPECS = {
    "count": {},  # with where g == a; the truth is the cohort's own count
    "proportion": {"column": "e", "value": 1},
    "mean": {"column": "x"},
    "difference_in_means": {"column": "x", "group": {"column": "g", "a": "a", "b": "b"}},
    "difference_in_proportions": {"column": "e", "value": 1, "group": {"column": "g", "a": "a", "b": "b"}},
    "quantile": {"column": "y", "q": 0.5},
    "correlation": {"x": "x", "y": "y"},
    "odds_ratio": {"a": {"column": "e", "value": 1}, "b": {"column": "f", "value": 1}},
}


def simulate(rng: np.random.Generator, n: int = 1000) -> pd.DataFrame:
    g = rng.random(n) < P_A
    x = rng.normal(50 + 5 * g, 10)
    y = 50 + 0.5 * (x - 50) + rng.normal(0, math.sqrt(75), n)
    e = rng.random(n) < P_E
    f = rng.random(n) < np.where(e, 0.5, 0.25)
    return pd.DataFrame({
        "g": pd.Categorical(np.where(g, "a", "b"), categories=["a", "b"]),
        "x": x, "y": y,
        "e": pd.array(e.astype(int), dtype="Int8"), "f": pd.array(f.astype(int), dtype="Int8"),
    })


@pytest.fixture(scope="module")
def coverage() -> dict[str, float]:
    """Share of 300 repetitions (a fresh n = 1000 cohort each) whose 95 % CI at ε = 1 covers the truth."""
    where = {"count": [{"column": "g", "op": "==", "value": "a"}]}
    hypotheses = {kind: hyp(SIM_SCHEMA, kind, params, where=where.get(kind)) for kind, params in SIM_SPECS.items()}
    # the population median of y, from one large draw (its own sampling error is ~0.01)
    median_y = float(np.median(simulate(np.random.default_rng(99), 1_000_000)["y"]))
    rng = np.random.default_rng(2024)
    covered = dict.fromkeys(hypotheses, 0)
    reps = 300
    for _ in range(reps):
        frame = simulate(rng)
        truth = dict(TRUTH, count=int((frame["g"] == "a").sum()), quantile=median_y)
        for kind, hypothesis in hypotheses.items():
            result = kinds.answer(frame, SIM_SCHEMA, hypothesis, rng=rng)
            assert not result.withheld
            covered[kind] += result.ci_low <= truth[kind] <= result.ci_high
    return {kind: hits / reps for kind, hits in covered.items()}


@pytest.mark.parametrize("kind", ["proportion", "mean", "difference_in_means"])
def test_coverage_of_the_95_percent_ci(coverage, kind):
    # 300 repetitions: the Monte-Carlo sd of a 0.95 coverage is 1.3 %, so we assert 0.92–0.98 (the issue's
    # 0.93–0.97 is for "several hundred" repetitions). Observed with this seed: proportion 0.943, mean 0.963,
    # difference_in_means 0.950.
    assert 0.92 <= coverage[kind] <= 0.98, coverage


def test_coverage_of_the_count_ci(coverage):
    # The count's estimand is the cohort's own count, so its CI is the exact discrete-Laplace interval ñ ± k
    # with k the smallest integer with P(|noise| <= k) >= 0.95. Noise is integer, so the coverage cannot be
    # 0.95 exactly: at ε = 1 it is P(|noise| <= 3) = 0.9732 by construction (checked below). Over 300
    # repetitions the Monte-Carlo sd around 0.9732 is 0.9 %, so a 0.98 ceiling would fail about one seed in
    # four by chance alone; we assert 0.92–0.99 (observed with this seed: 0.980).
    a = math.exp(-1.0)
    k = kinds.discrete_laplace_quantile(1.0, 0.95)
    exact = 1 - 2 * a ** (k + 1) / (1 + a)
    assert k == 3 and exact == pytest.approx(0.9732, abs=1e-4)
    assert 0.92 <= coverage["count"] <= 0.99, coverage


@pytest.mark.parametrize("kind", ["difference_in_proportions", "quantile", "correlation", "odds_ratio"])
def test_coverage_of_the_other_kinds(coverage, kind):
    # Not required by the issue for these kinds; a looser band (0.90–0.99, ±4 Monte-Carlo sd) guards against
    # a badly wrong interval.
    assert 0.90 <= coverage[kind] <= 0.99, coverage


# --- large ε: the exact non-private values on GBSG2 ----------------------------------------------


def test_large_epsilon_matches_the_exact_values_on_gbsg2(gbsg2, gbsg2_raw, gbsg2_schema):
    raw = gbsg2_raw
    rng = np.random.default_rng(50)

    def at50(kind, where=None):
        return kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=50.0, where=where),
                            rng=rng)

    # Counts get discrete-Laplace noise of scale 1/50: P(noise != 0) = 2e^-50/(1 + e^-50) ≈ 4e-22, so the
    # count-based kinds (count, proportion, difference in proportions, odds ratio) are exact.
    count = at50("count", where=[{"column": "horTh", "op": "==", "value": "yes"}])
    assert count.estimate == (raw["horTh"] == "yes").sum() == count.noisy_n

    proportion = at50("proportion")
    assert proportion.estimate == pytest.approx((raw["cens"] == 1).mean(), abs=1e-12)
    wald = proportion_confint((raw["cens"] == 1).sum(), len(raw), alpha=0.05, method="normal")
    assert (proportion.ci_low, proportion.ci_high) == pytest.approx(wald, abs=1e-9)

    dip = at50("difference_in_proportions")
    by_group = raw.groupby("horTh", observed=True)["cens"].mean()
    assert dip.estimate == pytest.approx(by_group["yes"] - by_group["no"], abs=1e-12)

    odds = at50("odds_ratio")
    table = Table2x2(pd.crosstab(raw["horTh"] == "yes", raw["cens"] == 1).to_numpy()[::-1, ::-1])
    assert odds.estimate == pytest.approx(table.oddsratio, rel=1e-12)
    assert (odds.ci_low, odds.ci_high) == pytest.approx(table.oddsratio_confint(alpha=0.05), rel=1e-9)  # Woolf

    # The mean's noise sd at ε = 50 is 0.0028 years (sum at ε = 30 with sensitivity 41, over 686 rows);
    # 0.02 is ~7 sd. Its CI half-width matches the exact normal one within 2 % (the variance is noisy too).
    mean = at50("mean")
    assert mean.estimate == pytest.approx(raw["age"].mean(), abs=0.02)
    exact_half = 1.959964 * raw["age"].std() / math.sqrt(len(raw))
    assert (mean.ci_high - mean.ci_low) / 2 == pytest.approx(exact_half, rel=0.02)

    # Difference of means: noise sd 0.008 years (two groups of 290 and 396); 0.05 is ~6 sd.
    dim = at50("difference_in_means")
    means = raw.groupby("menostat", observed=True)["age"].mean()
    assert dim.estimate == pytest.approx(means["Post"] - means["Pre"], abs=0.05)

    # Quantile: ages are whole years with many ties; at ε = 50 the mechanism returns the tied median itself
    # (tolerance: one year, the gap between neighbouring values).
    quantile = at50("quantile")
    assert quantile.estimate == pytest.approx(np.median(raw["age"]), abs=1.0)
    assert quantile.ci_low <= np.median(raw["age"]) <= quantile.ci_high

    # Correlation of age and time: the noise sd of r is 0.002 at ε = 50; 0.015 is ~7 sd.
    correlation = at50("correlation")
    assert correlation.estimate == pytest.approx(stats.pearsonr(raw["age"], raw["time"]).statistic, abs=0.015)

    for result in (count, proportion, dip, odds, mean, dim, quantile, correlation):
        assert not result.withheld and result.epsilon == 50.0
        assert result.ci_low <= result.estimate <= result.ci_high


def test_large_epsilon_with_a_filter(gbsg2, gbsg2_raw, gbsg2_schema):
    where = [{"column": "tgrade", "op": "in", "value": ["II", "III"]}, {"column": "age", "op": ">=", "value": 50}]
    hypothesis = hyp(gbsg2_schema, "mean", {"column": "pnodes"}, epsilon=50.0, where=where)
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(1))
    subgroup = gbsg2_raw[gbsg2_raw["tgrade"].isin(["II", "III"]) & (gbsg2_raw["age"] >= 50)]
    assert result.noisy_n == len(subgroup)  # count at ε = 10: P(noise != 0) ≈ 1e-4
    assert result.estimate == pytest.approx(subgroup["pnodes"].mean(), abs=0.05)  # noise sd ≈ 0.005


# --- the noise is really there --------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(GBSG2_SPECS))
def test_fresh_answers_at_small_epsilon_differ(gbsg2, gbsg2_schema, kind):
    hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=0.1)
    rng = np.random.default_rng(7)
    answers = [kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng) for _ in range(10)]
    outputs = {(a.estimate, a.ci_low, a.ci_high, a.noisy_n) for a in answers}
    # integer counts can repeat by chance (noise sd 14 at ε = 0.1), so: at least 5 distinct answers of 10
    assert len(outputs) >= 5


# --- withholding ----------------------------------------------------------------------------------


def test_withheld_when_the_noisy_subgroup_is_too_small(gbsg2, gbsg2_schema):
    rng = np.random.default_rng(3)
    empty = [{"column": "age", "op": ">", "value": 95}]  # nobody in GBSG2 is over 80
    for kind in ("count", "mean", "proportion", "quantile", "correlation", "odds_ratio"):
        hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=5.0, where=empty)
        result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng, synthetic=gbsg2)
        assert result.withheld, kind
        assert result.reason.startswith("insufficient data")
        assert result.estimate is None and result.ci_low is None and result.ci_high is None
        assert result.verdict is None
        assert result.epsilon == 5.0  # still charged
        assert result.noisy_n < 10
        json.dumps(result.to_dict(), allow_nan=False)
    # the whole cohort, but a minimum larger than it
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "count", epsilon=5.0), rng=rng, min_subgroup=5000)
    assert result.withheld and result.noisy_n == pytest.approx(686, abs=5)


def test_two_group_kinds_are_withheld_when_either_group_is_too_small(gbsg2, gbsg2_schema):
    where = [{"column": "age", "op": "<", "value": 35}]  # 18 rows: few of them are post-menopausal
    for kind in ("difference_in_means",):
        hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=5.0, where=where)
        result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(4))
        assert result.withheld and result.verdict is None
        assert result.details["noisy_n_a"] < 10 <= result.details["noisy_n_b"]
    hypothesis = hyp(gbsg2_schema, "difference_in_proportions",
                     {"column": "cens", "value": 1, "group": {"column": "menostat", "a": "Post", "b": "Pre"}},
                     epsilon=5.0, where=where)
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(4))
    assert result.withheld and result.details["noisy_n_a"] < 10


# --- verdicts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("low, high, direction, value, verdict", [
    (2, 3, "greater", 1, "supported"),
    (2, 3, "greater", 4, "contradicted"),
    (2, 3, "greater", 2.5, "inconclusive"),
    (2, 3, "greater", 2, "inconclusive"),  # touching the value is not "wholly above"
    (2, 3, "less", 4, "supported"),
    (2, 3, "less", 1, "contradicted"),
    (2, 3, "less", 3, "inconclusive"),
    (2, 3, "not_equal", 1, "supported"),
    (2, 3, "not_equal", 4, "supported"),
    (2, 3, "not_equal", 2.5, "inconclusive"),
    (None, 3, "greater", 1, "inconclusive"),
    (None, 3, "less", 4, "supported"),
    (-1, math.nan, "greater", -2, "supported"),
])
def test_verdict_for(low, high, direction, value, verdict):
    assert verdict_for(low, high, {"direction": direction, "value": value}) == verdict
    assert verdict_for(low, high, Claim(direction, value)) == verdict


def test_answers_carry_the_verdict_for_their_claim(gbsg2, gbsg2_schema):
    def verdict(direction, value):
        hypothesis = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=50.0,
                         claim={"direction": direction, "value": value})
        return kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0)).verdict

    # mean age 53.05, 95 % CI about ±0.8
    assert verdict("greater", 50) == "supported"
    assert verdict("less", 50) == "contradicted"
    assert verdict("greater", 53) == "inconclusive"
    assert verdict("not_equal", 50) == "supported"
    assert verdict("not_equal", 53) == "inconclusive"


# --- synthetic estimate, clamping, missing values -------------------------------------------------


def test_synthetic_estimate_is_the_exact_statistic_on_the_synthetic_frame(gbsg2, gbsg2_raw, gbsg2_schema):
    synthetic = gbsg2.sample(300, random_state=1, replace=True).reset_index(drop=True)
    expected = {
        "count": float((synthetic["horTh"] == "yes").sum()),
        "mean": synthetic.loc[synthetic["horTh"] == "yes", "age"].astype(float).mean(),
        "quantile": float(np.quantile(synthetic.loc[synthetic["horTh"] == "yes", "age"].astype(float), 0.5)),
    }
    where = [{"column": "horTh", "op": "==", "value": "yes"}]
    for kind, value in expected.items():
        hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], where=where)
        result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), synthetic=synthetic)
        assert result.synthetic_estimate == pytest.approx(value, rel=1e-12)
        assert kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0)).synthetic_estimate is None
    for kind in ("difference_in_means", "difference_in_proportions", "correlation", "odds_ratio", "proportion"):
        hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind])
        on_real = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=50.0),
                               rng=np.random.default_rng(0), synthetic=gbsg2)
        assert on_real.synthetic_estimate == pytest.approx(on_real.estimate, rel=0.01, abs=0.02)
        result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), synthetic=synthetic)
        assert result.synthetic_estimate is not None


def test_values_are_clamped_to_the_public_bounds(gbsg2_schema, gbsg2):
    frame = gbsg2.copy()
    frame["age"] = pd.array([500] * len(frame), dtype="Int64")  # as a synthetic release might (it should not)
    hypothesis = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=50.0)
    result = kinds.answer(frame, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), synthetic=frame)
    assert result.estimate == pytest.approx(100, abs=0.05)
    assert result.synthetic_estimate == 100


def test_where_semantics_with_missing_values():
    schema = Schema.from_dict({"columns": [
        {"name": "c", "type": "categorical", "categories": ["u", "v"], "nullable": True},
        {"name": "k", "type": "integer", "min": 0, "max": 10, "nullable": True},
    ]})
    frame = pd.DataFrame({"c": pd.Categorical(["u", "v", None, "u"], categories=["u", "v"]),
                          "k": pd.array([1, None, 3, 4], dtype="Int64")})

    def rows(*filters):
        where = hyp(schema, "count", where=list(filters)).where
        return list(kinds.apply_where(frame, where).index)

    assert rows({"column": "c", "op": "==", "value": "u"}) == [0, 3]
    assert rows({"column": "c", "op": "!=", "value": "u"}) == [1]  # a missing value fails every comparison
    assert rows({"column": "k", "op": "!=", "value": 3}) == [0, 3]
    assert rows({"column": "k", "op": "<", "value": 4}) == [0, 2]
    assert rows({"column": "k", "op": "in", "value": [1, 4, 7]}) == [0, 3]
    assert rows({"column": "c", "op": "in", "value": ["u", "v"]}, {"column": "k", "op": ">=", "value": 2}) == [3]


# --- the answer object and the dispatch table -------------------------------------------------------


def test_answer_fields_and_json(gbsg2, gbsg2_schema):
    hypothesis = hyp(gbsg2_schema, "difference_in_means", GBSG2_SPECS["difference_in_means"])
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), synthetic=gbsg2)
    data = result.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["confidence"] == 0.95 and data["epsilon"] == 1.0 and data["verdict"] in ("supported", "contradicted",
                                                                                          "inconclusive")
    assert "parallel" in data["details"]["composition"]
    assert set(data["epsilon_split"]) == {f"{g}.{p}" for g in "ab" for p in ("count", "sum", "sum_of_squares")}
    assert sum(v for k, v in data["epsilon_split"].items() if k.startswith("a.")) == pytest.approx(1.0)
    odd = Answer(kind="mean", estimate=math.nan, ci_low=-math.inf, ci_high=1.0, noisy_n=3, method="m",
                 epsilon=1.0, details={"x": np.float64(math.nan), "y": (np.int64(2),)})
    assert odd.to_dict()["estimate"] is None and odd.to_dict()["ci_low"] is None
    assert odd.to_dict()["details"] == {"x": None, "y": [2]}


def test_confidence_level_is_used(gbsg2, gbsg2_schema):
    hypothesis = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=50.0)
    wide = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), confidence=0.99)
    narrow = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), confidence=0.8)
    assert wide.confidence == 0.99
    assert (wide.ci_high - wide.ci_low) > (narrow.ci_high - narrow.ci_low)


@pytest.mark.parametrize("kind, params", [
    ("logistic_odds_ratio", {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "age"}}),
    ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}}),
    ("km_median", {}),
    ("survival_at", {"time": 1000}),
    ("logrank", {"group": {"column": "horTh", "a": "yes", "b": "no"}}),
])
def test_a_kind_without_a_registered_computation_raises_not_implemented(gbsg2, gbsg2_schema, kind, params,
                                                                         monkeypatch):
    monkeypatch.setattr(kinds, "KINDS", {k: v for k, v in kinds.KINDS.items() if k != kind})
    hypothesis = hyp(gbsg2_schema, kind, params)
    with pytest.raises(NotImplementedError, match=kind):
        kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0))


def test_another_module_can_register_a_kind(gbsg2, gbsg2_schema, monkeypatch):
    monkeypatch.setattr(kinds, "KINDS", dict(kinds.KINDS))
    monkeypatch.setattr(kinds, "EXACT", dict(kinds.EXACT))

    def km_median(request: kinds.Request) -> Answer:
        return request.release(1000.0, 900.0, 1100.0, len(request.frame), "stub", {"all": request.epsilon}, {})

    kinds.register(dataclasses.replace(kinds.KINDS["km_median"], compute=km_median,
                                       exact=lambda frame, schema, hypothesis: 1234.0))
    hypothesis = hyp(gbsg2_schema, "km_median", {}, claim={"direction": "greater", "value": 800})
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), synthetic=gbsg2)
    assert (result.estimate, result.verdict, result.synthetic_estimate) == (1000.0, "supported", 1234.0)
    with pytest.raises(ValueError):
        kinds.register(Kind("median_of_medians", lambda p, schema: {}, km_median, lambda *args: None, "a median"))


def test_bad_engine_arguments(gbsg2, gbsg2_schema):
    hypothesis = hyp(gbsg2_schema, "count")
    for bad in ({"confidence": 1.0}, {"confidence": 0}, {"min_subgroup": 0}, {"min_subgroup": 2.5}):
        with pytest.raises(ValueError):
            kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(0), **bad)


def test_the_engine_imports_without_django():
    import subprocess
    import sys

    code = "import sys, verification.core; assert not any(m.split('.')[0] == 'django' for m in sys.modules), 'django'"
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
