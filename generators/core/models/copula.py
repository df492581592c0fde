"""Gaussian copula: the strong, fast baseline.

Each column is mapped to a standard-normal score: numbers through their empirical
quantile function, categories through the interval of cumulative frequency they occupy
(a uniform draw inside it, then Φ⁻¹), and a nullable column's missingness as one more
binary variable. The scores' correlation matrix Σ is the copula. Sampling draws
``z ~ N(0, Σ)`` and maps each margin back. ``epochs`` is accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats

from generators.core.models.base import Generator, Hyperparameters, Progress, categories_of
from generators.core.transformer import _typed

__all__ = ["GaussianCopula"]


@dataclass
class CopulaHyper(Hyperparameters):
    n_quantiles: int = 256       # knots of each numeric margin's quantile function
    shrinkage: float = 0.01      # Σ ← (1 − s)Σ + sI keeps Σ positive definite


class GaussianCopula(Generator):
    name = "copula"
    Hyper = CopulaHyper

    def _fit(self, table: pd.DataFrame, *, epochs: int, seed: int, progress: Progress | None) -> None:
        rng = np.random.default_rng(seed)
        n = len(table)
        self.margins: list[dict[str, Any]] = []
        scores = []
        for column in self.schema.kept:
            series = table[column.name]
            missing = series.isna().to_numpy()
            if column.is_numeric:
                values = series.to_numpy(dtype=np.float64, na_value=np.nan)
                present = values[~missing]
                probs = np.linspace(0, 1, min(self.hyper.n_quantiles, max(len(present), 2)))
                q = np.quantile(present, probs) if len(present) else np.array([column.min, column.max])
                # Normal scores of the present values among themselves (ties → average rank), so that they
                # match the margin that sampling maps back through; a missing cell gets an independent draw.
                z = rng.standard_normal(n)
                if len(present):
                    ranks = stats.rankdata(present)
                    z[~missing] = stats.norm.ppf(np.clip((ranks - 0.5) / len(present), 1e-4, 1 - 1e-4))
                self.margins.append({"column": column.name, "kind": "numeric", "quantiles": q.tolist()})
            else:
                categories = categories_of(column)
                codes = pd.Categorical(series.astype("string"), categories=list(categories)).codes
                freq = np.bincount(codes[codes >= 0], minlength=len(categories)).astype(float)
                freq = freq / max(freq.sum(), 1)
                cum = np.concatenate([[0.0], np.cumsum(freq)])
                lo, hi = cum[np.maximum(codes, 0)], cum[np.maximum(codes, 0) + 1]
                u = np.clip(lo + rng.random(n) * (hi - lo), 1e-4, 1 - 1e-4)
                z = stats.norm.ppf(u)
                z[missing] = rng.standard_normal(int(missing.sum()))
                self.margins.append({"column": column.name, "kind": "categorical", "cumulative": cum.tolist()})
            scores.append(z)
            if column.nullable:
                rate = float(missing.mean())
                u = np.where(missing, rng.uniform(1 - rate, 1, n), rng.uniform(0, 1 - rate, n))
                scores.append(stats.norm.ppf(np.clip(u, 1e-4, 1 - 1e-4)))
                self.margins.append({"column": column.name, "kind": "missing", "rate": rate})
        matrix = np.corrcoef(np.vstack(scores)) if len(scores) > 1 else np.ones((1, 1))
        matrix = np.nan_to_num(matrix, nan=0.0)
        np.fill_diagonal(matrix, 1.0)
        s = self.hyper.shrinkage
        self.correlation = torch.as_tensor((1 - s) * matrix + s * np.eye(len(matrix)), dtype=torch.float64)
        self._report(progress, 1, 1, {"log_det_correlation": float(torch.logdet(self.correlation))})

    def _sample_rows(self, n: int, rng: np.random.Generator, gen: torch.Generator) -> pd.DataFrame:
        chol = torch.linalg.cholesky(self.correlation.to(self.device))
        eps = torch.randn((n, chol.shape[0]), generator=gen, device=self.device, dtype=torch.float64)
        z = (eps @ chol.T).cpu().numpy()
        u = stats.norm.cdf(z)
        out: dict[str, pd.Series] = {}
        by_name = {c.name: c for c in self.schema.kept}
        for j, margin in enumerate(self.margins):
            column = by_name[margin["column"]]
            if margin["kind"] == "numeric":
                q = np.asarray(margin["quantiles"])
                values = np.interp(u[:, j], np.linspace(0, 1, len(q)), q)
                values = np.clip(values, column.min, column.max)
                if column.type == "integer":
                    values = np.round(values)
                out[column.name] = pd.Series(values)
            elif margin["kind"] == "categorical":
                cum = np.asarray(margin["cumulative"])
                codes = np.clip(np.searchsorted(cum, u[:, j], side="right") - 1, 0, len(cum) - 2)
                categories = categories_of(column)
                out[column.name] = (pd.Series(codes.astype(np.int64)) if column.type == "event"
                                    else pd.Series(pd.Categorical.from_codes(codes, categories=list(categories))))
            else:  # missing indicator follows its column
                missing = u[:, j] > 1 - margin["rate"]
                out[column.name] = out[column.name].mask(missing)
        return pd.DataFrame({c.name: _typed(out[c.name], c) for c in self.schema.kept})

    def _config(self) -> dict[str, Any]:
        return {"margins": self.margins}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {"correlation": self.correlation}

    def _restore(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.margins = config["margins"]
        self.correlation = tensors["correlation"].to(torch.float64)
