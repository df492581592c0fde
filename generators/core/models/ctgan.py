"""Conditional tabular GAN: WGAN-GP with training-by-sampling and PacGAN (Xu et al., 2019).

Differences from the reference ``ctgan`` package (``make bench-generators`` measures them):

* speed: the encoded table, the per-category row indices and every random draw live on the
  training device; condition vectors and batches are drawn with tensor ops (no per-row Python
  loop, no host↔device copy per step); one generator forward per step, shared by the critic and
  generator updates; real, fake and interpolated rows go through the critic as one batch; fused
  Adam; losses are copied to the host once per epoch;
* defaults: numbers are encoded by their normal scores (``continuous="quantile"``, no mixture to
  fit) rather than by mode-specific normalisation (still available as ``continuous="mode"``);
  narrower layers (generator 128 and critic 64 units, not 256); the critic learns 10× faster than
  the generator (two time-scale update rule, Heusel et al., 2017); and the generator kept is an
  exponential moving average of its weights. On GBSG2 at 300 epochs these defaults score higher
  on SDMetrics quality than the reference's (see docs/benchmarks.md). An epoch is still
  ``max(1, n_rows // batch_size)`` steps, as in the reference.
* on CUDA the whole training step is captured once as a CUDA graph and replayed.

Missing values (issue 15; docs/benchmarks.md, "ctgan missing rates"): each nullable column's
missing indicator is a discrete column of the conditional vector like the categories
(training-by-sampling conditions on "missing" and "present" in proportion to their counts, and a
row conditioned on a category of a nullable column is held to "present"), and at generation a
condition is drawn from the data's frequencies with missingness included (see
``generators.core.sampler``). A missing category's block is filled with a draw from the present
categories, so the critic cannot tell real rows by an all-zero block, and the generator is also
fitted to each indicator's batch rate (``train_wgan_gp``'s ``missing_cols``). Before, a
conditioned-on nullable categorical column never had a gap, so its missing rate came out cut by
``1/J`` (``J`` discrete columns), and the other rates swung by ±0.08 from epoch to epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from generators.core.models.base import Generator, Hyperparameters, Progress, prefixed, unprefixed
from generators.core.nets import Critic, OutputLayout, ResidualGenerator
from generators.core.sampler import ConditionalSampler
from generators.core.training import GanOptions, train_wgan_gp
from generators.core.transformer import DataTransformer

__all__ = ["CTGAN"]


@dataclass
class CTGANHyper(Hyperparameters):
    batch_size: int = 500
    noise_dim: int = 128
    generator_width: int = 128
    critic_width: int = 64
    layers: int = 2
    pac: int = 10
    learning_rate: float = 2e-4          # the generator's
    critic_learning_rate: float = 2e-3   # the critic's (two time-scale update rule)
    weight_decay: float = 1e-6
    critic_steps: int = 1
    ema_decay: float = 0.9               # the generator kept is this moving average of its weights
    continuous: str = "quantile"  # "quantile" (normal scores) or "mode" (mode-specific normalisation)

    def check(self) -> None:
        no_average = type(self.ema_decay) in (int, float) and self.ema_decay == 0  # 0 turns the average off
        if no_average:
            self.ema_decay = 0.5  # the shared checks want numbers positive
        try:
            super().check()
        finally:
            if no_average:
                self.ema_decay = 0.0
        if self.batch_size % self.pac:
            raise ValueError("hyperparameter batch_size must be a multiple of pac")
        if not self.ema_decay < 1:
            raise ValueError("hyperparameter ema_decay must be below 1 (0: no moving average)")
        if self.continuous not in ("mode", "quantile"):
            raise ValueError("hyperparameter continuous must be 'mode' or 'quantile'")


class CTGAN(Generator):
    name = "ctgan"
    Hyper = CTGANHyper

    #: The span roles the conditional vector covers. Models saved before missing indicators joined
    #: the conditions have no ``condition_roles`` in their config and load with ``("category",)``.
    condition_roles: tuple[str, ...] = ("category", "missing")

    def _build(self) -> None:
        h = self.hyper
        self.category_spans = [i for i, s in enumerate(self.transformer.spans) if s.role in self.condition_roles]
        cond_dim = sum(self.transformer.spans[i].dim for i in self.category_spans)
        self.generator = ResidualGenerator(h.noise_dim + cond_dim, (h.generator_width,) * h.layers,
                                           self.transformer.output_dim).to(self.device)
        self.critic = Critic(self.transformer.output_dim + cond_dim, (h.critic_width,) * h.layers, h.pac).to(self.device)
        self.cond_dim = cond_dim
        self.layout = OutputLayout(self.transformer.spans, self.device,
                                   value_activation="linear" if self.transformer.continuous == "quantile" else "tanh")

    def _category_codes(self, matrix: np.ndarray) -> np.ndarray:
        codes, offset = [], 0
        for index, span in enumerate(self.transformer.spans):
            if index in self.category_spans:
                block = matrix[:, offset:offset + span.dim]
                codes.append(np.where(block.max(1) > 0, block.argmax(1), -1))
            offset += span.dim
        return np.stack(codes, 1) if codes else np.zeros((len(matrix), 0), dtype=np.int64)

    def _fit(self, table: pd.DataFrame, *, epochs: int, seed: int, progress: Progress | None) -> None:
        self.transformer = DataTransformer(continuous=self.hyper.continuous).fit(table, self.schema, seed=seed)
        self._train(self.transformer.transform(table, seed=seed), epochs=epochs, seed=seed, progress=progress)

    def _train(self, matrix: np.ndarray, *, epochs: int, seed: int, progress: Progress | None,
               steps_per_epoch: int = 0) -> None:
        """Train on ``matrix``, the fitted transformer's encoding of the training rows (absent
        categories are filled in it, in place: see :meth:`_fill_absent`).
        ``steps_per_epoch`` (0: the reference's ``n_rows // batch_size``) is for benchmarks
        (``bench.scale.generators`` times a fixed number of steps on a million rows)."""
        h = self.hyper
        self._build()
        gen = torch.Generator(device=self.device)
        gen.manual_seed(seed)
        codes_np = self._category_codes(matrix)
        matrix = self._fill_absent(matrix, codes_np, np.random.default_rng(seed))
        data = torch.as_tensor(matrix, device=self.device)
        codes = torch.as_tensor(codes_np, dtype=torch.long)
        sizes = [self.transformer.spans[i].dim for i in self.category_spans]
        # Training draws a missing indicator's condition in proportion to the counts, not log(1 + count):
        # a column with one gap in 228 rows would otherwise be conditioned on "missing" in ~11 % of its
        # draws, and the generator, which generalises, then put gaps everywhere (0.03 for 0.004).
        proportional = [self.transformer.spans[i].role == "missing" for i in self.category_spans]
        self.sampler = ConditionalSampler(codes, sizes, device=self.device, absent=self._absent(sizes),
                                          proportional=proportional)
        # Fused Adam: one kernel per parameter tensor (CPU and CUDA) instead of a dozen small ops;
        # capturable on CUDA, where the training step is replayed as a CUDA graph.
        adam = dict(betas=(0.5, 0.9), weight_decay=h.weight_decay, fused=True,
                    capturable=self.device.type == "cuda")
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=h.learning_rate, **adam)
        opt_d = torch.optim.Adam(self.critic.parameters(), lr=h.critic_learning_rate, **adam)
        batch = min(h.batch_size, max(h.pac, (len(matrix) // h.pac) * h.pac))
        self.generator.train()
        self.critic.train()
        train_wgan_gp(self.generator, self.critic, data, self.sampler, self.layout, self._category_blocks(),
                      opt_g=opt_g, opt_d=opt_d,
                      options=GanOptions(epochs=epochs, batch_size=batch, noise_dim=h.noise_dim,
                                         critic_steps=h.critic_steps, ema_decay=h.ema_decay,
                                         steps_per_epoch=steps_per_epoch),
                      gen=gen, report=lambda epoch, losses: self._report(progress, epoch, epochs, losses),
                      missing_cols=self._missing_cols(), indicator_blocks=self._indicator_blocks())
        self.generator.eval()

    def _fill_absent(self, matrix: np.ndarray, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A missing category's all-zero block becomes a one-hot drawn from the present categories'
        frequencies (the decoder ignores it: the indicator says missing). The generator's blocks are
        always one-hot, so a zero block would tell the critic "real" on sight, and push the generator
        away from missing categories under every other condition. Fills ``matrix`` in place (at a
        million rows a copy is another 0.25 GB) and returns it."""
        spans = self.transformer.spans
        starts = np.cumsum([0, *(span.dim for span in spans)])
        for j, i in enumerate(self.category_spans):
            absent = codes[:, j] < 0
            if spans[i].role != "category" or not absent.any() or absent.all():
                continue
            counts = np.bincount(codes[~absent, j], minlength=spans[i].dim)
            drawn = rng.choice(spans[i].dim, size=int(absent.sum()), p=counts / counts.sum())
            matrix[np.flatnonzero(absent), starts[i] + drawn] = 1.0
        return matrix

    def _absent(self, sizes: list[int]) -> list[int]:
        """Per conditional span, the global condition index of its column's "missing" entry (−1: none)."""
        spans = self.transformer.spans
        starts = np.cumsum([0, *sizes])
        missing_at = {spans[i].column: int(starts[j]) + 1 for j, i in enumerate(self.category_spans)
                      if spans[i].role == "missing"}
        return [missing_at.get(spans[i].column, -1) if spans[i].role == "category" else -1
                for i in self.category_spans]

    def _missing_cols(self) -> torch.Tensor | None:
        """The encoded column of each missing indicator's "missing" entry (None: no nullable column)."""
        starts = np.cumsum([0, *(span.dim for span in self.transformer.spans)])
        cols = [int(starts[i]) + 1 for i, span in enumerate(self.transformer.spans) if span.role == "missing"]
        return torch.tensor(cols, dtype=torch.long, device=self.device) if cols else None

    def _indicator_blocks(self) -> torch.Tensor | None:
        """For each discrete column, the padded block of its column's missing indicator (−1: none), for
        the categories of nullable columns."""
        spans = self.transformer.spans
        indicator = {spans[i].column: self.layout.block_of_span[i] for i in self.category_spans
                     if spans[i].role == "missing"}
        blocks = [indicator.get(spans[i].column, -1) if spans[i].role == "category" else -1
                  for i in self.category_spans]
        if not any(b >= 0 for b in blocks):
            return None
        return torch.tensor(blocks, dtype=torch.long, device=self.device)

    def _category_blocks(self) -> torch.Tensor:
        """For each discrete column, the position of its one-hot block among the layout's padded blocks."""
        blocks = [self.layout.block_of_span[i] for i in self.category_spans] or [0]
        return torch.tensor(blocks, dtype=torch.long, device=self.device)

    @torch.no_grad()
    def _generate(self, cond: torch.Tensor | None, n: int, gen: torch.Generator) -> pd.DataFrame:
        noise = torch.randn((n, self.hyper.noise_dim), device=self.device, generator=gen)
        z = torch.cat([noise, cond], dim=1) if cond is not None else noise
        fake = self.layout.activate(self.generator(z), gen)
        return self.transformer.inverse_transform(fake.cpu().numpy())

    def _sample_rows(self, n: int, rng: np.random.Generator, gen: torch.Generator) -> pd.DataFrame:
        cond = self.sampler.sample_original(n, gen) if self.sampler.n_discrete else None
        return self._generate(cond, n, gen)

    def _sample_fixed(self, n, fixed, rng, gen):
        if len(fixed) != 1:
            return super()._sample_fixed(n, fixed, rng, gen)
        (name, value), = fixed.items()
        columns = [(self.transformer.spans[i].column, self.transformer.spans[i].role) for i in self.category_spans]
        j = columns.index((name, "category"))
        from generators.core.models.base import categories_of

        k = categories_of(self.schema[name]).index(value)
        cond = torch.zeros((1, self.cond_dim), device=self.device)
        cond[0, int(self.sampler.offsets[j]) + k] = 1.0
        # The condition steers the generator; rows that still miss it are dropped and redrawn.
        kept, have = [], 0
        for _attempt in range(50):
            rows = self._generate(cond.expand(max(n - have, 1) * 2, -1), max(n - have, 1) * 2, gen)
            rows = rows[(rows[name].astype("string") == value).fillna(False).to_numpy()]
            kept.append(rows)
            have += len(rows)
            if have >= n:
                return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)
        return super()._sample_fixed(n, fixed, rng, gen)

    def _config(self) -> dict[str, Any]:
        return {"transformer": self.transformer.to_config(), "condition_roles": list(self.condition_roles)}

    def _tensors(self) -> dict[str, torch.Tensor]:
        tensors = {**prefixed("generator", self.generator.state_dict()), **prefixed("critic", self.critic.state_dict())}
        if self.sampler.n_discrete:
            tensors.update({"sampler.original_probs": self.sampler.original_probs,
                            "sampler.offsets": self.sampler.offsets})
        return tensors

    def _restore(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
        self.transformer = DataTransformer.from_config(config["transformer"])
        self.condition_roles = tuple(config.get("condition_roles", ("category",)))
        self._build()
        self.generator.load_state_dict(unprefixed("generator", tensors))
        self.critic.load_state_dict(unprefixed("critic", tensors))
        self.generator.eval()
        offsets = tensors.get("sampler.offsets", torch.zeros(0, dtype=torch.long))
        if "sampler.original_probs" in tensors:
            probs = tensors["sampler.original_probs"]
        else:  # saved before: a uniform column, then its present categories' frequencies
            probs = torch.zeros(self.cond_dim)
            data_probs = tensors.get("sampler.data_probs")
            for j, i in enumerate(self.category_spans):
                start, dim = int(offsets[j]), self.transformer.spans[i].dim
                probs[start:start + dim] = data_probs[j, :dim].float() / len(self.category_spans)
        self.sampler = ConditionalSampler.for_sampling(probs, offsets, device=self.device)
