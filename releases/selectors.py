"""Reads of releases (no side effects)."""

from __future__ import annotations

import pandas as pd
from django.db.models import QuerySet

from clearinghouse.schema import Schema
from generators.core.transformer import _typed
from releases.models import Release
from releases.storage import release_rows

__all__ = ["release_list", "release_synthetic_rows"]


def release_list() -> QuerySet[Release]:
    return Release.objects.select_related("dataset", "run").order_by("-created_at", "-id")


def release_synthetic_rows(release: Release, schema: Schema) -> pd.DataFrame:
    """The release's synthetic rows, typed as custody types the real ones (the schema's kept
    columns). Public data: reading them costs no ε."""
    frame = release_rows(release)
    return pd.DataFrame({c.name: _typed(frame[c.name], c) for c in schema.kept})
