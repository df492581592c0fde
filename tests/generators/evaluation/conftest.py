"""Frames for the validation report's pure core: GBSG2 split 80/20 as a run splits it, an honest
synthetic cohort (a Gaussian copula fitted on the training rows) and a leaking one (the training
rows themselves, lightly perturbed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema

SPLIT_SEED = 0


def split(table: pd.DataFrame, seed: int = SPLIT_SEED) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same seeded 80/20 split as generators.services.run_split."""
    order = np.random.default_rng(seed).permutation(len(table))
    n_holdout = int(round(0.2 * len(table)))
    train = table.iloc[np.sort(order[n_holdout:])].reset_index(drop=True)
    holdout = table.iloc[np.sort(order[:n_holdout])].reset_index(drop=True)
    return train, holdout


def noisy_copy(train: pd.DataFrame, schema: Schema, *, seed: int = 0, jitter: float = 0.0) -> pd.DataFrame:
    """The "generator" that leaks: the training rows, with numbers moved by at most ``jitter``
    (a share of each column's public range). ``jitter=0`` is an exact copy."""
    rng = np.random.default_rng(seed)
    out = train.copy()
    for column in schema.kept:
        if column.is_numeric and jitter:
            span = float(column.max) - float(column.min)
            moved = out[column.name].astype("float64") + rng.uniform(-jitter, jitter, len(out)) * span
            moved = moved.clip(column.min, column.max)
            out[column.name] = moved.round().astype(out[column.name].dtype) if column.type == "integer" else moved
    return out


@pytest.fixture(scope="session")
def gbsg2_split(gbsg2_table):
    return split(gbsg2_table)


@pytest.fixture(scope="session")
def copula_synthetic(gbsg2_split, gbsg2_schema) -> pd.DataFrame:
    """An honest release: a Gaussian copula fitted on the training rows, as many rows as the cohort."""
    from generators.core.models import make_model

    train, holdout = gbsg2_split
    model = make_model("copula").fit(train, gbsg2_schema, epochs=1, seed=0, device="cpu")
    return model.sample(len(train) + len(holdout), seed=1)


@pytest.fixture(scope="session")
def leaking_synthetic(gbsg2_split, gbsg2_schema) -> pd.DataFrame:
    train, _ = gbsg2_split
    return noisy_copy(train, gbsg2_schema, seed=3, jitter=0.005)
