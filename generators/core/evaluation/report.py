"""The validation report's types: a :class:`Metric` per measurement, grouped in a :class:`Report`.

Every metric states its range and which direction is better. A metric that cannot be computed
on the frames at hand (no survival pair, a column with a single value, …) is *not applicable*
with a reason; it never carries NaN. ``to_dict`` gives plain JSON (finite floats, no numpy).

Two audiences read a report:

* ``custodian``: everything, including statistics of the real data (``real_details``);
* ``public`` (verified researchers): the scores and statistics of the synthetic rows
  (``synthetic_details``), never a statistic of the real rows. The per-column and per-pair
  breakdowns (``details``) stay with the custodian: a single column's similarity next to the
  synthetic statistic the researcher can compute gives the real statistic back (1 − |p_real −
  p_syn| with p_syn known leaves two candidates). For the same reason the metrics in
  :data:`CUSTODIAN_ONLY`, whose value is an invertible function of one real statistic (the real
  maximum or median follow-up, the real restricted mean survival) or describes the real rows alone,
  are left out of the public view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import numpy as np
import pandas as pd

from clearinghouse.plain import json_safe
from clearinghouse.schema import Schema

__all__ = ["AUDIENCES", "Better", "CUSTODIAN_ONLY", "EvalContext", "Metric", "Report", "SECTIONS", "json_safe",
           "sample_note", "sampled"]

Better = Literal["higher", "lower"]
SECTIONS = ("fidelity", "survival", "privacy", "utility")
AUDIENCES = ("custodian", "public")
#: Metrics whose value gives back one statistic of the real rows, given what a researcher knows.
CUSTODIAN_ONLY = frozenset({
    "survival.short_sightedness",   # with the synthetic maximum: the real maximum follow-up (one patient)
    "survival.median_follow_up",    # with the synthetic median: the real median follow-up
    "survival.optimism",            # with the synthetic curve: the real restricted mean survival time
    "survival.logrank_p",           # with the synthetic curve: a test statistic of the real curve
    "survival.indicator_p",         # likewise, through the indicator's hazard ratio
    "survival.c_index_real",        # a model fitted on the real training rows
    "utility.classification_auc_real",
})


@dataclass
class Metric:
    """One measurement. ``value`` lies in ``[low, high]``; ``better`` says which way is good."""

    key: str
    label: str
    value: float | None
    low: float | None
    high: float | None
    better: Better
    description: str = ""
    applicable: bool = True
    reason: str = ""
    #: Scores broken down (per column, per pair, per covariate agreement): public.
    details: dict[str, Any] = field(default_factory=dict)
    #: Statistics of the synthetic rows alone: public.
    synthetic_details: dict[str, Any] = field(default_factory=dict)
    #: Statistics of the real rows (means, real HRs, real KM curve, distances): custodian only.
    real_details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.applicable:
            if self.value is None or not math.isfinite(float(self.value)):
                self.applicable, self.reason = False, self.reason or "the value could not be computed on these rows"
                self.value = None
            else:
                self.value = float(self.value)
        else:
            self.value = None
            if not self.reason:
                raise ValueError(f"{self.key}: a metric that is not applicable needs a reason")

    @classmethod
    def not_applicable(cls, key: str, label: str, reason: str, *, low: float | None, high: float | None,
                       better: Better, description: str = "") -> "Metric":
        return cls(key=key, label=label, value=None, low=low, high=high, better=better, description=description,
                   applicable=False, reason=reason)

    def to_dict(self, audience: str = "custodian") -> dict[str, Any]:
        if audience not in AUDIENCES:
            raise ValueError(f"audience must be one of {AUDIENCES}")
        out: dict[str, Any] = {
            "key": self.key, "label": self.label, "value": self.value, "range": [self.low, self.high],
            "better": self.better, "description": self.description, "applicable": self.applicable,
            "reason": self.reason, "synthetic_details": self.synthetic_details,
        }
        if audience == "custodian":
            out["details"] = self.details
            out["real_details"] = self.real_details
        return json_safe(out)


@dataclass
class EvalContext:
    """What every section's metrics read: the three frames (schema columns only, custody dtypes),
    the schema, the utility target and a seed for everything random."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    synthetic: pd.DataFrame
    schema: Schema
    target: str | None = None
    seed: int = 0
    #: The seeded subsamples the metrics were computed on (see :func:`sampled`), for ``meta["samples"]``.
    samples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def columns(self):
        """The stored (non-identifier) columns, in schema order."""
        return self.schema.kept

    @property
    def real(self) -> pd.DataFrame:
        """Train and holdout together: the whole real cohort."""
        return pd.concat([self.train, self.holdout], ignore_index=True)


def sampled(frame: pd.DataFrame, limit: int, seed: int, stream: int) -> pd.DataFrame:
    """``frame`` itself when it has at most ``limit`` rows, else a seeded sample of ``limit`` of its
    rows in their original order (index reset). ``stream`` separates the draws of different metrics
    made with the same report seed."""
    if len(frame) <= limit:
        return frame
    rows = np.sort(np.random.default_rng([seed, stream]).choice(len(frame), size=limit, replace=False))
    return frame.iloc[rows].reset_index(drop=True)


def sample_note(ctx: EvalContext, section: str, metrics: list[str], rows: dict[str, tuple[int, int]],
                what: str, tail: str = "") -> None:
    """Record on ``ctx`` that ``metrics`` were computed on seeded samples, ``rows`` mapping each
    frame to (rows used, rows it has); frames used whole are left out, nothing is recorded when
    every frame was used whole. ``what`` leads the sentence ("The distances were computed on").
    The note goes to the public ``meta["samples"]`` (row counts only)."""
    cut = {frame: (int(used), int(of)) for frame, (used, of) in rows.items() if used < of}
    if not cut:
        return
    text = f"{what} a seeded sample of " + ", ".join(
        f"{used:,} of {of:,} {frame} rows" for frame, (used, of) in cut.items()) + f" (seed {ctx.seed}){tail}."
    note = {"section": section, "metrics": list(metrics),
            "rows": {frame: {"used": used, "of": of} for frame, (used, of) in cut.items()}, "seed": ctx.seed,
            "text": text}
    if note not in ctx.samples:  # a section computed twice on one context notes its samples once
        ctx.samples.append(note)


@dataclass
class Report:
    sections: dict[str, list[Metric]]
    #: Row counts, target, seed, timing: plain facts, public.
    meta: dict[str, Any] = field(default_factory=dict)

    def metric(self, key: str) -> Metric:
        for metrics in self.sections.values():
            for metric in metrics:
                if metric.key == key:
                    return metric
        raise KeyError(key)

    def value(self, key: str) -> float | None:
        try:
            return self.metric(key).value
        except KeyError:
            return None

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Report":
        """A stored custodian ``to_dict()`` back into a Report (for gate checks on a stored report)."""
        sections = {}
        for name, metrics in (raw.get("sections") or {}).items():
            sections[name] = [
                Metric(key=m["key"], label=m.get("label", m["key"]), value=m.get("value"),
                       low=(m.get("range") or [None, None])[0], high=(m.get("range") or [None, None])[1],
                       better=m.get("better", "higher"), description=m.get("description", ""),
                       applicable=bool(m.get("applicable", m.get("value") is not None)),
                       reason=m.get("reason") or ("not measured" if m.get("value") is None else ""),
                       details=m.get("details") or {}, synthetic_details=m.get("synthetic_details") or {},
                       real_details=m.get("real_details") or {})
                for m in metrics
            ]
        return cls(sections=sections, meta=raw.get("meta") or {})

    def to_dict(self, audience: str = "custodian") -> dict[str, Any]:
        return json_safe({
            "meta": self.meta,
            "headline": headline(self),
            "sections": {name: [m.to_dict(audience) for m in self.sections.get(name, [])
                                if audience == "custodian" or m.key not in CUSTODIAN_ONLY] for name in SECTIONS},
        })


#: The scores quoted first, each a metric key (see docs/report.md).
HEADLINE_KEYS = (
    "fidelity.overall", "fidelity.csf", "fidelity.gsf", "fidelity.detection_auc",
    "survival.km_divergence", "survival.cox_sign_agreement", "survival.c_index_synthetic",
    "privacy.ims", "privacy.leakage_coefficient", "privacy.dcr_ratio", "privacy.mia_auc",
    "utility.classification_ratio", "utility.c_index_ratio",
)


def headline(report: Report) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in HEADLINE_KEYS:
        try:
            out[key] = report.metric(key).value
        except KeyError:
            continue
    return out


#: ``progress(done, total, what)``: called as each part of the report finishes.
ReportProgress = Callable[[int, int, str], None]
