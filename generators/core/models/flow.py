"""Normalising flow over the encoded table: rational-quadratic neural spline flow (zuko's NSF).

Numbers enter as normal scores (quantile transform); categories and missing indicators as
one-hot blocks *dequantised* with uniform noise, ``v = onehot + u − ½`` with ``u ~ U[0, 1)``,
so the chosen category stays the block's argmax and the density is continuous. With
``condition_on`` naming a categorical column, the flow models the other columns given that
column's one-hot (a conditional flow, as in Das et al.); sampling then sets the context
directly instead of rejecting rows.

Sampling inverts the flow in a fixed number of batched network passes (``transforms × passes``
per chunk of :data:`CHUNK_ROWS` rows, whatever the rows), with every feature's spline inverted
once (:func:`invert`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import zuko
from zuko.flows.autoregressive import MaskedAutoregressiveTransform
from zuko.nn import MaskedLinear
from zuko.utils import unpack

from generators.core.models.base import (
    Generator, Hyperparameters, Progress, categories_of, prefixed, unprefixed,
)
from generators.core.training import train_flow
from generators.core.transformer import DataTransformer

__all__ = ["SplineFlow", "invert"]

#: Rows inverted at once: the spline's intermediates are ``rows × features × bins`` floats, so a
#: bounded chunk bounds the memory of a large draw (and fits the caches better than one huge batch).
CHUNK_ROWS = 8192


@dataclass
class FlowHyper(Hyperparameters):
    batch_size: int = 500
    transforms: int = 3
    hidden_width: int = 128
    hidden_layers: int = 2
    bins: int = 8
    learning_rate: float = 1e-3
    condition_on: str = ""  # a categorical or event column, or "" for an unconditional flow
    #: Network passes to invert one transform: the features form ``passes`` groups, each group
    #: depending on the ones before it (2 is a coupling layout). The number of features or more is
    #: fully autoregressive: one network pass per feature per transform when sampling, the layout of
    #: models saved before this hyperparameter existed, which restore as such. 4 keeps GBSG2's
    #: quality (docs/benchmarks.md, "Flow sampling").
    passes: int = 4


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
            hidden_features=(h.hidden_width,) * h.hidden_layers, passes=h.passes,
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
        z = torch.randn((n, len(self.feature_cols)), device=self.device, generator=gen)
        chunks = range(0, n, CHUNK_ROWS)  # batched on the device; chunks only bound the memory
        x = torch.cat([invert(self.flow, z[i:i + CHUNK_ROWS], None if context is None else context[i:i + CHUNK_ROWS])
                       for i in chunks])
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
        # the context sets ``name``; the other categories are found by rejection, ended as for any model
        return self._reject(n, rest, lambda batch: self._decode(self._context(np.full(batch, code)), batch, gen))

    def _config(self) -> dict[str, Any]:
        return {"transformer": self.transformer.to_config(), "passes": self.hyper.passes}

    def _tensors(self) -> dict[str, torch.Tensor]:
        return prefixed("flow", self.flow.state_dict())

    def _restore(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.transformer = DataTransformer.from_config(config["transformer"])
        self._layout()
        if "passes" not in config:  # saved before ``passes`` existed: fully autoregressive
            self.hyper.passes = max(len(self.feature_cols), 1)
        self._build()
        self.flow.load_state_dict(unprefixed("flow", tensors))
        self.flow.eval()


def invert(flow: zuko.flows.NSF, z: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    """``flow(context).transform.inv(z)``, computed group by group.

    Each masked autoregressive transform splits the features into ``passes`` groups, group ``g``
    depending on the groups before it. zuko's inverse runs the whole network and the spline of
    *every* feature once per group (``passes × features`` spline evaluations per transform; with a
    fully autoregressive layout, ``features²``). Here pass ``g`` computes only group ``g``'s spline
    parameters (the rows of the output layer that belong to it, the widest layer) and inverts only
    its spline, so every feature's spline is evaluated once. Without a context the first group's
    parameters are the same for every row: one row is computed and broadcast. The result equals
    zuko's inverse up to float rounding (tests check it); a transform of another kind falls back to
    zuko's own inverse.
    """
    y = z
    for lazy in reversed(list(flow.transform.transforms)):
        layers = list(lazy.hyper) if isinstance(lazy, MaskedAutoregressiveTransform) else []
        if not layers or not isinstance(layers[-1], MaskedLinear) or lazy.order is None:
            y = lazy(context).inv(y)
            continue
        last = layers[-1]
        weight, bias = last.mask * last.weight, last.bias
        total = lazy.total
        offsets = torch.arange(total, device=y.device)
        x = torch.zeros_like(y)
        for group in range(int(lazy.order.max()) + 1):
            features = torch.nonzero(lazy.order == group).squeeze(-1)
            if features.numel() == 0:
                continue
            if context is not None:
                h = torch.cat((x, context), dim=-1)
            else:
                h = x[:1] if group == 0 else x  # no input reaches the first group: one row serves all
            for layer in layers[:-1]:
                h = layer(h)
            rows = (features[:, None] * total + offsets).reshape(-1)
            phi = torch.nn.functional.linear(h, weight[rows], None if bias is None else bias[rows])
            phi = phi.unflatten(-1, (-1, total))
            x[:, features] = lazy.univariate(*unpack(phi, lazy.shapes)).inv(y[:, features])
        y = x
    return y
