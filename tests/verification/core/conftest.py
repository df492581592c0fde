"""GBSG2 as custody stores it, and a hypothesis helper, for the pure engine's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clearinghouse.schema import Schema
from clearinghouse.tabular import read_csv_checked
from verification.core.hypothesis import parse_hypothesis

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "clearinghouse" / "fixtures" / "gbsg2.schema.json"
GREATER = {"direction": "greater", "value": 1.0}


def hyp(schema: Schema, kind: str, params: dict | None = None, *, epsilon: float = 1.0, where=None,
        claim: dict | None = None):
    """A parsed hypothesis (claim "greater than 1" unless told otherwise; ε up to 100 allowed)."""
    raw = {"kind": kind, "params": params or {}, "where": where or [], "claim": claim or GREATER, "epsilon": epsilon}
    return parse_hypothesis(raw, schema, max_epsilon=100.0)


@pytest.fixture(scope="session")
def gbsg2_schema() -> Schema:
    return Schema.from_dict(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def gbsg2_raw() -> pd.DataFrame:
    from lifelines.datasets import load_gbsg2

    return load_gbsg2()


@pytest.fixture(scope="session")
def gbsg2(gbsg2_raw, gbsg2_schema) -> pd.DataFrame:
    """The frame custody stores: a pid added, CSV round trip, checked and typed (Int64, Int8, categoricals)."""
    frame = gbsg2_raw.copy()
    frame.insert(0, "pid", range(1, len(frame) + 1))
    return read_csv_checked(frame.to_csv(index=False).encode(), gbsg2_schema)
