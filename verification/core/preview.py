"""A free precision preview: what a hypothesis's ε-DP answer would look like, simulated on the
published synthetic release standing in for the real rows.

:func:`preview` runs the engine's own mechanism (:func:`~verification.core.kinds.answer`) on the
synthetic frame ``draws`` times and summarizes the answers: the median CI width (and, for a ratio
kind, the median width of log(CI)), the median CI, the share of draws whose verdict is decisive
(``supported`` or ``contradicted``; ``answer`` already makes an uninformative answer
``inconclusive``, and a withheld one has no verdict), withheld and uninformative. It then looks for
the smallest ε on :data:`EPSILON_GRID` (up to ``max_epsilon``) whose P(decisive) reaches
``target``, by bisection (P(decisive) grows with ε, give or take simulation error; every ε is
simulated with the same random stream, common random numbers, which keeps it close to monotone).

Nothing here reads real rows: the synthetic release is public, so none of this costs ε. The figures
are only as good as the release's resemblance to the real cohort.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import numpy as np
import pandas as pd

from clearinghouse.schema import Schema

from .hypothesis import MIN_EPSILON, Hypothesis, _decimal_text
from .kinds import EXACT, KINDS, answer, rows_for

__all__ = ["DECISIVE", "DRAWS", "EPSILON_GRID", "NOTE", "SEARCH_DRAWS", "Preview", "Simulation", "preview",
           "simulate"]

#: The ε a suggestion is chosen from (the largest allowed ε is tried too when it is not on the grid).
EPSILON_GRID = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
#: Simulated answers at the asked ε, and per ε the search tries: 20 keep a regression kind on 686 rows
#: well under 2 s when a raised per-query maximum lets the search try five ε (bench/preview.py).
DRAWS = 40
SEARCH_DRAWS = 20
DECISIVE = ("supported", "contradicted")
NOTE = ("These figures come from simulating the answer on the published synthetic release, not on the real "
        "rows, and assume the release resembles the real cohort; the real answer will differ. The preview costs "
        "no ε and says nothing about the real data.")


@dataclass(frozen=True)
class Simulation:
    """``draws`` simulated answers at one ε, summarized. Widths and bounds are medians over the draws
    that were released with finite bounds (``None`` when there are none)."""

    epsilon: float
    draws: int
    p_decisive: float
    p_withheld: float
    p_uninformative: float
    expected_ci_width: float | None
    expected_ci_width_log: float | None
    expected_ci: dict[str, float | None]


@dataclass(frozen=True)
class Preview(Simulation):
    """The simulation at the asked ε plus the statistic on the release and the suggestion (see the
    module docstring)."""

    synthetic_estimate: float | None
    max_epsilon: float
    suggested_epsilon: float | None
    suggestion_reason: str
    target: float
    searched: list[dict[str, float]] = field(default_factory=list)  # (ε, P(decisive)) of each ε tried
    note: str = NOTE

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _at(hypothesis: Hypothesis, epsilon: float) -> Hypothesis:
    return dataclasses.replace(hypothesis, epsilon=float(epsilon), epsilon_text=_decimal_text(epsilon))


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def simulate(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis, *, seed: int, draws: int,
             min_subgroup: int) -> Simulation:
    """``draws`` answers of ``hypothesis`` (at its own ε) on ``frame``, from ``default_rng(seed)``."""
    return _simulate(frame, schema, hypothesis, seed=seed, draws=draws, min_subgroup=min_subgroup)[0]


def _simulate(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis, *, seed: int, draws: int,
              min_subgroup: int) -> tuple[Simulation, list[bool]]:
    """:func:`simulate`, and whether each draw was decisive (in order: the first k of them are what
    ``simulate(..., draws=k)`` with the same seed would give)."""
    if draws < 1:
        raise ValueError("draws must be at least 1")
    rng = np.random.default_rng(seed)
    ratio = KINDS[hypothesis.kind].ratio
    withheld = uninformative = 0
    decisive: list[bool] = []
    widths: list[float] = []
    log_widths: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for _ in range(draws):
        # the release stands in for the real rows and is itself the public release the mechanism reads
        # (bins, a start, a bootstrap), as a real answer on it would
        result = answer(frame, schema, hypothesis, rng=rng, min_subgroup=min_subgroup, synthetic=frame)
        decisive.append(result.verdict in DECISIVE)  # withheld: verdict None
        if result.withheld:
            withheld += 1
            continue
        if not result.informative:
            uninformative += 1
        low, high = result.ci_low, result.ci_high
        if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
            continue
        lows.append(low)
        highs.append(high)
        widths.append(high - low)
        if ratio and low > 0 and high > 0:
            log_widths.append(math.log(high / low))
    return Simulation(epsilon=hypothesis.epsilon, draws=draws, p_decisive=sum(decisive) / draws,
                      p_withheld=withheld / draws, p_uninformative=uninformative / draws,
                      expected_ci_width=_median(widths), expected_ci_width_log=_median(log_widths) if ratio else None,
                      expected_ci={"low": _median(lows), "high": _median(highs)}), decisive


def _candidates(max_epsilon: float) -> list[float]:
    """The grid up to ``max_epsilon``, plus ``max_epsilon`` itself (rounded down to a chargeable
    millionth) when it falls between grid points."""
    cap = float(Decimal(repr(float(max_epsilon))).quantize(Decimal("0.000001"), rounding=ROUND_FLOOR))
    grid = [e for e in EPSILON_GRID if e <= cap]
    if cap >= MIN_EPSILON and cap not in grid and cap < EPSILON_GRID[-1]:
        grid.append(cap)
    return grid


def _synthetic_estimate(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis) -> float | None:
    try:
        value = EXACT[hypothesis.kind](rows_for(frame, schema, hypothesis), schema, hypothesis)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError):
        return None  # a fit that cannot converge on the release: the preview stands without it
    return None if value is None or not math.isfinite(value) else float(value)


def preview(frame: pd.DataFrame, schema: Schema, hypothesis: Hypothesis, *, rng: np.random.Generator,
            min_subgroup: int, max_epsilon: float, draws: int = DRAWS, search_draws: int | None = SEARCH_DRAWS,
            target: float = 0.8) -> Preview:
    """The preview of ``hypothesis`` at its ε on ``frame`` (the synthetic release) and the smallest
    ε ≤ ``max_epsilon`` on the grid whose P(decisive) over ``search_draws`` (``None``: ``draws``)
    reaches ``target``.

    ``rng`` gives one seed; every ε is simulated from that same seed (common random numbers).
    """
    if not 0 < target <= 1:
        raise ValueError("target must be in (0, 1]")
    search_draws = draws if search_draws is None else search_draws
    if search_draws < 1:
        raise ValueError("search_draws must be at least 1")
    seed = int(rng.integers(0, 2**63 - 1))
    asked, decisive = _simulate(frame, schema, hypothesis, seed=seed, draws=draws, min_subgroup=min_subgroup)

    searched: dict[float, float] = {}
    if search_draws <= draws:  # the asked ε's first search_draws draws are what the search would simulate
        searched[hypothesis.epsilon] = sum(decisive[:search_draws]) / search_draws

    def p_at(epsilon: float) -> float:
        if epsilon not in searched:
            searched[epsilon] = simulate(frame, schema, _at(hypothesis, epsilon), seed=seed, draws=search_draws,
                                         min_subgroup=min_subgroup).p_decisive
        return searched[epsilon]

    grid = _candidates(max_epsilon)
    suggested: float | None = None
    if not grid:
        reason = (f"No ε is left to suggest: the most this hypothesis could ask for is {_decimal_text(max_epsilon)} "
                  f"(your remaining allocation or the per-query maximum, whichever is smaller), below the smallest "
                  f"ε tried ({EPSILON_GRID[0]}).")
    elif p_at(grid[-1]) < target:
        reason = (f"Even at ε = {_decimal_text(grid[-1])}, the most this hypothesis could ask for (your remaining "
                  f"allocation or the per-query maximum, whichever is smaller), only {p_at(grid[-1]):.0%} of the "
                  f"simulated answers are decisive, short of {target:.0%}: the effect may be too small, the "
                  f"subgroup too small or the statistic too noisy at this cohort size.")
    else:
        low, high = 0, len(grid) - 1  # p_at(grid[high]) >= target; find the first index that reaches it
        while low < high:
            middle = (low + high) // 2
            if p_at(grid[middle]) >= target:
                high = middle
            else:
                low = middle + 1
        suggested = grid[high]
        reason = (f"The smallest ε tried whose simulated answers are decisive at least {target:.0%} of the time "
                  f"({p_at(suggested):.0%}).")
    return Preview(
        **dataclasses.asdict(asked), synthetic_estimate=_synthetic_estimate(frame, schema, hypothesis),
        max_epsilon=float(max_epsilon), suggested_epsilon=suggested, suggestion_reason=reason, target=target,
        searched=[{"epsilon": e, "p_decisive": p} for e, p in sorted(searched.items())])
