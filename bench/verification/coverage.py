"""Coverage of the 95 % CI at ε = 1 on fresh simulated samples with known population values."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bench.verification import project
from bench.verification.data import (COVERAGE_RANGE, KIND_SPECS, MEDIUM_KINDS, SEED, SIM_SCHEMA, SLOW_KINDS, TRUTH,
                                     kind_index, rng_for, simulate)


def bench_coverage(kinds: list[str], reps: int, medium_reps: int, slow_reps: int, log,
                   budget_s: float) -> list[dict[str, Any]]:
    answer = project.answer()

    rows = []
    for kind in kinds:
        spec = KIND_SPECS[kind]
        hypothesis = project.parse(spec.hypothesis, SIM_SCHEMA, 1.0)
        count = slow_reps if kind in SLOW_KINDS else medium_reps if kind in MEDIUM_KINDS else reps
        covered, withheld, widths, done = 0, 0, [], 0
        start = time.perf_counter()
        for rep in range(count):
            if done >= 50 and time.perf_counter() - start > budget_s:
                break
            frame = simulate(spec.coverage_n, [SEED, 4, rep])
            truth = TRUTH[kind](frame)
            result = answer(frame, SIM_SCHEMA, hypothesis, rng=rng_for(30, kind_index(kind), rep))
            done += 1
            if result.withheld:
                withheld += 1
                continue
            low = -math.inf if result.ci_low is None else result.ci_low
            high = math.inf if result.ci_high is None else result.ci_high
            covered += low <= truth <= high
            if result.ci_low is not None and result.ci_high is not None:
                widths.append(result.ci_high - result.ci_low)
        answered = done - withheld
        share = covered / answered if answered else math.nan
        # Wilson 95 % interval of the coverage estimate itself (Monte Carlo error)
        z = 1.959964
        centre = (share + z * z / (2 * answered)) / (1 + z * z / answered) if answered else math.nan
        half = (z * math.sqrt(share * (1 - share) / answered + z * z / (4 * answered**2)) / (1 + z * z / answered)
                if answered else math.nan)
        row = {"kind": kind, "epsilon": 1.0, "rows": spec.coverage_n, "reps": done, "withheld": withheld,
               "coverage": share, "mc_interval": [centre - half, centre + half],
               "truth": TRUTH[kind](simulate(10, 0)) if kind != "count" else "the sample's own count",
               "median_ci_width": float(np.median(widths)) if widths else math.nan,
               "status": ("not measured" if not math.isfinite(share) else
                          "met" if COVERAGE_RANGE[0] <= share <= COVERAGE_RANGE[1] else "missed")}
        rows.append(row)
        log(f"coverage {kind:26s}: {share:.3f} (MC 95 % {row['mc_interval'][0]:.3f}–{row['mc_interval'][1]:.3f}; "
            f"{done} reps of n={spec.coverage_n}{', ' + str(withheld) + ' withheld' if withheld else ''}) {row['status']}")
    return rows
