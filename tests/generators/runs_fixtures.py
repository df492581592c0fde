"""Fixtures and helpers for the training-run tests (imported explicitly by the modules that use them).

Each test gets its own ``MODELS_DIR`` (a temporary folder), so a checkpoint or staging
folder it finds there was written by that test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache

from clearinghouse.models import AuditEvent
from generators.models import GeneratorRun
from generators.services import run_create

__all__ = ["events_after", "make_run", "models_dir", "fresh_cache", "entries", "last_seq"]


@pytest.fixture
def models_dir(settings, tmp_path) -> Path:
    """A fresh, empty MODELS_DIR for this test."""
    folder = tmp_path / "models"
    settings.MODELS_DIR = folder
    return folder


@pytest.fixture
def fresh_cache():
    """DRF throttle counters live in the cache (Redis on the PostgreSQL pass), which outlives a test."""
    cache.clear()
    yield
    cache.clear()


def entries(folder: Path) -> set[str]:
    """Names directly under ``folder``, hidden ones included (empty when it does not exist)."""
    folder = Path(folder)
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def last_seq() -> int:
    event = AuditEvent.objects.order_by("-seq").first()
    return event.seq if event else 0


def events_after(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(seq__gt=seq).order_by("seq"))


def make_run(dataset, by, *, model: str = "copula", epochs: int = 1, seed: int = 0, device: str = "cpu",
             hyperparameters: dict | None = None) -> GeneratorRun:
    """A queued run that nothing will pick up (``enqueue=False``): the test drives it."""
    return run_create(dataset=dataset, model=model, epochs=epochs, seed=seed, device=device,
                      hyperparameters=hyperparameters, by=by, enqueue=False)
