"""RMSE of the DP estimate against its noise-free twin, over the noise sd the mechanism states."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd

from bench.verification import project
from bench.verification.data import (KIND_SPECS, MEDIUM_KINDS, RMSE_RATIO_TARGET, SEED, SIM_SCHEMA, SLOW_KINDS,
                                     KindSpec, kind_index, rng_for, simulate)


def _quantile_rank_error(frame: pd.DataFrame, hypothesis, estimate: float) -> float:
    """Rank of the released value minus q·n, on the mechanism's grid (0 if the value's rank range holds q·n)."""
    default_grid = project.mechanisms().default_grid

    column = SIM_SCHEMA[hypothesis.params["column"]]
    values = frame[column.name].to_numpy(dtype=np.float64, na_value=np.nan)
    values = np.clip(values[~np.isnan(values)], column.min, column.max)
    gamma = default_grid(column.min, column.max)
    ticks = np.sort(np.rint(values / gamma))
    tick = round(estimate / gamma)
    target = float(hypothesis.params["q"]) * len(ticks)
    below = np.searchsorted(ticks, tick, side="left")
    at_or_below = np.searchsorted(ticks, tick, side="right")
    return float(min(max(target, below), at_or_below) - target)


def _on_scale(spec: KindSpec, result) -> float | None:
    if result.withheld or result.estimate is None:
        return None
    if spec.scale == "log":
        if spec.value_key and spec.value_key in result.details:
            return float(result.details[spec.value_key])
        return math.log(result.estimate) if result.estimate > 0 else None
    return float(result.estimate)


def _ratio(errors: list[float], sds: list[float], missing_sd: bool) -> tuple[float, float, float, float]:
    """RMSE, theory (RMS of the stated sds), their ratio and the ratio's Monte Carlo sd (delta method
    on the mean of the squared errors)."""
    errors_a = np.asarray(errors, dtype=np.float64)
    rmse = float(np.sqrt(np.mean(errors_a**2))) if len(errors_a) else math.nan
    theory = float(np.sqrt(np.mean(np.square(sds)))) if sds and not missing_sd else math.nan
    ratio = rmse / theory if math.isfinite(theory) and theory > 0 else math.nan
    squares = errors_a**2
    mc_sd = (ratio * float(np.std(squares)) / (2 * float(np.mean(squares)) * math.sqrt(len(squares)))
             if len(squares) > 1 and float(np.mean(squares)) > 0 and math.isfinite(ratio) else math.nan)
    return rmse, theory, ratio, mc_sd


def bench_rmse(kinds: list[str], n: int, epsilons: tuple[float, ...], reps: int, medium_reps: int, slow_reps: int,
               log, *, budget_s: float = 3.0, max_reps: int = 20_000) -> list[dict[str, Any]]:
    """Per kind and ε at least the configured repetitions, then more (in chunks) until the cell has run
    ``budget_s`` seconds: rare noise (a count's at ε = 5 is non-zero in 1.3 % of draws) needs thousands
    of repetitions before its RMSE means anything. The stopping rule looks at the clock only, never at
    the errors (stopping once the errors look precise enough would bias the ratio)."""
    answer = project.answer()
    mechanisms = project.mechanisms()
    QUANTILE_SPLIT, count_noise_sd = mechanisms.QUANTILE_SPLIT, mechanisms.count_noise_sd
    discrete_laplace_sd = mechanisms.discrete_laplace_sd

    frame = simulate(n, [SEED, 3])
    rows = []
    for kind in kinds:
        spec = KIND_SPECS[kind]
        for e_index, epsilon in enumerate(epsilons):
            hypothesis = project.parse(spec.hypothesis, SIM_SCHEMA, epsilon)
            errors: list[float] = []
            sds: list[float] = []
            state = {"skipped": 0, "mismatched": 0, "missing_sd": False}

            def one(rep: int) -> None:
                seed = (20, kind_index(kind), e_index, rep)
                result = answer(frame, SIM_SCHEMA, hypothesis, rng=rng_for(*seed))
                if spec.scale == "rank":
                    if result.withheld:
                        state["skipped"] += 1
                        return
                    errors.append(_quantile_rank_error(frame, hypothesis, result.estimate))
                    sds.append(discrete_laplace_sd(2.0 / (epsilon * QUANTILE_SPLIT["estimate"])))
                    return
                with project.noise_free():
                    twin = answer(frame, SIM_SCHEMA, hypothesis, rng=rng_for(*seed))
                if "blocks" in result.details and result.details.get("blocks") != twin.details.get("blocks"):
                    state["mismatched"] += 1
                    return
                value, reference = _on_scale(spec, result), _on_scale(spec, twin)
                if value is None or reference is None:
                    state["skipped"] += 1
                    return
                errors.append(value - reference)
                if spec.theory is not None:
                    sd = spec.theory(result, twin, epsilon)
                elif spec.noise_key is None:
                    sd = count_noise_sd(epsilon)
                else:
                    sd = result.details.get(spec.noise_key)
                if sd is None:
                    state["missing_sd"] = True
                else:
                    sds.append(float(sd))

            minimum = slow_reps if kind in SLOW_KINDS else medium_reps if kind in MEDIUM_KINDS else reps
            start = time.perf_counter()
            done = 0
            while done < minimum:
                one(done)
                done += 1
            while done < max_reps and time.perf_counter() - start < budget_s:
                for _ in range(max(minimum // 10, 5)):
                    one(done)
                    done += 1
            rmse, theory, ratio, mc_sd = _ratio(errors, sds, state["missing_sd"])
            errors_a = np.asarray(errors)
            row = {"kind": kind, "epsilon": epsilon, "rows": n, "reps": len(errors), "skipped": state["skipped"],
                   "twin_mismatch": state["mismatched"], "scale": spec.scale,
                   "noise_sd_source": (spec.theory_doc if spec.theory is not None
                                       else "discrete Laplace sd at scale 2/ε_estimate (rank units)"
                                       if spec.scale == "rank" else "discrete Laplace sd at scale 1/ε"
                                       if spec.noise_key is None else f"details.{spec.noise_key} (RMS over reps)"),
                   "rmse": rmse, "theory_sd": theory, "bias": float(errors_a.mean()) if len(errors_a) else math.nan,
                   "ratio": ratio, "ratio_mc_sd": mc_sd,
                   "status": ("not measured" if not math.isfinite(ratio) else
                              "met" if ratio <= RMSE_RATIO_TARGET else "missed")}
            rows.append(row)
            log(f"rmse {kind:26s} ε={epsilon:<4g}: RMSE {rmse:.4g} / theory {theory:.4g} = {ratio:.3f} ± {mc_sd:.3f} "
                f"({row['reps']} reps{', ' + str(state['skipped']) + ' skipped' if state['skipped'] else ''}"
                f"{', ' + str(state['mismatched']) + ' twin mismatches' if state['mismatched'] else ''}) {row['status']}")
    return rows
