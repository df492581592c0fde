"""Fixtures for the pure generator core (no database): the GBSG2 table, a nullable copy, fitted models.

Fitted models are session-scoped and small (few epochs, narrow networks) so that the core's
tests run in well under a minute on two CPU cores. Tests must not mutate them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema
from clearinghouse.tabular import read_csv_checked

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "clearinghouse" / "fixtures" / "gbsg2.schema.json"
MODEL_NAMES = ("copula", "ctgan", "flow")
#: Small networks for tests. ``epochs`` is what each model is fitted with in the shared fixtures.
SMALL = {
    "copula": {},
    "ctgan": {"batch_size": 100, "pac": 10, "noise_dim": 32, "generator_width": 64, "critic_width": 64},
    "flow": {"batch_size": 250, "transforms": 1, "hidden_width": 32, "bins": 6, "learning_rate": 5e-3},
}
EPOCHS = {"copula": 1, "ctgan": 3, "flow": 3}
#: The nullable copy: this share of ``tsize`` is set missing (fixed seed).
MISSING_COLUMN, MISSING_SHARE = "tsize", 0.3


def schema_dict() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def typed_table(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """The frame custody would store: identifiers added, CSV round trip, checked and typed."""
    frame = frame.copy()
    frame.insert(0, "pid", range(1, len(frame) + 1))
    return read_csv_checked(frame.to_csv(index=False).encode(), schema)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny networks and 1-D mixtures run fastest on one thread, and far faster than on several
    oversubscribed ones when other jobs share the cores. Results do not depend on it."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def gbsg2_raw() -> pd.DataFrame:
    from lifelines.datasets import load_gbsg2

    return load_gbsg2()


@pytest.fixture(scope="session")
def gbsg2_schema() -> Schema:
    return Schema.from_dict(schema_dict())


@pytest.fixture(scope="session")
def gbsg2_table(gbsg2_raw, gbsg2_schema) -> pd.DataFrame:
    return typed_table(gbsg2_raw, gbsg2_schema)


@pytest.fixture(scope="session")
def nullable_schema() -> Schema:
    raw = schema_dict()
    for column in raw["columns"]:
        if column["name"] == MISSING_COLUMN:
            column["nullable"] = True
    return Schema.from_dict(raw)


@pytest.fixture(scope="session")
def nullable_table(gbsg2_raw, nullable_schema) -> pd.DataFrame:
    frame = gbsg2_raw.copy()
    rng = np.random.default_rng(12345)
    blank = rng.random(len(frame)) < MISSING_SHARE
    frame[MISSING_COLUMN] = frame[MISSING_COLUMN].astype("object").where(~blank, None)
    table = typed_table(frame, nullable_schema)
    assert table[MISSING_COLUMN].isna().sum() == blank.sum()
    return table


@dataclass
class Fitted:
    """A model fitted once per session, with the progress calls its fit made."""

    model: object
    calls: list = field(default_factory=list)


def fit_small(name: str, table, schema, *, epochs: int | None = None, seed: int = 0, progress=None, **hyper):
    from generators.core.models import make_model

    return make_model(name, **{**SMALL[name], **hyper}).fit(
        table, schema, epochs=EPOCHS[name] if epochs is None else epochs, seed=seed, device="cpu", progress=progress)


@pytest.fixture(scope="session")
def fitted(gbsg2_table, gbsg2_schema) -> dict[str, Fitted]:
    """One small model of each kind fitted on GBSG2 with seed 0; ``calls`` records the progress callback."""
    out = {}
    for name in MODEL_NAMES:
        calls: list = []
        model = fit_small(name, gbsg2_table, gbsg2_schema, progress=lambda *args, _c=calls: _c.append(args))
        out[name] = Fitted(model, calls)
    return out
