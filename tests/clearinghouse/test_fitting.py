"""The batched block fits of :mod:`clearinghouse.fitting` against statsmodels and lifelines:
Efron Cox blocks with ties, logistic MLE and Firth blocks, and separation (finite, no exception)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize

from clearinghouse import fitting


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
    beta, converged = fitting.fit_cox(x, time_, event, labels, 4, ridge=0.0)
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
    mle, converged = fitting.fit_logistic(x, y, labels, 3, ridge=0.0, firth=False)
    assert converged.all()
    for block in range(3):
        mask = labels == block
        np.testing.assert_allclose(mle[block], sm.Logit(y[mask], x[mask]).fit(disp=0).params, atol=1e-8)

    firth, converged = fitting.fit_logistic(x, y, labels, 3, ridge=0.0, firth=True)
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
    beta, converged = fitting.fit_logistic(x, y)
    assert converged.all() and np.isfinite(beta).all() and beta[0, 1] > 3  # then clamped to +3
    time_ = np.arange(40.0, 0.0, -1.0)  # the exposed (the last 20 rows) all die before anyone unexposed
    event = np.ones(40, dtype=bool)
    beta, converged = fitting.fit_cox(x[:, 1:], time_, event)  # separation
    assert converged.all() and np.isfinite(beta).all() and beta[0, 0] > 3


# --- the exact Cox fit (the hazard ratio's synthetic estimate) ------------------------------------------------


def test_the_cox_fit_summed_per_tied_run_gives_the_recorded_estimates():
    rng = np.random.default_rng(1204)
    n = 600
    x, time = rng.normal(size=(n, 2)), np.round(rng.exponential(5, n))  # 30 distinct times: many ties
    event, labels = rng.random(n) < 0.6, rng.integers(0, 3, n)
    beta, converged = fitting.fit_cox(x, time, event, labels, 3, ridge=0.0)
    # recorded from fit_cox before the per-run sums (risk sets from a cumulative sum over every row)
    before = [[0.11066161272915506, 0.17122315265814436], [0.009776947197380282, -0.19159544671106613],
              [-0.008317536450448571, -0.12174375424216372]]
    assert converged.all()
    np.testing.assert_allclose(beta, before, rtol=1e-10, atol=1e-13)
    loglik = fitting.cox_state(x, time, event, labels, 3)(np.asarray(before))[0]
    np.testing.assert_allclose(loglik, [-410.36378770869635, -546.5865404166818, -581.8713813685669], rtol=1e-12)
