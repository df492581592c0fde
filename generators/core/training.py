"""Training loops. They receive their modules, optimisers and options; they do not build them.

Losses stay on the device and are summed there over the epoch; they are copied to the host once
per epoch (or every ``report_every_s`` seconds), so a step never waits on a host↔device copy.
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
    #: Seconds between progress reports; 0 reports every epoch (one host copy per epoch). The last
    #: epoch is always reported.
    report_every_s: float = 0.0
    #: Use the last critic step's fake batch (kept with its graph) for the generator step too, as most
    #: GAN loops do: one generator forward per step instead of two.
    reuse_fake: bool = True
    #: Exponential moving average of the generator's weights (0: none); the average is what is kept.
    ema_decay: float = 0.0
    #: On CUDA, capture one training step in a CUDA graph and replay it (the optimisers must be
    #: ``capturable``).
    cuda_graph: bool = True
    #: Steps per epoch; 0: ``max(1, n_rows // batch_size)``, as in the reference. Benchmarks set it to
    #: time a fixed number of steps on a large table.
    steps_per_epoch: int = 0


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
    missing_cols: torch.Tensor | None = None,
    indicator_blocks: torch.Tensor | None = None,
) -> None:
    """Conditional WGAN-GP with training-by-sampling (Xu et al., 2019) and PacGAN, all on ``data.device``.

    An epoch is ``max(1, n_rows // batch_size)`` steps, as in the reference ``ctgan`` (unless
    ``options.steps_per_epoch`` says otherwise); a step is
    ``critic_steps`` critic updates and one generator update. ``category_blocks`` holds, for each
    discrete column, the position of its one-hot block among ``layout``'s padded blocks; the generator
    is penalised by the cross-entropy of the conditioned column's block against the asked-for category.

    ``missing_cols``: the encoded columns of the nullable columns' "missing" entries. The generator is
    also penalised by the binary cross-entropy ``−r log q − (1 − r) log(1 − q)`` of each one's batch
    rate ``q`` (of the fake rows) against ``r`` (of the real rows drawn for the same conditions),
    minimal at ``q = r``: the critic alone tells rates apart only weakly, and left them swinging by
    ±0.08 from one epoch to the next. ``indicator_blocks``: for each discrete column, the padded
    block of its column's missing indicator (−1: none); a row conditioned on a category of a nullable
    column is also penalised by the cross-entropy of that indicator against "present", since a gap
    there would drop the asked-for category.
    """
    device = data.device
    batch = options.batch_size
    steps = options.steps_per_epoch or max(1, data.shape[0] // batch)
    conditional = sampler.n_discrete > 0
    rows_arange = torch.arange(batch, device=device)
    last_report = time.monotonic()

    def draw(grad: bool, with_real: bool):
        """A fake batch (condition vectors appended), real rows for the same conditions, the CE target."""
        noise = torch.randn((batch, options.noise_dim), device=device, generator=gen)
        if not conditional:
            with torch.set_grad_enabled(grad):
                fake = layout.activate(generator(noise), gen)
            return fake, (data[sampler.sample_rows(batch, gen)] if with_real else None), None
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
            target = None
            if grad:
                target = (logits[rows_arange, :, category_blocks[column]], category)
                if indicator_blocks is not None:
                    block = indicator_blocks[column]
                    target += (logits[rows_arange, :, block.clamp_min(0)], (block >= 0).to(logits.dtype))
        return fake, real, target

    ema = [p.detach().clone() for p in generator.parameters()] if options.ema_decay else None
    critic_params = list(critic.parameters())
    totals = torch.zeros(3, device=device)  # summed over the epoch's steps, on the device

    def step(set_to_none: bool) -> None:
        """``critic_steps`` critic updates and one generator update."""
        for k in range(options.critic_steps):
            keep = options.reuse_fake and k == options.critic_steps - 1
            fake, real, target = draw(grad=keep, with_real=True)
            loss_d, penalty = critic_loss(critic, real, fake.detach(), gen, options.gp_weight)
            opt_d.zero_grad(set_to_none=set_to_none)
            (loss_d + penalty).backward()
            opt_d.step()
        if not options.reuse_fake:
            fake, real, target = draw(grad=True, with_real=missing_cols is not None)
        for param in critic_params:  # the generator step needs no critic gradients
            param.requires_grad_(False)
        loss_g = -critic(fake).mean()
        if conditional:
            loss_g = loss_g + F.cross_entropy(target[0], target[1])
            if indicator_blocks is not None:  # "present" is entry 0 of an indicator
                present = F.cross_entropy(target[2], torch.zeros_like(target[1]), reduction="none")
                loss_g = loss_g + (present * target[3]).mean()
        if missing_cols is not None:
            rate = fake[:, missing_cols].mean(0).clamp(1e-6, 1 - 1e-6)
            loss_g = loss_g + F.binary_cross_entropy(rate, real[:, missing_cols].mean(0), reduction="sum")
        opt_g.zero_grad(set_to_none=set_to_none)
        loss_g.backward()
        opt_g.step()
        for param in critic_params:
            param.requires_grad_(True)
        if ema is not None:
            torch._foreach_lerp_(ema, [p.detach() for p in generator.parameters()], 1.0 - options.ema_decay)
        totals.add_(torch.stack([loss_g.detach(), loss_d.detach(), penalty.detach()]))

    # On CUDA the step is captured once in a CUDA graph, after a few eager steps (which are training
    # steps too: they create the optimisers' state), and replayed: one launch per step instead of
    # hundreds. The explicit generator is registered with the graph, so every replay draws anew.
    capture = options.cuda_graph and device.type == "cuda"
    graph: torch.cuda.CUDAGraph | None = None
    warm_steps = 3
    done = 0
    for epoch in range(1, options.epochs + 1):
        totals.zero_()
        for _ in range(steps):
            if graph is not None:
                graph.replay()
                continue
            if capture:
                side = torch.cuda.Stream(device)
                side.wait_stream(torch.cuda.current_stream(device))
                with torch.cuda.stream(side):
                    step(set_to_none=False)
                torch.cuda.current_stream(device).wait_stream(side)
            else:
                step(set_to_none=True)
            done += 1
            if capture and done == warm_steps:
                graph = torch.cuda.CUDAGraph()
                graph.register_generator_state(gen)
                with torch.cuda.graph(graph):
                    step(set_to_none=False)
        now = time.monotonic()
        if epoch == options.epochs or now - last_report >= options.report_every_s:
            last_report = now
            means = (totals / steps).tolist()  # the epoch's one host copy
            report(epoch, dict(zip(("generator", "critic", "gradient_penalty"), means)))
    if ema is not None:
        with torch.no_grad():
            for param, average in zip(generator.parameters(), ema):
                param.copy_(average)


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
