"""Training loops. They receive their modules, optimisers and options; they do not build them.

Losses stay on the device; they are copied to the host only when progress is reported
(at most every ``report_every_s`` seconds and at the last epoch), so a step never waits on
a host↔device copy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.nn import functional as F

from generators.core.nets import Critic, OutputLayout, ResidualGenerator, gradient_penalty
from generators.core.sampler import ConditionalSampler

__all__ = ["GanOptions", "train_wgan_gp", "train_flow"]

#: ``report(epoch, losses)`` with host floats; raises to stop.
Report = Callable[[int, dict[str, float]], None]


@dataclass(frozen=True)
class GanOptions:
    epochs: int
    batch_size: int
    noise_dim: int
    critic_steps: int = 1
    gp_weight: float = 10.0
    report_every_s: float = 1.0


def train_wgan_gp(
    generator: ResidualGenerator,
    critic: Critic,
    data: torch.Tensor,
    sampler: ConditionalSampler,
    layout: OutputLayout,
    category_blocks: tuple[torch.Tensor, torch.Tensor],
    *,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    options: GanOptions,
    gen: torch.Generator,
    report: Report,
) -> None:
    """Conditional WGAN-GP with training-by-sampling (Xu et al., 2019), everything on ``data.device``.

    ``category_blocks`` = (index, valid): for each discrete column, the generator-output
    columns of its one-hot block, padded; the generator is penalised by the cross-entropy
    of the conditioned column's block against the asked-for category.
    """
    device = data.device
    batch = options.batch_size
    steps = max(1, data.shape[0] // batch)
    conditional = sampler.n_discrete > 0
    block_idx, block_valid = category_blocks
    last_report = time.monotonic()

    def fake_batch(grad: bool):
        noise = torch.randn((batch, options.noise_dim), device=device, generator=gen)
        if not conditional:
            with torch.set_grad_enabled(grad):
                return layout.activate(generator(noise), gen), None, None
        cond, column, category, rows = sampler.sample_train(batch, gen)
        with torch.set_grad_enabled(grad):
            raw = generator(torch.cat([noise, cond], dim=1))
            fake = torch.cat([layout.activate(raw, gen), cond], dim=1)
        return fake, (cond, column, category, rows), raw

    for epoch in range(1, options.epochs + 1):
        for _ in range(steps):
            for _ in range(options.critic_steps):
                fake, drawn, _raw = fake_batch(grad=False)  # the critic step needs no generator gradients
                if conditional:
                    cond, _column, _category, rows = drawn
                    perm = torch.randperm(batch, device=device, generator=gen)
                    real = torch.cat([data[rows[perm]], cond[perm]], dim=1)
                    fake = torch.cat([fake[:, : -cond.shape[1]][perm], cond[perm]], dim=1)
                else:
                    real = data[sampler.sample_rows(batch, gen)]
                penalty = gradient_penalty(critic, real, fake, gen, options.gp_weight)
                loss_d = critic(fake).mean() - critic(real).mean()
                opt_d.zero_grad(set_to_none=True)
                (loss_d + penalty).backward()
                opt_d.step()
            fake, drawn, raw = fake_batch(grad=True)
            loss_g = -critic(fake).mean()
            if conditional:
                _cond, column, category, _rows = drawn
                logits = raw[torch.arange(batch, device=device)[:, None], block_idx[column]]
                logits = logits.masked_fill(~block_valid[column], float("-inf"))
                loss_g = loss_g + F.cross_entropy(logits, category)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        now = time.monotonic()
        if epoch == options.epochs or now - last_report >= options.report_every_s:
            last_report = now
            report(epoch, {"generator": float(loss_g.detach()), "critic": float(loss_d.detach()),
                           "gradient_penalty": float(penalty.detach())})


def train_flow(
    flow: torch.nn.Module,
    data: torch.Tensor,
    context: torch.Tensor | None,
    *,
    dequantize: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    epochs: int,
    batch_size: int,
    gen: torch.Generator,
    report: Report,
    report_every_s: float = 1.0,
) -> None:
    """Maximum likelihood: minimise ``−log p(x | c)`` over shuffled minibatches, on ``data.device``."""
    n = data.shape[0]
    steps = max(1, -(-n // batch_size))
    last_report = time.monotonic()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, device=data.device, generator=gen)
        total = data.new_zeros(())
        for step in range(steps):
            idx = order[step * batch_size:(step + 1) * batch_size]
            x = dequantize(data[idx], gen)
            dist = flow(context[idx]) if context is not None else flow()
            loss = -dist.log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 5.0)
            optimizer.step()
            total = total + loss.detach()
        now = time.monotonic()
        if epoch == epochs or now - last_report >= report_every_s:
            last_report = now
            report(epoch, {"negative_log_likelihood": float(total / steps)})
