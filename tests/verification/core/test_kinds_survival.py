"""The survival kinds (km_median, survival_at, logrank) from noisy life tables: agreement with
lifelines at large ε on GBSG2, the noise variance against Monte Carlo, CI coverage on simulated
data, "median not reached", noise, withholding, parse-time refusal without a survival pair, JSON
and latency. Fixed seeds; each tolerance is stated where it is used."""

from __future__ import annotations

import json
import math
import statistics
import time

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema
from verification.core import kinds
from verification.core import kinds_survival as ks
from tests.verification.core.conftest import hyp
from verification.core.hypothesis import HypothesisError
from verification.core.mechanisms import discrete_laplace, discrete_laplace_sd

BIN = 60.0  # GBSG2: 50 bins over 0–3000 days


GBSG2_SPECS = {
    "km_median": {},
    "survival_at": {"time": 1000},
    "logrank": {"group": {"column": "horTh", "a": "yes", "b": "no"}},
}


def kmf(frame: pd.DataFrame):
    from lifelines import KaplanMeierFitter

    return KaplanMeierFitter().fit(frame["time"], frame["cens"])


# --- large ε on GBSG2: lifelines ------------------------------------------------------------------
# At ε = 50 a cell's discrete-Laplace noise is non-zero with probability 2e^-50/(1 + e^-50) ≈ 4e-22, so the
# noisy life table is the exact one; what remains is the grid (60-day bins, linear within a bin).


def test_the_life_table_at_large_epsilon_is_the_exact_one(gbsg2, gbsg2_raw, gbsg2_schema):
    # km_median without a release: the fixed grid of 50 equal bins over the duration's bounds
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "km_median", {}, epsilon=50.0),
                          rng=np.random.default_rng(0))
    table = result.details["life_table"]
    assert (table["bins"], table["start"], table["stop"], table["bin_width"]) == (50, 0.0, 3000.0, BIN)
    bins = np.minimum(gbsg2_raw["time"] // BIN, 49).astype(int)
    assert table["events"] == np.bincount(bins[gbsg2_raw["cens"] == 1], minlength=50).tolist()
    assert table["censored"] == np.bincount(bins[gbsg2_raw["cens"] == 0], minlength=50).tolist()
    assert result.noisy_n == 686
    assert result.epsilon_split == {"life_table.events": 50.0, "life_table.censored": 50.0}
    assert result.details["composition"].startswith("parallel")


def test_survival_at_has_its_own_grid_ending_at_the_time_and_one_tail_cell(gbsg2, gbsg2_raw, gbsg2_schema,
                                                                           monkeypatch):
    # Without a release: QUERY_BINS equal bins over [0, 1000], then one cell of every row followed beyond 1000
    # (its events a structural 0). A death at exactly 1000 is inside; a row censored at 1000 is in the tail.
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "survival_at", {"time": 1000}, epsilon=50.0),
                          rng=np.random.default_rng(0))
    table = result.details["life_table"]
    edges = np.linspace(0.0, 1000.0, ks.QUERY_BINS + 1)
    assert table["edges"] == pytest.approx(list(edges) + [3000.0])
    time_, dead = gbsg2_raw["time"].to_numpy(float), gbsg2_raw["cens"].to_numpy() == 1
    inside = (time_ < 1000) | ((time_ == 1000) & dead)
    index = np.clip(np.searchsorted(edges, time_, side="right") - 1, 0, ks.QUERY_BINS - 1)
    assert table["events"] == np.bincount(index[inside & dead], minlength=ks.QUERY_BINS).tolist() + [0]
    assert table["censored"] == (np.bincount(index[inside & ~dead], minlength=ks.QUERY_BINS).tolist()
                                 + [int((~inside).sum())])
    assert result.noisy_n == 686 and result.details["support_end"] == 1000.0
    assert result.details["composition"].startswith("parallel")
    # 25 released cells (12 bins x event/censored, and the tail) instead of 100. In a subgroup (horTh = yes, 246
    # patients) at the release's median time the CI at ε = 1 is narrower than the fixed grid's: observed 0.152
    # against 0.186 wide (0.82x), 200 draws each.
    def width() -> float:
        rng, params = np.random.default_rng(9), {"time": 1723, "group": {"column": "horTh", "value": "yes"}}
        hypothesis = hyp(gbsg2_schema, "survival_at", params, epsilon=1.0)
        answers = [kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng, synthetic=gbsg2) for _ in range(200)]
        return float(np.median([a.ci_high - a.ci_low for a in answers]))

    own = width()
    monkeypatch.setattr(ks, "survival_at_edges", lambda *args: None)  # the fixed 50-bin grid
    assert own < 0.88 * width()


@pytest.mark.parametrize("t", [100, 365, 730, 1000, 1500, 2000, 2400])
def test_survival_at_matches_kaplan_meier_within_the_grid(gbsg2, gbsg2_raw, gbsg2_schema, t):
    fitted = kmf(gbsg2_raw)
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "survival_at", {"time": t}, epsilon=50.0),
                          rng=np.random.default_rng(1), synthetic=gbsg2)
    exact = float(fitted.survival_function_at_times([t]).iloc[0])
    assert result.synthetic_estimate == pytest.approx(exact, rel=1e-12)
    # survival_at's grid ends at t (12 bins at the release's exit-time quantiles), so S is read at an edge; the
    # actuarial product (censored rows count half in their bin) is not KM's, but stays within the KM curve's drop
    # across the 60-day bin holding t (plus 0.005); observed differences are at most 0.006 (at 2400 days).
    j = int(t // BIN)
    start, stop = fitted.survival_function_at_times([j * BIN, (j + 1) * BIN]).to_numpy()
    assert abs(result.estimate - exact) <= (start - stop) + 0.005
    # The CI (Greenwood on log(-log S); the noise adds nothing at ε = 50) is lifelines' within 0.015 (observed at
    # most 0.0124, at 2400 days where ~200-day bins hold 50 censored rows each; under 0.001 up to 1500 days).
    band = fitted.confidence_interval_survival_function_
    low, high = band[band.index <= t].iloc[-1].to_numpy()
    assert result.ci_low == pytest.approx(low, abs=0.015) and result.ci_high == pytest.approx(high, abs=0.015)


@pytest.mark.parametrize("group", [None, {"column": "horTh", "value": "no"}, {"column": "tgrade", "value": "III"}])
def test_km_median_matches_lifelines_within_a_bin(gbsg2, gbsg2_raw, gbsg2_schema, group):
    from lifelines.utils import median_survival_times

    rows = gbsg2_raw if group is None else gbsg2_raw[gbsg2_raw[group["column"]] == group["value"]]
    fitted = kmf(rows)
    params = {} if group is None else {"group": group}
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "km_median", params, epsilon=50.0),
                          rng=np.random.default_rng(2), synthetic=gbsg2)
    assert result.synthetic_estimate == fitted.median_survival_time_
    # The median of the piecewise-linear actuarial curve is within one bin (60 days) of KM's; observed: 18, 27
    # and 16 days. The Brookmeyer–Crowley CI ends are within two bins of lifelines' (observed: within 44 days).
    assert abs(result.estimate - fitted.median_survival_time_) <= BIN
    low, high = median_survival_times(fitted.confidence_interval_).to_numpy().ravel()
    assert abs(result.ci_low - low) <= 2 * BIN and abs(result.ci_high - high) <= 2 * BIN
    assert result.noisy_n == len(rows)


@pytest.mark.parametrize("column, a, b", [("horTh", "yes", "no"), ("menostat", "Pre", "Post"),
                                          ("tgrade", "I", "III"), ("tgrade", "II", "III")])
def test_logrank_matches_lifelines(gbsg2, gbsg2_raw, gbsg2_schema, column, a, b):
    from lifelines.statistics import logrank_test

    rows_a, rows_b = gbsg2_raw[gbsg2_raw[column] == a], gbsg2_raw[gbsg2_raw[column] == b]
    reference = logrank_test(rows_a["time"], rows_b["time"], rows_a["cens"], rows_b["cens"])
    # the exact (unbinned) O - E and V reproduce lifelines' statistic
    u, v, observed_a, observed_b = ks.exact_logrank(rows_a["time"].to_numpy(float), rows_a["cens"].to_numpy() == 1,
                                                    rows_b["time"].to_numpy(float), rows_b["cens"].to_numpy() == 1)
    assert u * u / v == pytest.approx(reference.test_statistic, rel=1e-9)
    assert (observed_a, observed_b) == (rows_a["cens"].sum(), rows_b["cens"].sum())
    ratio = (observed_a / (observed_a - u)) / (observed_b / (observed_b + u))
    hypothesis = hyp(gbsg2_schema, "logrank", {"group": {"column": column, "a": a, "b": b}}, epsilon=50.0)
    # Even at ε = 50 the released fractions carry randomized-rounding noise: menostat's noisy chi-square over 300
    # seeds has mean 0.2938 and sd 0.0050, and one draw leaves the 6 % band below a quarter of the time. So the
    # statistics are the medians of 9 draws (sd about 0.6 %).
    results = [kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(seed), synthetic=gbsg2)
               for seed in range(9)]
    result = results[0]
    assert result.synthetic_estimate == pytest.approx(ratio, rel=1e-12)
    # Grouping the times into 12 bins at the release's event-time quantiles (expected events by person-time share)
    # moves the chi-square by at most 4.6 % here; we allow 6 %. The p-values agree within 20 % relative.
    assert statistics.median(r.details["chi_square"] for r in results) == pytest.approx(reference.test_statistic,
                                                                                        rel=0.06)
    assert statistics.median(r.details["p_value"] for r in results) == pytest.approx(reference.p_value, rel=0.2)
    # The observed/expected HR from the grouped table is within 1 % of the unbinned one (observed: 0.5 %).
    assert result.estimate == pytest.approx(ratio, rel=0.01)
    assert result.ci_low <= result.estimate <= result.ci_high
    assert result.noisy_n == len(rows_a) + len(rows_b)
    assert set(result.epsilon_split) == {"exits", "fractions"}
    assert sum(result.epsilon_split.values()) == pytest.approx(50.0)


# --- the noise variance ---------------------------------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.5, 1.0])
def test_delta_method_noise_variance_matches_monte_carlo(gbsg2_raw, epsilon):
    # Fix the exact cells of GBSG2, add fresh cell noise 4000 times and compare the spread of S(t) and of Peto's
    # log HR (horTh) with the delta-method noise sd the answers use. The Monte-Carlo error of an sd over 4000
    # draws is ~1.1 % (more for the heavier-tailed ratio); the delta method linearises, so we allow 10 %
    # (observed: within 5 %). The noise adds little bias: S(t) within 0.01 of the noiseless value; Peto's log HR,
    # a ratio of noisy sums, moves by 0.012 at ε = 0.5 (6 % of its noise sd of 0.19), so 0.02 there.
    rng = np.random.default_rng(4)
    draws = 4000
    edges = np.linspace(0, 3000, ks.BINS + 1)
    variance = discrete_laplace_sd(1 / epsilon) ** 2
    time_, event = gbsg2_raw["time"].to_numpy(float), gbsg2_raw["cens"].to_numpy() == 1

    def noisy(counts):
        return counts + discrete_laplace(1 / epsilon, rng, size=(draws, ks.BINS))

    d, c = ks.cell_counts(time_, event, edges)
    table = ks.life_table(d, c, edges, variance)
    curves = np.clip(ks._survival(noisy(d).astype(float), noisy(c).astype(float), variance), 0, 1)
    for t in (1020, 2040):  # grid edges 17 and 34
        s, _, noise_var = table.at(t)
        samples = curves[:, int(t // 60)]
        assert np.std(samples) == pytest.approx(math.sqrt(noise_var), rel=0.1), t
        assert np.mean(samples) == pytest.approx(s, abs=0.01), t



@pytest.mark.parametrize("epsilon", [0.5, 1.0])
def test_logrank_noise_sd_matches_monte_carlo(gbsg2, gbsg2_schema, epsilon):
    # The data fixed (GBSG2, horTh yes vs no, bins from the frame itself), 600 fresh noise draws: the spread of the
    # released log HR is the noise alone, which the answer's delta-method noise_sd_log must describe. The
    # Monte-Carlo error of an sd over 600 draws is ~3 %; the delta method linearises; we allow 15 %.
    hypothesis = hyp(gbsg2_schema, "logrank", {"group": {"column": "horTh", "a": "yes", "b": "no"}}, epsilon=epsilon)
    rng = np.random.default_rng(8)
    results = [kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng, synthetic=gbsg2) for _ in range(600)]
    logs = np.log([r.estimate for r in results])
    reported = np.median([r.details["noise_sd_log"] for r in results])
    assert np.std(logs) == pytest.approx(reported, rel=0.15)
    exact = math.log(results[0].synthetic_estimate)
    assert abs(np.mean(logs) - exact) < 0.2 * reported  # the noise adds no visible bias


# --- coverage on simulated data with known truth ----------------------------------------------------------

SIM_SCHEMA = Schema.from_dict({"columns": [
    {"name": "g", "type": "categorical", "categories": ["a", "b"]},
    {"name": "time", "type": "duration", "min": 0, "max": 100},
    {"name": "status", "type": "event"},
], "survival": {"duration": "time", "event": "status"}})
RATE, HR = 0.02, 0.7


def simulate(rng: np.random.Generator, n: int = 2000, rate: float = RATE) -> pd.DataFrame:
    """Exponential times, hazard ``rate`` in group b and ``rate·HR`` in group a; exponential censoring (rate
    0.01) and administrative censoring at 100."""
    in_a = rng.random(n) < 0.5
    t = rng.exponential(1 / (rate * np.where(in_a, HR, 1.0)))
    censor = np.minimum(rng.exponential(100.0, n), 100.0)
    return pd.DataFrame({"g": pd.Categorical(np.where(in_a, "a", "b"), categories=["a", "b"]),
                         "time": np.minimum(t, censor), "status": pd.array((t <= censor).astype(int), dtype="Int8")})


@pytest.fixture(scope="module")
def coverage() -> dict[str, float]:
    """300 fresh cohorts of 2000 (about 1000 per group) at ε = 1."""
    hypotheses = {
        "survival_at": hyp(SIM_SCHEMA, "survival_at", {"time": 30, "group": {"column": "g", "value": "b"}}),
        "km_median": hyp(SIM_SCHEMA, "km_median", {"group": {"column": "g", "value": "b"}}),
        "logrank": hyp(SIM_SCHEMA, "logrank", {"group": {"column": "g", "a": "a", "b": "b"}}),
    }
    truth = {"survival_at": math.exp(-RATE * 30), "km_median": math.log(2) / RATE, "logrank": HR}
    rng = np.random.default_rng(11)
    covered = dict.fromkeys(hypotheses, 0)
    reps = 300
    for _ in range(reps):
        frame = simulate(rng)
        for kind, hypothesis in hypotheses.items():
            result = kinds.answer(frame, SIM_SCHEMA, hypothesis, rng=rng)
            high = math.inf if result.ci_high is None else result.ci_high
            covered[kind] += result.ci_low <= truth[kind] <= high
    return {kind: hits / reps for kind, hits in covered.items()}


@pytest.mark.parametrize("kind", ["survival_at", "logrank"])
def test_coverage_at_epsilon_1(coverage, kind):
    # Not in the list, checked anyway: 300 repetitions (Monte-Carlo sd 1.3 %), band 0.92–0.98. For logrank
    # the truth is the simulated HR, which Peto's exp((O - E)/V) estimates well this close to 1. Observed with this
    # seed: survival_at 0.957, logrank 0.960.
    assert 0.92 <= coverage[kind] <= 0.98, coverage


def test_coverage_of_the_median(coverage):
    # The Brookmeyer–Crowley interval inverts pointwise log(-log) bands and is known to be conservative; observed
    # 0.987 with this seed. We assert it is not too narrow (>= 0.92) and leave the top open.
    assert coverage["km_median"] >= 0.92, coverage


# --- median not reached, noise, withholding, refusal, JSON ---------------------------------------------------


def test_median_not_reached_is_an_answer_not_an_error():
    frame = simulate(np.random.default_rng(5), 2000, rate=0.002)  # S(100) ≈ 0.82 in group b
    hypothesis = hyp(SIM_SCHEMA, "km_median", {}, epsilon=1.0, claim={"direction": "greater", "value": 50})
    result = kinds.answer(frame, SIM_SCHEMA, hypothesis, rng=np.random.default_rng(6), synthetic=frame)
    assert result.estimate is None and result.reason.startswith("median not reached")
    assert not result.withheld
    assert result.ci_low == 100.0 and result.ci_high is None  # beyond the grid, with confidence
    assert result.verdict == "supported"  # the median is above 50
    assert result.synthetic_estimate is None  # lifelines: inf
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("kind", list(GBSG2_SPECS))
def test_fresh_answers_at_small_epsilon_differ(gbsg2, gbsg2_schema, kind):
    hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=0.1)
    rng = np.random.default_rng(7)
    answers = [kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng) for _ in range(10)]
    assert len({(a.estimate, a.ci_low, a.ci_high, a.noisy_n) for a in answers}) == 10
    assert len({a.noisy_n for a in answers}) >= 8  # a sum of 100 (200) noisy cells, sd 141 (200)
    if kind == "survival_at":
        assert len({a.estimate for a in answers}) >= 5
    # At ε = 0.1 a cell's noise sd is 14 and the at-risk count near the end of the grid is a sum of many cells:
    # the tables' support ends early. km_median then mostly reports "median not reached" up to the support's end
    # (with a lower CI end), and logrank's 246-row group is below its noise floor in every bin (estimate None,
    # with the reason) rather than an invented hazard ratio.
    if kind == "km_median":
        assert len({a.ci_low for a in answers}) >= 5


@pytest.mark.parametrize("kind", list(GBSG2_SPECS))
def test_withheld_when_the_subgroup_is_tiny(gbsg2, gbsg2_schema, kind):
    rng = np.random.default_rng(8)
    where = [{"column": "age", "op": ">", "value": 95}]  # nobody
    hypothesis = hyp(gbsg2_schema, kind, GBSG2_SPECS[kind], epsilon=5.0, where=where)
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=rng, synthetic=gbsg2)
    assert result.withheld and result.verdict is None and result.estimate is None and result.ci_low is None
    assert result.reason.startswith("insufficient data") and result.epsilon == 5.0
    assert result.noisy_n < 10  # the sum of 100 cells at ε = 5: sd 3.2
    json.dumps(result.to_dict(), allow_nan=False)


def test_logrank_is_withheld_when_one_group_is_tiny(gbsg2, gbsg2_schema):
    where = [{"column": "age", "op": "<", "value": 35}]  # 18 rows, nearly all pre-menopausal
    hypothesis = hyp(gbsg2_schema, "logrank", {"group": {"column": "menostat", "a": "Post", "b": "Pre"}},
                     epsilon=20.0, where=where)
    result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(9))
    assert result.withheld and result.details["noisy_n_a"] < 10 <= result.details["noisy_n_b"]


def test_group_filter_restricts_the_table(gbsg2, gbsg2_raw, gbsg2_schema):
    params = {"time": 1000, "group": {"column": "horTh", "value": "yes"}}
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "survival_at", params, epsilon=50.0),
                          rng=np.random.default_rng(10), synthetic=gbsg2)
    rows = gbsg2_raw[gbsg2_raw["horTh"] == "yes"]
    assert result.noisy_n == len(rows)
    assert result.synthetic_estimate == pytest.approx(float(kmf(rows).survival_function_at_times([1000]).iloc[0]))


@pytest.mark.parametrize("kind, params", [
    ("km_median", {}), ("survival_at", {"time": 10}), ("logrank", {"group": {"column": "g", "a": "a", "b": "b"}}),
    ("hazard_ratio", {"exposure": {"column": "g", "value": "a"}}),
])
def test_survival_kinds_are_refused_at_parse_time_without_a_survival_pair(kind, params):
    schema = Schema.from_dict({"columns": [
        {"name": "g", "type": "categorical", "categories": ["a", "b"]},
        {"name": "time", "type": "duration", "min": 0, "max": 100},
        {"name": "status", "type": "event"},
    ]})
    with pytest.raises(HypothesisError) as caught:
        hyp(schema, kind, params)
    assert caught.value.code == "no_survival"


def test_survival_at_outside_the_grid_and_beyond_the_support():
    frame = simulate(np.random.default_rng(12), 1000)
    at_start = kinds.answer(frame, SIM_SCHEMA, hyp(SIM_SCHEMA, "survival_at", {"time": 0}, epsilon=50.0),
                            rng=np.random.default_rng(0))
    assert (at_start.estimate, at_start.ci_low, at_start.ci_high) == (1.0, 1.0, 1.0)
    beyond = kinds.answer(frame, SIM_SCHEMA, hyp(SIM_SCHEMA, "survival_at", {"time": 500}, epsilon=50.0),
                          rng=np.random.default_rng(0))
    end = kinds.answer(frame, SIM_SCHEMA, hyp(SIM_SCHEMA, "survival_at", {"time": 100}, epsilon=50.0),
                       rng=np.random.default_rng(0))
    assert beyond.estimate == end.estimate  # clamped to the public bound
    # A cohort whose last rows leave early: with noise, the table's support ends where fewer than 1 + 3 noise
    # sds remain at risk; beyond it S is not estimated and the CI is [0, upper bound at the support's end].
    short = frame.assign(time=np.minimum(frame["time"], 60.0) * np.where(np.arange(len(frame)) < 995, 1.0, 1.5))
    result = kinds.answer(short, SIM_SCHEMA, hyp(SIM_SCHEMA, "survival_at", {"time": 80}, epsilon=1.0),
                          rng=np.random.default_rng(1))
    assert result.details["support_end"] <= 60.0 + 80.0 / ks.QUERY_BINS  # within a bin of the last rows' 60
    assert result.estimate is None and result.ci_low == 0.0 and 0 < result.ci_high <= 1.0
    assert result.reason.startswith("time 80 lies beyond the noisy life table's support")
    json.dumps(result.to_dict(), allow_nan=False)


def test_answer_json_has_no_nan(gbsg2, gbsg2_schema):
    for kind, params in GBSG2_SPECS.items():
        result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, kind, params, epsilon=0.3),
                              rng=np.random.default_rng(0), synthetic=gbsg2)
        data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
        assert data["method"].startswith(("noisy life table", "log-rank"))
        assert data["synthetic_estimate"] is not None


# --- latency -------------------------------------------------------------------------------------------------


def test_latency_at_10k_rows():
    # Measured on 2 shared cores: ~15 ms per answer (the life table, its 100- or 200-cell noise Jacobian).
    frame = simulate(np.random.default_rng(13), 10_000)
    for kind, params in (("km_median", {}), ("survival_at", {"time": 30}),
                         ("logrank", {"group": {"column": "g", "a": "a", "b": "b"}})):
        hypothesis = hyp(SIM_SCHEMA, kind, params)
        rng = np.random.default_rng(0)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            kinds.answer(frame, SIM_SCHEMA, hypothesis, rng=rng)
            times.append(time.perf_counter() - start)
        assert statistics.median(times) < 0.5, (kind, times)


@pytest.mark.parametrize("kind, params", [("km_median", {}), ("survival_at", {"time": 1000}),
                                          ("logrank", {"group": {"column": "horTh", "a": "yes", "b": "no"}})])
def test_small_cohorts_never_crash_the_survival_kinds(gbsg2, gbsg2_schema, kind, params):
    # On 50 or 200 rows at ε = 1, S sits near 1 in early bins and the log(-log S) interval's sd explodes:
    # every answer must still be plain JSON (it once overflowed in math.exp for ~6 % of the seeds).
    hypothesis = hyp(gbsg2_schema, kind, params)
    for rows in (50, 200):
        for seed in range(120):
            result = kinds.answer(gbsg2.iloc[:rows], gbsg2_schema, hypothesis, rng=np.random.default_rng(seed),
                                  min_subgroup=5)
            json.dumps(result.to_dict(), allow_nan=False)
