"""A release's files on disk: ``RELEASES_DIR/<storage_name>/`` holds ``data.csv``,
``data.parquet`` and ``datasheet.json``. A leaf module (settings and pandas only): the release
services write through it, and reports and verification read a release's rows through it.

Files appear whole or not at all: they are written into a staging folder, fsynced and renamed
into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
from django.conf import settings

__all__ = ["DATA_FILES", "DATASHEET_FILE", "datasheet_rewrite", "release_file", "release_folder", "release_rows",
           "release_remove", "release_write", "sha256_of"]

DATA_FILES = {"csv": "data.csv", "parquet": "data.parquet"}
DATASHEET_FILE = "datasheet.json"


def release_folder() -> Path:
    """The folder of all releases (created, mode 0700, on first use)."""
    folder = Path(settings.RELEASES_DIR)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def release_file(release, kind: str) -> Path:
    """The path of one of a release's data files (``kind`` is ``csv`` or ``parquet``); ``release``
    is anything with a ``storage_name`` (a :class:`releases.models.Release`)."""
    return release_folder() / release.storage_name / DATA_FILES[kind]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def release_rows(release) -> pd.DataFrame:
    """A release's synthetic rows, read once from its Parquet file."""
    return pd.read_parquet(release_file(release, "parquet"), engine="pyarrow")


def _datasheet_text(datasheet: dict) -> str:
    """``datasheet.json`` as every writer of it formats it (strict JSON: no NaN)."""
    return json.dumps(datasheet, indent=2, allow_nan=False) + "\n"


def release_write(frame: pd.DataFrame, datasheet: dict) -> tuple[str, dict[str, Any]]:
    """Write the three files into a staging folder and rename it into place. Returns the new
    storage name and the files' sizes and SHA-256 digests (also written into ``datasheet``)."""
    root = release_folder()
    storage_name = uuid.uuid4().hex
    staging = Path(tempfile.mkdtemp(prefix=f".{storage_name}-", dir=root))
    try:
        csv_path, parquet_path = staging / DATA_FILES["csv"], staging / DATA_FILES["parquet"]
        frame.to_csv(csv_path, index=False, na_rep="", lineterminator="\n")
        frame.to_parquet(parquet_path, index=False, engine="pyarrow")
        facts = {"csv_bytes": csv_path.stat().st_size, "csv_sha256": sha256_of(csv_path),
                 "parquet_bytes": parquet_path.stat().st_size, "parquet_sha256": sha256_of(parquet_path)}
        datasheet["files"] = {"csv": {"name": DATA_FILES["csv"], "bytes": facts["csv_bytes"],
                                      "sha256": facts["csv_sha256"]},
                              "parquet": {"name": DATA_FILES["parquet"], "bytes": facts["parquet_bytes"],
                                          "sha256": facts["parquet_sha256"]}}
        (staging / DATASHEET_FILE).write_text(_datasheet_text(datasheet), encoding="utf-8")
        for path in staging.iterdir():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
        os.replace(staging, root / storage_name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return storage_name, facts


def datasheet_rewrite(release, datasheet: dict) -> None:
    """Replace a release's ``datasheet.json`` (a sweep adds how it chose the release); the data files and
    their digests are untouched. Written beside it, fsynced and renamed over it: whole or not at all."""
    folder = release_folder() / release.storage_name
    staging = folder / f".{DATASHEET_FILE}.{uuid.uuid4().hex}"
    try:
        staging.write_text(_datasheet_text(datasheet), encoding="utf-8")
        with staging.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(staging, folder / DATASHEET_FILE)
    finally:
        staging.unlink(missing_ok=True)


def release_remove(storage_name: str) -> None:
    """Remove a release's folder (its database row could not be created)."""
    shutil.rmtree(release_folder() / storage_name, ignore_errors=True)
