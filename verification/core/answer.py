"""The engine's answer to a hypothesis, and the verdict rule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any


from clearinghouse.plain import json_safe

from .hypothesis import DIRECTIONS, Claim

__all__ = ["Answer", "VERDICTS", "json_safe", "verdict_for"]

VERDICTS = ("supported", "contradicted", "inconclusive")


@dataclass(kw_only=True)
class Answer:
    """A differentially private answer.

    ``epsilon`` is what the answer costs (charged even when ``withheld``). ``epsilon_split`` maps
    each part of the computation to the ε it used; parts over disjoint rows compose in parallel,
    so their values need not add up to ``epsilon`` (``details["composition"]`` says how they
    compose). ``synthetic_estimate`` is the same statistic computed without noise on the synthetic
    release. ``verdict`` is ``None`` exactly when the answer is withheld.

    ``informative`` is ``False`` when the estimate was paid for but says nothing: it sits on the
    mechanism's public clamp bound, or the DP noise swamps the sampling error (the kind's own
    rule; see its module). Its ``reason`` says which in plain words, and the verdict is then
    ``inconclusive`` whatever the CI.
    """

    kind: str
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    confidence: float = 0.95
    noisy_n: int
    method: str
    epsilon: float
    epsilon_split: dict[str, float] = field(default_factory=dict)
    withheld: bool = False
    informative: bool = True
    reason: str = ""
    synthetic_estimate: float | None = None
    verdict: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (no NaN or infinity: those become ``null``)."""
        return {f.name: json_safe(getattr(self, f.name)) for f in fields(self)}


def verdict_for(ci_low: float | None, ci_high: float | None, claim: Claim | dict[str, Any]) -> str:
    """The verdict of a CI on a claim (DESIGN.md, "Hypothesis kinds").

    * ``greater``: ``supported`` when the whole CI lies above the value (``ci_low > value``),
      ``contradicted`` when it lies wholly below (``ci_high < value``), else ``inconclusive``.
    * ``less``: the mirror image.
    * ``not_equal``: ``supported`` when the CI excludes the value, else ``inconclusive`` (a CI can
      never show that a value is exactly equal, so it is never ``contradicted``).

    A CI that touches the value is ``inconclusive``. A missing or non-finite bound counts as
    unbounded on that side.
    """
    if isinstance(claim, dict):
        direction, value = claim["direction"], claim["value"]
    else:
        direction, value = claim.direction, claim.value
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown claim direction {direction!r}")
    value = float(value)
    low = -math.inf if ci_low is None or math.isnan(ci_low) else float(ci_low)
    high = math.inf if ci_high is None or math.isnan(ci_high) else float(ci_high)
    above, below = low > value, high < value
    if direction == "greater":
        return "supported" if above else "contradicted" if below else "inconclusive"
    if direction == "less":
        return "supported" if below else "contradicted" if above else "inconclusive"
    return "supported" if above or below else "inconclusive"
