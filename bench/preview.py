"""Time of the precision preview (verification.core.preview.preview, as the service calls it: 40
draws at the asked ε and 20 per ε the search tries) on GBSG2's 686 rows standing in for a release;
the median of 5 runs per hypothesis. Target: ≤ 2 s for hazard_ratio and logistic_odds_ratio.

    python -m bench.preview            # prints the table and writes bench/results/preview.json
"""

from __future__ import annotations

import json
import statistics
import time
from datetime import datetime, timezone

from bench.common import ROOT, gbsg2, machine

RESULTS_FILE = ROOT / "bench" / "results" / "preview.json"
TARGET_S = 2.0
RUNS = 5
HORTH = {"exposure": {"column": "horTh", "value": "yes"}}
LOGISTIC = {"outcome": {"column": "cens", "value": 1}, "exposure": {"column": "horTh", "value": "yes"}}
LESS = {"direction": "less", "value": 1}
PNODES = {"exposure": {"column": "pnodes"}}  # per positive node: a clear effect on GBSG2
GREATER = {"direction": "greater", "value": 1}
#: name -> (kind, params, claim, the search's limit); asked at ε = 1. A limit of 1 is the default
#: per-query maximum; a limit of 10 (a custodian's raised maximum) makes the search try more ε.
HYPOTHESES = {
    "hazard_ratio horTh, limit 1": ("hazard_ratio", HORTH, LESS, 1.0),
    "hazard_ratio pnodes, limit 10": ("hazard_ratio", PNODES, GREATER, 10.0),
    "logistic_odds_ratio horTh, limit 1": ("logistic_odds_ratio", LOGISTIC, LESS, 1.0),
    "logistic_odds_ratio pnodes, limit 10": ("logistic_odds_ratio", {**LOGISTIC, **PNODES}, GREATER, 10.0),
    "mean age > 52, limit 1": ("mean", {"column": "age"}, {"direction": "greater", "value": 52}, 1.0),
}


def main() -> None:
    import numpy as np

    from verification.core import parse_hypothesis
    from verification.core.preview import preview

    frame, schema = gbsg2()
    rows = []
    for name, (kind, params, claim, limit) in HYPOTHESES.items():
        hypothesis = parse_hypothesis({"kind": kind, "params": params, "where": [], "claim": claim, "epsilon": 1},
                                      schema, max_epsilon=limit)
        times, result = [], None
        for run in range(RUNS + 1):  # the first is a warm-up
            started = time.perf_counter()
            result = preview(frame, schema, hypothesis, rng=np.random.default_rng(run), min_subgroup=20,
                             max_epsilon=limit)  # the service's draws
            if run:
                times.append(time.perf_counter() - started)
        median = statistics.median(times)
        rows.append({"hypothesis": name, "rows": len(frame), "max_epsilon": limit, "median_s": round(median, 3),
                     "max_s": round(max(times), 3), "epsilons_tried": len(result.searched),
                     "p_decisive": result.p_decisive, "suggested_epsilon": result.suggested_epsilon})
        print(f"{name:38s} median {median:6.3f} s (max {max(times):.3f} s), {len(result.searched)} ε tried, "
              f"P(decisive) {result.p_decisive:.2f}, suggested ε {result.suggested_epsilon}")
    RESULTS_FILE.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(packages=("numpy",)),
        "target_s": TARGET_S, "runs": RUNS, "results": rows}, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
