"""ctgan at a million rows (issue 15, item 4): the transformer's fit and the training throughput.

The table is a seeded 30-column cohort (:func:`cohort`: 12 continuous columns drawn from two- and
three-mode mixtures, 6 integer ones, a duration and its event, 10 categorical ones with 2 to 6
categories; 3 columns nullable), typed as custody types it. Each size runs in a child process
(``python -m bench.scale.generators --child ROWS``), so its peak resident set (``VmHWM``) is the
size's own. In the child, with the default hyperparameters on the CPU (or CUDA when present):

* the data transformer's fit and its transform of every row, with the default encoding of numbers
  (normal scores through a quantile map, ``continuous="quantile"``) and with mode-specific
  normalisation (``continuous="mode"``: the Bayesian Gaussian mixtures are fitted on a seeded
  subsample of ``DataTransformer.max_fit_rows`` = 5,000 rows per column, every row is encoded);
* training: a warm-up epoch of ``TIMED_STEPS`` steps (the set-up, first-call costs), then
  ``TIMED_EPOCHS`` epochs of ``TIMED_STEPS`` steps, each timed; the seconds per epoch are extrapolated
  from the median to the reference's epoch of ``rows // batch_size`` steps (2,000 at a million rows,
  batch 500), not measured over a whole epoch.

``quick=True`` is 5,000 rows and one full epoch (10 steps) timed after the warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["NOTES", "cohort", "measure", "table"]

ROWS = 1_000_000
SMALLER_ROWS = 100_000
QUICK_ROWS = 5_000
#: Training is timed in TIMED_EPOCHS short epochs of TIMED_STEPS steps each, after one more as a
#: warm-up; the median short epoch gives the time per step (robust to a burst of load on a shared
#: machine), from which the reference's epoch (rows // batch steps) is extrapolated.
TIMED_STEPS = 25
TIMED_EPOCHS = 8
SEED = 0
#: No target in the issue for ctgan's training time; the GPU figure is asked for when a GPU is lent.
NOT_LENT = "not measured: no device lent"

NOTES = (
    "ctgan with its default hyperparameters (batch 500, normal-score encoding of numbers) on a seeded "
    "1,000,000 × 30 cohort (12 continuous columns from mixtures, 6 integer, a duration and its event, 10 "
    "categorical; 3 nullable), each size in a child process (peak RSS is the child's `VmHWM`: the table, "
    "its encoding and training). Transformer fit and transform are timed for both encodings of numbers; "
    "mode-specific normalisation fits its Bayesian Gaussian mixtures on a seeded 5,000-row subsample per "
    "column (`DataTransformer.max_fit_rows`) and encodes every row. Seconds per epoch are **extrapolated** "
    f"from the median of {TIMED_EPOCHS} runs of {TIMED_STEPS} steps (after {TIMED_STEPS} warm-up steps) to "
    "the reference's epoch of rows ÷ batch = 2,000 steps, not timed over a whole epoch; the CPU ms per step "
    "(all threads) is shown too, being less sensitive to other load. On the CPU the figures come from a "
    "shared 2-core machine. Unlike the other parts (GBSG2 resampled), this cohort is simulated: its multimodal "
    "continuous columns exercise the mixture fits, which resampled GBSG2 (whole numbers mostly) would not. "
    "Command: `python -m bench.scale.generators` (`--quick`: 5,000 rows, one epoch)."
)


# ---------------------------------------------------------------------------------------- the table
def cohort(rows: int, seed: int = SEED) -> tuple[pd.DataFrame, Any]:
    """A seeded ``rows`` × 30 cohort, typed as custody types it (``clearinghouse.tabular``), and its schema.
    The columns' distributions are drawn from their own generator, so every size shares them (only the
    rows differ): the sizes' figures compare one cohort at several sizes."""
    from clearinghouse.schema import Schema

    shape, rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)  # distributions, rows
    columns: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    nullable = {"lab_3", "count_2", "site"}
    for j in range(12):  # continuous: mixtures of two or three normal modes, clipped to their bounds
        k = 2 + j % 2
        centres = shape.uniform(-50, 50, k)
        spreads = shape.uniform(1, 10, k)
        mode = rng.integers(k, size=rows)
        values = np.clip(rng.normal(centres[mode], spreads[mode]), -100, 100)
        columns.append({"name": f"lab_{j}", "type": "continuous", "min": -100, "max": 100})
        data[f"lab_{j}"] = values
    for j in range(6):  # integer counts
        values = np.minimum(rng.poisson(2 + 3 * j, rows), 200)
        columns.append({"name": f"count_{j}", "type": "integer", "min": 0, "max": 200})
        data[f"count_{j}"] = pd.array(values, dtype="Int64")
    columns.append({"name": "time", "type": "duration", "min": 0, "max": 5000})
    data["time"] = np.minimum(rng.exponential(800, rows), 5000)
    columns.append({"name": "event", "type": "event"})
    data["event"] = pd.array(rng.integers(0, 2, rows), dtype="Int8")
    for j in range(10):  # categorical, 2 to 6 categories, skewed frequencies
        names = [f"c{i}" for i in range(2 + j % 5)]
        probs = shape.dirichlet(np.ones(len(names)))
        name = "site" if j == 9 else f"cat_{j}"
        columns.append({"name": name, "type": "categorical", "categories": names})
        data[name] = pd.Categorical.from_codes(rng.choice(len(names), size=rows, p=probs), categories=names)
    frame = pd.DataFrame(data)
    for column in columns:
        if column["name"] in nullable:
            column["nullable"] = True
            frame.loc[rng.random(rows) < 0.1, column["name"]] = None
    schema = Schema.from_dict({"columns": columns, "survival": {"duration": "time", "event": "event"}})
    return frame, schema


# ---------------------------------------------------------------------------------------- the child
def device_name() -> tuple[str, str]:
    """(torch device, its name): the CUDA device's name, else ``CPU: <model>, N threads``."""
    import torch

    from bench.common import machine

    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_name()
    return "cpu", f"CPU: {machine()['cpu']}, {torch.get_num_threads()} threads"


def child(rows: int, steps: int, epochs: int) -> dict[str, Any]:
    """One size's figures (run in its own process: see the module's docstring)."""
    import torch

    from bench.common import proc_status_bytes
    from generators.core.models.ctgan import CTGAN
    from generators.core.transformer import DataTransformer

    import sklearn.mixture  # noqa: F401  (imported before the clock starts: the first mixture fit is not an import)

    device, name = device_name()
    frame, schema = cohort(rows)
    frame_rss = proc_status_bytes("VmRSS")
    out: dict[str, Any] = {"rows": rows, "columns": len(schema.kept), "device": device, "device_name": name,
                           "frame_mib": round(frame.memory_usage(deep=True).sum() / 2**20, 1)}
    for continuous in ("mode", "quantile"):  # the default (quantile) last: its encoding is trained on
        start = time.perf_counter()
        transformer = DataTransformer(continuous=continuous).fit(frame, schema, seed=SEED)
        fitted = time.perf_counter()
        matrix = transformer.transform(frame, seed=SEED)
        done = time.perf_counter()
        out[continuous] = {"fit_s": round(fitted - start, 3), "transform_s": round(done - fitted, 3),
                           "encoded_columns": int(matrix.shape[1]), "encoded_mib": round(matrix.nbytes / 2**20, 1)}
        if continuous == "mode":
            del matrix
    model = CTGAN()
    assert model.hyper.continuous == "quantile", "the default encoding is the one trained on"
    model.schema, model.device, model.transformer = schema, torch.device(device), transformer
    torch.manual_seed(SEED)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    marks: list[float] = []
    cpu: list[float] = []

    def mark(epoch: int, epochs: int, losses: dict[str, float]) -> None:
        sync()
        marks.append(time.perf_counter())
        cpu.append(time.process_time())

    start = time.perf_counter()
    model._train(matrix, epochs=1 + epochs, seed=SEED, progress=mark, steps_per_epoch=steps)
    batch = model.hyper.batch_size
    walls = np.diff(marks) / steps
    step_s = float(np.median(walls))
    epoch_steps = max(1, rows // batch)
    out["training"] = {
        "batch_size": batch, "timed_steps": steps * epochs, "timed_epochs": epochs,
        "warm_up_s": round(marks[0] - start, 3), "step_ms": round(step_s * 1e3, 3),
        "step_ms_range": [round(float(walls.min()) * 1e3, 3), round(float(walls.max()) * 1e3, 3)],
        "rows_per_s": round(batch / step_s),
        # the process's CPU seconds per step (all threads): less sensitive to a loaded machine than the wall clock
        "step_cpu_ms": round(float(np.median(np.diff(cpu))) / steps * 1e3, 3),
        "epoch_steps": epoch_steps, "epoch_s_extrapolated": round(step_s * epoch_steps, 2),
        "epoch_measured_whole": steps == epoch_steps,  # (each timed epoch is a whole one)
        "final_losses": model.history[-1] if model.history else None,
    }
    peak = proc_status_bytes("VmHWM")
    out["peak_rss_gib"] = None if peak is None else round(peak / 2**30, 3)
    out["frame_rss_gib"] = None if frame_rss is None else round(frame_rss / 2**30, 3)
    if device == "cuda":
        out["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return out


def _run_child(rows: int, steps: int, epochs: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.scale.generators", "--child", str(rows), str(steps),
                           str(epochs)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the {rows:,}-row child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------- interface
def measure(*, quick: bool = False) -> dict:
    """The figures per size (quick: 5,000 rows, one epoch of 10 steps; else 100,000 and 1,000,000 rows)."""
    sizes = [(QUICK_ROWS, QUICK_ROWS // 500, 1)] if quick else \
        [(SMALLER_ROWS, TIMED_STEPS, TIMED_EPOCHS), (ROWS, TIMED_STEPS, TIMED_EPOCHS)]
    results = [_run_child(*size) for size in sizes]
    import torch

    return {"quick": quick, "sizes": results, "cuda_available": torch.cuda.is_available(),
            "threads": torch.get_num_threads(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def _s(value: float) -> str:
    return f"{value:,.2f} s" if value < 100 else f"{value:,.0f} s"


def table(result: dict) -> list[dict]:
    rows: list[dict] = []
    gpu_seen = False
    for size in result["sizes"]:
        n, on = f"{size['rows']:,} rows × {size['columns']}", size["device_name"]
        gpu_seen |= size["device"] == "cuda"
        for continuous, label in (("quantile", "normal scores, the default"), ("mode", "mode-specific, 5,000-row fit")):
            figures = size[continuous]
            rows.append({"figure": f"transformer fit + transform ({label}), {n}",
                         "value": f"{_s(figures['fit_s'])} + {_s(figures['transform_s'])}", "target": "", "status": ""})
        training = size["training"]
        per_run = training["timed_steps"] // training["timed_epochs"]
        how = "one whole epoch" if training["epoch_measured_whole"] and training["timed_epochs"] == 1 else \
            f"extrapolated: the median of {training['timed_epochs']} × {per_run} steps, × {training['epoch_steps']:,}"
        rows.append({"figure": f"ctgan seconds per epoch ({how}), {n}, {on}",
                     "value": f"{_s(training['epoch_s_extrapolated'])} ({training['rows_per_s']:,} rows/s, "
                              f"{training['step_ms']:.1f} ms/step, {training['step_cpu_ms']:.1f} CPU ms/step)",
                     "target": "", "status": ""})
        rows.append({"figure": f"peak RSS (table, encoding, training), {n}",
                     "value": f"{size['peak_rss_gib']:.2f} GiB", "target": "", "status": ""})
    if not gpu_seen:
        largest = max(result["sizes"], key=lambda s: s["rows"])
        rows.append({"figure": f"ctgan seconds per epoch on a GPU, {largest['rows']:,} rows", "value": NOT_LENT,
                     "target": "", "status": ""})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale.generators", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 rows, one epoch")
    parser.add_argument("--child", nargs=3, type=int, metavar=("ROWS", "STEPS", "EPOCHS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    print(json.dumps(measure(quick=args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
