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

from generators.core.nets import Critic, OutputLayout, ResidualGenerator, critic_loss
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
    reuse_fake: bool = False
    ema_decay: float = 0.0


def train_wgan_gp(
    generator: ResidualGenerator,
    critic: Critic,
    data: torch.Tensor,
    sampler: ConditionalSampler,
    layout: OutputLayout,
    category_blocks: torch.Tensor,
    *,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    options: GanOptions,
    gen: torch.Generator,
    report: Report,
) -> None:
    """Conditional WGAN-GP with training-by-sampling (Xu et al., 2019), everything on ``data.device``.

    An epoch is ``max(1, n_rows // batch_size)`` steps, as in the reference ``ctgan``; a step is
    ``critic_steps`` critic updates and one generator update. ``category_blocks`` holds, for each
    discrete column, the position of its one-hot block among ``layout``'s padded blocks; the generator
    is penalised by the cross-entropy of the conditioned column's block against the asked-for category.
    """
    device = data.device
    batch = options.batch_size
    steps = max(1, data.shape[0] // batch)
    conditional = sampler.n_discrete > 0
    rows_arange = torch.arange(batch, device=device)
    last_report = time.monotonic()

    def draw(grad: bool, with_real: bool):
        """A fake batch (condition vectors appended), optionally real rows for the same conditions."""
        noise = torch.randn((batch, options.noise_dim), device=device, generator=gen)
        if not conditional:
            with torch.set_grad_enabled(grad):
                fake = layout.activate(generator(noise), gen)
            real = data[sampler.sample_rows(batch, gen)] if with_real else None
            return fake, real, None
        if with_real:
            # Real rows are drawn for the same condition vectors as the fake ones: conditions are
            # i.i.d., so this is the reference's shuffled pairing, in distribution.
            cond, column, category, rows = sampler.sample_train(batch, gen)
            real = torch.cat([data[rows], cond], dim=1)
        else:
            (cond, column, category), real = sampler.sample_condition(batch, gen), None
        with torch.set_grad_enabled(grad):
            fake, logits = layout.activate_with_logits(generator(torch.cat([noise, cond], dim=1)), gen)
            fake = torch.cat([fake, cond], dim=1)
            # The conditioned column's block of logits; the −inf padding adds nothing to the softmax.
            picked = logits[rows_arange, :, category_blocks[column]] if grad else None
        return fake, real, (picked, category)

    ema_params = [p.detach().clone() for p in generator.parameters()] if options.ema_decay else None
    for epoch in range(1, options.epochs + 1):
        for _ in range(steps):
            for k in range(options.critic_steps):
                # With ``reuse_fake`` the last critic step's fake batch (kept with its graph) is also the
                # generator step's batch, as in most GAN loops: one generator forward per step, not two.
                keep = options.reuse_fake and k == options.critic_steps - 1
                fake, real, target = draw(grad=keep, with_real=True)
                loss_d, penalty = critic_loss(critic, real, fake.detach(), gen, options.gp_weight)
                opt_d.zero_grad(set_to_none=True)
                (loss_d + penalty).backward()
                opt_d.step()
            if not options.reuse_fake:
                fake, _real, target = draw(grad=True, with_real=False)
            loss_g = -critic(fake).mean()
            if conditional:
                loss_g = loss_g + F.cross_entropy(*target)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if ema_params is not None:
                torch._foreach_lerp_(ema_params, [p.detach() for p in generator.parameters()], 1 - options.ema_decay)
        now = time.monotonic()
        if epoch == options.epochs or now - last_report >= options.report_every_s:
            last_report = now
            losses = torch.stack([loss_g.detach(), loss_d.detach(), penalty.detach()]).tolist()  # one copy
            report(epoch, dict(zip(("generator", "critic", "gradient_penalty"), losses)))
    if ema_params is not None:
        with torch.no_grad():
            for p, e in zip(generator.parameters(), ema_params):
                p.copy_(e)


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
