"""Model selection: one composite score per report, and the ranking of candidates that pass the gates.

The composite is the mean of the quality scores that the report could measure, each in [0, 1],
higher better (see docs/report.md):

* ``fidelity.overall`` (column shapes and pair trends);
* detection: ``1 − 2·|AUC − 0.5|`` from ``fidelity.detection_auc`` (1 = indistinguishable);
* ``survival.km_divergence`` and ``survival.cox_sign_agreement`` (survival datasets);
* ``utility.classification_ratio`` and ``utility.c_index_ratio``, capped at 1.

Privacy is not traded against quality: it enters as the gates, which a candidate must pass to be
ranked at all. Ties go to the lower membership-inference AUC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from generators.core.evaluation.report import Report

__all__ = ["COMPONENTS", "Candidate", "composite_score", "rank"]


def _capped(value: float) -> float:
    return max(0.0, min(1.0, value))


COMPONENTS: dict[str, Callable[[float], float]] = {
    "fidelity.overall": _capped,
    "fidelity.detection_auc": lambda auc: _capped(1.0 - 2.0 * abs(auc - 0.5)),
    "survival.km_divergence": _capped,
    "survival.cox_sign_agreement": _capped,
    "utility.classification_ratio": _capped,
    "utility.c_index_ratio": _capped,
}


def composite_score(report: Report) -> tuple[float | None, dict[str, float]]:
    """(composite, the components it averaged). None when no component could be measured."""
    parts: dict[str, float] = {}
    for key, transform in COMPONENTS.items():
        value = report.value(key)
        if value is not None:
            parts[key] = transform(value)
    if not parts:
        return None, parts
    return sum(parts.values()) / len(parts), parts


@dataclass
class Candidate:
    """One release of a sweep: its id, whether every gate passed, its composite and MIA AUC."""

    release: int
    passed: bool
    composite: float | None
    mia_auc: float | None
    facts: Mapping[str, Any]


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Those that pass every gate and have a composite, best first."""
    eligible = [c for c in candidates if c.passed and c.composite is not None]
    return sorted(eligible, key=lambda c: (-c.composite, c.mia_auc if c.mia_auc is not None else 1.0, c.release))
