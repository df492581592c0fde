"""Training-by-sampling (CTGAN) with torch ops only: no per-row Python loop, no host↔device copies.

For a batch of size B: pick a discrete column uniformly, pick one of its categories with
probability ∝ log(1 + count) (∝ count for a ``proportional`` column: the missing indicators), and
pick a training row holding that category uniformly.
Rows are found through one flat tensor of row ids grouped by (column, category) with the
start and size of each group, so the whole draw is a handful of tensor indexing ops.

The discrete columns include each nullable column's missing indicator (present, missing), so the
generator learns ``p(x | missing)`` and ``p(x | present)`` like any other condition.

For generation (:meth:`ConditionalSampler.sample_original`) a condition is drawn as CTGAN's paper
draws it, from the data's own frequencies: a training row and a discrete column, uniformly, and
that row's value in that column. A row with no value in a nullable categorical column stands for
its missing indicator's "missing" entry (``absent``), so the conditions' mixture
``Σ_j 1/J Σ_c P(j = c) p(x | j = c)`` is ``p(x)``, missingness included. (Drawing the category
among the present rows only, as before, gave every conditioned-on nullable column no gaps and cut
its missing rate by 1/J.)
"""

from __future__ import annotations

import torch

__all__ = ["ConditionalSampler"]


class ConditionalSampler:
    def __init__(self, category_codes: torch.Tensor, n_categories: list[int], *, device: torch.device,
                 absent: list[int] | None = None, proportional: list[bool] | None = None):
        """``category_codes``: (n_rows, n_discrete) long tensor of category codes (−1 for missing).
        ``absent``: per discrete column, the global condition index that stands for a row without a
        value there (its missing indicator's "missing" entry), or −1 (none: such rows are left out).
        ``proportional``: per discrete column, whether training draws its categories in proportion to
        their counts instead of ``log(1 + count)``."""
        self.device = device
        self.n_rows = category_codes.shape[0]
        self.n_discrete = len(n_categories)
        self.cond_dim = int(sum(n_categories))
        if self.n_discrete == 0:
            return
        sizes = torch.tensor(n_categories, device=device)
        self.offsets = torch.cumsum(sizes, 0) - sizes  # first global category index of each column
        max_k = int(sizes.max())
        codes = category_codes.to(device)
        counts = torch.zeros((self.n_discrete, max_k), device=device)
        for j in range(self.n_discrete):  # once per column at set-up, not per step
            present = codes[:, j] >= 0
            counts[j, : n_categories[j]] = torch.bincount(codes[present, j], minlength=n_categories[j]).float()
        valid = torch.arange(max_k, device=device)[None, :] < sizes[:, None]
        log_freq = torch.log1p(counts) * valid
        if proportional is not None and any(proportional):
            log_freq = torch.where(torch.tensor(proportional, device=device)[:, None], counts * valid, log_freq)
        self.train_probs = log_freq / log_freq.sum(1, keepdim=True).clamp_min(1e-12)   # for training
        # Its cumulative form, the last positive entry exactly 1 (x / x): a category is drawn as the
        # number of entries below u ∈ (0, 1], which never lands on a category without rows.
        cdf = torch.cumsum(self.train_probs, 1)
        self.train_cdf = cdf / cdf[:, -1:].clamp_min(1e-12)
        self.cond_range = torch.arange(self.cond_dim, device=device)
        # Columns drawn for conditions: those with at least one present value.
        self.usable = torch.nonzero(counts.sum(1) > 0).reshape(-1)
        if self.usable.numel() == 0:
            raise ValueError("no discrete column has a present value to condition on")
        self.original_probs = _original_probs(codes, self.offsets, self.cond_dim,
                                              absent if absent is not None else [-1] * self.n_discrete)
        # Flat row ids grouped by global category index: the kept (row, column) entries' positions in
        # the row-major (n, n_discrete) codes, sorted stably by category; a position's row is
        # position // n_discrete. (No per-entry row or column tensors: at a million rows each is 0.1 GB.)
        keep = torch.nonzero(codes.reshape(-1) >= 0).reshape(-1)
        flat = (codes + self.offsets[None, :]).reshape(-1)[keep]       # global category of each kept entry
        order = torch.argsort(flat, stable=True)
        self.row_ids = keep[order] // self.n_discrete
        del keep, order
        self.group_size = torch.bincount(flat, minlength=self.cond_dim)
        self.group_start = torch.cumsum(self.group_size, 0) - self.group_size

    def sample_condition(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Condition vectors (one-hot over every category), the chosen column and its category (local code)."""
        # Inverse-CDF draws and a comparison one-hot: no op here waits on the host (CUDA-graph safe).
        column = self.usable[torch.randint(self.usable.numel(), (batch,), device=self.device, generator=gen)]
        u = 1.0 - torch.rand((batch, 1), device=self.device, generator=gen)
        category = (self.train_cdf[column] < u).sum(1)
        chosen = self.offsets[column] + category
        cond = (chosen[:, None] == self.cond_range).to(torch.float32)
        return cond, column, category

    def sample_train(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Condition vectors, the chosen column and its category (local code), and matching row ids."""
        cond, column, category = self.sample_condition(batch, gen)
        chosen = self.offsets[column] + category
        size = self.group_size[chosen]
        # floor(u·size) can round up to size in float32 for large groups: clamp to the group's last row.
        pick = torch.minimum((torch.rand(batch, device=self.device, generator=gen) * size).long(), size - 1)
        rows = self.row_ids[self.group_start[chosen] + pick]
        return cond, column, category, rows

    def sample_rows(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """Row ids drawn uniformly (the discriminator's real batch is shuffled independently)."""
        return torch.randint(self.n_rows, (batch,), device=self.device, generator=gen)

    @classmethod
    def for_sampling(cls, original_probs: torch.Tensor, offsets: torch.Tensor, *,
                     device: torch.device) -> "ConditionalSampler":
        """A sampler that only generates (a loaded model): the conditions' distribution and offsets."""
        self = cls.__new__(cls)
        self.device = device
        self.original_probs = original_probs.to(device)
        self.offsets = offsets.to(device)
        self.n_discrete = len(self.offsets)
        self.cond_dim = len(self.original_probs)
        self.cond_range = torch.arange(self.cond_dim, device=device)
        return self

    def sample_original(self, batch: int, gen: torch.Generator) -> torch.Tensor:
        """Condition vectors drawn with the data's own frequencies, missingness included (for generation)."""
        chosen = torch.multinomial(self.original_probs, batch, replacement=True, generator=gen)
        return (chosen[:, None] == self.cond_range).to(torch.float32)


def _original_probs(codes: torch.Tensor, offsets: torch.Tensor, cond_dim: int, absent: list[int]) -> torch.Tensor:
    """``P(condition g)`` for generation: a uniform row and discrete column, and that row's value there.

    A row without a value counts for ``absent[j]`` (its missing indicator's "missing" entry); where a
    column has no such entry, its present values share its mass (and a column with none is skipped)."""
    n_rows, n_discrete = codes.shape
    probs = torch.zeros(cond_dim, dtype=torch.float64, device=codes.device)
    columns = 0
    for j in range(n_discrete):
        column = torch.zeros(cond_dim, dtype=torch.float64, device=codes.device)
        present = codes[:, j] >= 0
        column.index_add_(0, codes[present, j] + offsets[j],
                          torch.ones(int(present.sum()), dtype=torch.float64, device=codes.device))
        if absent[j] >= 0:
            column[absent[j]] += float((~present).sum())
        if column.sum() > 0:
            probs += column / column.sum()
            columns += 1
    return (probs / max(columns, 1)).to(torch.float32)
