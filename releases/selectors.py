"""Reads of releases (no side effects)."""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd
from django.conf import settings
from django.db.models import QuerySet
from django.http import FileResponse

from clearinghouse.errors import ApplicationError
from clearinghouse.framecache import frame_cache
from clearinghouse.schema import Schema
from generators.core.transformer import _typed
from releases.models import Release
from releases.storage import DATA_FILES, release_file

__all__ = ["CONTENT_TYPES", "release_download", "release_list", "release_rows_cache_clear", "release_synthetic_rows"]

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def release_list() -> QuerySet[Release]:
    return Release.objects.select_related("dataset", "run").order_by("-created_at", "-id")


# Every verification reads its release's synthetic rows (the public estimate beside the DP
# answer): they are kept typed in a per-process cache, like custody's decrypted tables
# (RELEASE_CACHE_BYTES, RELEASE_CACHE_SECONDS; 0 switches it off). A release's files are written
# once (staged, renamed); a file changed anyway (new mtime, size or inode) or a changed schema misses.
_rows_cache = frame_cache(label="release rows")


def release_synthetic_rows(release: Release, schema: Schema) -> pd.DataFrame:
    """The release's synthetic rows, typed as custody types the real ones (the schema's kept
    columns). Public data: reading them costs no ε. Served from the cache, a frame's column
    buffers are read-only (see clearinghouse/framecache.py); a missing file is FileNotFoundError."""
    budget = max(int(getattr(settings, "RELEASE_CACHE_BYTES", 0)), 0)
    seconds = max(int(getattr(settings, "RELEASE_CACHE_SECONDS", 0)), 0)
    if not (budget and seconds):
        _rows_cache.clear()
    path = release_file(release, "parquet")
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        key = str(path)
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev, _schema_digest(schema))
        if budget and seconds:
            cached = _rows_cache.get(key, stamp)
            if cached is not None:
                return cached.copy(deep=False)
        raw = pd.read_parquet(handle, engine="pyarrow")
    frame = pd.DataFrame({c.name: _typed(raw[c.name], c) for c in schema.kept})
    if budget and seconds:
        frame = _rows_cache.put(key, stamp, frame, budget=budget, seconds=seconds)
    return frame


def release_rows_cache_clear() -> None:
    _rows_cache.clear()


def _schema_digest(schema: Schema) -> str:
    return hashlib.sha256(json.dumps(schema.to_dict(), sort_keys=True, default=str).encode()).hexdigest()


def release_download(release: Release, kind: str) -> FileResponse:
    """The release's synthetic file (``csv`` or ``parquet``) as an attachment, for the API and the portal;
    a file missing from the server is a 410."""
    try:
        handle = release_file(release, kind).open("rb")
    except FileNotFoundError:
        raise ApplicationError(f"Release {release.pk}'s {DATA_FILES[kind]} is missing from the server.",
                               code="release_file_missing", status_code=410) from None
    return FileResponse(handle, as_attachment=True, content_type=CONTENT_TYPES[kind],
                        filename=f"{release.dataset.slug}-release-{release.pk}.{kind}")
