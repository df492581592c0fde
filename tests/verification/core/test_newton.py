"""DP Newton steps from the synthetic release's fit (verification/core/newton.py): the mechanism of a
hazard or odds ratio whose model has a numeric covariate.

Privacy (the released score sums move by at most their public L1 bound when one row is added or
removed, on random data), accuracy (at ε = 50 the estimate matches lifelines / statsmodels), and
defect (c): a skewed numeric exposure (most patients at 0) whose CI used to ignore the mechanism's
bias. Fixed seeds; each tolerance is stated where it is asserted.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema
from verification.core import kinds
from verification.core.mechanisms import noisy_vector_sum
from tests.verification.core.conftest import hyp


# --- privacy ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_one_row_moves_a_vector_sum_by_at_most_its_bound(seed):
    rng = np.random.default_rng(seed)
    rows = rng.normal(scale=2.0, size=(200, 4))  # many rows above the bound of 3: they are scaled onto it
    bound = 3.0
    exact = dict(epsilon=1e12, rng=rng)  # discrete Laplace at this ε draws 0
    base, _ = noisy_vector_sum(rows, bound, **exact)
    for neighbour in (rows[1:], np.vstack([rows, rng.normal(scale=5.0, size=(1, 4))])):
        moved, _ = noisy_vector_sum(neighbour, bound, **exact)
        # the bound, plus the randomized rounding of the other 199 rows (each coordinate within a 2^-16 grid of 3)
        assert np.abs(moved - base).sum() <= bound + 200 * 4 * bound / 2**16
    noisy, sd = noisy_vector_sum(rows, bound, 1.0, np.random.default_rng(1))
    # discrete Laplace with scale (2^16 + 4)/1 grid units of 3/2^16: sd ≈ √2·3
    assert sd == pytest.approx(math.sqrt(2) * 3.0, rel=1e-3)
    with pytest.raises(ValueError):
        noisy_vector_sum(np.array([1.0, np.nan])[None, :], 1.0, 1.0, rng)


# --- accuracy at large ε ---------------------------------------------------------------------------------------


def test_hazard_ratios_at_large_epsilon_match_lifelines(gbsg2, gbsg2_raw, gbsg2_schema):
    from lifelines import CoxPHFitter

    data = gbsg2_raw.assign(horTh=(gbsg2_raw["horTh"] == "yes").astype(float))
    for params, columns, name in (({"exposure": {"column": "age"}}, ["age"], "age"),
                                  ({"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age", "pnodes"]},
                                   ["horTh", "age", "pnodes"], "horTh")):
        cox = CoxPHFitter().fit(data[columns + ["time", "cens"]], "time", "cens")
        reference, se = float(cox.params_[name]), float(cox.standard_errors_[name])
        result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "hazard_ratio", params, epsilon=50.0),
                              rng=np.random.default_rng(3), synthetic=gbsg2)
        assert result.method.startswith("DP Newton")
        # the piecewise-exponential model on 12 bins against Cox's partial likelihood: within 0.25 se
        # (observed: age 0.05 se, horTh adjusted 0.2 se)
        assert abs(math.log(result.estimate) - reference) < 0.25 * se, (name, result.estimate, reference)
        assert math.log(result.ci_high / result.ci_low) == pytest.approx(2 * 1.96 * se, rel=0.15)
        assert set(result.epsilon_split) == {"count", "step_1", "step_2"}
        assert sum(result.epsilon_split.values()) == pytest.approx(50.0)


def test_odds_ratio_per_unit_at_large_epsilon_matches_statsmodels(gbsg2, gbsg2_raw, gbsg2_schema):
    import statsmodels.formula.api as smf

    fit = smf.logit("cens ~ pnodes + age", data=gbsg2_raw).fit(disp=0)
    params = {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "pnodes"}, "adjust_for": ["age"]}
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "logistic_odds_ratio", params, epsilon=50.0),
                          rng=np.random.default_rng(4), synthetic=gbsg2)
    assert result.method.startswith("DP Newton")
    # the logistic likelihood is the model itself: the noise and two Newton steps from the start separate them
    # (observed: 0.14 se); we allow 0.25 se
    assert math.log(result.estimate) == pytest.approx(fit.params["pnodes"], abs=0.25 * fit.bse["pnodes"])
    assert result.synthetic_estimate == pytest.approx(math.exp(fit.params["pnodes"]), rel=1e-4)


# --- defect (c): a skewed numeric exposure -----------------------------------------------------------------------

SKEWED = Schema.from_dict({"columns": [
    {"name": "nodes", "type": "integer", "min": 0, "max": 50},
    {"name": "y", "type": "event"},
    {"name": "time", "type": "duration", "min": 0, "max": 100},
    {"name": "status", "type": "event"},
], "survival": {"duration": "time", "event": "status"}})
LOG_HR_PER_NODE, LOG_OR_PER_NODE = 0.06, 0.08


def skewed(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """60 % of patients have no positive node, the rest a geometric count (mean 4, up to 50); the
    hazard and the log-odds are linear in the count (true Cox and logistic models)."""
    nodes = np.where(rng.random(n) < 0.6, 0, np.minimum(rng.geometric(0.25, n), 50))
    t = rng.exponential(1.0 / (0.015 * np.exp(LOG_HR_PER_NODE * nodes)))
    censor = rng.uniform(20, 100, n)
    logit = -1.0 + LOG_OR_PER_NODE * nodes
    return pd.DataFrame({"nodes": nodes, "y": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
                         "time": np.round(np.minimum(t, censor), 2), "status": (t <= censor).astype(int)})


@pytest.mark.parametrize("epsilon", [3.0, 10.0])
def test_a_skewed_numeric_exposure_is_covered(epsilon):
    # Reproduces defect (c): sample-and-aggregate on such an exposure converged to a biased value that its CI
    # ignored (coverage 0.72 at ε = 3 and 0.20 at ε = 10). 100 fresh cohorts of 2,000 with a fresh synthetic
    # stand-in each; Monte-Carlo sd of a 0.95 coverage over 100 runs is 2.2 %, so we assert at least 0.89.
    rng = np.random.default_rng(int(epsilon))
    cases = {"hazard_ratio": ({"exposure": {"column": "nodes"}}, LOG_HR_PER_NODE),
             "logistic_odds_ratio": ({"outcome": {"column": "y", "value": 1}, "exposure": {"column": "nodes"}},
                                     LOG_OR_PER_NODE)}
    covered = dict.fromkeys(cases, 0)
    for _ in range(100):
        frame, synthetic = skewed(rng, 2000), skewed(rng, 2000)
        for kind, (params, truth) in cases.items():
            result = kinds.answer(frame, SKEWED, hyp(SKEWED, kind, params, epsilon=epsilon), rng=rng,
                                  synthetic=synthetic)
            assert result.method.startswith("DP Newton")
            covered[kind] += math.log(result.ci_low) <= truth <= math.log(result.ci_high)
    for kind, hits in covered.items():
        assert hits >= 89, (kind, hits)


def test_without_a_synthetic_release_sample_and_aggregate_answers(gbsg2, gbsg2_schema):
    params = {"exposure": {"column": "age"}}
    result = kinds.answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "hazard_ratio", params, epsilon=1.0),
                          rng=np.random.default_rng(0))
    assert result.method.startswith("sample-and-aggregate")


@pytest.mark.parametrize("adjusters", [0, 2])
def test_the_bootstraps_factored_hazards_score_is_the_clipped_rows_sum(adjusters):
    """The bootstrap's piecewise-exponential score and information never build the rows × draws ×
    coordinates array; they equal the sums of those rows (μ clipped, each block scaled onto its
    bound), also where most rows are clipped (θ far from the fit)."""
    from verification.core import newton

    rng = np.random.default_rng(3)
    m, p = 300, 1 + adjusters
    edges = np.array([0.0, 5.0, 12.0, 30.0, 60.0, 100.0])
    bins = len(edges) - 1
    xs = np.column_stack([rng.integers(0, 20, m) - 4.0] + [rng.normal(size=m) for _ in range(adjusters)])
    time = rng.uniform(0, 100, m)
    ts, es = newton.piecewise_arrays(time, rng.random(m) < 0.6, edges)
    clip = 1.5
    bounds = {"head": 1.8, "exposure": 6.0, "adjusters": 2.0}  # a head bound below 1 + clip bites too
    theta = np.column_stack([rng.normal(-3.5, 1.5, (40, bins)), rng.normal(0, 0.15, (40, p))])

    mu = np.exp(np.clip(xs @ theta[:, bins:].T, -50, 50))[:, :, None] * np.exp(np.clip(theta[:, :bins], -50, 50))[None]
    mu = mu * ts[:, None, :]
    clipped = mu * np.minimum(1.0, clip / np.maximum(mu.sum(axis=2, keepdims=True), 1e-300))
    rows = np.concatenate([es[:, None, :] - clipped,
                           xs[:, None, :] * (es.sum(axis=1)[:, None] - clipped.sum(axis=2))[:, :, None]], axis=2)
    expected_score = newton._clip_rows(rows, bins, bounds).sum(axis=0)
    expected_info = np.zeros((len(theta), bins + p, bins + p))
    expected_info[:, np.arange(bins), np.arange(bins)] = mu.sum(axis=0)
    cross = np.einsum("mbj,mp->bjp", mu, xs)
    expected_info[:, :bins, bins:], expected_info[:, bins:, :bins] = cross, np.transpose(cross, (0, 2, 1))
    expected_info[:, bins:, bins:] = np.einsum("mb,mp,mq->bpq", mu.sum(axis=2), xs, xs)
    assert (mu.sum(axis=2) > clip).mean() > 0.2  # the clip bites
    assert (np.abs(rows[..., :bins]).sum(axis=2) > bounds["head"]).mean() > 0.05  # and so do the bounds
    assert (np.abs(rows[..., bins]) > bounds["exposure"]).mean() > 0.05

    score, info, score_info = newton._hazards_batch(xs, ts, es, clip, bounds)
    both = score_info(theta)
    np.testing.assert_allclose(score(theta), expected_score, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(info(theta), expected_info, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(both[0], expected_score, rtol=1e-11, atol=1e-9)
    np.testing.assert_allclose(both[1], expected_info, rtol=1e-11, atol=1e-9)
