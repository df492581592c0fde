"""The regression kinds (logistic_odds_ratio, hazard_ratio) by sample-and-aggregate: the batched
block fits against statsmodels and lifelines, the Laplace + normal CI quantile, CI coverage on
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
from scipy import integrate, optimize, stats

from clearinghouse.schema import Schema
from verification.core import KINDS, kinds
from verification.core import kinds_models as km
from tests.verification.core.conftest import hyp
from verification.core.hypothesis import KINDS as KIND_NAMES



GBSG2_SPECS = {
    "logistic_odds_ratio": {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh", "value": "yes"}},
    "hazard_ratio": {"exposure": {"column": "horTh", "value": "yes"}},
}


def test_every_kind_is_registered_by_importing_the_package():
    assert set(KINDS) == set(KIND_NAMES)
    assert set(kinds.EXACT) == set(KIND_NAMES)


# --- the block fits ------------------------------------------------------------------------------


def _survival_data(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.column_stack([rng.random(n) < 0.5, rng.normal(size=n), rng.integers(0, 3, n) == 1]).astype(float)
    t = np.round(rng.exponential(1 / np.exp(0.5 * x[:, 0] - 0.3 * x[:, 1])), 1)  # rounding makes ties
    c = np.round(rng.exponential(1.5, n), 1)
    return x, np.minimum(t, c), t <= c


def test_cox_blocks_match_lifelines_with_ties():
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    x, time_, event = _survival_data(rng, 600)
    labels = rng.integers(0, 4, len(x))
    beta, converged = km.fit_cox(x, time_, event, labels, 4, ridge=0.0)
    assert converged.all()
    data = pd.DataFrame(x, columns=["a", "b", "c"]).assign(T=time_, E=event.astype(int))
    for block in range(4):
        reference = CoxPHFitter().fit(data[labels == block], "T", "E").params_.to_numpy()  # Efron ties
        # each stops its Newton iterations at its own step tolerance; they agree to ~5e-6
        np.testing.assert_allclose(beta[block], reference, atol=2e-5)


def test_logistic_blocks_match_statsmodels_and_firth_maximises_its_penalised_likelihood():
    import statsmodels.api as sm

    rng = np.random.default_rng(1)
    n = 400
    x = np.column_stack([np.ones(n), rng.random(n) < 0.4, rng.normal(size=n)])
    y = (rng.random(n) < 1 / (1 + np.exp(-(-0.5 + 0.8 * x[:, 1] + 0.5 * x[:, 2])))).astype(float)
    labels = rng.integers(0, 3, n)
    mle, converged = km.fit_logistic(x, y, labels, 3, ridge=0.0, firth=False)
    assert converged.all()
    for block in range(3):
        mask = labels == block
        np.testing.assert_allclose(mle[block], sm.Logit(y[mask], x[mask]).fit(disp=0).params, atol=1e-8)

    firth, converged = km.fit_logistic(x, y, labels, 3, ridge=0.0, firth=True)
    assert converged.all()
    for block in range(3):
        xb, yb = x[labels == block], y[labels == block]

        def minus_penalised(beta):
            eta = xb @ beta
            p = 1 / (1 + np.exp(-eta))
            information = (xb * (p * (1 - p))[:, None]).T @ xb
            return -(np.sum(yb * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(information)[1])

        best = optimize.minimize(minus_penalised, np.zeros(3), method="BFGS", options={"gtol": 1e-10})
        np.testing.assert_allclose(firth[block], best.x, atol=1e-5)
        # Firth shrinks towards 0 relative to the MLE
        assert abs(firth[block][1]) < abs(mle[block][1])


def test_separation_gives_finite_estimates_and_no_exception():
    x = np.column_stack([np.ones(40), np.r_[np.zeros(20), np.ones(20)]])
    y = x[:, 1].copy()  # the exposure predicts the outcome perfectly
    beta, converged = km.fit_logistic(x, y)
    assert converged.all() and np.isfinite(beta).all() and beta[0, 1] > 3  # then clamped to +3
    time_ = np.arange(40.0, 0.0, -1.0)  # the exposed (the last 20 rows) all die before anyone unexposed
    event = np.ones(40, dtype=bool)
    beta, converged = km.fit_cox(x[:, 1:], time_, event)  # separation
    assert converged.all() and np.isfinite(beta).all() and beta[0, 0] > 3


def test_laplace_normal_halfwidth():
    assert km.laplace_normal_halfwidth(0.0, 2.0, 0.95) == pytest.approx(1.959964 * 2, rel=1e-6)
    assert km.laplace_normal_halfwidth(1.5, 0.0, 0.95) == pytest.approx(1.5 * math.log(20), rel=1e-12)
    for b, sigma in ((1.0, 1.0), (0.3, 2.0), (2.0, 0.1), (1.0, 1e-3)):
        w = km.laplace_normal_halfwidth(b, sigma, 0.95)

        def density(u):  # of |L + σZ| > w, integrating the Laplace tail over the normal
            laplace_tail = np.where(w - u > 0, 0.5 * np.exp(-(w - u) / b), 1 - 0.5 * np.exp((w - u) / b))
            return stats.norm.pdf(u, scale=sigma) * laplace_tail

        tail = 2 * integrate.quad(density, -12 * sigma, 12 * sigma, points=[w], limit=200)[0]
        assert tail == pytest.approx(0.05, abs=1e-6), (b, sigma)


def test_block_count_is_a_public_function_of_the_noisy_count():
    assert [km.block_count(n) for n in (100, 499, 500, 2000, 9_999, 10_000, 10**6)] == [5, 5, 5, 20, 99, 100, 100]


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
    "logistic_horTh": ("logistic_odds_ratio", GBSG2_SPECS["logistic_odds_ratio"]),
    "logistic_pnodes_adjusted": ("logistic_odds_ratio", {"outcome": {"column": "cens", "value": 1},
                                                         "exposure": {"column": "pnodes"},
                                                         "adjust_for": ["age", "tgrade"]}),
    "cox_horTh": ("hazard_ratio", GBSG2_SPECS["hazard_ratio"]),
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
    hypothesis = hyp(gbsg2_schema, kind, params, epsilon=50.0)
    full = _full_fit(gbsg2_raw, case)
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(50), synthetic=gbsg2)
    # The exact statistic (synthetic_estimate, here on the real frame itself) is the full-data fit.
    assert result.synthetic_estimate == pytest.approx(full, rel=1e-4)
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
    rng = np.random.default_rng(5)
    frame = simulate(rng, 1000)
    # a constant exposure: every block is uninformative and falls back to 0; the answer is the noise around OR 1
    constant = frame.assign(g=pd.Categorical(["yes"] * len(frame), categories=["no", "yes"]))
    for kind, params in (("logistic_odds_ratio", LOGISTIC), ("hazard_ratio", COX)):
        result = kinds.answer(constant, schema, hyp(schema, kind, params, epsilon=50.0), rng=rng, synthetic=constant)
        assert result.estimate == pytest.approx(1.0, abs=0.05)  # noise sd of the mean log: 0.028
        assert result.synthetic_estimate is None  # the full-data fit is not identified
        json.dumps(result.to_dict(), allow_nan=False)
    # complete separation (the outcome is the exposure): the MLE is infinite; Firth's estimate is finite (log-OR
    # about 7 per block of 100 rows here), the clamp takes every block to +3, and the full-data statsmodels fit
    # gives no estimate
    separated = frame.assign(y=pd.array((frame["g"] == "yes").astype(int), dtype="Int8"))
    claim = {"direction": "greater", "value": 2.0}
    result = kinds.answer(separated, schema, hyp(schema, "logistic_odds_ratio", LOGISTIC, epsilon=50.0, claim=claim),
                          rng=rng, synthetic=separated)
    assert result.estimate == pytest.approx(math.exp(3.0), rel=0.1)
    assert result.verdict == "supported"
    assert result.synthetic_estimate is None
    # Cox: the exposed all fail before anyone unexposed; the ridge keeps the block fits finite, the clamp takes
    # them to +3
    ordered = frame.sort_values("g", ascending=False).assign(time=np.linspace(1, 99, len(frame)),
                                                             status=pd.array([1] * len(frame), dtype="Int8"))
    result = kinds.answer(ordered, schema, hyp(schema, "hazard_ratio", COX, epsilon=50.0), rng=rng, synthetic=ordered)
    assert result.estimate == pytest.approx(math.exp(3.0), rel=0.1)
    assert result.synthetic_estimate is None  # the unpenalised full-data fit diverges


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
                              rng=np.random.default_rng(0), synthetic=gbsg2)
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
        assert result.details["blocks"] == 100
        assert statistics.median(times) < 1.0, (kind, times)
