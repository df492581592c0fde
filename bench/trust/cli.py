"""``python -m bench.trust``: the flags, the run, the figures."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import DOCS_FILE, ROOT, machine
from bench.trust import battery, cohorts, metrics
from bench.trust.reference import reference

SEED = 20261202
EPSILONS = (0.5, 1.0, 3.0)
MIN_SUBGROUP = 10
RESULTS_FILE = ROOT / "bench" / "results" / "trust.json"
QUICK_RESULTS_FILE = ROOT / "bench" / "results" / "trust-quick.json"
PACKAGES = ("numpy", "scipy", "pandas", "lifelines", "statsmodels", "torch")

#: What the workers read (set before the pool forks).
_STATE: dict[str, Any] = {}


def _limit_threads() -> None:
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    except ImportError:  # pragma: no cover
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def _progress(total: int, desc: str):
    try:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, mininterval=1.0)
    except ImportError:  # pragma: no cover - a plain bar
        class Bar:
            def __init__(self):
                self.done = 0

            def update(self, k=1):
                self.done += k
                filled = int(30 * self.done / max(total, 1))
                print(f"\r{desc} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{total}", end="", file=sys.stderr)

            def close(self):
                print(file=sys.stderr)

        return Bar()


# ------------------------------------------------------------------------------------- worker tasks
def _build(index: int) -> tuple[int, list[dict[str, Any]], float]:
    """The battery of one cohort, with the non-private reference on its real rows."""
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    cohort, synthetic = _STATE["cohorts"][index], _STATE["synthetic"][index]
    entries = battery.build(cohort.schema, synthetic, simulated=cohort.simulated)
    for entry in entries:
        entry["real"] = reference(cohort.frame, cohort.schema, battery.parse(entry["spec"], cohort.schema))
    return index, entries, time.perf_counter() - started


def _population(spec_json: str) -> tuple[str, float | None]:
    warnings.simplefilter("ignore")
    frame, schema = _STATE["population"], _STATE["population_schema"]
    spec = json.loads(spec_json)
    return spec_json, reference(frame, schema, battery.parse(spec, schema))["estimate"]


def _answers(task: tuple[int, int]) -> tuple[int, int, list[tuple]]:
    """Every DP answer of one hypothesis: each ε, each repetition (its own seed)."""
    warnings.simplefilter("ignore")
    from verification.core import answer

    c, e = task
    cohort = _STATE["cohorts"][c]
    synthetic = _STATE["synthetic"][c]  # the published release: mechanisms take bins and starts from it, as the service
    spec = _STATE["batteries"][c][e]["spec"]
    fresh = _STATE["fresh"].get(c)
    out = []
    for k, epsilon in enumerate(_STATE["epsilons"]):
        hypothesis = battery.parse(spec, cohort.schema, epsilon)
        for rep in range(_STATE["reps"]):
            rng = np.random.default_rng([SEED, c, e, k, rep])
            try:
                a = answer(cohort.frame, cohort.schema, hypothesis, rng=rng, min_subgroup=MIN_SUBGROUP,
                           synthetic=synthetic)
                # a simulation's coverage: the same hypothesis on a fresh draw of the process (one per repetition)
                b = None if fresh is None else answer(fresh[rep], cohort.schema, hypothesis, rng=rng,
                                                      min_subgroup=MIN_SUBGROUP, synthetic=synthetic)
            except Exception as exc:  # noqa: BLE001 - a mechanism being rewritten must not stop the run
                out.append((epsilon, rep, "error", None, None, None, f"{type(exc).__name__}: {exc}", None, None))
                continue
            fresh_ci = None if b is None or b.withheld else (b.ci_low, b.ci_high)
            out.append((epsilon, rep, a.verdict, a.estimate, a.ci_low, a.ci_high, a.method if rep == 0 else None,
                        a.informative, fresh_ci))
    return c, e, out


def _finite(x):
    return None if x is None or not np.isfinite(x) else float(x)


def _git() -> dict[str, Any]:
    def run(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD"),
            "verification_core_last_commit": run("log", "-1", "--format=%h %s", "--", "verification/core"),
            "verification_core_uncommitted": bool(run("status", "--porcelain", "--", "verification/core"))}


# ------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    import bench.trust as package

    parser = argparse.ArgumentParser(prog="python -m bench.trust", description=package.__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 noise draws, no 10k-row simulation, a 20k-row population (about a minute)")
    parser.add_argument("--reps", type=int, default=None, help="noise draws per hypothesis and ε (default 20; --quick 3)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON figures (default bench/results/trust.json; with --quick trust-quick.json, "
                             "which git ignores)")
    parser.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    parser.add_argument("--docs", action="store_true", help="write the docs/benchmarks.md section even with --quick")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = QUICK_RESULTS_FILE if args.quick else RESULTS_FILE
    write_section = not args.no_docs and (args.docs or not args.quick)
    warnings.simplefilter("ignore")
    reps = args.reps if args.reps is not None else (3 if args.quick else 20)
    population_rows = 20_000 if args.quick else cohorts.POPULATION_ROWS
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    _limit_threads()
    import verification.core as core

    sizes = cohorts.SIM_SIZES[:2] if args.quick else cohorts.SIM_SIZES
    all_cohorts = cohorts.real_cohorts() + cohorts.simulated_cohorts(SEED, sizes)
    synthetic = [cohorts.synthetic_release(c, SEED + i) for i, c in enumerate(all_cohorts)]
    population = cohorts.population(SEED, population_rows)
    _STATE.update(cohorts=all_cohorts, synthetic=synthetic, population=population,
                  population_schema=all_cohorts[-1].schema, epsilons=EPSILONS, reps=reps)
    timings["cohorts_and_releases_s"] = time.perf_counter() - started
    log(f"{len(all_cohorts)} cohorts and their copula releases; population {population_rows} rows")

    context = multiprocessing.get_context("fork")
    with context.Pool(args.workers, initializer=_limit_threads) as pool:
        t = time.perf_counter()
        batteries: list[list[dict[str, Any]]] = [[] for _ in all_cohorts]
        build_s = {}
        largest_first = sorted(range(len(all_cohorts)), key=lambda i: -len(all_cohorts[i].frame))
        for index, entries, seconds in pool.imap_unordered(_build, largest_first):
            batteries[index] = entries
            build_s[all_cohorts[index].name] = round(seconds, 2)
        timings["battery_and_reference_s"] = time.perf_counter() - t
        log(f"battery: {sum(map(len, batteries))} hypotheses ({', '.join(f'{c.name} {len(b)}' for c, b in zip(all_cohorts, batteries))})")

        t = time.perf_counter()
        specs = sorted({json.dumps(e["spec"], sort_keys=True) for c, b in zip(all_cohorts, batteries) if c.simulated
                        for e in b})
        truth = dict(pool.imap_unordered(_population, specs))
        for c, b in zip(all_cohorts, batteries):
            if c.simulated:
                for e in b:
                    e["population"] = truth[json.dumps(e["spec"], sort_keys=True)]
        timings["population_values_s"] = time.perf_counter() - t
        log(f"population values of {len(specs)} simulated hypotheses on {population_rows} rows")

    _STATE["batteries"] = batteries  # before the answering pool forks
    t = time.perf_counter()
    _STATE["fresh"] = {c: [cohorts.typed(cohorts.simulate(len(cohort.frame), np.random.default_rng([SEED, 1, c, rep])),
                                         cohort.schema) for rep in range(reps)]
                       for c, cohort in enumerate(all_cohorts) if cohort.simulated}
    timings["fresh_draws_s"] = time.perf_counter() - t
    with context.Pool(args.workers, initializer=_limit_threads) as pool:
        tasks = [(c, e) for c, b in enumerate(batteries) for e in range(len(b))]
        # the slow kinds first, so that the two workers finish together
        tasks.sort(key=lambda ce: (batteries[ce[0]][ce[1]]["kind"] not in battery.RATIO_KINDS, -len(all_cohorts[ce[0]].frame)))
        t = time.perf_counter()
        bar = _progress(len(tasks), "DP answers")
        answers: dict[tuple[int, int], list[tuple]] = {}
        for c, e, out in pool.imap_unordered(_answers, tasks, chunksize=1):
            answers[(c, e)] = out
            bar.update(1)
        bar.close()
        timings["dp_answers_s"] = time.perf_counter() - t
        log(f"{sum(map(len, answers.values()))} DP answers in {timings['dp_answers_s']:.0f} s")

    rows, synthetic_rows, methods, errors = [], [], {}, []
    for c, (cohort, entries) in enumerate(zip(all_cohorts, batteries)):
        for e, entry in enumerate(entries):
            ratio = entry["kind"] in battery.RATIO_KINDS
            real = entry["real"]
            target = entry.get("population") if cohort.simulated else real["estimate"]
            base = {"cohort": cohort.name, "simulated": cohort.simulated, "kind": entry["kind"], "tag": entry["tag"],
                    "np_verdict": real["verdict"], "np_ci": real["ci"], "target": target, "ratio": ratio, "n": len(cohort.frame)}
            synthetic_rows.append({**base, "dp_verdict": entry["synthetic"]["verdict"], "dp_ci": entry["synthetic"]["ci"]})
            per_eps: dict[str, list] = {}
            for epsilon, rep, verdict, estimate, low, high, method, informative, fresh_ci in answers[(c, e)]:
                if verdict == "error":
                    errors.append({"cohort": cohort.name, "label": entry["label"], "epsilon": epsilon, "error": method})
                    verdict, method = None, None
                if method:
                    methods.setdefault(entry["kind"], method)
                row = {**base, "epsilon": epsilon, "dp_verdict": verdict,
                       "dp_ci": None if verdict is None else [_finite(low), _finite(high)],
                       "informative": informative}
                if cohort.simulated:
                    row["coverage_ci"] = None if fresh_ci is None else [_finite(fresh_ci[0]), _finite(fresh_ci[1])]
                rows.append(row)
                per_eps.setdefault(f"{epsilon:g}", []).append(row)
            entry["dp"] = {}
            for eps_key, part in per_eps.items():
                s = metrics.summarize(part)
                counts: dict[str, int] = {}
                for r in part:
                    key = "withheld" if r["dp_verdict"] is None else r["dp_verdict"]
                    counts[key] = counts.get(key, 0) + 1
                entry["dp"][eps_key] = {"verdicts": counts, "agreement": s["agreement"], "coverage": s["coverage"],
                                        "width_ratio_median": s["width_ratio_median"],
                                        "uninformative": sum(r["informative"] is False for r in part)}

    figures: dict[str, Any] = {}
    for epsilon in EPSILONS:
        part = [r for r in rows if r["epsilon"] == epsilon]
        figures[f"{epsilon:g}"] = {
            "overall": metrics.summarize(part), "by_kind": metrics.group_by(part, "kind"),
            "by_tag": metrics.group_by(part, "tag"), "by_cohort": metrics.group_by(part, "cohort"),
            "by_cohort_kind": metrics.group_by(part, "cohort", "kind"),
            "by_tag_n700": metrics.group_by([r for r in part if not r["simulated"] and 400 <= r["n"] <= 1000], "tag"),
        }
    synthetic_alone = {"overall": metrics.summarize(synthetic_rows), "by_kind": metrics.group_by(synthetic_rows, "kind"),
                       "by_cohort": metrics.group_by(synthetic_rows, "cohort")}
    from bench.trust.summary import targets, write_docs

    timings["total_s"] = time.perf_counter() - started
    command = "make bench-trust" + (" BENCH_ARGS=--quick" if args.quick else "") + \
        (f" (--reps {reps})" if args.reps is not None else "")
    results = {
        "date": dt.date.today().isoformat(), "machine": machine(packages=PACKAGES, load_average=True),
        "command": command, "git": _git(),
        "config": {"seed": SEED, "epsilons": list(EPSILONS), "reps": reps, "min_subgroup": MIN_SUBGROUP,
                   "workers": args.workers, "population_rows": population_rows, "simulated_sizes": list(sizes),
                   "simulation": cohorts.SIM, "caps": battery.CAPS, "synthetic_generator": "copula (generators.core), "
                   "seed = config.seed + cohort index, as many rows as the cohort", "quick": args.quick},
        "engine": {"registered": sorted(core.KINDS), "methods": methods, "errors": errors[:50], "error_count": len(errors)},
        "cohorts": [{"name": c.name, "rows": len(c.frame), "simulated": c.simulated, "source": c.source,
                     "events": int(c.frame[c.schema.survival.event].sum()), "hypotheses": len(b),
                     "battery_seconds": build_s.get(c.name)} for c, b in zip(all_cohorts, batteries)],
        "figures": figures, "synthetic_alone": synthetic_alone,
        "battery": {c.name: b for c, b in zip(all_cohorts, batteries)},
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    results["targets"] = targets(results)
    for target in results["targets"]:
        log(f"target {target['target']}: {target['status']} ({target['figure']})")
    from clearinghouse.plain import json_safe

    safe = json_safe(results, digits=6)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(safe, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    log(f"wrote {args.out}")
    if write_section:
        write_docs(safe)
        log(f"wrote {DOCS_FILE.relative_to(ROOT)}")
    return 0
