"""Latency of the engine's ``answer()`` per kind and frame size."""

from __future__ import annotations

import time
from typing import Any

from bench.verification import project
from bench.verification.data import (KIND_SPECS, LATENCY_TARGET_ROWS, SEED, SIM_SCHEMA, SLOW_KINDS, percentile,
                                     rng_for, simulate)


def bench_latency(kinds: list[str], sizes: tuple[int, ...], reps: int, budget_s: float, slow_budget_s: float,
                  log) -> list[dict[str, Any]]:
    answer = project.answer()

    rows = []
    for n in sizes:
        frame = simulate(n, [SEED, 1, n])
        synthetic = simulate(n, [SEED, 2, n]) if n == LATENCY_TARGET_ROWS else None
        for kind in kinds:
            spec = KIND_SPECS[kind]
            hypothesis = project.parse(spec.hypothesis, SIM_SCHEMA, 1.0)
            answer(frame, SIM_SCHEMA, hypothesis, rng=rng_for(9, n))  # warm-up (imports, caches)
            budget = slow_budget_s if kind in SLOW_KINDS else budget_s
            times: list[float] = []
            start = time.perf_counter()
            while len(times) < reps and (len(times) < 10 or time.perf_counter() - start < budget):
                t = time.perf_counter()
                answer(frame, SIM_SCHEMA, hypothesis, rng=rng_for(10, n, len(times)))
                times.append(time.perf_counter() - t)
            row = {"kind": kind, "rows": n, "reps": len(times), "p50_ms": 1000 * percentile(times, 50),
                   "p99_ms": 1000 * percentile(times, 99), "max_ms": 1000 * max(times)}
            if synthetic is not None:
                with_syn: list[float] = []
                start = time.perf_counter()
                while len(with_syn) < max(reps // 4, 10) and (len(with_syn) < 3 or time.perf_counter() - start < budget / 2):
                    t = time.perf_counter()
                    answer(frame, SIM_SCHEMA, hypothesis, rng=rng_for(11, n, len(with_syn)), synthetic=synthetic)
                    with_syn.append(time.perf_counter() - t)
                row.update(with_synthetic_reps=len(with_syn), with_synthetic_p50_ms=1000 * percentile(with_syn, 50))
            rows.append(row)
            log(f"latency {kind:26s} n={n:>6}: p50 {row['p50_ms']:8.2f} ms, p99 {row['p99_ms']:8.2f} ms "
                f"({row['reps']} reps)" + (f"; with a {n}-row synthetic release p50 {row['with_synthetic_p50_ms']:.2f} ms"
                                           if synthetic is not None else ""))
    return rows
