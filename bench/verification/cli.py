"""``python -m bench.verification``: the flags, the configuration, and the run of every part."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
import traceback
import warnings
from typing import Any

from bench.common import DOCS_FILE, ROOT, machine
from bench.verification import project
from bench.verification.accuracy import bench_rmse
from bench.verification.agreement import bench_agreement
from bench.verification.coverage import bench_coverage
from bench.verification.data import EPSILONS, KIND_SPECS
from bench.verification.latency import bench_latency
from bench.verification.service import bench_service
from bench.verification.summary import RESULTS_FILE, targets, write_docs

PACKAGES = ("numpy", "scipy", "pandas", "lifelines", "statsmodels", "django")


def main(argv: list[str] | None = None) -> int:
    import bench.verification as package

    parser = argparse.ArgumentParser(prog="python -m bench.verification", description=package.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run (about a minute); writes nothing unless --write")
    parser.add_argument("--write", action="store_true", help="with --quick: write the results anyway")
    parser.add_argument("--skip-service", action="store_true", help="leave out the HTTP part")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    quick = args.quick
    cfg = {
        "latency_sizes": (1_000, 10_000) if quick else (1_000, 10_000, 100_000),
        "latency_reps": 30 if quick else 200, "latency_budget_s": 0.5 if quick else 3.0,
        "latency_slow_budget_s": 1.0 if quick else 8.0,
        "rmse_rows": 12_000, "rmse_epsilons": (1.0,) if quick else EPSILONS,
        "rmse_reps": 40 if quick else 300, "rmse_medium_reps": 15 if quick else 150,
        "rmse_slow_reps": 6 if quick else 50, "rmse_cell_budget_s": 0.3 if quick else 3.0,
        "coverage_reps": 60 if quick else 1000, "coverage_medium_reps": 30 if quick else 500,
        "coverage_slow_reps": 10 if quick else 200,
        "coverage_budget_s": 3.0 if quick else 45.0,
        "agreement_reps": 3 if quick else 20,
        "service_rows": 2_000 if quick else 10_000, "service_clients": 20 if not quick else 5,
        "service_per_client": 15 if not quick else 4, "service_sequential": 40 if not quick else 5,
    }
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    engine = project.load_engine()
    kinds = [k for k in engine["registered"] if k in KIND_SPECS]
    log(f"kinds registered: {', '.join(engine['registered'])}"
        + (f"; import failures: {engine['import_failures']}" if engine["import_failures"] else ""))
    results: dict[str, Any] = {
        "date": dt.date.today().isoformat(), "machine": machine(packages=PACKAGES, load_average=True),
        "command": "make bench-verification" + (" BENCH_ARGS=--quick" if quick else ""),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "engine": {**engine, "benchmarked": kinds, "no_template": [k for k in engine["registered"] if k not in KIND_SPECS]},
    }
    results["latency"] = bench_latency(kinds, cfg["latency_sizes"], cfg["latency_reps"], cfg["latency_budget_s"],
                                       cfg["latency_slow_budget_s"], log)
    results["rmse"] = bench_rmse(kinds, cfg["rmse_rows"], cfg["rmse_epsilons"], cfg["rmse_reps"],
                                 cfg["rmse_medium_reps"], cfg["rmse_slow_reps"], log,
                                 budget_s=cfg["rmse_cell_budget_s"])
    results["coverage"] = bench_coverage(kinds, cfg["coverage_reps"], cfg["coverage_medium_reps"],
                                         cfg["coverage_slow_reps"], log, cfg["coverage_budget_s"])
    results["agreement"] = bench_agreement(engine["registered"], cfg["agreement_reps"], log)
    if args.skip_service:
        results["service"] = {"skipped": True}
    else:
        try:
            results["service"] = bench_service(cfg["service_rows"], cfg["service_clients"], cfg["service_per_client"],
                                               cfg["service_sequential"], log)
        except Exception as exc:  # noqa: BLE001 - report it; the engine figures stand
            traceback.print_exc()
            results["service"] = {"error": f"{type(exc).__name__}: {exc}"}
    results["targets"] = targets(results)
    results["seconds"] = round(time.perf_counter() - started, 1)
    for target in results["targets"]:
        log(f"target {target['target']}: {target['status']} ({target['figure']})")
    if quick and not args.write:
        return 0
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(project.json_safe(results, digits=6), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    write_docs(project.json_safe(results, digits=6))
    log(f"wrote {RESULTS_FILE.relative_to(ROOT)} and {DOCS_FILE.relative_to(ROOT)}")
    return 0
