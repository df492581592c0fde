"""Every verification kind at a million rows (issue 15, item 4): the engine's time per answer.

The real cohort and its synthetic release are the verification benchmark's simulated survival table
(:func:`bench.verification.data.simulate`: an integer age, two categorical columns, two continuous
markers, a categorical response, a duration and its event), ``ROWS`` rows each, built once (the
release is a second draw of the same process, as a release of a 1M-row dataset would be 1M rows).
Each kind is asked its hypothesis of the verification benchmark (``KIND_SPECS``) at ε = 1 through
:func:`verification.core.answer`, the entry point ``verification_submit`` calls, with what it passes:
the whole release as ``synthetic`` and ``NoiseSource.secure()`` (the OS's CSPRNG). The regression kinds
are asked four ways, one per mechanism: a categorical exposure (the noisy table) and a numeric exposure
or a numeric adjuster (the DP Newton steps). One warm-up answer, then the median of ``REPETITIONS``;
the DP Newton bootstrap's cache is cleared before each answer (a first answer pays for its bootstrap).
Not measured here: the service around the engine (custody's read and the release's rows are cached per
process; bench/verification/service.py times them).

    python -m bench.scale.verification [--quick]   # prints the JSON of measure()
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["NOTES", "ROWS", "TARGET_S", "measure", "table"]

ROWS = 1_000_000
REPETITIONS = 5
QUICK_ROWS = 20_000
QUICK_REPETITIONS = 2
EPSILON = 1.0
#: The issue's target for the hazard ratio and the logistic odds ratio (every mechanism): p50 ≤ 1 s.
TARGET_S = 1.0
TARGETED = ("hazard_ratio", "logistic_odds_ratio")
SEED = 20261204

#: The regression kinds' other mechanisms (the DP Newton steps), besides their benchmark hypotheses.
EXTRA_CASES: dict[str, dict[str, Any]] = {
    "hazard_ratio, numeric exposure": {
        "kind": "hazard_ratio", "params": {"exposure": {"column": "marker"}}},
    "hazard_ratio, adjusted for age": {
        "kind": "hazard_ratio", "params": {"exposure": {"column": "group", "value": "b"}, "adjust_for": ["age"]}},
    "logistic_odds_ratio, numeric exposure": {
        "kind": "logistic_odds_ratio", "params": {"outcome": {"column": "response", "value": "yes"},
                                                  "exposure": {"column": "marker"}}},
    "logistic_odds_ratio, adjusted for age and grade": {
        "kind": "logistic_odds_ratio", "params": {"outcome": {"column": "response", "value": "yes"},
                                                  "exposure": {"column": "group", "value": "b"},
                                                  "adjust_for": ["age", "grade"]}},
}

NOTES = (
    f"Every hypothesis kind through `verification.core.answer` (what `verification_submit` calls) on a simulated "
    f"survival table of {ROWS:,} real rows with a {ROWS:,}-row synthetic release (bench/verification/data.py's "
    "cohort; each kind's hypothesis of the verification benchmark at ε = 1, the regression kinds also with a numeric "
    f"exposure or adjuster, i.e. the DP Newton steps), the OS's CSPRNG as the service uses it; p50 of "
    f"{REPETITIONS} answers after a warm-up, the DP Newton bootstrap's cache cleared before each. Public-release "
    "subsampling: a correlation is tuned on at most 20,000 of the release's pairs and the DP Newton steps read at "
    "most 50,000 of its rows, the exact OR/HR shown beside the answer at most 100,000 (seeded subsamples; the real "
    "rows are all read; docs/privacy.md). Target (issue 15): "
    f"hazard ratio and logistic odds ratio p50 ≤ {TARGET_S:g} s, every mechanism. "
    "`python -m bench.scale.verification`."
)


def _cases() -> dict[str, dict[str, Any]]:
    from bench.verification.data import KIND_SPECS

    cases = {kind: dict(spec.hypothesis) for kind, spec in KIND_SPECS.items()}
    for name, raw in EXTRA_CASES.items():
        cases[name] = dict(raw, claim={"direction": "greater", "value": 1})
    return cases


def _mechanism(method: str) -> str:
    """The method's first words (its name before the details): "noisy exit table", "DP Newton"."""
    name = method.split(":")[0]
    for cut in (" (", ", ", " from "):
        name = name.split(cut)[0]
    return name


def measure(*, quick: bool = False) -> dict:
    """Build the cohort and the release once, then time every kind's engine call (module docstring)."""
    import numpy as np

    from bench.common import machine
    from bench.verification.data import SIM_SCHEMA, simulate
    from verification.core import answer, newton, parse_hypothesis
    from verification.core.noise import NoiseSource

    rows = QUICK_ROWS if quick else ROWS
    repetitions = QUICK_REPETITIONS if quick else REPETITIONS
    host = machine(load_average=True, packages=("numpy", "pandas"))
    started = time.perf_counter()
    real, release = simulate(rows, SEED), simulate(rows, SEED + 1)
    build_s = time.perf_counter() - started
    kinds: dict[str, dict[str, Any]] = {}
    for name, raw in _cases().items():
        hypothesis = parse_hypothesis(dict(raw, epsilon=EPSILON), SIM_SCHEMA, max_epsilon=10.0)
        times, result = [], None
        for _ in range(repetitions + 1):  # the first is the warm-up
            newton._bootstraps.clear()
            begun = time.perf_counter()
            result = answer(real, SIM_SCHEMA, hypothesis, rng=NoiseSource.secure(), synthetic=release)
            times.append(time.perf_counter() - begun)
        timed = times[1:]
        target = TARGET_S if raw["kind"] in TARGETED else None
        p50 = statistics.median(timed)
        kinds[name] = {"kind": raw["kind"], "mechanism": _mechanism(result.method), "p50_s": round(p50, 4),
                       "max_s": round(max(timed), 4), "warm_up_s": round(times[0], 4), "target_s": target,
                       "met": None if target is None else p50 <= target,
                       "answered": (not result.withheld and result.estimate is not None
                                    and bool(np.isfinite(result.estimate)))}
    return {"rows": rows, "release_rows": rows, "repetitions": repetitions, "epsilon": EPSILON, "quick": quick,
            "build_s": round(build_s, 2), "machine": host, "command": "python -m bench.scale.verification"
            + (" --quick" if quick else ""), "kinds": kinds}


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def table(result: dict) -> list[dict]:
    rows = []
    size = f"{result['rows']:,}"
    for name, figure in result["kinds"].items():
        target = figure["target_s"]
        rows.append({"figure": f"{name} ({figure['mechanism']}), p50 at {size} rows",
                     "value": _seconds(figure["p50_s"]),
                     "target": "" if target is None else f"≤ {target:g} s",
                     "status": "" if target is None else ("met" if figure["met"] else "missed")})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows, {QUICK_REPETITIONS} repetitions")
    args = parser.parse_args(argv)
    print(json.dumps(measure(quick=args.quick), indent=2))


if __name__ == "__main__":
    main()
