"""The exact samplers of verification.core.noise against their exact laws (χ² goodness of fit at
fixed seeds), and the production wiring: every real answer draws from the OS's CSPRNG."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import chi2

from verification.core import mechanisms
from verification.core.noise import (
    NoiseSource,
    bernoulli_exp,
    discrete_laplace,
    round_randomly,
    weighted_exponential,
)

DRAWS = 20_000
#: a fit is refused below this p-value (fixed seeds: the outcome is deterministic; with fresh
#: seeds a correct sampler would fail one check in 10^4)
P_MIN = 1e-4


def _chi2_p(observed: np.ndarray, expected: np.ndarray) -> float:
    """p-value of Pearson's χ², pooling cells with an expected count below 5 into one."""
    small = expected < 5
    obs = np.append(observed[~small], observed[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    stat = float((((obs - exp) ** 2)[keep] / exp[keep]).sum())
    return float(chi2.sf(stat, keep.sum() - 1))


def _laplace_pmf(scale: Fraction, reach: int) -> np.ndarray:
    a = math.exp(-1 / float(scale))
    k = np.arange(-reach, reach + 1)
    return (1 - a) / (1 + a) * a ** np.abs(k)


@pytest.mark.parametrize("scale", [Fraction(1), Fraction(5, 2), Fraction(1, 3), Fraction(10, 7), Fraction(40)])
def test_discrete_laplace_matches_its_exact_pmf(scale):
    source = NoiseSource.seeded(7)
    draws = np.array([discrete_laplace(source, scale) for _ in range(DRAWS)])
    reach = int(max(abs(draws).max(), 1))
    pmf = _laplace_pmf(scale, reach)
    pmf[0] += 1 - pmf.sum()  # the tails beyond the largest draw, pooled (tiny)
    observed = np.bincount(draws + reach, minlength=2 * reach + 1)
    assert _chi2_p(observed, pmf * DRAWS) > P_MIN
    sd = mechanisms.discrete_laplace_sd(float(scale))
    assert abs(draws.mean()) < 5 * sd / math.sqrt(DRAWS)


@pytest.mark.parametrize("gamma", [Fraction(0), Fraction(1, 3), Fraction(1), Fraction(5, 2), Fraction(7)])
def test_bernoulli_exp_has_probability_exp_minus_gamma(gamma):
    source = NoiseSource.seeded(3)
    hits = sum(bernoulli_exp(source, gamma) for _ in range(DRAWS))
    p = math.exp(-gamma)
    assert abs(hits - DRAWS * p) <= 4.5 * math.sqrt(DRAWS * p * (1 - p)) + 1e-9


def test_randomized_rounding_is_exact_and_unbiased():
    source = NoiseSource.seeded(5)
    x = np.repeat([2.25, -0.75, 3.0, -4.0, 1e-20], DRAWS)
    ticks = round_randomly(x, source).reshape(5, DRAWS)
    assert set(np.unique(ticks[0])) == {2, 3} and set(np.unique(ticks[1])) == {-1, 0}
    assert (ticks[2] == 3).all() and (ticks[3] == -4).all() and (ticks[4] == 0).all()
    for row, f in ((ticks[0], 0.25), (ticks[1], 0.75)):
        up = (row == row.max()).sum() if f == 0.25 else (row == row.min()).sum()
        assert abs(up - DRAWS * f) <= 4.5 * math.sqrt(DRAWS * f * (1 - f))


class _ScriptedWords(NoiseSource):
    """A source whose first ``words`` calls return the scripted 16-bit words (then seeded ones): the
    tie path of round_randomly, which fair bits reach with probability 2^-16 per entry, on purpose."""

    def __init__(self, script, seed=0):
        fresh = NoiseSource.seeded(seed)
        super().__init__(fresh._bits, fresh.numpy)
        self.script = [np.asarray(words, dtype=np.uint16) for words in script]
        self.calls = []

    def words(self, n, dtype=np.uint64):
        self.calls.append((n, np.dtype(dtype)))
        if self.script:
            words = self.script.pop(0)
            assert len(words) == n
            return words
        return super().words(n, dtype)


def test_randomized_rounding_decides_a_tie_on_the_fractions_further_bits():
    # 2^-16 + 2^-56: its 16-bit rounds are 1, 0, 0, 256 and then nothing (the float's last bit)
    x = np.array([2.0**-16 + 2.0**-56, -(2.0**-16 + 2.0**-56)])
    cases = [([[1, 9], [0], [0], [255]], [1, 0]),  # entry 1 ties on rounds 1-3, then its word is below: up
             ([[1, 9], [0], [0], [256]], [0, 0]),  # a tie on the last bits too: the fraction is exhausted, down
             ([[1, 9], [0], [1]], [0, 0]),          # above the fraction on round 3: down, no further bits
             ([[9, 1], [0], [0], [0]], [0, -1]),     # entry 2 ties, then is below on round 4: up (away from 0)
             ([[1, 1], [0, 0], [0, 0], [255, 256]], [1, 0])]  # both tie, decided together per round
    for script, expected in cases:
        source = _ScriptedWords(script)
        assert round_randomly(x, source).tolist() == expected
        assert not source.script and all(dtype == np.uint16 for _, dtype in source.calls)


def test_randomized_rounding_after_a_forced_tie_has_the_remaining_bits_probability():
    """Every entry ties on its first 16 bits (scripted); the second round's fair bits then decide with
    probability exactly the rest of the fraction: 0.5 + 2^-20 has rest 2^-4 = 1/16 after its first
    round, 0.25 + 2^-18 · 3/4 has rest 3/16."""
    n = DRAWS
    x = np.concatenate([np.full(n, 0.5 + 2.0**-20), np.full(n, 0.25 + 2.0**-18 * 0.75)])
    tops = np.concatenate([np.full(n, 2**15), np.full(n, 2**14)])
    ticks = round_randomly(x, _ScriptedWords([tops], seed=21))
    for part, p in ((ticks[:n], 1 / 16), (ticks[n:], 3 / 16)):
        observed = np.array([(part == 0).sum(), (part == 1).sum()])
        assert observed.sum() == n
        assert _chi2_p(observed, n * np.array([1 - p, p])) > P_MIN


def test_randomized_rounding_matches_fractions_with_bits_past_the_first_word():
    source = NoiseSource.seeded(13)
    fractions = [1 / 3, 0.7 + 1e-12, 2.0**-17 * 3, 1 - 2.0**-53]
    x = np.repeat(np.array(fractions) + np.array([0, 5, -2, 11]), DRAWS)
    ticks = round_randomly(x, source).reshape(len(fractions), DRAWS)
    for row, f, base in zip(ticks, fractions, (0, 5, -2, 11)):
        up = (row == base + 1).sum()  # -2 + f: floor is -2, up is -1
        assert ((row == base) | (row == base + 1)).all()
        assert abs(up - DRAWS * f) <= 4.5 * math.sqrt(DRAWS * f * (1 - f)) + 1e-9
    with pytest.raises(ValueError):
        round_randomly(np.array([1.0, np.nan]), source)
    with pytest.raises(ValueError):
        round_randomly(np.array([2.0**63]), source)


def test_weighted_exponential_matches_its_exact_law():
    source = NoiseSource.seeded(11)
    sizes = np.array([3, 1, 0, 5, 1])
    gaps = [Fraction(1, 2), Fraction(0), Fraction(9), Fraction(3, 2), Fraction(1, 10)]
    chosen = [weighted_exponential(source, sizes, gaps.__getitem__) for _ in range(DRAWS)]
    counts = np.bincount([j for j, _ in chosen], minlength=len(sizes))
    weights = sizes * np.exp(-np.array([float(g) for g in gaps]))
    assert counts[2] == 0
    assert _chi2_p(counts, weights / weights.sum() * DRAWS) > P_MIN
    offsets = [o for j, o in chosen if j == 3]
    assert set(offsets) == set(range(5))


def test_exponential_quantile_matches_the_mechanism_pmf():
    """Values 0, 0, 2 on the integer grid 0..4, target rank 1.5, ε = 1: five points, utilities
    -(distance of 1.5 from each point's rank range)."""
    draws = np.array([mechanisms.exponential_quantile([0, 0, 2], 0, 4, 1.5, 1.0, NoiseSource.seeded(s), grid=1)
                      for s in range(4000)]).astype(int)
    # point 0: ranks [0, 2] -> 0; point 1 (gap): 2 below -> 0.5; point 2: [2, 3] -> 0.5; 3, 4: 3 below -> 1.5
    distance = np.array([0, 0.5, 0.5, 1.5, 1.5])
    weights = np.exp(-0.5 * distance)
    assert _chi2_p(np.bincount(draws, minlength=5), weights / weights.sum() * len(draws)) > P_MIN


def test_a_seeded_generator_gives_the_same_noise_and_the_source_is_used():
    one = mechanisms.noisy_sum([0.3, 1.7, 2.2], 0.0, 4.0, 1.0, np.random.default_rng(1))
    two = mechanisms.noisy_sum([0.3, 1.7, 2.2], 0.0, 4.0, 1.0, np.random.default_rng(1))
    assert one == two
    assert NoiseSource.secure().is_secure and not NoiseSource.seeded(1).is_secure


def test_every_real_answer_draws_from_the_os_csprng(monkeypatch):
    """verification.services never answers from a fixed seed: the rng it hands ``answer`` is a
    fresh secure NoiseSource (SystemRandom), a different one each time."""
    import verification.services as services
    from clearinghouse.errors import ApplicationError

    seen = []

    class Stop(Exception):
        pass

    def spy(frame, schema, hypothesis, *, rng, **kwargs):
        seen.append(rng)
        raise Stop

    monkeypatch.setattr(services, "custody_read", lambda name: None)
    monkeypatch.setattr(services, "release_synthetic_rows", lambda release, schema: None)
    monkeypatch.setattr(services, "answer", spy)
    monkeypatch.setattr(services, "_fail_and_refund", lambda verification, error: True)

    class Fake:
        pk, epsilon, release = 1, Decimal(1), None
        dataset = type("D", (), {"storage_name": "x"})()

    for _ in range(2):
        with pytest.raises(ApplicationError):
            services._compute(Fake(), hypothesis=None, schema=None, policy=type("P", (), {"min_subgroup": 5})())
    assert len(seen) == 2 and seen[0] is not seen[1]
    assert all(isinstance(rng, NoiseSource) and rng.is_secure for rng in seen)


def test_weighted_exponential_is_exact_when_set_sizes_differ_by_millions():
    """Tied integer values make one-point sets beside gaps of a thousand or a million grid points:
    the proposal follows the weights, so each draw takes about one proposal, and the law holds."""
    source = NoiseSource.seeded(5)
    sizes = np.array([1, 1023, 1, 1_000_000, 1, 1023, 1])
    gaps = [Fraction(3, 2), Fraction(1), Fraction(1, 2), Fraction(14), Fraction(0), Fraction(7, 2), Fraction(9, 2)]
    draws = [weighted_exponential(source, sizes, gaps.__getitem__)[0] for _ in range(DRAWS)]
    weights = sizes * np.exp(-np.array([float(g) for g in gaps]))
    assert _chi2_p(np.bincount(draws, minlength=len(sizes)), weights / weights.sum() * DRAWS) > P_MIN


def test_weighted_exponential_refuses_float_gaps_that_do_not_match_the_exact_ones():
    sizes = np.array([2, 2])
    gaps = [Fraction(0), Fraction(1)]
    source = NoiseSource.seeded(1)
    with pytest.raises(ValueError, match="does not match"):
        for _ in range(50):  # set 1 is proposed half the time
            weighted_exponential(source, sizes, gaps.__getitem__, approx_gaps=np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="one per set"):
        weighted_exponential(NoiseSource.seeded(1), sizes, gaps.__getitem__, approx_gaps=np.array([0.0]))


def test_exponential_quantile_with_ties_on_a_fine_grid_matches_the_mechanism_pmf():
    """Values 1, 1, 1, 2, 4 on the grid of quarters in [0, 5], target rank 2.5 (the median), ε = 2:
    every one of the 21 points has its exact weight, tied value and empty gaps included."""
    values, grid, target, epsilon = [1, 1, 1, 2, 4], 0.25, 2.5, 2.0
    points = np.arange(0, 21) * grid
    below = np.array([sum(v < y for v in values) for y in points])
    at_or_below = np.array([sum(v <= y for v in values) for y in points])
    distance = np.maximum(np.maximum(below - target, target - at_or_below), 0)
    weights = np.exp(-epsilon / 2 * distance)
    draws = [mechanisms.exponential_quantile(values, 0, 5, target, epsilon, NoiseSource.seeded(s), grid=grid)
             for s in range(6000)]
    observed = np.bincount(np.rint(np.array(draws) / grid).astype(int), minlength=len(points))
    assert _chi2_p(observed, weights / weights.sum() * len(draws)) > P_MIN
