"""Mechanism settings for means and correlations chosen on the published synthetic release.

The release is public, so reading it costs no ε (docs/privacy.md): the clipping range, the
centre and the ε split of a mean or a correlation may be tuned on it, never on the real rows.
The schema's bounds are a promise about every possible patient, so they are wide (a lymph-node
count up to 60, a progesterone receptor up to 3,000) while the patients of a cohort sit in a small
part of them; the noise of a sum grows with the width it must cover. Here the width is narrowed
to where the release puts its patients (with room to spare), and what that narrowing changes is
measured on the release and added back:

1. **Candidates.** The schema's bounds, and ranges around the release's median that reach
   :data:`WIDEN` times as far as its ``α`` and ``1 - α`` quantiles (``α`` in :data:`TAILS`),
   each cut to the schema's bounds.
2. **Prediction.** For each candidate, centre and ε split, the noise variance the mechanism would
   add is computed from the release's own statistics at the release's size (for a mean the delta
   method, the same formulas as the answer's CI; for a correlation a seeded simulation), plus what
   the **clipping bias** may cost: the bias is the statistic on the release clamped to the schema's
   bounds minus the same clamped to the candidate; its correction carries the release's own
   sampling error, and a quarter of its square (:data:`BIAS_ALLOWANCE`) is charged for real tails
   that differ from the release's. The smallest predicted error wins.
3. **Correction.** The answer adds the chosen candidate's clipping bias to its estimate, so its
   estimand stays the schema-clamped statistic of DESIGN.md, and the CI adds the correction's
   sampling variance (measured on the release). ``WIDEN`` > 1 keeps the clipping off the release's
   own tails, so the correction is usually 0 and only a heavy tail is clipped.

Without a release of at least :data:`MIN_ROWS` usable values the schema's bounds, the midpoint
and the fixed split are used, as before.

A correlation is tuned on at most :data:`TUNING_ROWS` of the release's complete pairs
(:func:`release_sample`: a subsample seeded by the release's size alone, so the same release gives
the same settings); its noise is still predicted at the whole release's size (the sums scaled up),
and the clipping bias and its sampling variance are those of the subsample (the correction is
measured there). Public rows only: nothing of the real data is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .mechanisms import MEAN_SPLIT

__all__ = [
    "CORRELATION_SPLIT",
    "MIN_ROWS",
    "CorrelationSettings",
    "MeanSettings",
    "correlation_settings",
    "mean_settings",
    "pearson",
    "release_sample",
    "scaled",
]

#: A release needs this many usable values to tune on.
MIN_ROWS = 50
#: A correlation is tuned on at most this many of the release's pairs (a seeded subsample of a
#: larger release): the candidates' simulation and the bias's resamples cost O(rows) each.
TUNING_ROWS = 20_000
#: The share of a clipping bias's square charged to a candidate for real tails unlike the release's.
BIAS_ALLOWANCE = 0.25
#: Resamples of the release that measure a correlation's bias correction's sampling variance.
BIAS_RESAMPLES = 64
#: Tail probabilities whose quantiles (on the release) delimit a candidate range.
TAILS = (0.001, 0.005, 0.01)
#: A candidate range reaches this many times as far from the median as those quantiles.
WIDEN = (1.25, 1.5, 2.0)
#: ε splits a mean may use (count, centred sum, centred sum of squares): the count matters little
#: once the centre is near the mean; the sum of squares keeps its share (it estimates the CI's
#: sampling variance).
MEAN_SPLITS = (
    MEAN_SPLIT,
    {"count": 0.1, "sum": 0.7, "sum_of_squares": 0.2},
    {"count": 0.05, "sum": 0.75, "sum_of_squares": 0.2},
)
#: The chance, at the release's size, that a tuned split leaves the noisy count below the minimum
#: subgroup (the answer is then withheld, its ε spent): a split that puts less on the count is not used.
WITHHOLD_RISK = 1e-3

#: The correlation's default split (no release): 10 % count, 15 % per linear sum, 20 % per quadratic.
CORRELATION_SPLIT = {"count": 0.1, "sum_x": 0.15, "sum_y": 0.15, "sum_xx": 0.2, "sum_yy": 0.2, "sum_xy": 0.2}
#: The least share of ε a correlation's statistic gets when the split is tuned (the count also
#: decides whether the answer is withheld); the sums' floor is one of SUM_FLOORS.
CORRELATION_FLOOR = {"count": 0.05, "sum_x": 0.03, "sum_y": 0.03, "sum_xx": 0.03, "sum_yy": 0.03, "sum_xy": 0.03}
SUM_FLOORS = (0.03, 0.08)
#: A correlation's Σuv may also be released with each row's product clamped to ±f × the
#: PRODUCT_QUANTILE quantile of |uv| on the release, f one of PRODUCT_FACTORS (candidates beside the
#: data-free ±max|uv|, scored with the others): with a skewed variable a few rows at the far corner of
#: the ranges set the sensitivity of Σuv, while most products are small (GBSG2's age × progrec: the
#: quantile is 0.25 of the data-free bound 1).
PRODUCT_QUANTILE = 0.99
PRODUCT_FACTORS = (0.7, 1.0, 1.5)
#: Simulated noise draws per candidate when a correlation is tuned (seeded: the choice is a
#: function of the public inputs).
TUNING_DRAWS = 32
#: A simulated draw whose noisy variance is not positive (no r at all) counts as this squared error
#: on Fisher's z.
FAILED_DRAW_ERROR = 4.0
_PARTS = tuple(CORRELATION_SPLIT)
#: Fisher's z is clipped to r in [-R_MAX, R_MAX] so that a noisy |r| = 1 still gives a finite CI.
R_MAX = 1 - 1e-9


def release_sample(n: int, cap: int) -> np.ndarray | None:
    """Row indices (sorted) of a subsample of ``cap`` of a public release's ``n`` rows, or None when
    ``n <= cap`` (use them all). Seeded by ``n`` and ``cap`` alone: a function of public facts, the
    same for the same release, never of a request's generator."""
    if n <= cap:
        return None
    return np.sort(np.random.default_rng([n, cap]).choice(n, size=cap, replace=False))


def _laplace_var(sensitivity: float, epsilon: float) -> float:
    """The Laplace variance ``2 (Δ/ε)²`` (the discrete Laplace on a fine grid has the same)."""
    return 2.0 * (sensitivity / epsilon) ** 2


def _usable(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    return values if len(values) >= MIN_ROWS else None


def _ranges(public: np.ndarray, lo: float, hi: float) -> list[tuple[float, float]]:
    """The candidate clipping ranges (step 1), the schema's first, without repeats."""
    clamped = np.clip(public, lo, hi)
    median = float(np.median(clamped))
    ranges = [(lo, hi)]
    for tail in TAILS:
        low_q, high_q = np.quantile(clamped, [tail, 1.0 - tail])
        for widen in WIDEN:
            a = max(lo, median - widen * (median - float(low_q)))
            b = min(hi, median + widen * (float(high_q) - median))
            if b > a and (a, b) not in ranges:
                ranges.append((a, b))
    return ranges


# --- means --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanSettings:
    """How to release one mean: clamp to ``[lo, hi]``, centre on ``center``, split ε by ``split``,
    then add ``bias`` (the clipping bias measured on the release; 0 at the schema's bounds)."""

    lo: float
    hi: float
    center: float
    split: dict[str, float] = field(default_factory=lambda: dict(MEAN_SPLIT))
    bias: float = 0.0
    bias_variance: float = 0.0  # the correction's sampling variance on the release
    tuned: bool = False

    def details(self) -> dict[str, object]:
        return {"clip": [self.lo, self.hi], "center": self.center, "clip_bias": self.bias,
                "clip_bias_sd": math.sqrt(self.bias_variance), "tuned_on_release": self.tuned}


def count_share_needed(n: float, min_subgroup: int, epsilon: float) -> float:
    """The least share of ε on the count for which a cohort of the release's size ``n`` has its
    Laplace-noised count below ``min_subgroup`` with probability at most :data:`WITHHOLD_RISK`
    (tail ``½ exp(-(n - min_subgroup) ε_count)``); capped at one half."""
    gap = n - min_subgroup
    if gap <= 0 or epsilon <= 0:
        return 0.0
    return min(0.5, math.log(0.5 / WITHHOLD_RISK) / (gap * epsilon))


def mean_settings(public: np.ndarray | None, lo: float, hi: float, epsilon: float,
                  min_subgroup: int = 1) -> MeanSettings:
    """The settings of a mean of a column with schema bounds ``[lo, hi]`` at ``epsilon``, tuned on
    the release's values ``public`` (None or too few: the schema's bounds and midpoint). Splits that
    would risk withholding the answer at the release's size (:func:`count_share_needed`) are skipped."""
    public = _usable(public)
    if public is None:
        return MeanSettings(lo=lo, hi=hi, center=(lo + hi) / 2.0)
    n = len(public)
    needed = count_share_needed(n, min_subgroup, epsilon)
    splits = [split for split in MEAN_SPLITS if split["count"] >= needed] or [max(MEAN_SPLITS, key=lambda s: s["count"])]
    target = float(np.clip(public, lo, hi).mean())
    best, best_error = None, math.inf
    schema_clamped = np.clip(public, lo, hi)
    for a, b in _ranges(public, lo, hi):
        clipped = float(np.clip(public, a, b).mean())
        bias = target - clipped
        bias_variance = float(np.var(schema_clamped - np.clip(public, a, b))) / n
        for center in ((a + b) / 2.0, clipped):
            reach = max(center - a, b - center)
            for split in splits:
                noise = (_laplace_var(reach, split["sum"] * epsilon)
                         + (clipped - center) ** 2 * _laplace_var(1.0, split["count"] * epsilon)) / n**2
                error = noise + bias_variance + BIAS_ALLOWANCE * bias * bias
                if error < best_error:
                    best, best_error = MeanSettings(lo=a, hi=b, center=center, split=dict(split), bias=bias,
                                                    bias_variance=bias_variance, tuned=True), error
    return best


# --- correlations ---------------------------------------------------------------------------------


def pearson(n: float, su: float, sv: float, suu: float, svv: float, suv: float):
    """Pearson's r from sufficient statistics, and its gradient in (n, su, sv, suu, svv, suv)
    (None, None where a variance is not positive)."""
    a = n * suv - su * sv
    b = n * suu - su * su
    d = n * svv - sv * sv
    if b <= 0 or d <= 0:
        return None, None
    root = math.sqrt(b * d)
    r = a / root
    da = np.array([suv, -sv, -su, 0.0, 0.0, n])
    db = np.array([suu, -2 * su, 0.0, n, 0.0, 0.0])
    dd = np.array([svv, 0.0, -2 * sv, 0.0, n, 0.0])
    gradient = da / root - (r / 2.0) * (db / b + dd / d)
    return r, gradient


@dataclass(frozen=True)
class Scale:
    """One variable of a correlation: clamp to ``[lo, hi]``, then ``u = (x - center)/reach``, so
    ``u`` lies in ``[low, high]`` within ``[-1, 1]``."""

    lo: float
    hi: float
    center: float

    @property
    def reach(self) -> float:
        return max(self.center - self.lo, self.hi - self.center)

    @property
    def low(self) -> float:
        return (self.lo - self.center) / self.reach

    @property
    def high(self) -> float:
        return (self.hi - self.center) / self.reach


def scaled(values: np.ndarray, scale: Scale) -> np.ndarray:
    return (np.clip(values, scale.lo, scale.hi) - scale.center) / scale.reach


def statistic_bounds(x: Scale, y: Scale, product_bound: float | None = None) -> dict[str, tuple[float, float]]:
    """The public range of each summand (the sensitivity of each sum is its largest magnitude); with a
    ``product_bound`` each row's ``uv`` is clamped to ``±product_bound`` as well (never wider than the
    data-free range)."""
    products = (x.low * y.low, x.low * y.high, x.high * y.low, x.high * y.high)
    low, high = min(products), max(products)
    if product_bound is not None:
        low, high = max(low, -product_bound), min(high, product_bound)
    return {"sum_x": (x.low, x.high), "sum_y": (y.low, y.high),
            "sum_xx": (0.0, max(x.low**2, x.high**2)), "sum_yy": (0.0, max(y.low**2, y.high**2)),
            "sum_xy": (low, high)}


def _product_bounds(products: np.ndarray, x: Scale, y: Scale) -> tuple[float | None, ...]:
    """The candidate bounds on each row's ``uv``: the data-free one (None), and each of
    :data:`PRODUCT_FACTORS` × the release's :data:`PRODUCT_QUANTILE` quantile of ``|uv|`` that is tighter."""
    free = max(abs(v) for v in statistic_bounds(x, y)["sum_xy"])
    quantile = float(np.quantile(np.abs(products), PRODUCT_QUANTILE))
    return (None,) + tuple(f * quantile for f in PRODUCT_FACTORS if 0.0 < f * quantile < free)


def _sensitivities(x: Scale, y: Scale, product_bound: float | None = None) -> np.ndarray:
    bounds = statistic_bounds(x, y, product_bound)
    return np.array([1.0] + [max(abs(lo), abs(hi)) for lo, hi in (bounds[p] for p in _PARTS[1:])])


def _r(x: np.ndarray, y: np.ndarray) -> float | None:
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def _split(gradient: np.ndarray, sensitivity: np.ndarray, floor: float, count_floor: float = 0.0) -> np.ndarray:
    """ε shares minimising the delta-method noise variance ``Σ (g_i Δ_i / ε_i)²`` under
    ``Σ ε_i = ε``: ``ε_i ∝ (|g_i| Δ_i)^(2/3)``, the count at least 5 % and each sum at least
    ``floor`` (the linearisation misses what a very noisy sum does to a variance)."""
    weight = np.abs(gradient * sensitivity) ** (2.0 / 3.0)
    floors = np.array([max(CORRELATION_FLOOR["count"], count_floor)] + [floor] * 5)
    if not np.isfinite(weight).all() or weight.sum() <= 0:
        return np.array([CORRELATION_SPLIT[p] for p in _PARTS])
    share = (1.0 - floors.sum()) * weight / weight.sum() + floors
    return share / share.sum()


@dataclass(frozen=True)
class CorrelationSettings:
    """How to release one correlation: the two scales, the ε split, and the clipping bias on
    Fisher's z (``atanh`` of r at the schema's bounds minus at the chosen ranges, on the release)."""

    x: Scale
    y: Scale
    split: dict[str, float] = field(default_factory=lambda: dict(CORRELATION_SPLIT))
    bias_z: float = 0.0
    bias_variance_z: float = 0.0  # the correction's sampling variance on the release (resampled)
    tuned: bool = False
    product_bound: float | None = None  # each row's scaled uv clamped to ±this (None: the data-free range)

    def bounds(self) -> dict[str, tuple[float, float]]:
        return statistic_bounds(self.x, self.y, self.product_bound)

    def details(self) -> dict[str, object]:
        return {"clip_x": [self.x.lo, self.x.hi], "clip_y": [self.y.lo, self.y.hi], "center_x": self.x.center,
                "center_y": self.y.center, "clip_xy": list(self.bounds()["sum_xy"]), "clip_bias_z": self.bias_z,
                "clip_bias_sd_z": math.sqrt(self.bias_variance_z), "tuned_on_release": self.tuned}


def _centres(public: np.ndarray, a: float, b: float) -> tuple[float, ...]:
    mean = float(np.clip(public, a, b).mean())
    return ((a + b) / 2.0,) if mean == (a + b) / 2.0 else ((a + b) / 2.0, mean)


def _pearson_z(stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fisher's z of r from stacked statistics ``(..., 6)``, and where it exists."""
    n, su, sv, suu, svv, suv = np.moveaxis(stats, -1, 0)
    b, d = n * suu - su * su, n * svv - sv * sv
    ok = (b > 0) & (d > 0)
    r = np.where(ok, (n * suv - su * sv) / np.sqrt(np.where(ok, b * d, 1.0)), 0.0)
    return np.arctanh(np.clip(r, -R_MAX, R_MAX)), ok



def correlation_settings(public_x: np.ndarray | None, public_y: np.ndarray | None, x_bounds: tuple[float, float],
                         y_bounds: tuple[float, float], epsilon: float, min_subgroup: int = 1) -> CorrelationSettings:
    """The settings of Pearson's r of two columns with schema bounds ``x_bounds`` and ``y_bounds``,
    tuned on the release's complete pairs ``(public_x, public_y)`` (None or too few: the schema's
    bounds, their midpoints and :data:`CORRELATION_SPLIT`).

    Every pair of candidate scales (ranges × centres) and sum floor gets its split from the delta
    method; then the mechanism is simulated on the release's statistics :data:`TUNING_DRAWS` times
    (Laplace noise of each statistic's variance) and the candidate with the least mean squared
    error of Fisher's z against the release's schema-clamped z, clipping bias corrected, wins. The
    simulation catches what the linearisation misses: a sum of squares so noisy that the variance
    comes out negative."""
    default = CorrelationSettings(x=Scale(*x_bounds, center=sum(x_bounds) / 2.0),
                                  y=Scale(*y_bounds, center=sum(y_bounds) / 2.0))
    if public_x is None or public_y is None:
        return default
    public_x, public_y = np.asarray(public_x, dtype=np.float64), np.asarray(public_y, dtype=np.float64)
    keep = np.isfinite(public_x) & np.isfinite(public_y)
    public_x, public_y = public_x[keep], public_y[keep]
    if len(public_x) < MIN_ROWS:
        return default
    size = len(public_x)  # the release's: the noise is predicted at its size
    sample = release_sample(size, TUNING_ROWS)
    if sample is not None:
        public_x, public_y = public_x[sample], public_y[sample]
    grow = size / len(public_x)  # the subsample's sums scaled to the release's size (1 without one)
    target = _r(np.clip(public_x, *x_bounds), np.clip(public_y, *y_bounds))
    if target is None:
        return default
    target_z = math.atanh(min(max(target, -R_MAX), R_MAX))
    # the correlation is withheld below min_subgroup and at n <= 3: keep that unlikely at the release's size
    count_floor = count_share_needed(size, max(min_subgroup, 4), epsilon)
    x_scales = [Scale(a, b, c) for a, b in _ranges(public_x, *x_bounds) for c in _centres(public_x, a, b)]
    y_scales = [Scale(a, b, c) for a, b in _ranges(public_y, *y_bounds) for c in _centres(public_y, a, b)]
    us = np.stack([scaled(public_x, x) for x in x_scales])
    vs = np.stack([scaled(public_y, y) for y in y_scales])
    cross = us @ vs.T  # Σuv for every pair of candidates at once
    n = float(size)
    # each scale's Σ and Σ² once (the same values the pair loop used to recompute for every pair)
    v_sums = [(float(v.sum()), float(v @ v)) for v in vs]
    candidates, stats, shares, sensitivities = [], [], [], []
    for i, x in enumerate(x_scales):
        su, suu = float(us[i].sum()), float(us[i] @ us[i])
        for j, y in enumerate(y_scales):
            sv, svv = v_sums[j]
            row = np.array([n, su * grow, sv * grow, suu * grow, svv * grow, float(cross[i, j]) * grow])
            r, gradient = pearson(*row)
            if r is None or abs(r) >= 1:
                continue
            sensitivity = _sensitivities(x, y)
            for floor in SUM_FLOORS:
                candidates.append((x, y, math.atanh(r)))
                stats.append(row)
                shares.append(_split(gradient, sensitivity, floor, count_floor))
                sensitivities.append(sensitivity)
    if not candidates:
        return default
    stats, shares, sensitivities = np.array(stats), np.array(shares), np.array(sensitivities)
    scale = sensitivities / (shares * epsilon)  # Laplace scale of each statistic's noise
    noise = np.random.default_rng(0).laplace(size=(TUNING_DRAWS, 6))
    z, ok = _pearson_z(stats[:, None, :] + scale[:, None, :] * noise[None, :, :])
    z_clean = np.array([c[2] for c in candidates])
    bias = target_z - z_clean
    error = np.where(ok, (z - z_clean[:, None]) ** 2, FAILED_DRAW_ERROR).mean(axis=1) + BIAS_ALLOWANCE * bias**2
    # the bias correction's sampling variance (resampled on the release, per scale pair: the split
    # does not change it) is charged too; candidates are visited from the least error on, and the
    # search stops once no candidate left can beat the best total
    resamples = _Resamples(np.random.default_rng(1).integers(0, len(public_x), size=(BIAS_RESAMPLES, len(public_x))))
    schema = (resamples.centred("schema_x", np.clip(public_x, *x_bounds)),
              resamples.centred("schema_y", np.clip(public_y, *y_bounds)))
    measured: dict[tuple[int, int], float] = {}
    best, best_total, variance = -1, math.inf, 0.0
    for k in np.argsort(error, kind="stable"):
        if error[k] >= best_total:
            break
        x, y, _ = candidates[k]
        key = (id(x), id(y))
        if key not in measured:
            measured[key] = 0.0 if bias[k] == 0 else resamples.bias_variance(
                schema, (resamples.centred(id(x), scaled(public_x, x)), resamples.centred(id(y), scaled(public_y, y))))
        if error[k] + measured[key] < best_total:
            best, best_total, variance = int(k), float(error[k] + measured[key]), measured[key]
    x, y, _ = candidates[best]
    settings = CorrelationSettings(x=x, y=y, split={p: float(v) for p, v in zip(_PARTS, shares[best])},
                                   bias_z=float(bias[best]), bias_variance_z=variance, tuned=True)
    return _with_product_bound(settings, best_total, stats[best], public_x, public_y, grow, target_z, epsilon,
                               count_floor, noise, resamples, schema)


def _with_product_bound(settings: CorrelationSettings, best_total: float, row: np.ndarray, public_x: np.ndarray,
                        public_y: np.ndarray, grow: float, target_z: float, epsilon: float, count_floor: float,
                        noise: np.ndarray, resamples: "_Resamples", schema) -> CorrelationSettings:
    """Step 2 of :func:`correlation_settings`: on the chosen scales, each tight bound on the rows' ``uv``
    (:func:`_product_bounds`) and sum floor is scored like the candidates of step 1 (simulated noise,
    the clipping bias against the schema-clamped z, the correction's resampled variance); the best
    one is kept if it beats the data-free bound. Only the chosen scales are tried: each tight bound
    costs a resampled bias variance, and with them on every pair the search took seconds at 10k rows."""
    u, v = scaled(public_x, settings.x), scaled(public_y, settings.y)
    products = u * v
    for bound in _product_bounds(products, settings.x, settings.y)[1:]:
        clipped = row.copy()
        clipped[5] = float(np.clip(products, -bound, bound).sum()) * grow
        r, gradient = pearson(*clipped)
        if r is None or abs(r) >= 1:
            continue
        sensitivity = _sensitivities(settings.x, settings.y, bound)
        bias = target_z - math.atanh(r)
        variance = None
        for floor in SUM_FLOORS:
            share = _split(gradient, sensitivity, floor, count_floor)
            z, ok = _pearson_z(clipped[None, :] + (sensitivity / (share * epsilon))[None, :] * noise)
            error = float(np.where(ok, (z - math.atanh(r)) ** 2, FAILED_DRAW_ERROR).mean()) + BIAS_ALLOWANCE * bias**2
            if error >= best_total:
                continue
            if variance is None:
                variance = resamples.bias_variance_clipped(schema, u, v, bound)
            if error + variance < best_total:
                best_total = error + variance
                settings = CorrelationSettings(x=settings.x, y=settings.y,
                                               split={p: float(w) for p, w in zip(_PARTS, share)}, bias_z=bias,
                                               bias_variance_z=variance, tuned=True, product_bound=bound)
    return settings


class _Resamples:
    """The release's pairs resampled (``(B, n)`` row indices) for the bias correction's variance:
    each array's centred resamples and their sums of squares are computed once, since the search
    visits many pairs of the same scales (the schema-clamped pair in every one of them)."""

    def __init__(self, rows: np.ndarray):
        self.rows = rows
        self._centred: dict[object, tuple[np.ndarray, np.ndarray]] = {}

    def centred(self, key: object, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if key not in self._centred:
            x = values[self.rows]
            x = x - x.mean(axis=1, keepdims=True)
            self._centred[key] = (x, (x * x).sum(axis=1))
        return self._centred[key]

    @staticmethod
    def z(x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Fisher's z of r for each resample of the centred pair ``x``, ``y``."""
        (x, xx), (y, yy) = x, y
        denominator = np.sqrt(xx * yy)
        r = np.where(denominator > 0, (x * y).sum(axis=1) / np.where(denominator > 0, denominator, 1.0), 0.0)
        return np.arctanh(np.clip(r, -R_MAX, R_MAX))

    def bias_variance(self, schema, clipped) -> float:
        """The variance over resamples of ``z(schema-clamped) - z(clipped)``."""
        return float(np.var(self.z(*schema) - self.z(*clipped)))

    def bias_variance_clipped(self, schema, u: np.ndarray, v: np.ndarray, bound: float) -> float:
        """:meth:`bias_variance` where the mechanism also clamps each row's ``uv`` to ``±bound``: r of each
        resample from its six sums, as the mechanism forms it."""
        u, v = u[self.rows], v[self.rows]
        n = float(u.shape[1])
        su, sv, suu, svv = u.sum(axis=1), v.sum(axis=1), (u * u).sum(axis=1), (v * v).sum(axis=1)
        suv = np.clip(u * v, -bound, bound).sum(axis=1)
        z, _ok = _pearson_z(np.stack([np.full_like(su, n), su, sv, suu, svv, suv], axis=-1))
        return float(np.var(self.z(*schema) - z))
