"""Batched damped Newton fits of many small regressions at once (pure numpy/scipy, no Django):
shared by the verification engine (sample-and-aggregate fits one model per random block) and the
validation report (univariable and indicator Cox models).

* :func:`fit_logistic`: logistic regressions, by default with **Firth's** bias-reduced likelihood
  ``loglik + ½·log det I(β)`` (Jeffreys prior, as R's logistf; finite under separation, bias
  ``O(1/m²)`` instead of the MLE's ``O(1/m)``), Newton steps on the Fisher information;
* :func:`fit_cox`: Cox proportional-hazards models with **Efron's ties** (what lifelines fits),
  risk-set sums by cumulative sums over rows sorted by block then time descending;
  :func:`cox_information` is the observed information at a given ``β`` (for standard errors).

Both maximise ``loglik_b(β_b) - ridge/2·‖β_b‖²`` for every block ``b`` (rows ``labels == b``;
one block by default) by Newton steps with per-block step halving (:func:`_newton`): every step
increases each block's objective, so an iteration that has not converged in ``max_iter`` steps
still returns an improved iterate. A small ridge makes every block's problem strictly concave (an
all-zero dummy, a collinear column or complete separation still converge); ``ridge=0`` gives the
plain (Firth or partial-likelihood) estimate. The fits never raise.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy.special import expit

__all__ = ["MAX_NEWTON", "RIDGE", "State", "cox_information", "cox_state", "fit_cox", "fit_logistic"]

#: Default ridge penalty (on a scaled design) of every fit.
RIDGE = 0.01
#: Default maximum number of Newton steps.
MAX_NEWTON = 100


class _Blocks:
    """Rows sorted by block label, with what block sums need."""

    def __init__(self, labels: np.ndarray, k: int, order: np.ndarray | None = None):
        self.order = np.argsort(labels, kind="stable") if order is None else order
        self.labels = np.asarray(labels)[self.order]
        self.k = k
        bounds = np.arange(k)
        self.starts = np.searchsorted(self.labels, bounds, side="left")
        self.sizes = np.searchsorted(self.labels, bounds, side="right") - self.starts
        self.nonempty = self.sizes > 0

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Per-block sums of ``values`` (rows in sorted order) -> shape (k, ...)."""
        out = np.zeros((self.k,) + values.shape[1:])
        if len(values):
            out[self.nonempty] = np.add.reduceat(values, self.starts[self.nonempty], axis=0)
        return out


State = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _newton(state: State, k: int, p: int, ridge: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximise ``loglik_b(β_b) - ridge/2·‖β_b‖²`` for every block ``b`` at once by Newton steps
    with per-block step halving. ``state(β)`` gives per-block log-likelihoods (k,), gradients
    (k, p) and information matrices (k, p, p). Returns ``(β, converged)``."""
    eye = np.eye(p)
    jitter = 1e-12 * eye

    def penalised(beta, values):
        ll, grad, info = values
        return (ll - 0.5 * ridge * (beta**2).sum(axis=1), grad - ridge * beta, info + ridge * eye + jitter)

    beta = np.zeros((k, p))
    ll, grad, info = penalised(beta, state(beta))
    converged = np.zeros(k, dtype=bool)
    for _ in range(max_iter):
        try:
            delta = np.linalg.solve(info, grad[..., None])[..., 0]
        except np.linalg.LinAlgError:
            delta = np.stack([np.linalg.lstsq(info[b], grad[b], rcond=None)[0] for b in range(k)])
        delta[converged | ~np.isfinite(delta).all(axis=1)] = 0.0
        step = np.ones(k)
        for _halving in range(40):
            candidate = beta + step[:, None] * delta
            c_ll, c_grad, c_info = penalised(candidate, state(candidate))
            worse = ~(c_ll >= ll - 1e-12 * np.abs(ll)) & (step > 0)
            if not worse.any():
                break
            step[worse] /= 2
            step[worse & (step < 1e-10)] = 0.0
        beta, ll, grad, info = candidate, c_ll, c_grad, c_info
        converged |= np.abs(step[:, None] * delta).max(axis=1) < 1e-7
        if converged.all():
            break
    return beta, converged


def fit_logistic(x: np.ndarray, y: np.ndarray, labels: np.ndarray | None = None, k: int = 1, *,
                 ridge: float = RIDGE, firth: bool = True, max_iter: int = MAX_NEWTON) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regressions of ``y`` (0/1) on ``x`` (include an intercept column), one per block
    ``labels == b``, maximising ``loglik + ½·log det(I(β) + ridge) - ridge/2·‖β‖²``: with
    ``firth`` (the default) that is Firth's (1993) bias-reduced likelihood (Jeffreys prior), whose
    estimates are finite under separation and whose small-sample bias is ``O(1/m²)`` instead of the
    MLE's ``O(1/m)``; ``firth=False`` gives the (ridge-penalised) MLE. Newton steps use the Fisher
    information, as logistf does. Returns ``(β (k, p), converged (k,))``."""
    x = np.asarray(x, dtype=np.float64)
    p = x.shape[1]
    labels = np.zeros(len(x), dtype=np.int64) if labels is None else np.asarray(labels)
    blocks = _Blocks(labels, k)
    xs, ys, lab = x[blocks.order], np.asarray(y, dtype=np.float64)[blocks.order], blocks.labels
    outer = xs[:, :, None] * xs[:, None, :]
    regularised = (ridge + 1e-12) * np.eye(p)

    def state(beta):
        eta = np.einsum("ij,ij->i", xs, beta[lab])
        prob = expit(eta)
        weight = prob * (1 - prob)
        ll = blocks.sums(ys * eta - np.logaddexp(0.0, eta))
        grad = blocks.sums(xs * (ys - prob)[:, None])
        info = blocks.sums(outer * weight[:, None, None])
        if firth:
            # ½ log det(I + ridge): its gradient is Σ_i h_i (½ - p_i) x_i, h_i = w_i x_iᵀ (I + ridge)⁻¹ x_i
            penalised = info + regularised
            ll = ll + 0.5 * np.linalg.slogdet(penalised)[1]
            inverse = np.linalg.inv(penalised)
            hat = weight * np.einsum("ij,ijk,ik->i", xs, inverse[lab], xs)
            grad = grad + blocks.sums(xs * (hat * (0.5 - prob))[:, None])
        return ll, grad, info

    return _newton(state, k, x.shape[1], ridge, max_iter)


def fit_cox(x: np.ndarray, time: np.ndarray, event: np.ndarray, labels: np.ndarray | None = None, k: int = 1, *,
            ridge: float = RIDGE, max_iter: int = MAX_NEWTON) -> tuple[np.ndarray, np.ndarray]:
    """Ridge-penalised Cox models with Efron's ties, one per block ``labels == b`` (the partial
    log-likelihoods of :func:`cox_state`). Returns ``(β (k, p), converged (k,))``."""
    p = np.asarray(x).shape[1]
    return _newton(cox_state(x, time, event, labels, k), k, p, ridge, max_iter)


def cox_information(x: np.ndarray, time: np.ndarray, event: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """The observed information (p, p) of one Cox model (Efron's ties, no penalty) at ``beta`` (p,):
    its inverse is the covariance of the MLE."""
    return cox_state(x, time, event)(np.asarray(beta, dtype=np.float64).reshape(1, -1))[2][0]


def cox_state(x: np.ndarray, time: np.ndarray, event: np.ndarray, labels: np.ndarray | None = None,
              k: int = 1) -> State:
    """The :data:`State` of ``k`` Cox partial likelihoods with Efron's ties, one per block.

    Rows are sorted by block, then by time descending, so a risk set (time ≥ t, same block) is a
    prefix of its block: cumulative sums of ``w, w·x, w·x xᵀ`` (``w = exp(η - max_b η)``) minus
    the block's start give every risk set's sums, read at the last row of each tied-time run (summed
    per run, then cumulated over the runs: one row per run instead of per patient). Each
    run with ``d`` events contributes Efron's ``d`` terms ``log(R - (l/d)·D)``, ``l = 0..d-1``."""
    x = np.asarray(x, dtype=np.float64)
    n, p = x.shape
    labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels)
    time = np.asarray(time, dtype=np.float64)
    event = np.asarray(event, dtype=bool)
    order = np.lexsort((-time, labels))
    blocks = _Blocks(labels, k, order=order)
    xs, ts, died, lab = x[order], time[order], event[order], blocks.labels
    outer = (xs[:, :, None] * xs[:, None, :]).reshape(n, p * p)
    # tied-time runs within blocks
    new_run = np.r_[True, (lab[1:] != lab[:-1]) | (ts[1:] != ts[:-1])] if n else np.zeros(0, dtype=bool)
    run = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.r_[run_start[1:], n] - 1  # last row of each run
    # events, grouped by run (contiguous in the sorted order)
    dead_rows = np.flatnonzero(died)
    dead_run = run[dead_rows]
    first_of_run = np.r_[True, dead_run[1:] != dead_run[:-1]] if len(dead_rows) else np.zeros(0, dtype=bool)
    tie_starts = np.flatnonzero(first_of_run)
    ties = np.diff(np.r_[tie_starts, len(dead_rows)])
    term_group = np.repeat(np.arange(len(tie_starts)), ties)  # each Efron term's tied group
    fraction = (np.arange(len(dead_rows)) - tie_starts[term_group]) / ties[term_group] if len(dead_rows) else \
        np.zeros(0)
    term_run = dead_run[tie_starts][term_group] if len(dead_rows) else np.zeros(0, dtype=np.int64)
    term_block = lab[run_end[term_run]] if len(dead_rows) else np.zeros(0, dtype=np.int64)
    term_blocks = _Blocks(term_block, k, order=np.arange(len(term_block)))  # already sorted by block
    block_start = blocks.starts
    x_dead = blocks.sums(xs * died[:, None])
    n_dead = blocks.sums(died.astype(np.float64))

    def state(beta):
        eta = np.einsum("ij,ij->i", xs, beta[lab])
        top = np.zeros(k)
        if n:
            top[blocks.nonempty] = np.maximum.reduceat(eta, block_start[blocks.nonempty])
        w = np.exp(eta - top[lab])
        moments = np.column_stack([w, w[:, None] * xs, w[:, None] * outer])
        # cumulative sums at each run's end only: a run's sum, then their running total (a risk set is
        # read at the last row of its run; runs never cross a block's start)
        cumulative = np.cumsum(np.add.reduceat(moments, run_start, axis=0), axis=0) if n else moments
        before = np.zeros((k, moments.shape[1]))
        has_before = blocks.nonempty & (block_start > 0)
        before[has_before] = cumulative[run[block_start[has_before]] - 1]
        risk = cumulative[term_run] - before[term_block]
        tied = np.add.reduceat(moments[dead_rows], tie_starts, axis=0)[term_group] if len(dead_rows) else risk
        pooled = risk - fraction[:, None] * tied
        s0 = pooled[:, 0]
        mean = pooled[:, 1:p + 1] / s0[:, None]
        second = pooled[:, p + 1:].reshape(-1, p, p) / s0[:, None, None]
        eta_dead = blocks.sums(eta * died)
        ll = eta_dead - term_blocks.sums(np.log(s0)) - top * n_dead
        grad = x_dead - term_blocks.sums(mean)
        info = term_blocks.sums(second - mean[:, :, None] * mean[:, None, :])
        return ll, grad, info

    return state
