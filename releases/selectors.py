"""Reads of releases (no side effects)."""

from __future__ import annotations

import pandas as pd
from django.db.models import QuerySet
from django.http import FileResponse

from clearinghouse.errors import ApplicationError
from clearinghouse.schema import Schema
from generators.core.transformer import _typed
from releases.models import Release
from releases.storage import DATA_FILES, release_file, release_rows

__all__ = ["CONTENT_TYPES", "release_download", "release_list", "release_synthetic_rows"]

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def release_list() -> QuerySet[Release]:
    return Release.objects.select_related("dataset", "run").order_by("-created_at", "-id")


def release_synthetic_rows(release: Release, schema: Schema) -> pd.DataFrame:
    """The release's synthetic rows, typed as custody types the real ones (the schema's kept
    columns). Public data: reading them costs no ε."""
    frame = release_rows(release)
    return pd.DataFrame({c.name: _typed(frame[c.name], c) for c in schema.kept})


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
