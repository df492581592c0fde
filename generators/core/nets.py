"""The CTGAN networks: a residual generator and a PacGAN critic."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from generators.core.transformer import Span

__all__ = ["Critic", "OutputLayout", "ResidualGenerator", "apply_activations", "critic_loss", "gradient_penalty"]


class _Residual(nn.Module):
    def __init__(self, i: int, o: int):
        super().__init__()
        self.fc = nn.Linear(i, o)
        self.bn = nn.BatchNorm1d(o)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.relu(self.bn(self.fc(x))), x], dim=1)


class ResidualGenerator(nn.Module):
    def __init__(self, noise_dim: int, hidden: tuple[int, ...], data_dim: int):
        super().__init__()
        layers, dim = [], noise_dim
        for width in hidden:
            layers.append(_Residual(dim, width))
            dim += width
        layers.append(nn.Linear(dim, data_dim))
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x)


class _Dropout(nn.Module):
    """``nn.Dropout`` with its mask drawn by ``rand < keep`` (several times faster on CPU than ``bernoulli_``)."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        return x * (torch.rand_like(x) < keep).to(x.dtype) * (1.0 / keep)


class Critic(nn.Module):
    """Scores ``pac`` rows at a time (PacGAN), which penalises mode collapse."""

    def __init__(self, input_dim: int, hidden: tuple[int, ...], pac: int):
        super().__init__()
        self.pac = pac
        layers, dim = [], input_dim * pac
        for width in hidden:
            layers += [nn.Linear(dim, width), nn.LeakyReLU(0.2), _Dropout(0.5)]
            dim = width
        layers.append(nn.Linear(dim, 1))
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x.reshape(-1, x.shape[1] * self.pac))


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator,
                     weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP: ``λ E[(‖∇D(x̂)‖ − 1)²]`` on random interpolates, per pac group."""
    return critic_loss(critic, real, fake, gen, weight)[1]


def critic_loss(critic: Critic, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator,
                weight: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E[D(fake)] − E[D(real)], gradient penalty)`` from one critic pass over real, fake and interpolates.

    The interpolates ``x̂ = α·real + (1 − α)·fake`` share one ``α`` per pac group. Real, fake and
    interpolates go through the critic as one batch (dropout draws its masks per row either way),
    so a critic step is one forward, one ``autograd.grad`` with ``create_graph`` and one backward.
    """
    pac, dim = critic.pac, real.shape[1]
    groups = real.shape[0] // pac
    alpha = torch.rand(groups, 1, 1, device=real.device, generator=gen)
    mixed = torch.lerp(fake.reshape(groups, pac, dim), real.reshape(groups, pac, dim), alpha)
    mixed = mixed.reshape(-1, dim).requires_grad_(True)
    scores = critic(torch.cat([real, fake, mixed], dim=0)).reshape(3, groups)
    grads = torch.autograd.grad(scores[2].sum(), mixed, create_graph=True)[0]
    norms = torch.linalg.vector_norm(grads.reshape(groups, pac * dim), dim=1)
    return scores[1].mean() - scores[0].mean(), weight * (norms - 1).square().mean()


class OutputLayout:
    """Index tensors that apply each span's activation in a few whole-batch ops.

    Value units get ``tanh``; one-hot blocks are gathered into a padded
    (batch, width, blocks) tensor, Gumbel-softmaxed along the width, and put back
    in column order with one fixed gather (no boolean masks, so no host↔device sync).
    """

    def __init__(self, spans: list[Span], device: torch.device, *, value_activation: str = "tanh"):
        """``value_activation``: ``tanh`` for values in [−1, 1] (mode-specific normalisation) or
        ``linear`` for unbounded ones (normal scores of the quantile encoding)."""
        if value_activation not in ("tanh", "linear"):
            raise ValueError("value_activation must be 'tanh' or 'linear'")
        self.linear_values = value_activation == "linear"
        value_cols, blocks, offset = [], [], 0
        for span in spans:
            cols = list(range(offset, offset + span.dim))
            (value_cols.extend(cols) if span.kind == "value" else blocks.append(cols))
            offset += span.dim
        width = max((len(b) for b in blocks), default=1)
        self.width = width
        self.value_idx = torch.tensor(value_cols, dtype=torch.long, device=device)
        self.block_idx = torch.tensor([b + [b[0]] * (width - len(b)) for b in blocks] or [[0]],
                                      dtype=torch.long, device=device)
        self.block_valid = torch.tensor([[i < len(b) for i in range(width)] for b in blocks] or [[False]],
                                        device=device)
        self.has_blocks = bool(blocks)
        self.n_values = len(value_cols)
        # Blocks along the last axis, so the softmax over a block's entries runs along dim 1 (faster on CPU).
        self.block_idx_t = self.block_idx.t().contiguous()
        self.block_valid_t = self.block_valid.t().contiguous()
        n_blocks = self.block_idx.shape[0]
        # Where each output column sits in [tanh(values) | softmax(padded blocks).flatten()].
        source = [0] * offset
        for i, c in enumerate(value_cols):
            source[c] = i
        for b, cols in enumerate(blocks):
            for i, c in enumerate(cols):
                source[c] = len(value_cols) + i * n_blocks + b
        self.restore = torch.tensor(source, dtype=torch.long, device=device)
        # The block position of each one-hot span, so a loss can pick a span's logits from the padded tensor.
        self.block_of_span: dict[int, int] = {}
        b = 0
        for index, span in enumerate(spans):
            if span.kind != "value":
                self.block_of_span[index] = b
                b += 1

    def padded(self, raw: torch.Tensor) -> torch.Tensor:
        """The block logits as (batch, width, blocks), padded with −inf (softmax runs along dim 1)."""
        return raw[:, self.block_idx_t].masked_fill(~self.block_valid_t, float("-inf"))

    def activate(self, raw: torch.Tensor, gen: torch.Generator, tau: float = 0.2) -> torch.Tensor:
        return self.activate_with_logits(raw, gen, tau)[0]

    def activate_with_logits(self, raw: torch.Tensor, gen: torch.Generator,
                             tau: float = 0.2) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The activated output and the padded (batch, width, blocks) block logits (−inf padding)."""
        values = raw[:, self.value_idx]
        values = values if self.linear_values else torch.tanh(values)
        if not self.has_blocks:
            return values[:, self.restore], None
        logits = self.padded(raw)
        u = torch.rand(logits.shape, device=raw.device, generator=gen).clamp_(1e-10, 1 - 1e-10)
        gumbel = u.log_().neg_().log_()  # log(−log u) = −Gumbel noise
        soft = torch.softmax((logits - gumbel) / tau, dim=1)
        return torch.cat([values, soft.reshape(raw.shape[0], -1)], dim=1)[:, self.restore], logits


def apply_activations(raw: torch.Tensor, spans: list[Span], gen: torch.Generator, tau: float = 0.2) -> torch.Tensor:
    """tanh on value units, Gumbel-softmax on one-hot blocks (a convenience wrapper of OutputLayout)."""
    return OutputLayout(spans, raw.device).activate(raw, gen, tau)
