"""A 1,000,000-row × 30-column upload through the service, with its peak memory (issue 15, item 4).

GBSG2 resampled with noise and widened to 30 kept columns (``bench.common.resampled_gbsg2``: 17 whole
numbers, 11 categories, a duration and an event; 10 columns nullable, 5 % blank; with a ``pid``
identifier that the upload drops) is written to a CSV on disk in chunks. A fresh
Python process (its own temporary ``DATA_DIR``, SQLite, migrated) then takes it into custody through
``dataset_create`` with the file's path, as the API and portal views pass the uploaded file: parsed and
checked ``CHUNK_ROWS`` rows at a time, typed, written to Parquet and encrypted. Its wall seconds and its
peak resident memory (``VmHWM`` of that process, which has only migrated and uploaded) are reported,
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


ROOT = Path(__file__).resolve().parents[2]

ROWS = 1_000_000
QUICK_ROWS = 20_000
TARGET_PEAK_BYTES = 2 * 1024**3  # the "e.g. under 2 GB", read as 2 GiB
COLUMNS = 30  # kept columns (the CSV also has the pid identifier, dropped at upload)
WRITE_ROWS = 100_000  # rows written to the CSV at a time
SEED = 0

NOTES = (
    "**Upload at scale.** A 1,000,000-row × 30-column CSV (GBSG2 resampled with noise and widened with noisy "
    "copies of its covariates, `bench.common.resampled_gbsg2`: 17 whole numbers, 11 categories, a duration "
    "and an event, 10 columns 5 % blank; plus the `pid` identifier) is written to disk, then taken into custody through `dataset_create` with the file, in a fresh process (temporary "
    "`DATA_DIR`, SQLite, migrated): parsed and checked `CHUNK_ROWS` (50,000) rows at a time, typed, written "
    "to Parquet (zstd) and encrypted. The figures are that process's wall seconds and peak resident memory "
    "(`VmHWM`, migrations included); target peak under 2 GiB. `python -m bench.scale.upload` "
    "(`--quick`: 20,000 rows)."
)


def write_csv(path: Path, rows: int, *, seed: int = SEED) -> tuple[int, dict[str, Any]]:
    """Write GBSG2 resampled with noise to ``rows`` rows × 30 kept columns (``bench.common.resampled_gbsg2``)
    as the CSV a custodian would upload, ``WRITE_ROWS`` rows at a time; its size in bytes and its schema."""
    from bench.common import resampled_gbsg2

    frame, schema = resampled_gbsg2(rows, columns=COLUMNS, seed=seed)
    frame.to_csv(path, index=False, chunksize=WRITE_ROWS)
    return path.stat().st_size, schema


#: Run in a fresh interpreter whose working folder is the code to measure: set Django up on a temporary
#: DATA_DIR with SQLite, migrate, then time one upload and read the process's peak RSS.
_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])


def peak_kib():
    # VmHWM: this process's own peak. ru_maxrss would start at the parent's size when it forked.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


import django
django.setup()
from django.core.management import call_command
call_command("migrate", "--noinput", verbosity=0)
from accounts.services import user_create
from clearinghouse.services.datasets import dataset_create
user, _ = user_create(username="bench-custodian", roles=["custodian"])
schema = json.loads(Path(args["schema"]).read_text())
before_kib = peak_kib()
start = time.perf_counter()
data = Path(args["csv"]).read_bytes() if args["as_bytes"] else Path(args["csv"])
dataset = dataset_create(slug="bench-scale", name="bench (1M x 30)", schema=schema, data=data, by=user)
wall = time.perf_counter() - start
peak = peak_kib()
print(json.dumps({"wall_s": round(wall, 2), "peak_rss_kib": peak, "rss_before_upload_kib": before_kib,
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
        csv_bytes, schema = write_csv(csv_path, rows)
        schema_path.write_text(json.dumps(schema), encoding="utf-8")
        result: dict[str, Any] = {"rows": rows, "columns": COLUMNS, "csv_bytes": csv_bytes,
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
