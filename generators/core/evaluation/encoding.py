"""Numeric encodings of a typed frame, shared by the distance-based metrics, PCA and detection.

Both use the schema's *public* bounds, not the data, so real and synthetic rows land in the same
space and no statistic of the real rows leaks into the encoding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from clearinghouse.schema import Column, Schema
from generators.core.transformer import EVENT_CATEGORIES

__all__ = ["categories", "encode", "hamming_codes", "labels"]

_ONE_HOT_WEIGHT = 1 / np.sqrt(2)  # two differing one-hot cells then add up to a distance of 1


def categories(column: Column) -> tuple[str, ...]:
    return EVENT_CATEGORIES if column.type == "event" else column.categories


def labels(series: pd.Series, column: Column) -> pd.Series:
    """A categorical or event column as strings (missing stays missing)."""
    if column.type != "event" and isinstance(series.dtype, pd.CategoricalDtype):
        # The same strings and NaNs from the codes: converting a million values one by one takes seconds.
        names = np.asarray(series.cat.categories.astype(str), dtype=object)
        codes = series.cat.codes.to_numpy()
        values = np.where(codes >= 0, names[codes], np.nan) if len(names) else np.full(len(codes), np.nan, object)
        return pd.Series(values, index=series.index, name=series.name, dtype=object)
    out = series.astype("object")
    mask = series.notna()
    out[mask] = series[mask].astype(str) if column.type != "event" else series[mask].astype(int).astype(str)
    return out


def _scaled(series: pd.Series, column: Column) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    lo, hi = float(column.min), float(column.max)
    span = hi - lo if hi > lo else 1.0
    return np.clip((values - lo) / span, 0.0, 1.0)


def encode(frame: pd.DataFrame, schema: Schema, columns: list[Column] | tuple[Column, ...] | None = None) -> np.ndarray:
    """Rows as vectors: numbers scaled to [0, 1] by the public bounds, categories one-hot
    (weighted so a mismatch costs 1), missing values as 0 plus a missing indicator for nullable
    columns. Returns float64 of shape (rows, features)."""
    parts: list[np.ndarray] = []
    for column in columns if columns is not None else schema.kept:
        series = frame[column.name]
        missing = series.isna().to_numpy()
        if column.is_numeric:
            parts.append(np.nan_to_num(_scaled(series, column), nan=0.0)[:, None])
        else:
            values = labels(series, column).to_numpy()
            cats = categories(column)
            parts.append(np.stack([(values == c) for c in cats], axis=1).astype("float64") * _ONE_HOT_WEIGHT)
        if column.nullable:
            parts.append(missing.astype("float64")[:, None])
    if not parts:
        return np.zeros((len(frame), 0))
    return np.concatenate(parts, axis=1)


def hamming_codes(frame: pd.DataFrame, schema: Schema, *, bins: int = 10,
                  columns: list[Column] | tuple[Column, ...] | None = None) -> np.ndarray:
    """One small integer per cell, for Hamming distances (the AML paper's privacy-leakage
    coefficient): numbers cut into ``bins`` equal-width bins over the public bounds, categories by
    their position in the schema; a missing value is its own code (-1). Shape (rows, columns)."""
    out = []
    for column in columns if columns is not None else schema.kept:
        series = frame[column.name]
        if column.is_numeric:
            scaled = _scaled(series, column)
            codes = np.minimum(np.floor(scaled * bins), bins - 1)
            codes = np.where(np.isnan(codes), -1, codes).astype("int64")
        else:
            lookup = {c: i for i, c in enumerate(categories(column))}
            codes = labels(series, column).map(lookup).fillna(-1).to_numpy(dtype="int64")
        out.append(codes)
    if not out:
        return np.zeros((len(frame), 0), dtype="int64")
    return np.stack(out, axis=1)
