"""The DP mechanisms: exact integers, the right noise law and scale, unbiased sums and means,
enforced clamping, and the exponential-mechanism quantile. Fixed seeds; tolerances stated inline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from verification.core import mechanisms as m


def theory_var(scale: float) -> float:
    a = math.exp(-1.0 / scale)
    return 2 * a / (1 - a) ** 2


# --- discrete Laplace -----------------------------------------------------------------------


def test_discrete_laplace_returns_exact_integers():
    rng = np.random.default_rng(0)
    draws = [m.discrete_laplace(2.5, rng) for _ in range(200)]
    assert all(type(d) is int for d in draws)
    assert len(set(draws)) > 5
    array = m.discrete_laplace(2.5, rng, size=1000)
    assert array.dtype == np.int64


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0, 10.0, 100.0])
def test_discrete_laplace_variance_matches_theory_within_5_percent(scale):
    # 200k draws: the sample variance's relative sd is about sqrt(5/200k) = 0.5 %, so 5 % is ~10 sd.
    draws = m.discrete_laplace(scale, np.random.default_rng(1), size=200_000)
    assert draws.var() == pytest.approx(theory_var(scale), rel=0.05)
    assert m.discrete_laplace_sd(scale) ** 2 == pytest.approx(theory_var(scale), rel=1e-12)
    assert abs(draws.mean()) < 5 * math.sqrt(theory_var(scale) / 200_000)  # symmetric around 0


def test_discrete_laplace_law():
    # P(X = k) = (1 - a)/(1 + a) a^|k| with a = e^{-1/scale}; 200k draws, each frequency within 5 sd.
    scale, n = 1.5, 200_000
    draws = m.discrete_laplace(scale, np.random.default_rng(2), size=n)
    a = math.exp(-1 / scale)
    for k in range(-4, 5):
        p = (1 - a) / (1 + a) * a ** abs(k)
        assert abs(np.mean(draws == k) - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_discrete_laplace_tiny_scale_is_exact_and_bad_scales_rejected():
    assert m.discrete_laplace(1e-3, np.random.default_rng(0)) == 0
    for bad in (0, -1.0, math.nan, math.inf, "1", True, 1e16):
        with pytest.raises(ValueError):
            m.discrete_laplace(bad, np.random.default_rng(0))


@pytest.mark.parametrize("scale", [0.3, 1.0, 7.0])
def test_discrete_laplace_quantile_is_the_smallest_covering_k(scale):
    a = math.exp(-1 / scale)

    def covered(k: int) -> float:
        return 1 - 2 * a ** (k + 1) / (1 + a)

    k = m.discrete_laplace_quantile(scale, 0.95)
    assert covered(k) >= 0.95
    assert k == 0 or covered(k - 1) < 0.95


def test_noisy_count_is_an_integer_near_n():
    rng = np.random.default_rng(3)
    values = [m.noisy_count(500, 1.0, rng) for _ in range(2000)]
    assert all(type(v) is int for v in values)
    # mean of 2000 draws: sd sqrt(var/2000) = 0.03 at ε = 1; 0.2 is ~6 sd.
    assert np.mean(values) == pytest.approx(500, abs=0.2)
    assert np.var(values) == pytest.approx(m.count_noise_sd(1.0) ** 2, rel=0.1)
    for bad_n in (-1, 2.5, True):
        with pytest.raises(ValueError):
            m.noisy_count(bad_n, 1.0, rng)
    for bad_eps in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError):
            m.noisy_count(5, bad_eps, rng)


# --- integer-scaled sums --------------------------------------------------------------------


def test_default_grid_is_a_power_of_two_that_keeps_integers_exact():
    for lo, hi in ((0, 60), (18, 100), (0, 3000), (-1, 1), (0, 1)):
        gamma = m.default_grid(lo, hi)
        assert math.log2(gamma).is_integer()
        assert (hi - lo) / gamma >= 2**16 - 1e-9
        assert gamma <= 0.5


def test_noisy_sum_is_integer_scaled_and_reports_the_add_remove_sensitivity():
    rng = np.random.default_rng(4)
    gamma = 0.25
    total, sd = m.noisy_sum([1.1, 2.2, 3.3], -5.0, 10.0, 2.0, rng, grid=gamma)
    assert (total / gamma).is_integer()  # scaled back from an exact integer
    # add/remove-one sensitivity: max(|lo|, |hi|) = 10, i.e. 40 grid units; scale 40/ε.
    assert sd == pytest.approx(m.discrete_laplace_sd(40 / 2.0) * gamma)


def test_noisy_sum_is_unbiased_with_randomized_rounding():
    # Values off the grid (γ = 0.5) so that randomized rounding matters; 2000 repetitions at ε = 1.
    # Per draw: noise sd sqrt(2)·10 ≈ 14.1, rounding sd <= sqrt(500/16) ≈ 5.6, so the mean of 2000 draws
    # has sd <= 0.34; we allow 1.5 (> 4 sd). Nearest rounding would be off by about n·E[bias].
    data = np.random.default_rng(5).uniform(-3, 7, 500)
    rng = np.random.default_rng(6)
    draws = [m.noisy_sum(data, -5.0, 10.0, 1.0, rng, grid=0.5)[0] for _ in range(2000)]
    assert np.mean(draws) == pytest.approx(data.sum(), abs=1.5)
    assert np.std(draws) == pytest.approx(math.sqrt(m.discrete_laplace_sd(20.0) ** 2 * 0.25 + 500 / 24), rel=0.1)


def test_noisy_sum_clamps_to_the_public_bounds_and_ignores_missing_values():
    rng = np.random.default_rng(7)
    # ten values of 1000 with hi = 10 sum to 100; five of -50 with lo = 0 add 0. ε = 50: noise sd 0.28.
    total, _ = m.noisy_sum([1000.0] * 10 + [-50.0] * 5 + [math.nan], 0.0, 10.0, 50.0, rng)
    assert total == pytest.approx(100.0, abs=2.0)


# --- means --------------------------------------------------------------------------------------


def test_noisy_mean_is_unbiased_and_its_ci_is_honest():
    # 1000 repetitions of n = 400 values from U(20, 60) in bounds [0, 100] at ε = 1. The estimate's sd is
    # about sqrt(133/400 + noise) ≈ 0.66, so the mean of 1000 estimates has sd 0.02; we allow 0.1.
    rng = np.random.default_rng(8)
    estimates, covered = [], 0
    for _ in range(1000):
        values = rng.uniform(20, 60, 400)
        release = m.noisy_mean(values, 0, 100, 1.0, rng)
        estimates.append(release.estimate)
        low, high = release.ci()
        covered += low <= 40 <= high
    assert np.mean(estimates) == pytest.approx(40, abs=0.1)
    assert 0.93 <= covered / 1000 <= 0.97  # binomial sd 0.7 %
    assert sum(release.epsilon_split.values()) == pytest.approx(1.0)


def test_noisy_mean_clamps():
    release = m.noisy_mean([500.0] * 200, 0, 100, 50.0, np.random.default_rng(9))
    assert release.estimate == pytest.approx(100, abs=0.5)
    assert release.estimate <= 100


# --- quantiles ----------------------------------------------------------------------------------


def test_exponential_quantile_samples_grid_points_with_the_right_probabilities():
    # Data 1, 2, 3, 4 in [0, 6] on the grid γ = 1/4 (points 0, 0.25, …, 6), target rank 2, ε = 1.
    # A point y has utility -dist(2, [#{x < y}, #{x <= y}]); P(y) ∝ exp(ε·utility/2). 20 000 draws;
    # each point's frequency within 5 sd of its probability.
    rng = np.random.default_rng(10)
    data = np.array([4.0, 2.0, 1.0, 3.0])
    draws = np.array([m.exponential_quantile(data, 0.0, 6.0, 2.0, 1.0, rng, grid=0.25) for _ in range(20_000)])
    points = np.arange(25) * 0.25
    below = np.array([(data < y).sum() for y in points])
    at_or_below = np.array([(data <= y).sum() for y in points])
    utility = -np.maximum(np.maximum(below - 2.0, 2.0 - at_or_below), 0)
    expected = np.exp(utility / 2)
    expected /= expected.sum()
    observed = np.array([np.mean(draws == y) for y in points])
    assert observed.sum() == 1.0  # every draw is an exact grid point
    assert np.all(np.abs(observed - expected) <= 5 * np.sqrt(expected * (1 - expected) / len(draws)) + 1e-12)


def test_exponential_quantile_handles_ties():
    rng = np.random.default_rng(13)
    # every value at the upper bound: the median is 100 exactly (a point a continuous mechanism cannot reach)
    assert m.exponential_quantile(np.full(100, 100.0), 0, 100, 50, 20.0, rng) == 100.0
    # integer data with many ties: at a large ε the median is the tied value itself
    data = np.repeat([50.0, 51.0, 52.0, 53.0, 54.0], [30, 40, 50, 40, 30])
    assert m.exponential_quantile(data, 0, 100, 95, 20.0, rng) == 52.0


def test_noisy_quantile_is_accurate_at_large_epsilon_and_clamps():
    rng = np.random.default_rng(11)
    values = rng.normal(50, 10, 2000)
    for q in (0.1, 0.5, 0.9):
        release = m.noisy_quantile(values, 0, 100, q, 50.0, rng)
        # at ε = 50 the mechanism lands within a rank or two of q·n; neighbouring order statistics of
        # 2000 normal values are < 0.1 apart there, so 0.3 is generous.
        assert release.estimate == pytest.approx(np.quantile(values, q), abs=0.3)
        assert release.ci_low <= release.estimate <= release.ci_high
    above = m.noisy_quantile(np.full(100, 500.0), 0, 100, 0.5, 50.0, rng)
    assert above.estimate == above.ci_low == above.ci_high == 100.0  # all values clamp to 100


def test_noisy_quantile_ci_coverage():
    # 300 repetitions, n = 1000 normal values, median, ε = 1. Observed 0.940 (0.947 with the earlier
    # 10/40/25/25 split); asserted 0.92–0.98
    # (binomial sd 1.3 %).
    rng = np.random.default_rng(12)
    covered = 0
    for _ in range(300):
        release = m.noisy_quantile(rng.normal(50, 10, 1000), 0, 100, 0.5, 1.0, rng)
        covered += release.ci_low <= 50 <= release.ci_high
    assert 0.92 <= covered / 300 <= 0.98


def test_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        m.noisy_sum([1.0], 5, 5, 1.0, rng)
    with pytest.raises(ValueError):
        m.noisy_quantile([1.0], 0, 10, 1.0, 1.0, rng)
    with pytest.raises(ValueError):
        m.noisy_mean([1.0], 0, 10, 1.0, rng, split={"count": 0.5, "sum": 0.6, "sum_of_squares": 0.2})


def test_noisy_quantile_split_gives_the_endpoints_most_of_epsilon_and_a_narrower_ci():
    # Issue 11: the endpoints decide the CI (and the verdict), the point estimate does not. 686
    # continuous values (GBSG2's size), ε = 1, 60 draws each, the same seed for both splits.
    # Observed median width 1.23x the order-statistic interval (1.52x with the earlier 10/40/25/25
    # split, ratio 0.81); asserted <= 1.3x and <= 0.9x the earlier split's.
    values = np.sort(np.random.default_rng(5).normal(50, 10, 686))
    n, half = len(values), 1.959964 * math.sqrt(686 * 0.25)
    order_statistic_width = values[math.ceil(n / 2 + half) - 1] - values[math.floor(n / 2 - half) - 1]

    def median_width(split):
        rng = np.random.default_rng(6)
        return float(np.median([(r.ci_high - r.ci_low) for r in (
            m.noisy_quantile(values, 0, 100, 0.5, 1.0, rng, split=split) for _ in range(60))]))

    assert m.QUANTILE_SPLIT["ci_low"] + m.QUANTILE_SPLIT["ci_high"] >= 0.8
    now = median_width(None)
    earlier = median_width({"count": 0.1, "estimate": 0.4, "ci_low": 0.25, "ci_high": 0.25})
    assert now / order_statistic_width <= 1.3
    assert now / earlier <= 0.9
