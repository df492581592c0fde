"""The regression kinds (logistic_odds_ratio, hazard_ratio) by sample-and-aggregate (the batched
block fits are tested in tests/clearinghouse/test_fitting.py, the Laplace + normal CI quantile in
test_aggregate.py): CI coverage on
simulated data with a known log-OR / log-HR, agreement with the full-data fits on GBSG2 at large ε,
noise, withholding, fallbacks and latency. Fixed seeds; each tolerance is stated where it is used."""

from __future__ import annotations

import json
import math
import statistics
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema
from verification.core import KINDS, kinds
from tests.verification.core.conftest import hyp
from verification.core.hypothesis import KINDS as KIND_NAMES



# Sample-and-aggregate answers a model with a numeric covariate (age here); a model whose covariates are all
# categorical is answered from a noisy table (tests/verification/core/test_tables.py).
GBSG2_SPECS = {
    "logistic_odds_ratio": {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh", "value": "yes"},
                            "adjust_for": ["age"]},
    "hazard_ratio": {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age"]},
}


def test_every_kind_is_registered_by_importing_the_package():
    assert set(KINDS) == set(KIND_NAMES)
    assert set(kinds.EXACT) == set(KIND_NAMES)


# --- coverage on simulated data with known truth -------------------------------------------------

SIM_SCHEMA = Schema.from_dict({"columns": [
    {"name": "g", "type": "categorical", "categories": ["no", "yes"]},
    {"name": "z", "type": "continuous", "min": -5, "max": 5},
    {"name": "c", "type": "categorical", "categories": ["A", "B", "C"]},
    {"name": "y", "type": "event"},
    {"name": "time", "type": "duration", "min": 0, "max": 100},
    {"name": "status", "type": "event"},
], "survival": {"duration": "time", "event": "status"}})
LOG_OR, LOG_HR = 0.7, -0.5
LOGISTIC = {"outcome": {"column": "y", "value": 1}, "exposure": {"column": "g", "value": "yes"},
            "adjust_for": ["z", "c"]}
COX = {"exposure": {"column": "g", "value": "yes"}, "adjust_for": ["z", "c"]}


def simulate(rng: np.random.Generator, n: int = 2000) -> pd.DataFrame:
    """g ~ Bernoulli(0.5), z ~ N(0, 1), c uniform on A/B/C (effects 0, 0.3, -0.3 in both models);
    logit P(y) = -0.5 + 0.7 g + 0.5 z + c-effect; hazard 0.02·exp(-0.5 g + 0.5 z + c-effect),
    censored by an exponential (rate 0.01) and administratively at 100."""
    g = rng.random(n) < 0.5
    z = rng.normal(size=n)
    c = rng.integers(0, 3, n)
    shift = np.array([0.0, 0.3, -0.3])[c]
    y = rng.random(n) < 1 / (1 + np.exp(-(-0.5 + LOG_OR * g + 0.5 * z + shift)))
    t = rng.exponential(1 / (0.02 * np.exp(LOG_HR * g + 0.5 * z + shift)))
    censor = np.minimum(rng.exponential(100.0, n), 100.0)
    return pd.DataFrame({
        "g": pd.Categorical(np.where(g, "yes", "no"), categories=["no", "yes"]), "z": z,
        "c": pd.Categorical(np.array(["A", "B", "C"])[c], categories=["A", "B", "C"]),
        "y": pd.array(y.astype(int), dtype="Int8"), "time": np.minimum(t, censor),
        "status": pd.array((t <= censor).astype(int), dtype="Int8"),
    })


def _coverage(epsilon: float, reps: int, seed: int) -> dict[str, float]:
    hypotheses = {"logistic_odds_ratio": hyp(SIM_SCHEMA, "logistic_odds_ratio", LOGISTIC, epsilon=epsilon),
                  "hazard_ratio": hyp(SIM_SCHEMA, "hazard_ratio", COX, epsilon=epsilon)}
    truth = {"logistic_odds_ratio": math.exp(LOG_OR), "hazard_ratio": math.exp(LOG_HR)}
    rng = np.random.default_rng(seed)
    covered = dict.fromkeys(hypotheses, 0)
    for _ in range(reps):
        frame = simulate(rng)
        for kind, hypothesis in hypotheses.items():
            result = kinds.answer(frame, SIM_SCHEMA, hypothesis, rng=rng)
            assert not result.withheld and 19 <= result.details["blocks"] <= 21  # ñ // 100, ñ ≈ 2000
            covered[kind] += result.ci_low <= truth[kind] <= result.ci_high
    return {kind: hits / reps for kind, hits in covered.items()}


@pytest.fixture(scope="module")
def coverage_1() -> dict[str, float]:
    return _coverage(1.0, 300, 2024)


@pytest.fixture(scope="module")
def coverage_20() -> dict[str, float]:
    return _coverage(20.0, 150, 7)


@pytest.mark.parametrize("kind", ["logistic_odds_ratio", "hazard_ratio"])
def test_coverage_at_epsilon_1(coverage_1, kind):
    # n = 2000 (k = 20 blocks of ~100 rows), 300 fresh cohorts at ε = 1. The Monte-Carlo sd of a 0.95 coverage
    # over 300 repetitions is 1.3 %, so we assert 0.92–0.98 (the 0.93–0.97 is for "a few hundred"
    # repetitions; ±2.3 sd). At ε = 1 the Laplace noise of the block mean (sd 0.71 on the log scale) dominates the
    # width. Observed with this seed: logistic OR 0.960, Cox HR 0.957.
    assert 0.92 <= coverage_1[kind] <= 0.98, coverage_1


@pytest.mark.parametrize("kind", ["logistic_odds_ratio", "hazard_ratio"])
def test_coverage_at_epsilon_20_where_sampling_dominates(coverage_20, kind):
    # Not required by the issue: at ε = 20 the sampling spread of the block estimates (sd ~0.1 on the log scale)
    # outweighs the noise (sd 0.036), so this checks the DP block spread, the t quantile and the small-block
    # bias (Firth for the logistic blocks). 150 repetitions: Monte-Carlo sd 1.8 %, band 0.90–0.99.
    # Observed with this seed: logistic OR 0.933, Cox HR 0.940.
    assert 0.90 <= coverage_20[kind] <= 0.99, coverage_20


# --- large ε on GBSG2: the full-data statsmodels / lifelines fits ---------------------------------


GBSG2_CASES = {
    "logistic_horTh": ("logistic_odds_ratio", {"outcome": {"column": "cens", "value": 1},
                                               "exposure": {"column": "horTh", "value": "yes"}}),
    "logistic_pnodes_adjusted": ("logistic_odds_ratio", {"outcome": {"column": "cens", "value": 1},
                                                         "exposure": {"column": "pnodes"},
                                                         "adjust_for": ["age", "tgrade"]}),
    "cox_horTh": ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}}),
    "cox_horTh_adjusted": ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"},
                                            "adjust_for": ["age", "menostat", "pnodes", "tgrade"]}),
}


def _full_fit(raw: pd.DataFrame, case: str) -> float:
    """The non-private full-data OR / HR (per unit for pnodes), straight from statsmodels / lifelines."""
    import statsmodels.formula.api as smf
    from lifelines import CoxPHFitter

    data = raw.assign(exposed=(raw["horTh"] == "yes").astype(int), tsize=raw["tsize"].astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if case == "logistic_horTh":
            return math.exp(smf.logit("cens ~ exposed", data).fit(disp=0).params["exposed"])
        if case == "logistic_pnodes_adjusted":
            return math.exp(smf.logit("cens ~ pnodes + age + C(tgrade)", data).fit(disp=0).params["pnodes"])
        columns = ["time", "cens", "exposed"]
        if case == "cox_horTh_adjusted":
            data = pd.get_dummies(data[columns + ["age", "menostat", "pnodes", "tgrade"]],
                                  columns=["menostat", "tgrade"], drop_first=True, dtype=float)
        else:
            data = data[columns]
        return math.exp(CoxPHFitter().fit(data, "time", "cens").params_["exposed"])


@pytest.mark.parametrize("case", list(GBSG2_CASES))
def test_large_epsilon_is_close_to_the_full_data_fit_on_gbsg2(gbsg2, gbsg2_raw, gbsg2_schema, case):
    kind, params = GBSG2_CASES[case]
    if "adjust_for" not in params and params["exposure"].get("value") is not None:
        pytest.skip("all-categorical models are answered from a noisy table: tests/verification/core/test_tables.py")
    hypothesis = hyp(gbsg2_schema, kind, params, epsilon=50.0)
    full = _full_fit(gbsg2_raw, case)
    # Without a synthetic release a model with a numeric covariate is answered by sample-and-aggregate (with one, by
    # DP Newton steps from the release's fit: tests/verification/core/test_newton.py).
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(50))
    # The exact statistic (what synthetic_estimate computes, here on the real frame itself) is the full-data fit.
    assert kinds.EXACT[kind](gbsg2, gbsg2_schema, hypothesis) == pytest.approx(full, rel=1e-4)
    assert not result.withheld and result.noisy_n == 686 and result.details["blocks"] == 6
    # Sample-and-aggregate estimates E[block estimate] from k = 6 blocks of ~114 rows, not the full-data MLE: the
    # two differ by the blocks' own sampling error (sd ~0.04 on the log scale for horTh) plus the noise (sd
    # 6·√2/(30·6) = 0.047 at ε_mean = 30). Over 100 seeds the difference (on the clamp scale: per quarter range
    # for pnodes) had sd 0.06–0.11 and never exceeded 0.30 in absolute value; we assert 0.3 for this seed, and that
    # the full-data value lies inside the DP CI (it did for 97–100 of the 100 seeds).
    unit = result.details["exposure_unit"]
    assert abs(math.log(result.estimate / full)) * unit <= 0.3, (result.estimate, full)
    assert result.ci_low <= full <= result.ci_high
    assert result.ci_low <= result.estimate <= result.ci_high
    assert set(result.epsilon_split) == {"count", "mean", "second_moment"}
    assert sum(result.epsilon_split.values()) == pytest.approx(50.0)
    assert result.details["composition"].startswith("sequential")


# --- the noise is there, withholding, fallbacks, JSON ------------------------------------------------


@pytest.mark.parametrize("kind", list(GBSG2_SPECS))
def test_fresh_answers_at_small_epsilon_differ(gbsg2, gbsg2_schema, kind):
    hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=0.1)
    rng = np.random.default_rng(7)
    answers = [kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng) for _ in range(10)]
    assert len({(a.estimate, a.ci_low, a.ci_high, a.noisy_n) for a in answers}) == 10
    # At ε = 0.1 on 686 rows (6 blocks) the noise sd of the mean log-ratio is 24, so the released mean is mostly at a
    # clamp bound (OR 0.05 or 20) and the CI is the whole clamp range: the answer honestly says "no information".
    assert len({a.estimate for a in answers}) >= 2
    for a in answers:
        assert math.exp(-3) - 1e-12 <= a.ci_low <= a.estimate <= a.ci_high <= math.exp(3) + 1e-12
        assert a.verdict == "inconclusive"


@pytest.mark.parametrize("kind", list(GBSG2_SPECS))
def test_withheld_when_the_subgroup_is_tiny(gbsg2, gbsg2_schema, kind):
    rng = np.random.default_rng(3)
    for where in ([{"column": "age", "op": ">", "value": 95}],  # nobody
                  [{"column": "age", "op": "<", "value": 35}]):  # 18 rows: above min_subgroup, below 5 blocks of 20
        hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=5.0, where=where)
        result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng, synthetic=gbsg2)
        assert result.withheld and result.verdict is None and result.estimate is None
        assert result.reason.startswith("insufficient data")
        assert result.epsilon == 5.0  # still charged
        json.dumps(result.to_dict(), allow_nan=False)
    assert "sample-and-aggregate needs at least 100 rows" in result.reason


def test_uninformative_and_separated_blocks_fall_back_without_error():
    schema = SIM_SCHEMA
    # Robust to the seed (checked on seeds 0-10): an all-clamped answer is flagged whether the noise leaves
    # its mean on the bound or pulls it off (its CI still reaches the bound), and the constant exposure's
    # tolerance is 4 noise sds
    rng = np.random.default_rng(5)
    frame = simulate(rng, 1000)
    # a constant exposure: every block is uninformative and falls back to 0; the answer is the noise around OR 1
    constant = frame.assign(g=pd.Categorical(["yes"] * len(frame), categories=["no", "yes"]))
    for kind, params in (("logistic_odds_ratio", LOGISTIC), ("hazard_ratio", COX)):
        hypothesis = hyp(schema, kind, params, epsilon=50.0)
        result = kinds.answer(constant, schema, hypothesis, rng=rng)
        assert result.method.startswith("sample-and-aggregate")
        assert result.estimate == pytest.approx(1.0, abs=0.12)  # noise sd of the mean log: 0.028; 4 sd
        assert kinds.EXACT[kind](constant, schema, hypothesis) is None  # the full-data fit is not identified
        json.dumps(result.to_dict(), allow_nan=False)
    # complete separation (the outcome is the exposure): the MLE is infinite; Firth's estimate is finite (log-OR
    # about 7 per block of 100 rows here), the clamp takes every block to +3, and the full-data statsmodels fit
    # gives no estimate
    separated = frame.assign(y=pd.array((frame["g"] == "yes").astype(int), dtype="Int8"))
    claim = {"direction": "greater", "value": 2.0}
    result = kinds.answer(separated, schema, hyp(schema, "logistic_odds_ratio", LOGISTIC, epsilon=50.0, claim=claim),
                          rng=rng)
    assert result.estimate == pytest.approx(math.exp(3.0), rel=0.1)
    # every block sits on the clamp: the CI would exclude 2, but a clamped value is a bound, not a
    # measurement, so it is flagged and never shown as a finding (issue 11, part 3)
    assert result.informative is False and result.verdict == "inconclusive"
    assert result.ci_low > claim["value"]
    assert result.synthetic_estimate is None
    # Cox: the exposed all fail before anyone unexposed; the ridge keeps the block fits finite, the clamp takes
    # them to +3
    ordered = frame.sort_values("g", ascending=False).assign(time=np.linspace(1, 99, len(frame)),
                                                             status=pd.array([1] * len(frame), dtype="Int8"))
    hypothesis = hyp(schema, "hazard_ratio", COX, epsilon=50.0)
    result = kinds.answer(ordered, schema, hypothesis, rng=rng)
    assert result.estimate == pytest.approx(math.exp(3.0), rel=0.1)
    assert kinds.EXACT["hazard_ratio"](ordered, schema, hypothesis) is None  # the unpenalised full-data fit diverges


def test_numeric_exposure_is_per_unit_and_clamped_per_quarter_range(gbsg2, gbsg2_schema):
    params = {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "age"}}
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "logistic_odds_ratio", params, epsilon=50.0),
                          rng=np.random.default_rng(0), synthetic=gbsg2)
    assert result.details["exposure_unit"] == pytest.approx((100 - 18) / 4)
    assert result.ci_low < 1.0 < result.ci_high  # age has no marginal effect on recurrence in GBSG2
    assert abs(math.log(result.estimate)) < 3 / result.details["exposure_unit"]
    assert abs(math.log(result.synthetic_estimate)) < 0.02  # the full-data per-year log-OR is ~0.002


def test_missing_values_are_complete_cases():
    schema = Schema.from_dict({"columns": [
        {"name": "x", "type": "continuous", "min": 0, "max": 1, "nullable": True},
        {"name": "y", "type": "event", "nullable": True},
    ]})
    rng = np.random.default_rng(9)
    n = 3000
    x = rng.random(n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x - 0.5) * 2))).astype(float)
    x[::7] = np.nan
    y[::11] = np.nan
    frame = pd.DataFrame({"x": x, "y": pd.array(y, dtype="Int8")})
    params = {"outcome": {"column": "y", "value": 1}, "exposure": {"column": "x"}}
    result = kinds.answer(frame, schema, hyp(schema, "logistic_odds_ratio", params, epsilon=50.0),
                          rng=np.random.default_rng(1), synthetic=frame)
    complete = int((~np.isnan(x) & ~np.isnan(y)).sum())
    assert result.noisy_n == pytest.approx(complete, abs=3)  # the count at ε = 5
    assert result.ci_low <= math.exp(2.0) <= result.ci_high  # per unit of x: log-OR 2


def test_answer_json_has_no_nan(gbsg2, gbsg2_schema):
    for kind, params in GBSG2_SPECS.items():
        result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, kind, params, epsilon=0.5),
                              rng=np.random.default_rng(0))
        data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
        assert data["verdict"] in ("supported", "contradicted", "inconclusive")
        assert data["method"].startswith("sample-and-aggregate")
        assert data["details"]["blocks"] == 6 and data["details"]["clamp_log"] == [-3.0, 3.0]


# --- latency -------------------------------------------------------------------------------------------


def test_latency_at_10k_rows():
    # Target (issue): p50 under 1 s for the Cox HR at 10k rows. Measured on 2 shared cores (k = 100 blocks of 100
    # rows, covariates z and c): hazard_ratio ~0.15 s, logistic_odds_ratio ~0.08 s.
    frame = simulate(np.random.default_rng(10), 10_000)
    for kind, params in (("hazard_ratio", COX), ("logistic_odds_ratio", LOGISTIC)):
        hypothesis = hyp(SIM_SCHEMA, kind, params)
        rng = np.random.default_rng(0)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            result = kinds.answer(frame, SIM_SCHEMA, hypothesis, rng=rng)
            times.append(time.perf_counter() - start)
        assert result.details["blocks"] in (99, 100)  # k = noisy n // 100: the noise decides
        assert statistics.median(times) < 1.0, (kind, times)
