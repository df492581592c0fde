"""The demo's two findings over many noise draws: how often does each verdict come back?

``make demo`` verifies, on GBSG2's 686 real patients and against the synthetic release it made
(ctgan, 300 epochs, seed 0: ``var/demo/gbsg2-release-1.csv``),

* (a) "hormonal therapy lowers the hazard of recurrence" (Cox HR of ``horTh = yes`` < 1), a true
  finding (lifelines: HR 0.69, p = 0.004), at ε = 1;
* (b) "older patients have a lower hazard" (HR per year of age < 1), read off the synthetic release
  where it is strong, an artefact on the real patients (lifelines: HR 0.9955, p = 0.45), at ε = 0.5.

This runs the engine's ``answer()`` exactly as the service does (the release as the public
synthetic input) with ``DRAWS`` fresh seeds per finding and ε, and counts the verdicts. Run
``make demo`` first (it writes the release).

    python -m bench.story        # prints the table, writes bench/results/story.json
"""

from __future__ import annotations

import collections
import json
import sys
from datetime import datetime, timezone

from bench.common import ROOT, gbsg2, machine

RELEASE = ROOT / "var" / "demo" / "gbsg2-release-1.csv"
RESULTS_FILE = ROOT / "bench" / "results" / "story.json"
DRAWS = 200
LESS = {"direction": "less", "value": 1}
FINDINGS = {
    "(a) horTh HR < 1 (true)": ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}}, (1.0, 0.5)),
    "(b) age HR < 1 (artefact)": ("hazard_ratio", {"exposure": {"column": "age"}}, (0.5, 1.0)),
}


def main() -> None:
    import numpy as np

    import pandas as pd

    from generators.core.transformer import _typed
    from verification.core import answer, parse_hypothesis

    if not RELEASE.exists():
        sys.exit(f"{RELEASE} is missing: run `make demo` first (it trains the generator and writes the release)")
    frame, schema = gbsg2()
    rows = pd.read_csv(RELEASE)
    release = pd.DataFrame({c.name: _typed(rows[c.name], c) for c in schema.kept})  # as the service reads it
    results = {}
    for name, (kind, params, epsilons) in FINDINGS.items():
        for epsilon in epsilons:
            hypothesis = parse_hypothesis({"kind": kind, "params": params, "where": [], "claim": LESS,
                                           "epsilon": epsilon}, schema, max_epsilon=10.0)
            verdicts: collections.Counter[str] = collections.Counter()
            estimates = []
            for seed in range(DRAWS):
                result = answer(frame, schema, hypothesis, rng=np.random.default_rng([7, seed]), synthetic=release)
                verdicts[result.verdict or "withheld"] += 1
                estimates.append(result.estimate)
            results[f"{name} at ε = {epsilon:g}"] = {
                "verdicts": {v: verdicts[v] for v in ("supported", "contradicted", "inconclusive", "withheld")},
                "median_estimate": float(np.median([e for e in estimates if e is not None])),
                "synthetic_estimate": result.synthetic_estimate, "method": result.method.split(":")[0],
            }
            row = results[f"{name} at ε = {epsilon:g}"]
            print(f"{name} at ε = {epsilon:g}: {row['verdicts']} (median estimate {row['median_estimate']:.4g}, "
                  f"synthetic {row['synthetic_estimate']:.4g})")
    RESULTS_FILE.write_text(json.dumps({
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
        "command": "make demo && python -m bench.story", "draws": DRAWS, "release": str(RELEASE.relative_to(ROOT)),
        "results": results,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
