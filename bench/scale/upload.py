"""A 1,000,000-row × 30-column upload through the service, with its peak memory (issue 15, item 4).

A CSV of the simulated survival table's column mix (bench/report.py's ``wide_table``: 13 numbers, half of
them whole, 15 categories of 2–5 levels, a duration and an event) is written to disk in chunks. A fresh
Python process (its own temporary ``DATA_DIR``, SQLite, migrated) then takes it into custody through
``dataset_create`` with the file's path, as the API and portal views pass the uploaded file: parsed and
checked ``CHUNK_ROWS`` rows at a time, typed, written to Parquet and encrypted. Its wall seconds and its
peak resident memory (``ru_maxrss`` of that process, which has only migrated and uploaded) are reported,
with the CSV's size and the stored (encrypted) bytes.

``python -m bench.scale.upload [--quick] [--rows N] [--before-ref REF]`` prints the JSON of
:func:`measure`; ``--before-ref`` measures the same upload on the code of a git ref too (extracted with
``git archive`` into a temporary folder; there the file is passed as bytes, as the views then read it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]

ROWS = 1_000_000
QUICK_ROWS = 20_000
TARGET_PEAK_BYTES = 2 * 1024**3  # the "e.g. under 2 GB", read as 2 GiB
WRITE_ROWS = 100_000  # rows generated and appended to the CSV at a time
SEED = 0

NOTES = (
    "**Upload at scale.** A 1,000,000-row × 30-column CSV (bench/report.py's simulated survival table's "
    "column mix: 13 numbers, 15 categories, a duration and an event; 126 MB) is generated on disk in "
    "chunks, then taken into custody through `dataset_create` with the file, in a fresh process (temporary "
    "`DATA_DIR`, SQLite, migrated): parsed and checked `CHUNK_ROWS` (50,000) rows at a time, typed, written "
    "to Parquet (zstd) and encrypted. The figures are that process's wall seconds and peak resident memory "
    "(`ru_maxrss`, migrations included); target peak under 2 GiB. `python -m bench.scale.upload` "
    "(`--quick`: 20,000 rows)."
)


def schema_dict() -> dict[str, Any]:
    """The 30 columns of ``bench.report.wide_table``, as a schema document."""
    columns: list[dict[str, Any]] = []
    for i in range(13):
        columns.append({"name": f"x{i}", "type": "integer" if i % 2 else "continuous", "min": 0, "max": 100})
    for j in range(15):
        columns.append({"name": f"g{j}", "type": "categorical", "categories": [f"c{k}" for k in range(2 + j % 4)]})
    columns += [{"name": "time", "type": "duration", "min": 0, "max": 3000}, {"name": "event", "type": "event"}]
    return {"columns": columns, "survival": {"duration": "time", "event": "event"}}


def _block(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """``rows`` rows of the wide table (as ``bench.report.wide_table`` draws them)."""
    factor = rng.normal(size=rows)
    data: dict[str, Any] = {}
    for i in range(13):
        values = np.clip(50 + 15 * (0.6 * factor + 0.8 * rng.normal(size=rows)), 0, 100)
        data[f"x{i}"] = np.round(values).astype(np.int64) if i % 2 else values.round(4)
    for j in range(15):
        levels = np.asarray([f"c{k}" for k in range(2 + j % 4)])
        logits = np.outer(factor, np.linspace(-1, 1, len(levels))) + rng.gumbel(size=(rows, len(levels)))
        data[f"g{j}"] = levels[logits.argmax(axis=1)]
    hazard = np.exp(0.02 * (data["x0"] - 50) + 0.5 * (data["g0"] == "c1"))
    event_time = rng.exponential(1000 / hazard)
    censor = rng.uniform(200, 3000, rows)
    data["time"] = np.minimum(event_time, censor).clip(0, 3000).round(1)
    data["event"] = (event_time <= censor).astype(np.int64)
    return pd.DataFrame(data)


def write_csv(path: Path, rows: int, *, seed: int = SEED) -> int:
    """Write the CSV ``WRITE_ROWS`` rows at a time (never the whole table in memory); its size in bytes."""
    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for start in range(0, rows, WRITE_ROWS):
            _block(min(WRITE_ROWS, rows - start), rng).to_csv(handle, index=False, header=start == 0)
    return path.stat().st_size


#: Run in a fresh interpreter whose working folder is the code to measure: set Django up on a temporary
#: DATA_DIR with SQLite, migrate, then time one upload and read the process's peak RSS.
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
import django
django.setup()
from django.core.management import call_command
call_command("migrate", "--noinput", verbosity=0)
from accounts.services import user_create
from clearinghouse.services.datasets import dataset_create
user, _ = user_create(username="bench-custodian", roles=["custodian"])
schema = json.loads(Path(args["schema"]).read_text())
before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
data = Path(args["csv"]).read_bytes() if args["as_bytes"] else Path(args["csv"])
dataset = dataset_create(slug="bench-scale", name="bench (1M x 30)", schema=schema, data=data, by=user)
wall = time.perf_counter() - start
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"wall_s": round(wall, 2), "peak_rss_kib": peak_kib, "rss_before_upload_kib": before_kib,
                  "rows": dataset.n_rows, "columns": dataset.n_columns, "stored_bytes": dataset.stored_bytes}))
"""


def _upload(code: Path, csv_path: Path, schema_path: Path, *, as_bytes: bool) -> dict[str, Any]:
    """The child's figures: one upload of ``csv_path`` on the code under ``code``."""
    from cryptography.fernet import Fernet

    data_dir = Path(tempfile.mkdtemp(prefix="bench-scale-upload-"))
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "PYTHONPATH"}}
    env.update({"DJANGO_SETTINGS_MODULE": "clearinghouse.settings", "DJANGO_DEBUG": "1", "DATA_DIR": str(data_dir),
                "DATA_ENCRYPTION_KEY": Fernet.generate_key().decode(), "MAX_UPLOAD_BYTES": str(1 << 40),
                "PYTHONDONTWRITEBYTECODE": "1"})
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(
            {"csv": str(csv_path), "schema": str(schema_path), "as_bytes": as_bytes})],
            cwd=code, env=env, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(f"the upload process failed ({done.returncode}): {done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def measure(*, quick: bool = False, rows: int | None = None, before_ref: str | None = None) -> dict:
    """Run the part's measurements and return JSON-able figures. quick=True uses tiny sizes (seconds),
    for the smoke test in tests/bench/; the full run uses the issue's sizes (1,000,000 rows)."""
    from bench.common import machine

    rows = rows or (QUICK_ROWS if quick else ROWS)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-upload-csv-"))
    try:
        csv_path, schema_path = work / "wide.csv", work / "wide.schema.json"
        schema_path.write_text(json.dumps(schema_dict()), encoding="utf-8")
        csv_bytes = write_csv(csv_path, rows)
        result: dict[str, Any] = {"rows": rows, "columns": len(schema_dict()["columns"]), "csv_bytes": csv_bytes,
                                  "target_peak_rss_bytes": TARGET_PEAK_BYTES,
                                  "machine": machine(load_average=True),
                                  "streamed": _upload(ROOT, csv_path, schema_path, as_bytes=False)}
        if before_ref:
            old = work / "before"
            old.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", before_ref], check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
            result["before"] = {"ref": before_ref, **_upload(old, csv_path, schema_path, as_bytes=True)}
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _gib(kib: int) -> str:
    return f"{kib / 1024**2:.2f} GiB"


def table(result: dict) -> list[dict]:
    """Rows for the docs table: each {"figure": str, "value": str, "target": str, "status": str}, where
    status is "met", "missed" or "" (no target). Value strings carry units (e.g. "0.41 s", "1.32 GiB")."""
    streamed, rows = result["streamed"], f"{result['rows']:,} × {result['columns']}"
    peak_bytes = streamed["peak_rss_kib"] * 1024
    lines = [
        {"figure": f"upload {rows}: CSV size", "value": f"{result['csv_bytes'] / 1024**2:.0f} MiB",
         "target": "", "status": ""},
        {"figure": f"upload {rows}: wall time through dataset_create", "value": f"{streamed['wall_s']:.1f} s",
         "target": "", "status": ""},
        {"figure": f"upload {rows}: peak RSS of the uploading process", "value": _gib(streamed["peak_rss_kib"]),
         "target": f"< {_gib(result['target_peak_rss_bytes'] // 1024)}",
         "status": "met" if peak_bytes < result["target_peak_rss_bytes"] else "missed"},
        {"figure": f"upload {rows}: stored (Parquet, encrypted)", "value": f"{streamed['stored_bytes'] / 1024**2:.0f} MiB",
         "target": "", "status": ""},
    ]
    if "before" in result:
        before = result["before"]
        lines.append({"figure": f"upload {rows} on {before['ref']} (file read whole): wall time, peak RSS",
                      "value": f"{before['wall_s']:.1f} s, {_gib(before['peak_rss_kib'])}", "target": "", "status": ""})
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows")
    parser.add_argument("--rows", type=int, help="rows of the CSV (default: 1,000,000, or 20,000 with --quick)")
    parser.add_argument("--before-ref", help="also measure the upload on the code of this git ref (e.g. main)")
    args = parser.parse_args(argv)
    print(json.dumps(measure(quick=args.quick, rows=args.rows, before_ref=args.before_ref), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
