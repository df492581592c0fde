"""Sample-and-aggregate's pieces: the exact Laplace + normal CI quantile and the public block count."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from verification.core import aggregate


def test_laplace_normal_halfwidth():
    assert aggregate.laplace_normal_halfwidth(0.0, 2.0, 0.95) == pytest.approx(1.959964 * 2, rel=1e-6)
    assert aggregate.laplace_normal_halfwidth(1.5, 0.0, 0.95) == pytest.approx(1.5 * math.log(20), rel=1e-12)
    for b, sigma in ((1.0, 1.0), (0.3, 2.0), (2.0, 0.1), (1.0, 1e-3)):
        w = aggregate.laplace_normal_halfwidth(b, sigma, 0.95)

        def density(u):  # of |L + σZ| > w, integrating the Laplace tail over the normal
            laplace_tail = np.where(w - u > 0, 0.5 * np.exp(-(w - u) / b), 1 - 0.5 * np.exp((w - u) / b))
            return stats.norm.pdf(u, scale=sigma) * laplace_tail

        tail = 2 * integrate.quad(density, -12 * sigma, 12 * sigma, points=[w], limit=200)[0]
        assert tail == pytest.approx(0.05, abs=1e-6), (b, sigma)


def test_block_count_is_a_public_function_of_the_noisy_count():
    assert [aggregate.block_count(n) for n in (100, 499, 500, 2000, 9_999, 10_000, 10**6)] == [5, 5, 5, 20, 99, 100, 100]
