"""Normalising flow over the encoded table: rational-quadratic neural spline flow (zuko's NSF).

Numbers enter as normal scores (quantile transform); categories and missing indicators as
one-hot blocks *dequantised* with uniform noise, ``v = onehot + u − ½`` with ``u ~ U[0, 1)``,
so the chosen category stays the block's argmax and the density is continuous. With
``condition_on`` naming a categorical column, the flow models the other columns given that
column's one-hot (a conditional flow, as in Das et al.); sampling then sets the context
directly instead of rejecting rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import zuko

from generators.core.models.base import (
    ConditionError, Generator, Hyperparameters, Progress, categories_of, prefixed, unprefixed,
)
from generators.core.training import train_flow
from generators.core.transformer import DataTransformer

__all__ = ["SplineFlow"]


@dataclass
class FlowHyper(Hyperparameters):
    batch_size: int = 500
    transforms: int = 3
    hidden_width: int = 128
    hidden_layers: int = 2
    bins: int = 8
    learning_rate: float = 1e-3
    condition_on: str = ""  # a categorical or event column, or "" for an unconditional flow


class SplineFlow(Generator):
    name = "flow"
    Hyper = FlowHyper

    def _layout(self) -> None:
        spans = self.transformer.spans
        starts = np.cumsum([0] + [s.dim for s in spans])
        self.context_cols: list[int] = []
        discrete: list[int] = []
        for span, start in zip(spans, starts):
            cols = list(range(start, start + span.dim))
            if span.column == self.hyper.condition_on and span.role == "category":
                self.context_cols = cols
            elif span.kind == "softmax":
                discrete.extend(cols)
        self.feature_cols = [c for c in range(self.transformer.output_dim) if c not in self.context_cols]
        mask = torch.zeros(len(self.feature_cols))
        position = {c: i for i, c in enumerate(self.feature_cols)}
        mask[[position[c] for c in discrete]] = 1.0
        self.dequant_mask = mask.to(self.device)

    def _build(self) -> None:
        h = self.hyper
        self.flow = zuko.flows.NSF(
            features=len(self.feature_cols), context=len(self.context_cols), transforms=h.transforms, bins=h.bins,
            hidden_features=(h.hidden_width,) * h.hidden_layers,
        ).to(self.device)

    def _fit(self, table: pd.DataFrame, *, epochs: int, seed: int, progress: Progress | None) -> None:
        h = self.hyper
        if h.condition_on:
            column = self.schema[h.condition_on] if h.condition_on in self.schema else None
            if column is None or column.type not in ("categorical", "event"):
                raise ValueError("hyperparameter condition_on must name a categorical or event column")
        self.transformer = DataTransformer(continuous="quantile").fit(table, self.schema, seed=seed)
        matrix = torch.as_tensor(self.transformer.transform(table, seed=seed), device=self.device)
        self._layout()
        self._build()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed)
        data = matrix[:, self.feature_cols].contiguous()
        context = matrix[:, self.context_cols].contiguous() if self.context_cols else None
        mask = self.dequant_mask

        def dequantize(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
            return x + mask * (torch.rand(x.shape, device=x.device, generator=g) - 0.5)

        optimizer = torch.optim.Adam(self.flow.parameters(), lr=h.learning_rate)
        self.flow.train()
        train_flow(self.flow, data, context, dequantize=dequantize, optimizer=optimizer, epochs=epochs,
                   batch_size=min(h.batch_size, len(table)), gen=gen,
                   report=lambda epoch, losses: self._report(progress, epoch, epochs, losses),
                   report_every_s=0.0)  # progress once per epoch: one host copy per epoch, not per step
        self.flow.eval()

    @torch.no_grad()
    def _decode(self, context: torch.Tensor | None, n: int, gen: torch.Generator) -> pd.DataFrame:
        dist = self.flow(context) if context is not None else self.flow()
        z = torch.randn((n, len(self.feature_cols)), device=self.device, generator=gen)
        x = dist.transform.inv(z)
        matrix = torch.zeros((n, self.transformer.output_dim), device=self.device)
        matrix[:, self.feature_cols] = x
        if context is not None:
            matrix[:, self.context_cols] = context
        return self.transformer.inverse_transform(matrix.cpu().numpy())

    def _context(self, codes: np.ndarray) -> torch.Tensor:
        onehot = torch.zeros((len(codes), len(self.context_cols)), device=self.device)
        onehot[torch.arange(len(codes)), torch.as_tensor(codes, device=self.device)] = 1.0
        return onehot

    def _sample_rows(self, n: int, rng: np.random.Generator, gen: torch.Generator) -> pd.DataFrame:
        if not self.context_cols:
            return self._decode(None, n, gen)
        name = self.hyper.condition_on
        counts = np.array([self.counts[name][c] for c in categories_of(self.schema[name])], dtype=float)
        codes = rng.choice(len(counts), size=n, p=counts / counts.sum())
        return self._decode(self._context(codes), n, gen)

    def _sample_fixed(self, n, fixed, rng, gen):
        name = self.hyper.condition_on
        if not name or name not in fixed:
            return super()._sample_fixed(n, fixed, rng, gen)
        code = categories_of(self.schema[name]).index(fixed[name])
        if len(fixed) == 1:
            return self._decode(self._context(np.full(n, code)), n, gen)
        rest = {k: v for k, v in fixed.items() if k != name}
        kept, have = [], 0
        for _attempt in range(100):
            rows = self._decode(self._context(np.full(2 * n, code)), 2 * n, gen)
            mask = np.ones(len(rows), dtype=bool)
            for k, v in rest.items():
                mask &= (rows[k].astype("string") == v).fillna(False).to_numpy()
            kept.append(rows[mask])
            have += int(mask.sum())
            if have >= n:
                return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)
        raise ConditionError(f"conditions {fixed} are too rare under this model")

    def _config(self) -> dict[str, Any]:
        return {"transformer": self.transformer.to_config()}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return prefixed("flow", self.flow.state_dict())

    def _restore(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.transformer = DataTransformer.from_config(config["transformer"])
        self._layout()
        self._build()
        self.flow.load_state_dict(unprefixed("flow", tensors))
        self.flow.eval()
