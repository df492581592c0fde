"""Verdicts on GBSG2 at ε = 1 against the same engine's at ε = 1000."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.common import gbsg2
from bench.verification import project
from bench.verification.data import rng_for


GBSG2_HYPOTHESES: list[tuple[str, dict[str, Any]]] = [
    ("mean age > 50", {"kind": "mean", "params": {"column": "age"}, "claim": {"direction": "greater", "value": 50}}),
    ("median age > 50", {"kind": "quantile", "params": {"column": "age", "q": 0.5},
                         "claim": {"direction": "greater", "value": 50}}),
    ("proportion horTh=yes < 0.5", {"kind": "proportion", "params": {"column": "horTh", "value": "yes"},
                                    "claim": {"direction": "less", "value": 0.5}}),
    ("patients with pnodes > 10: more than 50", {"kind": "count", "where": [{"column": "pnodes", "op": ">",
                                                                              "value": 10}],
                                                  "claim": {"direction": "greater", "value": 50}}),
    ("mean tsize, horTh yes − no ≠ 0", {"kind": "difference_in_means",
                                        "params": {"column": "tsize", "group": {"column": "horTh", "a": "yes",
                                                                                "b": "no"}},
                                        "claim": {"direction": "not_equal", "value": 0}}),
    ("events (cens=1), horTh yes − no < 0", {"kind": "difference_in_proportions",
                                             "params": {"column": "cens", "value": 1,
                                                        "group": {"column": "horTh", "a": "yes", "b": "no"}},
                                             "claim": {"direction": "less", "value": 0}}),
    ("correlation age, pnodes ≠ 0", {"kind": "correlation", "params": {"x": "age", "y": "pnodes"},
                                     "claim": {"direction": "not_equal", "value": 0}}),
    ("odds ratio horTh=yes, menostat=Post > 1", {"kind": "odds_ratio",
                                                 "params": {"a": {"column": "horTh", "value": "yes"},
                                                            "b": {"column": "menostat", "value": "Post"}},
                                                 "claim": {"direction": "greater", "value": 1}}),
    ("logistic OR of an event for pnodes > 1", {"kind": "logistic_odds_ratio",
                                                "params": {"outcome": {"column": "cens", "value": 1},
                                                           "exposure": {"column": "pnodes"}},
                                                "claim": {"direction": "greater", "value": 1}}),
    ("Cox HR of horTh=yes < 1", {"kind": "hazard_ratio", "params": {"exposure": {"column": "horTh", "value": "yes"}},
                                 "claim": {"direction": "less", "value": 1}}),
    ("Cox HR of pnodes > 1", {"kind": "hazard_ratio", "params": {"exposure": {"column": "pnodes"}},
                              "claim": {"direction": "greater", "value": 1}}),
    ("KM median survival > 1000 days", {"kind": "km_median", "params": {},
                                        "claim": {"direction": "greater", "value": 1000}}),
    ("survival at 1825 days > 0.5", {"kind": "survival_at", "params": {"time": 1825},
                                     "claim": {"direction": "greater", "value": 0.5}}),
    ("log-rank horTh yes vs no: HR < 1", {"kind": "logrank",
                                          "params": {"group": {"column": "horTh", "a": "yes", "b": "no"}},
                                          "claim": {"direction": "less", "value": 1}}),
]


def bench_agreement(registered: list[str], reps: int, log) -> dict[str, Any]:
    answer = project.answer()

    frame, schema = gbsg2()
    rows = []
    for label, spec in GBSG2_HYPOTHESES:
        if spec["kind"] not in registered:
            rows.append({"hypothesis": label, "kind": spec["kind"], "status": "kind not registered"})
            continue
        reference = answer(frame, schema, project.parse(spec, schema, 1000.0), rng=rng_for(40))
        hypothesis = project.parse(spec, schema, 1.0)
        answers = [answer(frame, schema, hypothesis, rng=rng_for(41, len(rows), rep)) for rep in range(reps)]
        verdicts = [a.verdict for a in answers]
        lows = [a.ci_low for a in answers if a.ci_low is not None and not a.withheld]
        highs = [a.ci_high for a in answers if a.ci_high is not None and not a.withheld]
        agree = sum(v == reference.verdict for v in verdicts)
        opposite = {"supported": "contradicted", "contradicted": "supported"}.get(reference.verdict)
        counts = {v: verdicts.count(v) for v in ("supported", "contradicted", "inconclusive", None) if v in verdicts}
        rows.append({"hypothesis": label, "kind": spec["kind"], "reference_verdict": reference.verdict,
                     "reference_estimate": reference.estimate, "reference_ci": [reference.ci_low, reference.ci_high],
                     "median_ci": [float(np.median(lows)) if lows else None, float(np.median(highs)) if highs else None],
                     "reps": reps, "agree": agree, "share": agree / reps,
                     "opposite": sum(v == opposite for v in verdicts) if opposite else 0,
                     "verdicts": {("withheld" if k is None else k): c for k, c in counts.items()}})
        log(f"verdicts {label:42s}: reference {reference.verdict:12s} (ε=1000), ε=1 agrees {agree}/{reps} {counts}")
    measured = [r for r in rows if "share" in r]
    total = sum(r["agree"] for r in measured)
    asked = sum(r["reps"] for r in measured)
    return {"epsilon": 1.0, "reference_epsilon": 1000.0, "reps": reps, "hypotheses": rows,
            "overall": total / asked if asked else math.nan,
            "opposite_total": sum(r["opposite"] for r in measured)}
