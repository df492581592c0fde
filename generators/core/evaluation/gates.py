"""Publication gates: thresholds on report metrics, with defaults from the source papers.

A gate whose metric could not be measured fails: an unmeasured risk is not a passed check.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Mapping

from generators.core.evaluation.report import Report

__all__ = ["DEFAULT_GATES", "GATES", "GateResult", "check_gates", "parse_gates"]


@dataclass(frozen=True)
class Gate:
    name: str
    metric: str
    comparison: str  # "<=", "<" or ">="
    default: float
    low: float
    high: float
    description: str

    def threshold_of(self, value: float) -> float:
        """For ``dcr_margin`` the setting is a margin; the metric is compared with 1 − margin."""
        return 1.0 - value if self.name == "dcr_margin" else value


GATES: tuple[Gate, ...] = (
    Gate("ims_max", "privacy.ims", "<=", 0.0, 0.0, 1.0,
         "Share of synthetic rows identical to a training row (hematology paper: IMS = 0)."),
    Gate("leakage_max", "privacy.leakage_coefficient", "<", 0.05, 0.0, 10.0,
         "Hamming privacy-leakage coefficient (AML paper: < 0.05)."),
    Gate("dcr_margin", "privacy.dcr_ratio", ">=", 0.1, 0.0, 1.0,
         "Synthetic rows may be closer to training rows than to holdout rows by at most this share "
         "(median DCR to train ≥ (1 − margin) × median DCR to holdout)."),
    Gate("mia_auc_max", "privacy.mia_auc", "<=", 0.6, 0.5, 1.0,
         "Distance-based membership-inference AUC."),
    Gate("fidelity_min", "fidelity.overall", ">=", 0.85, 0.0, 1.0,
         "Overall fidelity: mean of column shapes and column-pair trends (hematology paper: ≥ 0.85)."),
)
DEFAULT_GATES: dict[str, float] = {gate.name: gate.default for gate in GATES}
_BY_NAME = {gate.name: gate for gate in GATES}
_COMPARE = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}


@dataclass(frozen=True)
class GateResult:
    gate: str
    metric: str
    value: float | None
    comparison: str
    threshold: float
    passed: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"gate": self.gate, "metric": self.metric, "value": self.value, "comparison": self.comparison,
                "threshold": self.threshold, "passed": self.passed, "reason": self.reason}


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int too large for a float
        return False


def parse_gates(raw: Any) -> dict[str, float]:
    """Defaults overlaid with ``raw`` (a partial mapping). Raises ValueError naming each problem."""
    if raw is None:
        return dict(DEFAULT_GATES)
    if not isinstance(raw, Mapping):
        raise ValueError("gates must be an object such as {\"mia_auc_max\": 0.6}")
    problems = []
    out = dict(DEFAULT_GATES)
    for name, value in raw.items():
        gate = _BY_NAME.get(name)
        if gate is None:
            problems.append(f"{name}: unknown gate (known: {', '.join(DEFAULT_GATES)})")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            problems.append(f"{name}: must be a finite number")
        elif not gate.low <= value <= gate.high:
            problems.append(f"{name}: must lie in [{gate.low:g}, {gate.high:g}], not {value:g}")
        else:
            out[name] = float(value)
    if problems:
        raise ValueError("; ".join(problems))
    return out


def check_gates(report: Report, gates: Mapping[str, float] | None = None) -> list[GateResult]:
    settings = parse_gates(gates)
    results = []
    for gate in GATES:
        threshold = gate.threshold_of(settings[gate.name])
        try:
            metric = report.metric(gate.metric)
        except KeyError:
            metric = None
        if metric is None or not metric.applicable or metric.value is None:
            why = metric.reason if metric is not None else "the report has no such metric"
            results.append(GateResult(gate.name, gate.metric, None, gate.comparison, threshold, False,
                                      f"not measured: {why}"))
            continue
        passed = bool(_COMPARE[gate.comparison](metric.value, threshold))
        verdict = "passes" if passed else "fails"
        results.append(GateResult(gate.name, gate.metric, metric.value, gate.comparison, threshold, passed,
                                  f"{gate.metric} = {metric.value:.4g} {verdict} {gate.comparison} {threshold:.4g}"))
    return results
