"""The one interface every generator implements, and what they share: conditions, saving, seeds."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import pandas as pd
import torch

from clearinghouse.schema import Column, Schema
from generators.core.transformer import EVENT_CATEGORIES

__all__ = [
    "ConditionError", "Conditions", "Generator", "Hyperparameters", "Progress", "TrainingDiverged",
    "resolve_device",
]

#: ``progress(epoch, total_epochs, losses)``, called after every epoch. It may raise to stop training.
Progress = Callable[[int, int, dict[str, float]], None]
#: ``{"horTh": "yes"}`` (only these), ``{"tgrade": ["II", "III"]}`` (only these, in their trained
#: proportions) or ``{"horTh": {"yes": 0.5, "no": 0.5}}`` (rebalanced proportions).
Conditions = Mapping[str, Any]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"


class ConditionError(ValueError):
    """The conditions name an unknown column or category, or one the model never saw."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class Hyperparameters:
    """Subclasses list their hyperparameters as dataclass fields with defaults."""

    @classmethod
    def parse(cls, values: Mapping[str, Any] | None) -> "Hyperparameters":
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        parsed = cls(**values)
        parsed.check()
        return parsed

    def check(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            expected = type(f.default)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if expected in (int, float) and (isinstance(value, bool) or not isinstance(value, expected)):
                raise ValueError(f"hyperparameter {f.name} must be {'an integer' if expected is int else 'a number'}")
            if expected in (int, float) and (not math.isfinite(value) or value <= 0):
                raise ValueError(f"hyperparameter {f.name} must be positive")
            if expected is str and not isinstance(value, str):
                raise ValueError(f"hyperparameter {f.name} must be a string")


def resolve_device(device: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU. ``cuda`` without a GPU is an error, not a silent fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but CUDA is not available on this machine")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    return torch.device(device)


def seeded(seed: int, device: torch.device) -> tuple[np.random.Generator, torch.Generator]:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return np.random.default_rng(seed), gen


def discrete_columns(schema: Schema) -> list[Column]:
    return [c for c in schema.kept if c.type in ("categorical", "event")]


def categories_of(column: Column) -> tuple[str, ...]:
    return EVENT_CATEGORIES if column.type == "event" else column.categories


def category_counts(frame: pd.DataFrame, schema: Schema) -> dict[str, dict[str, int]]:
    """Training rows per category (kept inside the model, never published)."""
    out = {}
    for column in discrete_columns(schema):
        values = frame[column.name].astype("string")
        out[column.name] = {c: int((values == c).sum()) for c in categories_of(column)}
    return out


class Generator(ABC):
    """fit → sample → save/load. Subclasses implement ``_fit``, ``_sample_rows`` and the state hooks."""

    name: ClassVar[str]
    Hyper: ClassVar[type[Hyperparameters]] = Hyperparameters
    #: Refuse conditions whose rows the model would have to find by rejection at a lower rate.
    min_acceptance: ClassVar[float] = 1e-3

    def __init__(self, **hyperparameters: Any):
        self.hyper = self.Hyper.parse(hyperparameters)
        self.schema: Schema | None = None
        self.device = torch.device("cpu")
        self.counts: dict[str, dict[str, int]] = {}
        self.history: list[dict[str, float]] = []

    # ------------------------------------------------------------------ public interface
    def fit(self, table: pd.DataFrame, schema: Schema, *, epochs: int, seed: int, device: str = "cpu",
            progress: Progress | None = None) -> "Generator":
        if not _is_int(epochs) or epochs <= 0:
            raise ValueError("epochs must be a positive integer")
        if not _is_int(seed):
            raise ValueError("seed must be an integer")
        missing = [c.name for c in schema.kept if c.name not in table.columns]
        if missing:
            raise ValueError(f"the table lacks schema column(s) {', '.join(missing)}")
        self.schema = schema
        self.device = resolve_device(device)
        self.counts = category_counts(table, schema)
        torch.manual_seed(seed)  # layer initialisation; every draw during training uses explicit generators
        self._fit(table[[c.name for c in schema.kept]], epochs=epochs, seed=seed, progress=progress)
        return self

    def sample(self, n: int, *, conditions: Conditions | None = None, seed: int = 0) -> pd.DataFrame:
        """``n`` synthetic rows; the same seed on the same device gives the same rows."""
        if self.schema is None:
            raise RuntimeError("fit or load the model first")
        if not _is_int(n) or n <= 0:
            raise ValueError("n must be a positive integer")
        if not _is_int(seed):
            raise ValueError("seed must be an integer")
        groups = self.plan(n, conditions or {})
        rng, gen = seeded(seed, self.device)
        parts = [self._sample_fixed(count, fixed, rng, gen) for count, fixed in groups if count > 0]
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        if len(parts) > 1:  # interleave the groups
            frame = frame.iloc[rng.permutation(len(frame))].reset_index(drop=True)
        return frame

    def save(self, directory: str | os.PathLike) -> None:
        """Write ``config.json`` and ``weights.pt`` (tensors only) atomically: whole, or not at all."""
        if self.schema is None:
            raise RuntimeError("fit or load the model first")
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        old = None
        try:
            config = {"model": self.name, "hyperparameters": asdict(self.hyper), "schema": self.schema.to_dict(),
                      "counts": self.counts, "history": self.history[-5:], "state": self._config()}
            (staging / CONFIG_FILE).write_text(json.dumps(config, indent=1, allow_nan=False), encoding="utf-8")
            torch.save({k: v.detach().cpu() for k, v in self._tensors().items()}, staging / WEIGHTS_FILE)
            if target.exists():  # a directory cannot be replaced in one step: move the old one aside first
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
                os.replace(target, old / "model")
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if old is not None:
                if not target.exists() and (old / "model").exists():
                    os.replace(old / "model", target)
                shutil.rmtree(old, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: str | os.PathLike, *, device: str = "cpu") -> "Generator":
        directory = Path(directory)
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        if config["model"] != cls.name:
            raise ValueError(f"{directory} holds a {config['model']!r} model, not {cls.name!r}")
        self = cls(**config["hyperparameters"])
        self.schema = Schema.from_dict(config["schema"])
        self.device = resolve_device(device)
        self.counts = config["counts"]
        self.history = config.get("history", [])
        tensors = torch.load(directory / WEIGHTS_FILE, map_location=self.device, weights_only=True)
        self._restore(config["state"], tensors)
        return self

    # ------------------------------------------------------------------ conditions
    def plan(self, n: int, conditions: Conditions) -> list[tuple[int, dict[str, str]]]:
        """Split ``n`` into groups of rows with fixed categories. Raises :class:`ConditionError`."""
        assert self.schema is not None
        if not isinstance(conditions, Mapping):
            raise ConditionError("conditions: an object of {column: category, [categories] or {category: share}}")
        fixed: dict[str, str] = {}
        split: tuple[str, dict[str, float]] | None = None
        for name, wanted in conditions.items():
            if name not in self.schema or self.schema[name].type == "identifier":
                raise ConditionError(f"conditions: unknown column {name!r}")
            column = self.schema[name]
            if column.type not in ("categorical", "event"):
                raise ConditionError(f"conditions: column {name!r} is {column.type}; only categorical and event "
                                     "columns can be conditioned on")
            if isinstance(wanted, (int, str)) and not isinstance(wanted, bool):
                self._check_category(column, str(wanted))
                fixed[name] = str(wanted)
                continue
            if isinstance(wanted, list) and wanted:
                wanted = list(dict.fromkeys(str(v) for v in wanted))  # a category listed twice counts once
                for value in wanted:
                    self._check_category(column, value)
                total = sum(self.counts[name][v] for v in wanted)
                shares = {v: self.counts[name][v] / total for v in wanted}
            elif isinstance(wanted, dict) and wanted:
                shares = {}
                for value, share in wanted.items():
                    self._check_category(column, str(value))
                    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                        raise ConditionError(f"conditions.{name}.{value}: a proportion between 0 and 1")
                    shares[str(value)] = float(share)
                if not math.isclose(sum(shares.values()), 1.0, abs_tol=1e-6):
                    raise ConditionError(f"conditions.{name}: proportions must add up to 1")
            else:
                raise ConditionError(f"conditions.{name}: a category, a list of categories, or "
                                     "{category: proportion}")
            if split is not None:
                raise ConditionError("conditions: at most one column may have several categories or proportions")
            split = (name, shares)
        if split is None:
            return [(n, fixed)]
        name, shares = split
        counts = _largest_remainder(n, shares)
        return [(count, {**fixed, name: value}) for value, count in counts.items()]

    def _check_category(self, column: Column, value: str) -> None:
        if value not in categories_of(column):
            raise ConditionError(f"conditions.{column.name}: unknown category {value!r} "
                                 f"(declared: {', '.join(categories_of(column))})")
        if self.counts.get(column.name, {}).get(value, 0) == 0:
            raise ConditionError(f"conditions.{column.name}: category {value!r} has no training rows, so the "
                                 "model cannot generate it")

    def _sample_fixed(self, n: int, fixed: dict[str, str], rng: np.random.Generator,
                      gen: torch.Generator) -> pd.DataFrame:
        """Rows with the ``fixed`` categories. Default: draw and keep the matching rows (rejection)."""
        if not fixed:
            return self._sample_rows(n, rng, gen)
        return self._reject(n, fixed, lambda batch: self._sample_rows(batch, rng, gen))

    def _reject(self, n: int, fixed: dict[str, str], draw: Callable[[int], pd.DataFrame]) -> pd.DataFrame:
        """``n`` rows of ``draw(batch)`` that have the ``fixed`` categories. Batches are sized from the
        acceptance so far (at most 200,000 rows); once 50,000 rows are drawn, an acceptance below
        :attr:`min_acceptance` raises :class:`ConditionError`, so the loop always ends."""
        kept: list[pd.DataFrame] = []
        have, drawn = 0, 0
        batch = min(int(1.5 * n / self._expected_share(fixed)) + 32, 200_000)
        while have < n:
            rows = draw(batch)
            drawn += batch
            mask = np.ones(len(rows), dtype=bool)
            for name, value in fixed.items():
                mask &= (rows[name].astype("string") == value).fillna(False).to_numpy()
            if mask.any():
                kept.append(rows[mask])
                have += int(mask.sum())
            if have < n and drawn >= 50_000 and have / drawn < self.min_acceptance:
                raise ConditionError(f"conditions {fixed} are too rare under this model "
                                     f"({have} of {drawn} draws matched)")
            batch = min(int(1.5 * (n - have) * drawn / max(have, 1)) + 32, 200_000)
        return pd.concat(kept, ignore_index=True).iloc[:n].reset_index(drop=True)

    def _expected_share(self, fixed: dict[str, str]) -> float:
        """The share of rows with the ``fixed`` categories in training (as if independent), to size a first draw."""
        share = 1.0
        for name, value in fixed.items():
            counts = self.counts.get(name, {})
            share *= counts.get(value, 0) / max(sum(counts.values()), 1)
        return max(share, self.min_acceptance)

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _fit(self, table: pd.DataFrame, *, epochs: int, seed: int, progress: Progress | None) -> None: ...

    @abstractmethod
    def _sample_rows(self, n: int, rng: np.random.Generator, gen: torch.Generator) -> pd.DataFrame: ...

    @abstractmethod
    def _config(self) -> dict[str, Any]:
        """JSON-able state (no tensors)."""

    @abstractmethod
    def _tensors(self) -> dict[str, torch.Tensor]:
        """Named tensors (module state_dicts, flattened with prefixes)."""

    @abstractmethod
    def _restore(self, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None: ...

    def _report(self, progress: Progress | None, epoch: int, epochs: int, losses: dict[str, float]) -> None:
        for key, value in losses.items():
            if not math.isfinite(value):
                raise TrainingDiverged(f"the {key} loss became {value} at epoch {epoch} of {epochs}")
        self.history.append({"epoch": epoch, **losses})
        if progress is not None:
            progress(epoch, epochs, losses)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _largest_remainder(n: int, shares: dict[str, float]) -> dict[str, int]:
    """Counts that add up to ``n`` exactly: floors of ``n·share``, then +1 for the largest remainders."""
    total = sum(shares.values())  # within 1e-6 of 1; normalise so the floors never exceed n
    raw = {k: n * v / total for k, v in shares.items()}
    counts = {k: int(math.floor(v)) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = prefix + "."
    return {k[len(start):]: v for k, v in tensors.items() if k.startswith(start)}
