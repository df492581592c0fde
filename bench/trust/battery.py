"""The battery: the hypotheses a researcher would read off a synthetic release, with the claim taken
from the release's own (non-private) estimate.

The params come from the schema alone (:func:`candidates`); :func:`build` computes each one's estimate
on the synthetic release and turns it into a claim (:func:`claim_for`): a ratio is claimed below 1
when the release's ratio is below 1 (else above), a difference or a correlation on the side of 0 the
release shows, a mean or a quantile above a value a tenth of a standard deviation below the release's
estimate, a proportion or a survival probability above the release's less 0.03, a median survival
time above 0.9 times the release's. Some claims are then true on the real rows and some are
artefacts of the release.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.trust.reference import reference, verdict

#: Caps per tag (the whole run must stay within its time budget on two cores).
CAPS = {"hr_uni_cat": 5, "hr_uni_num": 5, "or_uni_cat": 5, "or_uni_num": 5, "hr_adj2": 2, "hr_adj3": 3,
        "hr_adj4": 1, "or_adj3": 1, "logrank": 3, "km_median": 3, "survival_at": 3, "proportion": 4, "mean": 4,
        "quantile": 4, "difference_in_means": 3, "difference_in_proportions": 3, "correlation": 3}
#: What each tag means in the tables.
TAG_LABELS = {
    "hr_uni_cat": "hazard_ratio, univariable, categorical exposure (level vs rest)",
    "hr_uni_num": "hazard_ratio, univariable, numeric exposure (per unit)",
    "or_uni_cat": "logistic_odds_ratio, univariable, categorical exposure",
    "or_uni_num": "logistic_odds_ratio, univariable, numeric exposure",
    "hr_adj2": "hazard_ratio, two covariates in the model",
    "hr_adj3": "hazard_ratio, three covariates in the model",
    "hr_adj4": "hazard_ratio, four covariates (simulated: the true model)",
    "or_adj3": "logistic_odds_ratio, three covariates (simulated: treat adjusted for nodes and grade)",
}
RATIO_KINDS = {"hazard_ratio", "logistic_odds_ratio", "logrank"}


def _exposure(column) -> list[dict[str, Any]]:
    if column.is_numeric:
        return [{"column": column.name}]
    return [{"column": column.name, "value": category} for category in column.categories[1:]]


def candidates(schema, *, simulated: bool = False) -> list[tuple[str, str, dict[str, Any]]]:
    """(tag, label, spec without claim) for every hypothesis the schema allows, capped per tag."""
    s = schema.survival
    covariates = [c for c in schema.kept if c.name not in (s.duration, s.event)]
    numeric = [c for c in covariates if c.is_numeric]
    binary = [c for c in covariates if c.type == "categorical" and len(c.categories) == 2]
    categorical = [c for c in covariates if c.type == "categorical"]
    event = {"column": s.event, "value": 1}
    out: list[tuple[str, str, dict[str, Any]]] = []

    def add(tag, label, kind, params):
        if sum(1 for t, _, _ in out if t == tag) < CAPS[tag]:
            out.append((tag, label, {"kind": kind, "params": params}))

    def name(exposure):
        return exposure["column"] + (f"={exposure['value']}" if "value" in exposure else " (per unit)")

    for column in covariates:
        if simulated and column.name == "response":
            continue
        for exposure in _exposure(column):
            tag = "num" if column.is_numeric else "cat"
            add(f"hr_uni_{tag}", f"HR {name(exposure)}", "hazard_ratio", {"exposure": exposure})
            add(f"or_uni_{tag}", f"OR of {s.event}=1 for {name(exposure)}", "logistic_odds_ratio",
                {"outcome": event, "exposure": exposure})
    pool = [c for c in covariates if not (simulated and c.name == "response")]
    for size, tag in ((2, "hr_adj2"), (3, "hr_adj3")):
        for i, column in enumerate(pool[:CAPS[tag]]):
            others = [pool[(i + k) % len(pool)].name for k in range(1, size)]
            if len(set(others) | {column.name}) < size:
                continue
            exposure = _exposure(column)[-1]
            add(tag, f"HR {name(exposure)} adjusted for {', '.join(others)}", "hazard_ratio",
                {"exposure": exposure, "adjust_for": others})
    if simulated:
        add("hr_adj4", "HR treat=yes adjusted for nodes, grade, age", "hazard_ratio",
            {"exposure": {"column": "treat", "value": "yes"}, "adjust_for": ["nodes", "grade", "age"]})
        add("or_uni_cat", "OR of response=yes for treat=yes", "logistic_odds_ratio",
            {"outcome": {"column": "response", "value": "yes"}, "exposure": {"column": "treat", "value": "yes"}})
        add("or_adj3", "OR of response=yes for treat=yes adjusted for nodes, grade", "logistic_odds_ratio",
            {"outcome": {"column": "response", "value": "yes"}, "exposure": {"column": "treat", "value": "yes"},
             "adjust_for": ["nodes", "grade"]})
    for column in binary:
        group = {"column": column.name, "a": column.categories[1], "b": column.categories[0]}
        add("logrank", f"log-rank {column.name} {group['a']} vs {group['b']}", "logrank", {"group": group})
    add("km_median", "KM median, all", "km_median", {})
    for column in binary[:1]:
        for value in reversed(column.categories):
            add("km_median", f"KM median, {column.name}={value}", "km_median",
                {"group": {"column": column.name, "value": value}})
    add("survival_at", "S(synthetic median time), all", "survival_at", {"time": None})
    for column in binary[:1]:
        for value in reversed(column.categories):
            add("survival_at", f"S(synthetic median time), {column.name}={value}", "survival_at",
                {"time": None, "group": {"column": column.name, "value": value}})
    add("proportion", f"proportion {s.event}=1", "proportion", {"column": s.event, "value": 1})
    for column in categorical:
        add("proportion", f"proportion {column.name}={column.categories[-1]}", "proportion",
            {"column": column.name, "value": column.categories[-1]})
    for column in numeric:
        add("mean", f"mean {column.name}", "mean", {"column": column.name})
        add("quantile", f"median {column.name}" + (" (integer, ties)" if column.type == "integer" else ""),
            "quantile", {"column": column.name, "q": 0.5})
    for column in binary[:1]:
        group = {"column": column.name, "a": column.categories[1], "b": column.categories[0]}
        for other in numeric:
            add("difference_in_means", f"mean {other.name}, {column.name} {group['a']} − {group['b']}",
                "difference_in_means", {"column": other.name, "group": group})
    for column in binary:
        group = {"column": column.name, "a": column.categories[1], "b": column.categories[0]}
        add("difference_in_proportions", f"{s.event}=1, {column.name} {group['a']} − {group['b']}",
            "difference_in_proportions", {"column": s.event, "value": 1, "group": group})
    for i, x in enumerate(numeric):
        for y in numeric[i + 1:]:
            add("correlation", f"correlation {x.name}, {y.name}", "correlation", {"x": x.name, "y": y.name})
    return out


def claim_for(kind: str, estimate: float, spread: float | None = None) -> dict[str, Any]:
    """The claim a researcher reads off the release's estimate (module docstring)."""
    if kind in RATIO_KINDS:
        return {"direction": "less" if estimate < 1 else "greater", "value": 1}
    if kind in ("difference_in_means", "difference_in_proportions", "correlation"):
        return {"direction": "less" if estimate < 0 else "greater", "value": 0}
    if kind in ("mean", "quantile"):
        return {"direction": "greater", "value": round(float(estimate - 0.1 * (spread or 0.0)), 6)}
    if kind in ("proportion", "survival_at"):
        return {"direction": "greater", "value": round(float(estimate - 0.03), 6)}
    if kind == "km_median":
        return {"direction": "greater", "value": round(float(0.9 * estimate), 6)}
    raise ValueError(f"no claim rule for {kind}")


def survival_time(synthetic: pd.DataFrame, schema) -> float:
    """The release's KM median time, or its median follow-up when the KM median is not reached."""
    from lifelines import KaplanMeierFitter

    s = schema.survival
    t = synthetic[s.duration].to_numpy(dtype=float)
    e = synthetic[s.event].to_numpy(dtype=float) == 1
    median = float(KaplanMeierFitter().fit(t, e).median_survival_time_)
    return float(round(median if np.isfinite(median) else float(np.median(t))))


def parse(spec: dict[str, Any], schema, epsilon: float = 1.0):
    from verification.core import parse_hypothesis

    return parse_hypothesis({**spec, "epsilon": epsilon}, schema, max_epsilon=max(1000.0, epsilon))


def build(schema, synthetic: pd.DataFrame, *, simulated: bool = False) -> list[dict[str, Any]]:
    """The battery for one cohort: each candidate with its claim and the release's own verdict.
    A candidate whose release estimate cannot be computed (say, a median not reached) is left out."""
    time = survival_time(synthetic, schema)
    out = []
    for tag, label, spec in candidates(schema, simulated=simulated):
        spec = {**spec, "params": dict(spec["params"])}
        if spec["kind"] == "survival_at":
            spec["params"]["time"] = time
            label = label.replace("synthetic median time", f"{time:g}")
        placeholder = parse({**spec, "claim": {"direction": "greater", "value": 1}}, schema)
        synthetic_ref = reference(synthetic, schema, placeholder)
        if synthetic_ref["estimate"] is None:
            continue
        spread = None
        if spec["kind"] in ("mean", "quantile"):
            spread = float(np.nanstd(synthetic[spec["params"]["column"]].to_numpy(dtype=float, na_value=np.nan)))
        spec["claim"] = claim_for(spec["kind"], synthetic_ref["estimate"], spread)
        synthetic_ref["verdict"] = verdict(synthetic_ref["ci"], spec["claim"])
        out.append({"label": label, "kind": spec["kind"], "tag": tag, "spec": spec, "synthetic": synthetic_ref})
    return out
