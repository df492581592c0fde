"""Plain JSON values from numpy and pandas results (pure: no Django). Both pure cores (the
validation report and the verification engine) store their results as JSON, which has no NaN."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["json_safe"]


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars and arrays unwrapped, tuples as lists, dict keys as strings,
    missing values (NaN, infinities, ``pd.NA``, ``NaT``) as ``None``; anything else as its text."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)
