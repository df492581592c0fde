"""Exact noise from a cryptographically secure source (pure Python integers; no Django).

Every privacy noise value of :mod:`verification.core.mechanisms` is drawn here, by samplers that
use **only integer and rational arithmetic** on uniformly random bits, so their output laws are
exactly the ones the privacy proofs assume (no floating-point inversion, no truncated tails):

* :func:`bernoulli_exp` — ``Bernoulli(exp(-γ))`` for a rational ``γ >= 0`` (Canonne, Kamath &
  Steinke 2020, "The Discrete Gaussian for Differential Privacy", Algorithm 1);
* :func:`discrete_laplace` — ``P(x) ∝ exp(-|x| / scale)`` on the integers for a rational scale
  (ibid., Algorithm 2: a geometric from ``Bernoulli(exp(-U/t))`` and ``Bernoulli(exp(-1))``
  draws, then a sign);
* :func:`round_randomly` — randomized rounding of floats to integers, ``floor(x) + 1`` with
  probability exactly ``x - floor(x)`` (a float is a dyadic rational; the comparison with 16
  random bits is exact, refined on the fraction's further bits in the rare tie);
* :func:`weighted_exponential` — the exponential mechanism over sets of points with integer sizes
  and rational scores, by exact rejection from a proposal within 1e-9 of the target (integer
  weights from float gaps with a margin), the acceptance decided by a uniform drawn bit by bit
  against rigorous decimal bounds.

The bits come from a :class:`NoiseSource`: :meth:`NoiseSource.secure` reads the operating
system's CSPRNG (:class:`random.SystemRandom`, i.e. ``os.urandom``) and is what production uses;
:meth:`NoiseSource.seeded` is a deterministic :class:`random.Random` for tests. A source also
carries a numpy ``Generator`` (:attr:`NoiseSource.numpy`) for uses that are not privacy noise
(random block labels, simulations on public data).

OpenDP (``opendp`` 0.16) has exact samplers too, but its Python API exposes them per value only
behind ``enable_features("contrib")`` (and its floating-point paths behind "floating-point"), and
it would be a ~30 MB compiled dependency for four small functions; the algorithms are short and
are checked here against their exact pmf (tests/verification/core/test_exact_noise.py).
"""

from __future__ import annotations

import decimal
import math
import random
import secrets
from fractions import Fraction
from typing import Any

import numpy as np

__all__ = [
    "NoiseSource",
    "as_fraction",
    "as_source",
    "bernoulli_exp",
    "discrete_laplace",
    "discrete_laplace_array",
    "round_randomly",
    "weighted_exponential",
]


class NoiseSource:
    """Uniform random bits for the exact samplers, plus a numpy ``Generator`` for non-privacy uses."""

    def __init__(self, bits: random.Random, numpy: np.random.Generator):
        self._bits = bits
        self.numpy = numpy

    @classmethod
    def secure(cls) -> "NoiseSource":
        """The operating system's CSPRNG (``os.urandom``): what every real answer uses."""
        return cls(random.SystemRandom(), np.random.default_rng(secrets.randbits(128)))

    @classmethod
    def seeded(cls, seed: int) -> "NoiseSource":
        """Deterministic (tests and simulations on public data only)."""
        return cls(random.Random(seed), np.random.default_rng(seed))

    @classmethod
    def from_generator(cls, rng: np.random.Generator) -> "NoiseSource":
        """A deterministic source seeded from a numpy ``Generator`` (tests and public simulations,
        which pass seeded generators); production passes :meth:`secure` itself."""
        return cls(random.Random(int(rng.integers(0, 2**63 - 1))), rng)

    @property
    def is_secure(self) -> bool:
        return isinstance(self._bits, random.SystemRandom)

    def randbelow(self, n: int) -> int:
        """Uniform on ``0..n-1`` (exact: rejection on random bits)."""
        return self._bits.randrange(n)

    def getrandbits(self, k: int) -> int:
        """A uniform integer of ``k`` bits."""
        return self._bits.getrandbits(k)

    def words(self, n: int, dtype: Any = np.uint64) -> np.ndarray:
        """``n`` uniform words of an unsigned integer ``dtype`` (64 bits unless told), from
        ``n · itemsize`` random bytes (read-only)."""
        dtype = np.dtype(dtype)
        return np.frombuffer(self._bits.randbytes(dtype.itemsize * n), dtype=dtype) if n else np.zeros(0, dtype)

    def integers(self, low: int, high: int, size: Any = None):
        """Uniform integers from :attr:`numpy` (not privacy noise: e.g. sample-and-aggregate's block
        labels, which only need to be independent of the data)."""
        return self.numpy.integers(low, high, size=size)


def as_source(rng: Any) -> NoiseSource:
    """``rng`` as a :class:`NoiseSource`: itself, or a deterministic one from a seeded numpy Generator."""
    if isinstance(rng, NoiseSource):
        return rng
    if isinstance(rng, np.random.Generator):
        return NoiseSource.from_generator(rng)
    raise TypeError(f"rng must be a NoiseSource or a numpy Generator, not {type(rng).__name__}")


def as_fraction(value: Any) -> Fraction:
    """The exact rational value of an int, float (its binary value), Decimal, str or Fraction."""
    if isinstance(value, (np.integer, np.floating)):
        value = value.item()
    return value if isinstance(value, Fraction) else Fraction(value)


def _bernoulli(source: NoiseSource, num: int, den: int) -> bool:
    """``Bernoulli(num/den)`` for integers ``0 <= num <= den``."""
    return source.randbelow(den) < num


def bernoulli_exp(source: NoiseSource, gamma: Fraction) -> bool:
    """``Bernoulli(exp(-γ))`` for a rational ``γ >= 0`` (CKS 2020, Algorithm 1)."""
    if gamma < 0:
        raise ValueError("gamma must be non-negative")
    while gamma > 1:  # exp(-γ) = exp(-1)^floor(γ) · exp(-(γ - floor γ))
        if not _bernoulli_exp_unit(source, 1, 1):
            return False
        gamma -= 1
    return _bernoulli_exp_unit(source, gamma.numerator, gamma.denominator)


def _bernoulli_exp_unit(source: NoiseSource, num: int, den: int) -> bool:
    """``Bernoulli(exp(-num/den))`` for ``0 <= num/den <= 1``: the first ``K`` with
    ``Bernoulli(γ/K) = 0`` is odd with probability ``exp(-γ)``."""
    k = 1
    while _bernoulli(source, num, den * k):
        k += 1
    return k % 2 == 1


def discrete_laplace(source: NoiseSource, scale: Fraction) -> int:
    """One draw with ``P(x) ∝ exp(-|x| / scale)`` on the integers, ``scale = t/s`` rational
    (CKS 2020, Algorithm 2)."""
    scale = as_fraction(scale)
    if scale <= 0:
        raise ValueError("scale must be positive")
    t, s = scale.numerator, scale.denominator
    while True:
        u = source.randbelow(t)
        if not _bernoulli_exp_unit(source, u, t):
            continue
        v = 0
        while _bernoulli_exp_unit(source, 1, 1):
            v += 1
        y = (u + t * v) // s  # u + t·v is geometric with parameter 1 - exp(-1/t)
        negative = source.randbelow(2) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def discrete_laplace_array(source: NoiseSource, scale: Fraction, size: int) -> np.ndarray:
    """``size`` independent :func:`discrete_laplace` draws as int64."""
    return np.array([discrete_laplace(source, scale) for _ in range(int(size))], dtype=np.int64)


#: :func:`round_randomly` compares each fraction's first ROUNDING_BITS bits with as many random bits
#: (a tie, probability 2^-ROUNDING_BITS per entry, is refined exactly on the fraction's next bits).
ROUNDING_BITS = 16
_ROUNDING_WORD = np.uint16
_ROUNDING_SCALE = 2.0**ROUNDING_BITS


def _refine_ties(rest: np.ndarray, source: NoiseSource) -> np.ndarray:
    """``Bernoulli(rest[i])`` for floats ``0 <= rest < 1``, exactly, all at once: each round compares the
    next :data:`ROUNDING_BITS` bits of every undecided fraction with as many fresh random bits; an
    entry is decided where they differ (up where the random bits are lower), and a fraction whose bits
    run out (an exact float has finitely many) on a tie is down. By induction on the rounds,
    ``P(up) = T / 2^b + 2^-b · P(up | tie) = T / 2^b + 2^-b · r = rest`` with ``T`` the fraction's first
    ``b`` bits and ``r`` the rest (``rest · 2^b - T``, an exact float subtraction)."""
    up = np.zeros(rest.shape, dtype=bool)
    pending = np.flatnonzero(rest)
    rest = rest[pending]
    while pending.size:
        scaled = rest * _ROUNDING_SCALE  # exact (a power of two; below 2^b, no overflow)
        top = scaled.astype(_ROUNDING_WORD)  # floor: scaled >= 0
        words = source.words(pending.size, _ROUNDING_WORD)
        up[pending] = words < top
        tie = words == top
        rest = scaled[tie] - top[tie]  # exact: the fraction's bits below this round's
        more = rest != 0
        pending, rest = pending[tie][more], rest[more]
    return up


def round_randomly(x: np.ndarray, source: NoiseSource) -> np.ndarray:
    """``x`` (finite floats, ``|x| < 2^63``) to int64, each to ``floor(x) + 1`` with probability exactly
    ``x - floor(x)`` (unbiased). Works on ``|x|`` (``trunc(x)`` and ``|x - trunc(x)| = |x| - floor(|x|)``
    are exact float operations) and restores the sign: ``|x|`` rounded up moves ``x`` away from 0. A whole
    number (no fractional part: a zero score entry, an integer value) is itself with certainty and takes
    no random bits; every other entry :data:`ROUNDING_BITS` random bits, compared
    with the first as many bits of its fraction (an integer comparison): it goes up where the random bits
    are lower, stays where they are higher, and on a tie (probability 2^-16 per entry) is decided exactly
    on the fraction's remaining bits by :func:`_refine_ties`. So ``P(up)`` is the fraction exactly, as with
    one 64-bit word per entry before, at a quarter of the random bytes (``os.urandom`` was a third of the
    time of a 1M-row DP Newton score) and without the float copies of ``modf``/``ldexp``."""
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    if flat.size and not (-2.0**63 < flat.min() and flat.max() < 2.0**63):  # also refuses NaN and infinities
        raise ValueError("round_randomly takes finite values below 2^63 in magnitude")
    out = flat.astype(np.int64)  # trunc(x) = sign(x) floor(|x|), exact
    fraction = flat - out  # x - trunc(x): exact (a float's fractional part is a float), then |.| in [0, 1)
    np.abs(fraction, out=fraction)
    rough = np.flatnonzero(fraction)
    if rough.size:
        scaled = fraction[rough]
        scaled *= _ROUNDING_SCALE  # exact, below 2^16
        top = scaled.astype(_ROUNDING_WORD)  # the fraction's first 16 bits
        words = source.words(rough.size, _ROUNDING_WORD)
        up = (words < top).view(np.int8)  # P = top / 2^16
        ties = np.flatnonzero(words == top)
        if ties.size:  # P(up | tie) = the fraction's bits below 2^-16, exactly
            up[ties] = _refine_ties(scaled[ties] - top[ties], source)
        out[rough] += np.where(flat[rough] < 0, -up, up)  # away from 0: floor(x) + 1 has |.| = floor(|x|)
    return out.reshape(x.shape)


#: Relative margin by which a proposal weight of :func:`weighted_exponential` exceeds its float
#: estimate ``sizes · exp(-gap)``: far above float64's error (about 1e-15 for these gaps), so that
#: each proposal weight is an upper bound of the target weight and every acceptance probability
#: is at most 1. It costs one rejection in about 10^9 draws.
_PROPOSAL_MARGIN = 1e-9
#: Gaps beyond this get the smallest proposal weight (1): exp(-600) times any size is far below it.
_FAR_GAP = 600.0


def weighted_exponential(source: NoiseSource, sizes: np.ndarray, gap_of, *,
                         approx_gaps: np.ndarray | None = None) -> tuple[int, int]:
    """Draw set ``j`` with probability ``∝ sizes[j] · exp(-gap_of(j))`` (``gap_of(j) >= 0`` an exact
    rational, 0 for the best set), and a uniform point ``0..sizes[j]-1`` inside it.

    Exact rejection with a proposal that is almost the target: integer weights
    ``w[j] = ceil(2^K · sizes[j] · exp(-g[j]) · (1 + 1e-9))`` from the float gaps ``g`` (at least 1
    for a non-empty set), a set drawn with probability ``w[j] / Σ w`` by one uniform integer, and
    accepted with probability ``2^K · sizes[j] · exp(-gap_of(j)) / w[j]`` (at most 1, and about
    ``1 - 1e-9``) by :func:`_bernoulli_below` (a uniform drawn bit by bit against rigorous
    decimal bounds of that number: no floating point decides anything). The accepted set has
    probability exactly ``∝ sizes[j] · exp(-gap_of(j))``; a draw costs one pass over the sets in
    numpy and, almost always, one proposal. (The previous sampler proposed a uniform *point*:
    with tied integer values, a thousand grid points in each gap and one at each value, it took
    tens of thousands of proposals per draw.)

    ``approx_gaps`` are float values of ``gap_of`` for every set, within a relative 1e-12 (the
    caller computes them in numpy); without them ``gap_of`` is called for every set.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or (sizes < 0).any() or not sizes.any():
        raise ValueError("no points to choose from")
    if approx_gaps is None:
        approx_gaps = np.array([float(gap_of(j)) for j in range(len(sizes))], dtype=np.float64)
    approx_gaps = np.asarray(approx_gaps, dtype=np.float64)
    if approx_gaps.shape != sizes.shape or not np.isfinite(approx_gaps).all() or (approx_gaps < -1e-9).any():
        raise ValueError("approx_gaps must be finite, non-negative and one per set")
    far = approx_gaps > _FAR_GAP
    estimate = np.where(far, 0.0, sizes * np.exp(-np.where(far, 0.0, approx_gaps)) * (1.0 + _PROPOSAL_MARGIN))
    # 2^K scales the largest weight to below 2^bits, so that the sum of all of them stays below 2^62.
    bits = 61 - max(1, int(len(sizes)).bit_length())
    exponent = bits - math.frexp(float(estimate.max()))[1]
    weights = np.ceil(np.ldexp(estimate, exponent)).astype(np.int64)
    weights[(sizes > 0) & (weights < 1)] = 1
    weights[sizes == 0] = 0
    cumulative = np.cumsum(weights)
    total = int(cumulative[-1])
    scale = Fraction(2) ** exponent
    while True:
        j = int(np.searchsorted(cumulative, source.randbelow(total), side="right"))
        gap = as_fraction(gap_of(j))
        if gap < 0 or abs(float(gap) - approx_gaps[j]) > 1e-9 * (1.0 + float(gap)):
            raise ValueError(f"gap_of({j}) = {float(gap)!r} is negative or does not match approx_gaps ({approx_gaps[j]!r})")
        if _bernoulli_below(source, gap, scale * int(sizes[j]) / int(weights[j])):
            return j, source.randbelow(int(sizes[j]))


_CONTEXTS: dict[tuple[int, str], decimal.Context] = {}


def _context(digits: int, rounding: str) -> decimal.Context:
    key = (digits, rounding)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = decimal.Context(prec=digits, rounding=rounding, Emin=decimal.MIN_EMIN, Emax=decimal.MAX_EMAX)
    return _CONTEXTS[key]


def _exp_bounds(gamma: Fraction, digits: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Rationals ``lo <= exp(-γ) <= hi`` as (numerator, denominator) pairs, ``hi / lo - 1`` about
    ``10^-(digits-2)``.

    ``decimal`` rounds γ down and up (``ROUND_FLOOR``/``ROUND_CEILING``); its ``exp`` is correctly
    rounded (within half a unit in the last of ``digits`` places), and the bounds widen by twice that."""
    num, den = decimal.Decimal(gamma.numerator), decimal.Decimal(gamma.denominator)
    low_gamma = _context(digits, decimal.ROUND_FLOOR).divide(num, den)
    high_gamma = _context(digits, decimal.ROUND_CEILING).divide(num, den)
    exp = _context(digits, decimal.ROUND_HALF_EVEN).exp
    slack = 10 ** (digits - 2)
    up_num, up_den = exp(-low_gamma).as_integer_ratio()
    lo_num, lo_den = exp(-high_gamma).as_integer_ratio()
    return (lo_num * (slack - 1), lo_den * slack), (up_num * (slack + 1), up_den * slack)


def _bernoulli_below(source: NoiseSource, gamma: Fraction, factor: Fraction) -> bool:
    """``Bernoulli(exp(-γ) · factor)`` for ``exp(-γ) · factor <= 1``: a uniform ``U`` in [0, 1) drawn
    64 bits at a time, compared (in integers) with ever tighter bounds of the number until the
    comparison is certain (after the first 64 bits, unless they fall within about 1e-20 of it)."""
    word, width, digits = 0, 0, 24
    f_num, f_den = factor.numerator, factor.denominator
    while True:
        word, width = (word << 64) | source.getrandbits(64), width + 64
        (lo_num, lo_den), (up_num, up_den) = _exp_bounds(gamma, digits)
        if lo_num * f_num > lo_den * f_den:
            raise ValueError("the acceptance probability exceeds 1: the float gaps do not match gap_of")
        if (word + 1) * lo_den * f_den <= (lo_num * f_num) << width:  # U < (word + 1) / 2^width <= lower
            return True
        if word * up_den * f_den >= (up_num * f_num) << width:        # U >= word / 2^width >= upper
            return False
        digits += 20
