"""Missing rates of synthetic rows against the training rows, per nullable column (issue 15, item 2).

Not part of ``make test`` and writes nothing: it prints one JSON line per model. Tables (nothing
is downloaded; both ship inside ``lifelines``):

* ``blanked`` (default): GBSG2 resampled ``--factor`` times, with five columns blanked at a fixed
  seed, two of them categorical and three not at random: ``tsize`` 0.3 and ``tgrade`` 0.2 at
  random; ``progrec`` 0.4 where ``menostat`` is "Post" (else 0.1), ``pnodes`` 0.25 where ``age`` >
  55 (else 0.05) and ``menostat`` 0.35 where ``horTh`` is "yes" (else 0.1);
* ``lung``: the NCCTG lung-cancer cohort (228 rows) with its own gaps (``meal_cal`` 21 %,
  ``wt_loss`` 6 %, four columns with one to three).

Each model is fitted with its default hyperparameters (seed 0), ``--sample`` rows are drawn (seed
1) and each nullable column's missing rate is printed next to the training rate; for ``blanked``
also the rates within the groups its missingness depends on.

    python -m bench.missing_rates [--table blanked|lung] [--factor 10] [--epochs 300]
                                  [--models ctgan,copula] [--sample 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from clearinghouse.schema import Schema
from clearinghouse.tabular import read_csv_checked

SCHEMA_FILE = Path(__file__).resolve().parents[1] / "clearinghouse" / "fixtures" / "gbsg2.schema.json"
BLANKED = ("tsize", "tgrade", "progrec", "pnodes", "menostat")
#: For ``blanked``: the column each not-at-random gap depends on, and the group where it is likelier.
DEPENDS = {"progrec": ("menostat", lambda s: s.astype("string") == "Post"),
           "pnodes": ("age", lambda s: s.astype("float64") > 55),
           "menostat": ("horTh", lambda s: s.astype("string") == "yes")}
LUNG_SCHEMA = {
    "columns": [
        {"name": "inst", "type": "identifier", "description": "institution code (dropped)"},
        {"name": "time", "type": "duration", "min": 0, "max": 1100, "description": "survival time (days)"},
        {"name": "status", "type": "event", "description": "1 = died"},
        {"name": "age", "type": "integer", "min": 18, "max": 100},
        {"name": "sex", "type": "categorical", "categories": ["1", "2"]},
        {"name": "ph_ecog", "type": "categorical", "categories": ["0", "1", "2", "3"], "nullable": True},
        {"name": "ph_karno", "type": "integer", "min": 0, "max": 100, "nullable": True},
        {"name": "pat_karno", "type": "integer", "min": 0, "max": 100, "nullable": True},
        {"name": "meal_cal", "type": "integer", "min": 0, "max": 5000, "nullable": True},
        {"name": "wt_loss", "type": "integer", "min": -50, "max": 100, "nullable": True},
    ],
    "survival": {"duration": "time", "event": "status"},
}


def blanked_table(factor: int = 1, seed: int = 7) -> tuple[pd.DataFrame, Schema]:
    from lifelines.datasets import load_gbsg2

    frame = load_gbsg2()
    rng = np.random.default_rng(seed)
    if factor > 1:
        frame = frame.iloc[rng.integers(len(frame), size=factor * len(frame))].reset_index(drop=True)
    u = rng.random((len(frame), len(BLANKED)))
    blanks = {
        "tsize": u[:, 0] < 0.3,
        "tgrade": u[:, 1] < 0.2,
        "progrec": u[:, 2] < np.where(frame["menostat"] == "Post", 0.4, 0.1),
        "pnodes": u[:, 3] < np.where(frame["age"] > 55, 0.25, 0.05),
        "menostat": u[:, 4] < np.where(frame["horTh"] == "yes", 0.35, 0.1),
    }
    for name, blank in blanks.items():  # after the draws above: the dependence is on the real values
        frame[name] = frame[name].astype("object").where(~blank, None)
    raw = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    for column in raw["columns"]:
        if column["name"] in BLANKED:
            column["nullable"] = True
    schema = Schema.from_dict(raw)
    frame.insert(0, "pid", range(1, len(frame) + 1))
    return read_csv_checked(frame.to_csv(index=False).encode(), schema), schema


def lung_table() -> tuple[pd.DataFrame, Schema]:
    from lifelines.datasets import load_lung

    frame = load_lung().rename(columns=lambda name: name.replace(".", "_"))
    for name in ("ph_ecog", "ph_karno", "pat_karno", "meal_cal", "wt_loss"):  # whole numbers stored as floats
        frame[name] = frame[name].astype("Int64")
    schema = Schema.from_dict(LUNG_SCHEMA)
    return read_csv_checked(frame.to_csv(index=False).encode(), schema), schema


def rates(frame: pd.DataFrame, names: list[str]) -> dict[str, float]:
    return {name: round(float(frame[name].isna().mean()), 3) for name in names}


def group_rates(frame: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """For ``blanked``: each not-at-random column's missing rate (in the likelier group, in the rest)."""
    out = {}
    for name, (by, likelier) in DEPENDS.items():
        mask = likelier(frame[by]).fillna(False).to_numpy(dtype=bool)
        out[name] = (round(float(frame[name][mask].isna().mean()), 3),
                     round(float(frame[name][~mask].isna().mean()), 3))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", choices=("blanked", "lung"), default="blanked")
    parser.add_argument("--factor", type=int, default=10, help="blanked: GBSG2 resampled this many times")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--models", default="ctgan,copula")
    parser.add_argument("--sample", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from generators.core.models import make_model

    table, schema = blanked_table(args.factor) if args.table == "blanked" else lung_table()
    nullable = [c.name for c in schema.kept if c.nullable]
    real = rates(table, nullable)
    for name in args.models.split(","):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make_model(name).fit(table, schema, epochs=args.epochs, seed=0, device="cpu")
        fit_s = time.perf_counter() - start
        sample = model.sample(args.sample, seed=1)
        synthetic = rates(sample, nullable)
        line = {"table": args.table, "rows": len(table), "model": name, "epochs": args.epochs,
                "fit_s": round(fit_s, 1), "real": real, "synthetic": synthetic,
                "difference": {k: round(synthetic[k] - real[k], 3) for k in nullable},
                "worst": round(max(abs(synthetic[k] - real[k]) for k in nullable), 3)}
        if args.table == "blanked":
            line["by_group_real"], line["by_group_synthetic"] = group_rates(table), group_rates(sample)
        print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
