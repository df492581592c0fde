"""Reversible encoding of a clinical table for neural generators (after CTGAN's DataTransformer).

Per kept schema column, in schema order:

* numbers (continuous, integer, duration) get either
  - ``mode``: mode-specific normalisation: a variational Gaussian mixture (at most
    ``max_modes`` components, fitted on a seeded subsample of at most ``max_fit_rows`` rows,
    :data:`MAX_FIT_ROWS` by default) gives modes ``(w_k, μ_k, σ_k)``; each value's mode ``k``
    is drawn from its posterior ``∝ w_k N(x; μ_k, σ_k)`` and the value is encoded as ``α = (x − μ_k) / (4σ_k)``
    in [−0.99, 0.99], plus a one-hot of ``k``. The modes are widened where needed so
    that every fitted value lies within ``3.96σ`` of some mode, and a value is always
    encoded through a mode that covers it, so the round trip is exact up to float32; or
  - ``quantile``: the value's normal score ``Φ⁻¹(ε + (1 − 2ε) F̂(x))`` through a fitted
    quantile map (``ε = 10⁻⁴``; the affine squeeze keeps the extremes invertible);
* categorical and event columns become a one-hot over the schema's categories
  (events over ``0, 1``);
* a nullable column gets a 2-way missing indicator (present, missing), so a generator
  reproduces the missing rate instead of imputing. A missing number is encoded as
  ``α = 0`` (mode) or as a standard-normal draw (quantile, so that a flow sees no
  point mass); the decoder ignores it.

``inverse_transform`` rounds integers, clips numbers to the schema's bounds and maps
one-hot blocks back to categories by argmax, so categories round-trip exactly.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special

from clearinghouse.schema import Column, Schema

__all__ = ["DataTransformer", "EVENT_CATEGORIES", "MAX_FIT_ROWS", "Span"]

EVENT_CATEGORIES = ("0", "1")
#: Normal scores live in [Φ⁻¹(ε), Φ⁻¹(1 − ε)] ≈ [−3.72, 3.72].
_EPS = 1e-4
#: |α| ≤ _ALPHA, i.e. a mode covers the values within 4·_ALPHA = 3.96 of its σ.
_ALPHA = 0.99
ContinuousMode = Literal["mode", "quantile"]
#: The mixtures (and quantile maps) are fitted on a seeded subsample of at most this many values per
#: column; every row is then encoded. The reference CTGAN fits on the whole column (up to 100
#: variational EM iterations over every value), so its fit grows with the rows; this one does not
#: (bench/scale/generators.py measures it at 100,000 and 1,000,000 rows).
MAX_FIT_ROWS = 5000
#: Rows per block when a mode is drawn for each value (bounds the temporaries: 64k × 10 modes × 8 B).
_BLOCK_ROWS = 1 << 16


@dataclass(frozen=True)
class Span:
    """A contiguous block of the encoded matrix."""

    column: str
    kind: Literal["value", "softmax"]  # value: one tanh/linear unit; softmax: a one-hot block
    dim: int
    role: Literal["numeric", "mode", "category", "missing"]


@dataclass
class _NumericState:
    # mode-specific normalisation
    means: list[float] | None = None
    stds: list[float] | None = None
    # quantile map: sorted reference values and their normal scores
    quantiles: list[float] | None = None
    fill: float = 0.0  # unused; kept so that older configs still load
    weights: list[float] | None = None  # mixture weights (None: equal)


def _categories(column: Column) -> tuple[str, ...]:
    return EVENT_CATEGORIES if column.type == "event" else column.categories


class DataTransformer:
    """``fit`` on a real frame and its schema; ``transform`` ⇄ ``inverse_transform``."""

    def __init__(self, *, continuous: ContinuousMode = "mode", max_modes: int = 10, max_fit_rows: int = MAX_FIT_ROWS,
                 n_quantiles: int = 256):
        if continuous not in ("mode", "quantile"):
            raise ValueError(f"continuous must be 'mode' or 'quantile', not {continuous!r}")
        self.continuous = continuous
        self.max_modes = max_modes
        self.max_fit_rows = max_fit_rows
        self.n_quantiles = n_quantiles
        self.schema: Schema | None = None
        self.spans: list[Span] = []
        self._numeric: dict[str, _NumericState] = {}

    # ------------------------------------------------------------------ fitting
    def fit(self, frame: pd.DataFrame, schema: Schema, *, seed: int = 0) -> "DataTransformer":
        rng = np.random.default_rng(seed)
        self.schema = schema
        self.spans = []
        self._numeric = {}
        for column in schema.kept:
            series = frame[column.name]
            if column.is_numeric:
                values = series.dropna().to_numpy(dtype=np.float64)
                state = self._fit_numeric(values, rng)
                self._numeric[column.name] = state
                self.spans.append(Span(column.name, "value", 1, "numeric"))
                if self.continuous == "mode":
                    self.spans.append(Span(column.name, "softmax", len(state.means), "mode"))
            else:
                self.spans.append(Span(column.name, "softmax", len(_categories(column)), "category"))
            if column.nullable:
                self.spans.append(Span(column.name, "softmax", 2, "missing"))
        return self

    def _fit_numeric(self, values: np.ndarray, rng: np.random.Generator) -> _NumericState:
        if len(values) == 0:
            return _NumericState(means=[0.0], stds=[1.0], quantiles=[0.0, 1.0])
        if self.continuous == "quantile":
            if len(values) > self.max_fit_rows:
                values = rng.choice(values, size=self.max_fit_rows, replace=False)
            probs = np.linspace(0.0, 1.0, min(self.n_quantiles, max(len(values), 2)))
            return _NumericState(quantiles=np.quantile(values, probs).tolist())
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import BayesianGaussianMixture

        everything = values
        if len(values) > self.max_fit_rows:
            values = rng.choice(values, size=self.max_fit_rows, replace=False)
        distinct = np.unique(values)
        if len(distinct) == 1:
            means, stds, weights = distinct.astype(np.float64), np.ones(1), np.ones(1)
        else:
            gmm = BayesianGaussianMixture(
                n_components=int(min(self.max_modes, len(distinct))),
                weight_concentration_prior_type="dirichlet_process",
                weight_concentration_prior=1e-3, n_init=1, max_iter=100, tol=1e-3,
                random_state=int(rng.integers(2**31 - 1)),
            )
            with warnings.catch_warnings():  # 100 iterations are enough for encoding; do not nag
                warnings.simplefilter("ignore", ConvergenceWarning)
                gmm.fit(values.reshape(-1, 1))
            keep = gmm.weights_ > 5e-3
            order = np.argsort(gmm.means_.reshape(-1)[keep])
            means = gmm.means_.reshape(-1)[keep][order]
            spread = float(np.std(values)) or 1.0
            stds = np.maximum(np.sqrt(gmm.covariances_.reshape(-1))[keep][order], 1e-3 * spread)
            weights = gmm.weights_[keep][order]
        stds = _cover(everything, means, stds)
        return _NumericState(means=means.tolist(), stds=stds.tolist(), weights=(weights / weights.sum()).tolist())

    # ------------------------------------------------------------------ encoding
    @property
    def output_dim(self) -> int:
        return sum(span.dim for span in self.spans)

    def transform(self, frame: pd.DataFrame, *, seed: int = 0) -> np.ndarray:
        """Encode ``frame`` as a float32 matrix laid out by :attr:`spans`."""
        assert self.schema is not None, "fit first"
        rng = np.random.default_rng(seed)
        n = len(frame)
        # Filled in place, block by block: one float32 matrix and no concatenated copy (a million rows
        # × 100 encoded columns is 0.4 GB).
        out = np.zeros((n, self.output_dim), dtype=np.float32)
        offset = 0
        rows = np.arange(n)
        for column in self.schema.kept:
            series = frame[column.name]
            missing = series.isna().to_numpy()
            if column.is_numeric:
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
                for block in self._encode_numeric(column.name, values, missing, rng):
                    out[:, offset:offset + block.shape[1]] = block
                    offset += block.shape[1]
            else:
                categories = _categories(column)
                if isinstance(series.dtype, pd.CategoricalDtype) and list(series.cat.categories) == list(categories):
                    codes = series.cat.codes.to_numpy()  # custody's dtype: no string round trip (1M rows: seconds)
                else:
                    codes = pd.Categorical(series.astype("string").where(~missing), categories=list(categories)).codes
                present = codes >= 0
                out[rows[present], offset + codes[present].astype(np.int64)] = 1.0
                offset += len(categories)
            if column.nullable:
                out[rows, offset + missing.astype(int)] = 1.0
                offset += 2
        assert offset == self.output_dim
        return out

    def _encode_numeric(self, name: str, values: np.ndarray, missing: np.ndarray, rng) -> list[np.ndarray]:
        state = self._numeric[name]
        filled = np.where(missing, np.nan, values)
        if self.continuous == "quantile":
            scores = self._to_normal(state, filled)
            scores[missing] = rng.standard_normal(int(missing.sum()))
            return [scores.reshape(-1, 1).astype(np.float32)]
        means, stds = np.asarray(state.means), np.asarray(state.stds)
        weights = np.asarray(state.weights) if state.weights is not None else np.ones(len(means))
        x = np.where(missing, means[0], filled)
        # Sample each value's mode from its posterior under the fitted mixture (CTGAN does the same):
        # log w_k − log σ_k − ½((x − μ_k)/σ_k)², the constant −½ log 2π dropped (it cancels), in blocks
        # of _BLOCK_ROWS rows so that a million rows need no (rows × modes) temporaries at once.
        u = rng.random(len(x))
        modes = np.empty(len(x), dtype=np.int64)
        offset = np.log(weights) - np.log(stds)
        for start in range(0, len(x), _BLOCK_ROWS):
            part = slice(start, start + _BLOCK_ROWS)
            logp = offset - 0.5 * np.square((x[part, None] - means) / stds)
            logp -= logp.max(axis=1, keepdims=True)
            probs = np.exp(logp, out=logp)
            probs /= probs.sum(axis=1, keepdims=True)
            modes[part] = np.minimum((probs.cumsum(axis=1) < u[part, None]).sum(axis=1), len(means) - 1)
        # A draw that lands on a mode too far away to encode the value falls back to the closest mode (in σ).
        far = np.abs(x - means[modes]) > 4 * _ALPHA * stds[modes]
        if far.any():
            modes[far] = np.abs((x[far, None] - means[None, :]) / stds[None, :]).argmin(axis=1)
        alpha = np.clip((x - means[modes]) / (4 * stds[modes]), -_ALPHA, _ALPHA)
        alpha[missing] = 0.0
        onehot = np.zeros((len(x), len(means)), dtype=np.float32)
        onehot[np.arange(len(x)), modes] = 1.0
        return [alpha.reshape(-1, 1).astype(np.float32), onehot]

    @staticmethod
    def _to_normal(state: _NumericState, values: np.ndarray) -> np.ndarray:
        q = np.asarray(state.quantiles)
        probs = np.linspace(0.0, 1.0, len(q))
        # Average the left and right interpolation so ties (integer data) map to the middle of their mass.
        left = np.interp(values, q, probs)
        right = 1.0 - np.interp(-values, -q[::-1], probs)
        return special.ndtri(_EPS + (1 - 2 * _EPS) * (left + right) / 2)  # Φ⁻¹ (scipy.stats' norm.ppf, minus its checks)

    @staticmethod
    def _from_normal(state: _NumericState, scores: np.ndarray) -> np.ndarray:
        q = np.asarray(state.quantiles)
        probs = np.linspace(0.0, 1.0, len(q))
        return np.interp((special.ndtr(scores) - _EPS) / (1 - 2 * _EPS), probs, q)  # Φ

    # ------------------------------------------------------------------ decoding
    def inverse_transform(self, matrix: np.ndarray) -> pd.DataFrame:
        """Decode a matrix (soft or hard one-hots) into a frame typed like the custody frame."""
        assert self.schema is not None, "fit first"
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.shape[1] != self.output_dim:
            raise ValueError(f"expected {self.output_dim} columns, got {matrix.shape[1]}")
        out: dict[str, Any] = {}
        offset = 0
        spans = iter(self.spans)
        for column in self.schema.kept:
            if column.is_numeric:
                span = next(spans)
                value = matrix[:, offset]
                offset += span.dim
                state = self._numeric[column.name]
                if self.continuous == "quantile":
                    decoded = self._from_normal(state, value)
                else:
                    mode_span = next(spans)
                    modes = matrix[:, offset:offset + mode_span.dim].argmax(axis=1)
                    offset += mode_span.dim
                    decoded = np.clip(value, -1, 1) * 4 * np.asarray(state.stds)[modes] + np.asarray(state.means)[modes]
                decoded = np.clip(decoded, column.min, column.max)
                if column.type == "integer":
                    decoded = np.clip(np.round(decoded), np.ceil(column.min), np.floor(column.max))
                series = pd.Series(decoded)
            else:
                span = next(spans)
                categories = _categories(column)
                codes = matrix[:, offset:offset + span.dim].argmax(axis=1)
                offset += span.dim
                if column.type == "event":
                    series = pd.Series(codes.astype(np.int64))
                else:
                    series = pd.Series(pd.Categorical.from_codes(codes, categories=list(categories)))
            if column.nullable:
                span = next(spans)
                missing = matrix[:, offset:offset + span.dim].argmax(axis=1) == 1
                offset += span.dim
                series = series.mask(missing)
            out[column.name] = _typed(series, column)
        return pd.DataFrame(out)

    # ------------------------------------------------------------------ persistence
    def to_config(self) -> dict[str, Any]:
        assert self.schema is not None
        return {
            "continuous": self.continuous, "max_modes": self.max_modes, "max_fit_rows": self.max_fit_rows,
            "n_quantiles": self.n_quantiles, "schema": self.schema.to_dict(),
            "numeric": {name: asdict(state) for name, state in self._numeric.items()},
            "spans": [asdict(span) for span in self.spans],
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "DataTransformer":
        self = cls(continuous=config["continuous"], max_modes=config["max_modes"],
                   max_fit_rows=config["max_fit_rows"], n_quantiles=config["n_quantiles"])
        self.schema = Schema.from_dict(config["schema"])
        self._numeric = {name: _NumericState(**state) for name, state in config["numeric"].items()}
        self.spans = [Span(**span) for span in config["spans"]]
        json.dumps(config)  # configs are plain JSON
        return self


def _cover(values: np.ndarray, means: np.ndarray, stds: np.ndarray) -> np.ndarray:
    """Widen the closest mode of each value that no mode covers (|x − μ| ≤ 4·0.99·σ), so it can be encoded."""
    stds = stds.copy()
    values = np.unique(values)
    if len(values) == 0:
        return stds
    distance = np.abs(values[:, None] - means[None, :]) / (4 * _ALPHA)  # the σ each mode would need
    uncovered = (distance > stds[None, :]).all(axis=1)
    if uncovered.any():
        closest = (distance[uncovered] / stds[None, :]).argmin(axis=1)
        needed = np.zeros_like(stds)
        np.maximum.at(needed, closest, distance[uncovered, closest] * (1 + 1e-9))
        stds = np.maximum(stds, needed)
    return stds


def _typed(series: pd.Series, column: Column) -> pd.Series:
    """Match the dtypes that custody produces (see clearinghouse.tabular)."""
    if column.type == "integer":
        return series.astype("Int64")
    if column.type == "event":
        return series.astype("Int8")
    if column.is_numeric:
        return series.astype("float64")
    return series.astype(pd.CategoricalDtype(list(column.categories)))
