"""**Sample-and-aggregate** (Nissim, Raskhodnikova & Smith 2007; Smith 2011): a DP mean of a
statistic fitted on ``k`` disjoint random blocks, with a CI from the DP block spread convolved
with the Laplace noise. Used by the regression kinds (:mod:`.kinds_models`). Pure: no Django.

Privacy (unit: one row; neighbours add or remove one row; pure ε-DP per answer)
-----------------------------------------------------------------------------------
After the ``where`` filter the rows used are the complete cases (outcome or duration/event,
exposure and every ``adjust_for`` column present: a per-row rule, public). Three mechanisms look
at these rows and compose **sequentially**, with ε split by :data:`SPLIT`:

1. ``count`` (10 %): ``ñ = noisy_count(n)``. It decides the number of blocks
   ``k = clamp(ñ // ROWS_PER_BLOCK, MIN_BLOCKS, MAX_BLOCKS)`` (= ``clamp(ñ // 100, 5, 100)``), so
   ``k`` is a function of a DP output and is public from here on. It also drives withholding:
   below ``max(min_subgroup, MIN_BLOCKS * MIN_BLOCK_ROWS)`` (= 100) noisy rows the answer is
   withheld (5 blocks of 20 rows is the least a per-block fit can use; the ε is still charged).
2. Each row gets an **independent uniform block label** in ``0..k-1`` from ``rng``. (Not a
   permutation cut into equal chunks: removing one row from a permutation shifts the chunk
   boundaries of every later row. With i.i.d. labels, couple the two neighbouring worlds by
   giving every shared row the same label: then exactly one block differs, for every draw of the
   labels, so the mixture over labels is as private as each labelling.) Each block is fitted
   (Firth logistic or Cox model, both with a small ridge, below) and its exposure coefficient ``β_b`` is clamped
   to the **public** range ``[-LOG_BOUND, LOG_BOUND] = [-3, 3]`` (log-OR / log-HR; an OR or HR
   between 0.05 and 20). Adding or removing one row changes one block, so it moves one clamped
   ``β_b`` anywhere within the range: the *replace-one* sensitivity of ``Σ β_b`` is ``2·3 = 6``.
3. ``mean`` (60 %): ``Σ (β_b + 3)`` (values in ``[0, 6]``, so :func:`noisy_sum`'s add/remove
   sensitivity ``max(|0|, |6|) = 6`` equals the replace-one sensitivity needed) by the
   integer-scaled geometric mechanism; ``β̄ = S̃/k - 3``, clamped to ``[-3, 3]``.
4. ``second_moment`` (30 %): ``Q̃ = Σ min((β_b - β̄)², 1.5²)``: the squared deviations from the
   *released* ``β̄`` (a DP output, so using it costs nothing more), each clamped to the public
   window ``±SPREAD_BOUND = ±1.5``, so the sensitivity is ``1.5² = 2.25`` rather than the ``3² = 9``
   of raw squares: 4x less noise on the spread, which is what the CI needs at moderate ε. A block
   estimate's sd is ~0.3–0.5 on 100 rows, so the window cuts 3+ sd; blocks spread wider than
   ~0.75 sd would see their spread underestimated (rare exposures in small blocks; the Laplace
   noise then dominates the width anyway).

Everything else is post-processing. The block variance is ``s² = (Q̃ - k·Var(noise of β̄))/(k - 1)``
(centring on the noisy ``β̄`` instead of the blocks' own mean adds ``k·Var(noise)`` in expectation),
clamped to ``[0, 1.5²]``. The CI for the target ``E[β_b]`` combines

* sampling: ``β̄`` averages ``k`` independent block estimates, variance ``s²/k``, with Student's
  ``t`` on ``k - 1`` df (the normal part's sd is inflated by ``t_{k-1}/z``), and
* noise: the mean's noise is (discrete, on a grid ~1e-4 fine) Laplace with scale ``b = 6/(ε_mean·k)``,

by the exact quantile of the Laplace + normal convolution (:func:`laplace_normal_halfwidth`), not
a normal approximation: at small ε the Laplace part dominates and its tails are heavier than a
normal's (1.96 sd covers only 93.7 % of a Laplace). The target lies in the clamp range, so the CI
is intersected with ``[-3, 3]`` (coverage unchanged; at ε = 0.1 on 700 rows the answer is then
the honest "anywhere between 0.05 and 20" instead of ``e^{±48}``), then exponentiated to the
OR/HR scale. A consequence of the public clamp: a claim beyond it (an OR above 20) can never be
supported.
The noise of ``s²`` itself is not propagated: where it is large the Laplace term dominates the
width (simulated coverage stays 0.93–0.97 from ε = 1 to 100, see the tests; a Satterthwaite df for
the noisy ``s²`` was tried and made the CIs up to 1.5x wider at ε = 5 for coverage 0.99+).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtr
from scipy.stats import t as student_t

from .answer import Answer
from .kinds import Request
from .mechanisms import noisy_count, noisy_sum, normal_quantile

__all__ = [
    "LOG_BOUND",
    "NOISE_DOMINANCE",
    "MAX_BLOCKS",
    "MIN_BLOCK_ROWS",
    "MIN_BLOCKS",
    "ROWS_PER_BLOCK",
    "SPLIT",
    "SPREAD_BOUND",
    "block_count",
    "block_estimates",
    "laplace_normal_halfwidth",
    "sample_and_aggregate",
    "varies",
]

#: Block log-OR / log-HR estimates are clamped to [-LOG_BOUND, LOG_BOUND] (public, params-free).
LOG_BOUND = 3.0
#: An answer whose noise sd (of the mean log-ratio) exceeds this many times its sampling sd is
#: swamped by noise: it is returned with ``informative: false`` and an inconclusive verdict.
NOISE_DOMINANCE = 3.0
#: A released mean this close to ±LOG_BOUND sits on the clamp bound (uninformative).
ON_BOUND = 1e-9
#: k = clamp(ñ // ROWS_PER_BLOCK, MIN_BLOCKS, MAX_BLOCKS).
ROWS_PER_BLOCK = 100
MIN_BLOCKS, MAX_BLOCKS = 5, 100
#: Below MIN_BLOCKS blocks of this many noisy rows the answer is withheld.
MIN_BLOCK_ROWS = 20
#: ε shares (sequential): the noisy n (for k), the DP sum of the clamped block estimates, and the
#: DP sum of their squared deviations from the released mean (for the block spread in the CI).
SPLIT = {"count": 0.1, "mean": 0.6, "second_moment": 0.3}
#: The second moment is of the deviations from the released DP mean, clamped to ±SPREAD_BOUND.
SPREAD_BOUND = 1.5


def laplace_normal_halfwidth(b: float, sigma: float, confidence: float) -> float:
    """``w`` with ``P(|L + σZ| > w) = 1 - confidence`` for ``L ~ Laplace(0, b)`` and ``Z ~ N(0, 1)``
    independent, from the closed-form tail of their convolution::

        P(L + σZ > w) = Φ(-w/σ) + ½ e^{σ²/2b² - w/b} Φ(w/σ - σ/b) - ½ e^{σ²/2b² + w/b} Φ(-w/σ - σ/b)

    (exponents combined in log space). Pure Laplace (``σ = 0``): ``b·ln(1/α)``; pure normal: ``z·σ``."""
    alpha = 1.0 - float(confidence)
    if not 0 < alpha < 1:
        raise ValueError("confidence must be in (0, 1)")
    b, sigma = max(float(b), 0.0), max(float(sigma), 0.0)
    if b <= 1e-6 * sigma or b == 0.0:
        return normal_quantile(confidence) * sigma
    if sigma <= 1e-6 * b:
        return b * math.log(1.0 / alpha)
    r = sigma / b

    def tail(w: float) -> float:
        up = math.exp(r * r / 2 - w / b + float(log_ndtr(w / sigma - r)))
        down = math.exp(r * r / 2 + w / b + float(log_ndtr(-w / sigma - r)))
        return 2.0 * (float(ndtr(-w / sigma)) + 0.5 * up - 0.5 * down) - alpha

    high = 10.0 * sigma + b * (math.log(2.0 / alpha) + 10.0)
    return float(brentq(tail, 0.0, high, xtol=1e-12 * high, rtol=1e-12))


def block_count(noisy_n: int) -> int:
    """``k = clamp(ñ // ROWS_PER_BLOCK, MIN_BLOCKS, MAX_BLOCKS)``: a function of the DP count only."""
    return int(min(max(noisy_n // ROWS_PER_BLOCK, MIN_BLOCKS), MAX_BLOCKS))


BlockFit = Callable[[np.ndarray, int], np.ndarray]


def sample_and_aggregate(req: Request, n_rows: int, fit: BlockFit, *, unit: float, ratio: str,
                          method: str) -> Answer:
    eps = {part: share * req.epsilon for part, share in SPLIT.items()}
    noisy_n = noisy_count(n_rows, eps["count"], req.rng)
    details: dict[str, Any] = {
        "composition": "sequential: count, mean and second moment look at the same rows (their ε add up to the "
                       "hypothesis's ε); within each, one row changes one block's clamped estimate",
        "clamp_log": [-LOG_BOUND, LOG_BOUND],
    }
    floor = max(req.min_subgroup, MIN_BLOCKS * MIN_BLOCK_ROWS)
    if noisy_n < floor:
        result = req.withhold(noisy_n, method, eps, details)
        if noisy_n >= req.min_subgroup:
            result.reason = (f"insufficient data: sample-and-aggregate needs at least {floor} rows "
                             f"({MIN_BLOCKS} blocks of {MIN_BLOCK_ROWS}); the noisy size is below that")
        return result
    k = block_count(noisy_n)
    labels = req.rng.integers(0, k, size=n_rows)
    estimates = np.asarray(fit(labels, k), dtype=np.float64)
    estimates = np.clip(np.where(np.isfinite(estimates), estimates, 0.0), -LOG_BOUND, LOG_BOUND)
    total, total_sd = noisy_sum(estimates + LOG_BOUND, 0.0, 2 * LOG_BOUND, eps["mean"], req.rng)
    mean = min(max(total / k - LOG_BOUND, -LOG_BOUND), LOG_BOUND)
    noise_sd = total_sd / k
    deviations = np.clip(estimates - mean, -SPREAD_BOUND, SPREAD_BOUND)
    squares, squares_sd = noisy_sum(deviations**2, 0.0, SPREAD_BOUND**2, eps["second_moment"], req.rng)
    spread = (squares - k * noise_sd**2) / (k - 1)
    spread = min(max(spread, 0.0), SPREAD_BOUND**2)
    sampling_sd = math.sqrt(spread / k)
    df = k - 1
    t_factor = float(student_t.ppf(0.5 + req.confidence / 2, df)) / req.z
    half = laplace_normal_halfwidth(noise_sd / math.sqrt(2.0), sampling_sd * t_factor, req.confidence)
    details.update(
        blocks=k, rows_per_block_target=ROWS_PER_BLOCK, mean_log=mean, block_sd_log=math.sqrt(spread),
        sampling_sd_log=sampling_sd, noise_sd_log=noise_sd, t_df=df, ci_halfwidth_log=half,
        exposure_unit=unit, noise_sd_block_variance=squares_sd / (k - 1),
        scale=f"{ratio} per unit of the exposure" if unit != 1.0 else f"{ratio} of the exposure level vs the rest",
    )
    if unit != 1.0:
        details["clamp_note"] = (f"numeric exposure: block log-{ratio}s are clamped per {unit:g} units (a quarter of "
                                 "the public range) and reported per unit")
    # The target E[clamped β_b] lies in [-3, 3], so intersecting the CI with it keeps its coverage.
    low, high = max(mean - half, -LOG_BOUND), min(mean + half, LOG_BOUND)
    result = req.release(math.exp(mean / unit), math.exp(low / unit), math.exp(high / unit), noisy_n, method, eps,
                         details)
    result.informative, result.reason = _informative(mean, low, high, noise_sd, sampling_sd,
                                                     ratio if unit == 1.0 else f"{ratio} per {unit:g} units")
    return result


def _informative(mean: float, low: float, high: float, noise_sd: float, sampling_sd: float,
                 ratio: str) -> tuple[bool, str]:
    """Whether a released mean log-ratio says anything (all inputs are DP outputs or public)."""
    bound = math.exp(LOG_BOUND)
    if abs(mean) >= LOG_BOUND - ON_BOUND:
        return False, (f"the estimate sits on the public clamp bound ({ratio} {bound:.3g} or {1 / bound:.3g}): "
                       "the block estimates were clamped, so the value is a bound, not a measurement")
    if low <= -LOG_BOUND + ON_BOUND and high >= LOG_BOUND - ON_BOUND:
        return False, f"the CI spans the whole public range of the {ratio} ({1 / bound:.3g} to {bound:.3g})"
    if low <= -LOG_BOUND + ON_BOUND or high >= LOG_BOUND - ON_BOUND:
        # the noise can pull a mean of clamped blocks off the bound; its CI still reaches it
        end = f"{1 / bound:.3g}" if low <= -LOG_BOUND + ON_BOUND else f"{bound:.3g}"
        return False, (f"the CI reaches the public clamp bound ({ratio} {end}): block estimates there were clamped, "
                       "so the answer is a bound, not a measurement")
    if noise_sd > NOISE_DOMINANCE * sampling_sd:
        return False, (f"the privacy noise (sd {noise_sd:.3g} on the log scale) is more than {NOISE_DOMINANCE:g} "
                       f"times the sampling error (sd {sampling_sd:.3g}): spend more ε, or ask on more patients")
    return True, ""


def block_estimates(beta: np.ndarray, converged: np.ndarray, informative: np.ndarray, column: int) -> np.ndarray:
    """The blocks' exposure coefficients; 0 for an uninformative block or a non-finite value. A block
    that has not converged keeps its last iterate (every damped step increased its strictly concave
    objective; in practice these are near-separated blocks creeping towards a large value)."""
    del converged  # documented: not a reason to discard the iterate
    estimates = beta[:, column].copy()
    estimates[~informative | ~np.isfinite(estimates)] = 0.0
    return estimates


def varies(values: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per block: does ``values`` take more than one value?"""
    low = np.full(k, np.inf)
    high = np.full(k, -np.inf)
    np.minimum.at(low, labels, values)
    np.maximum.at(high, labels, values)
    return high > low
