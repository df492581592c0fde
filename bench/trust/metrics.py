"""Comparing verdicts and CIs: one row per answer, the figures of a set of rows.

A row is a dict with ``dp_verdict`` (``None`` when withheld), ``np_verdict`` (the non-private verdict
on the same real rows), ``dp_ci`` and ``np_ci`` (``[low, high]``, ``None`` for an open side),
``target`` (what the CI should cover: the population value of a simulation, the non-private estimate
on a real cohort; ``None`` when there is none), ``ratio`` (a ratio kind: widths on the log scale) and,
optionally, ``coverage_ci``: the CI whose coverage counts, when it is not ``dp_ci`` (a simulation's
coverage is measured on a fresh draw of the process per repetition, so that the repetitions do not
share one sample's error).
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

DECISIVE = ("supported", "contradicted")
OPPOSITE = {("supported", "contradicted"), ("contradicted", "supported")}


def is_opposite(a: str | None, b: str | None) -> bool:
    """One verdict supported and the other contradicted."""
    return (a, b) in OPPOSITE


def width(ci: list | tuple | None, ratio: bool) -> float | None:
    """The CI's width (of its logs for a ratio); ``None`` when a side is open or not positive for a ratio."""
    if ci is None:
        return None
    low, high = ci
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return None
    if ratio:
        if low <= 0 or high <= 0:
            return None
        return math.log(high) - math.log(low)
    return high - low


def covers(ci: list | tuple | None, target: float | None) -> bool | None:
    """Whether the CI contains ``target`` (an open side reaches infinity); ``None`` when there is no
    CI (withheld) or no target."""
    if ci is None or target is None or not math.isfinite(target):
        return None
    low, high = ci
    if low is None and high is None:
        return None
    low = -math.inf if low is None else low
    high = math.inf if high is None else high
    return low <= target <= high


def width_ratio(dp_ci, np_ci, ratio: bool) -> float | None:
    dp, ref = width(dp_ci, ratio), width(np_ci, ratio)
    if dp is None or ref is None or ref <= 0:
        return None
    return dp / ref


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Agreement, false supported / contradicted, opposite verdicts, power, coverage and the median
    CI width ratio of the rows (shares of all answers; a withheld answer counts as not agreeing)."""
    rows = list(rows)
    n = len(rows)
    if not n:
        return {"answers": 0}
    agree = sum(r["dp_verdict"] == r["np_verdict"] for r in rows)
    false_supported = sum(r["dp_verdict"] == "supported" and r["np_verdict"] != "supported" for r in rows)
    false_contradicted = sum(r["dp_verdict"] == "contradicted" and r["np_verdict"] != "contradicted" for r in rows)
    opposite = sum(is_opposite(r["dp_verdict"], r["np_verdict"]) for r in rows)
    decisive = [r for r in rows if r["np_verdict"] in DECISIVE]
    reproduced = sum(r["dp_verdict"] == r["np_verdict"] for r in decisive)
    covered = [c for c in (covers(r["coverage_ci"] if "coverage_ci" in r else r["dp_ci"], r["target"]) for r in rows)
               if c is not None]
    ratios = [x for x in (width_ratio(r["dp_ci"], r["np_ci"], r["ratio"]) for r in rows) if x is not None]
    return {
        "answers": n, "withheld": sum(r["dp_verdict"] is None for r in rows),
        "agreement": agree / n, "false_supported": false_supported / n, "false_contradicted": false_contradicted / n,
        "opposite": opposite, "decisive_reference": len(decisive),
        "power": reproduced / len(decisive) if decisive else None,
        "coverage": sum(covered) / len(covered) if covered else None, "coverage_n": len(covered),
        "width_ratio_median": float(np.median(ratios)) if ratios else None, "width_ratio_n": len(ratios),
    }


def group_by(rows: Iterable[dict[str, Any]], *keys: str) -> dict[str, dict[str, Any]]:
    """:func:`summarize` per value of ``keys`` (joined with " / ")."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(" / ".join(str(row[k]) for k in keys), []).append(row)
    return {name: summarize(part) for name, part in sorted(groups.items())}
