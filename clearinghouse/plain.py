"""Plain JSON values from numpy and pandas results (pure: no Django). Both pure cores (the
validation report and the verification engine) store their results as JSON, which has no NaN."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["json_safe"]


def json_safe(value: Any, digits: int | None = None) -> Any:
    """``value`` with numpy scalars and arrays unwrapped, tuples as lists, dict keys as strings,
    missing values (NaN, infinities, ``pd.NA``, ``NaT``) as ``None``; anything else as its text.
    ``digits``: finite floats rounded to that many decimals (None: as they are)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v, digits) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if not math.isfinite(value):
            return None
        return value if digits is None else round(value, digits)
    if value is None or isinstance(value, str):
        return value
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)
