"""The CTGAN networks: a residual generator and a PacGAN critic."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from generators.core.transformer import Span

__all__ = ["Critic", "OutputLayout", "ResidualGenerator", "apply_activations", "gradient_penalty"]


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


class Critic(nn.Module):
    """Scores ``pac`` rows at a time (PacGAN), which penalises mode collapse."""

    def __init__(self, input_dim: int, hidden: tuple[int, ...], pac: int):
        super().__init__()
        self.pac = pac
        layers, dim = [], input_dim * pac
        for width in hidden:
            layers += [nn.Linear(dim, width), nn.LeakyReLU(0.2), nn.Dropout(0.5)]
            dim = width
        layers.append(nn.Linear(dim, 1))
        self.seq = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.seq(x.reshape(-1, x.shape[1] * self.pac))


def gradient_penalty(critic: Critic, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator,
                     weight: float = 10.0) -> torch.Tensor:
    """WGAN-GP: ``λ E[(‖∇D(x̂)‖ − 1)²]`` on random interpolates, per pac group."""
    pac = critic.pac
    alpha = torch.rand(real.shape[0] // pac, 1, 1, device=real.device, generator=gen)
    alpha = alpha.repeat(1, pac, real.shape[1]).reshape(-1, real.shape[1])
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grads = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
    norms = grads.reshape(-1, pac * real.shape[1]).norm(2, dim=1)
    return weight * ((norms - 1) ** 2).mean()


class OutputLayout:
    """Index tensors that apply each span's activation in a few whole-batch ops.

    Value units get ``tanh``; one-hot blocks are gathered into a padded
    (batch, blocks, width) tensor, Gumbel-softmaxed along the last axis, and put back
    in column order with one fixed permutation.
    """

    def __init__(self, spans: list[Span], device: torch.device):
        value_cols, blocks, offset = [], [], 0
        for span in spans:
            cols = list(range(offset, offset + span.dim))
            (value_cols.extend(cols) if span.kind == "value" else blocks.append(cols))
            offset += span.dim
        width = max((len(b) for b in blocks), default=1)
        self.value_idx = torch.tensor(value_cols, dtype=torch.long, device=device)
        self.block_idx = torch.tensor([b + [b[0]] * (width - len(b)) for b in blocks] or [[0]],
                                      dtype=torch.long, device=device)
        self.block_valid = torch.tensor([[i < len(b) for i in range(width)] for b in blocks] or [[False]],
                                        device=device)
        self.has_blocks = bool(blocks)
        flat_block_cols = [c for b in blocks for c in b]
        order = value_cols + flat_block_cols
        self.restore = torch.empty(len(order), dtype=torch.long, device=device)
        self.restore[torch.tensor(order, dtype=torch.long, device=device)] = torch.arange(len(order), device=device)

    def padded(self, raw: torch.Tensor, idx: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return raw[:, idx].masked_fill(~valid, float("-inf"))

    def activate(self, raw: torch.Tensor, gen: torch.Generator, tau: float = 0.2) -> torch.Tensor:
        parts = [torch.tanh(raw[:, self.value_idx])]
        if self.has_blocks:
            logits = self.padded(raw, self.block_idx, self.block_valid)
            u = torch.rand(logits.shape, device=raw.device, generator=gen).clamp_(1e-10, 1 - 1e-10)
            soft = torch.softmax((logits - torch.log(-torch.log(u))) / tau, dim=2)
            parts.append(soft[:, self.block_valid])
        return torch.cat(parts, dim=1)[:, self.restore]


def apply_activations(raw: torch.Tensor, spans: list[Span], gen: torch.Generator, tau: float = 0.2) -> torch.Tensor:
    """tanh on value units, Gumbel-softmax on one-hot blocks (a convenience wrapper of OutputLayout)."""
    return OutputLayout(spans, raw.device).activate(raw, gen, tau)
