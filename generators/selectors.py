"""Reads of training runs (no side effects)."""

from __future__ import annotations

from django.db.models import QuerySet

from generators.models import GeneratorRun


def run_list(*, dataset_slug: str | None = None) -> QuerySet[GeneratorRun]:
    qs = GeneratorRun.objects.select_related("dataset", "created_by").defer("holdout_rows")
    if dataset_slug is not None:
        qs = qs.filter(dataset__slug=dataset_slug)
    return qs.order_by("-created_at", "-id")
