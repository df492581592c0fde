"""The flow's sampling time on a wide table with many nullable columns (issue 15, item 1).

Not part of ``make test`` and writes nothing: it prints figures. The table is GBSG2 resampled to
``--rows`` rows, with two extra categorical columns and nine nullable columns (about 25 % missing
each), so the encoding has many missing-indicator and one-hot columns, like the cohort in which
the flow took about two minutes to sample 7,284 rows. The default flow is fitted for a few epochs
(quality is not the point: the time is), then ``model.sample(rows)`` is timed ``--repeat`` times
and the median printed; ``--profile`` adds a cProfile of one call.

    python -m bench.flow_sampling [--rows 10000] [--epochs 2] [--repeat 5] [--profile] [--threads 1]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from clearinghouse.schema import Schema
from clearinghouse.tabular import read_csv_checked

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "clearinghouse" / "fixtures" / "gbsg2.schema.json"
NULLABLE = ("age", "menostat", "tsize", "tgrade", "pnodes", "progrec", "estrec", "site", "stage")
MISSING_SHARE = 0.25


def wide_schema() -> Schema:
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    raw["columns"] += [
        {"name": "site", "type": "categorical", "categories": ["A", "B", "C", "D", "E", "F"]},
        {"name": "stage", "type": "categorical", "categories": ["1", "2", "3", "4"]},
    ]
    for column in raw["columns"]:
        if column["name"] in NULLABLE:
            column["nullable"] = True
    return Schema.from_dict(raw)


def wide_table(rows: int, schema: Schema, seed: int = 0) -> pd.DataFrame:
    from lifelines.datasets import load_gbsg2

    rng = np.random.default_rng(seed)
    base = load_gbsg2()
    frame = base.iloc[rng.integers(len(base), size=rows)].reset_index(drop=True)
    # the extra columns depend on the others a little, so a model has something to learn
    frame["site"] = np.array(list("ABCDEF"))[(frame["age"].to_numpy() // 10 + rng.integers(0, 2, rows)) % 6]
    frame["stage"] = np.clip(frame["pnodes"].to_numpy() // 5 + rng.integers(0, 2, rows), 1, 4).astype(str)
    for name in NULLABLE:
        blank = rng.random(rows) < MISSING_SHARE
        frame[name] = frame[name].astype("object").where(~blank, None)
    frame.insert(0, "pid", range(1, rows + 1))
    return read_csv_checked(frame.to_csv(index=False).encode(), schema)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--hyper", default="{}", help="flow hyperparameters as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from generators.core.models import make_model

    schema = wide_schema()
    table = wide_table(args.rows, schema)
    model = make_model("flow", **json.loads(args.hyper))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(table, schema, epochs=args.epochs, seed=0, device="cpu")
    fit_s = time.perf_counter() - start
    features = len(model.feature_cols)
    print(f"table {args.rows} rows x {len(schema.kept)} columns; encoded D = {features} flow features; "
          f"fit {args.epochs} epochs in {fit_s:.2f} s; torch threads {torch.get_num_threads()}")
    model.sample(100, seed=0)  # first-call costs
    times = []
    for i in range(args.repeat):
        start = time.perf_counter()
        model.sample(args.rows, seed=i)
        times.append(time.perf_counter() - start)
    print(f"sample {args.rows} rows: median {statistics.median(times):.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeat} runs)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        model.sample(args.rows, seed=0)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
