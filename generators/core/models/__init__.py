"""The model registry: every generator behind one interface (see ``base.Generator``)."""

from __future__ import annotations

import json
from pathlib import Path

from generators.core.models.base import ConditionError, Generator, TrainingDiverged
from generators.core.models.copula import GaussianCopula
from generators.core.models.ctgan import CTGAN
from generators.core.models.flow import SplineFlow

MODELS: dict[str, type[Generator]] = {m.name: m for m in (CTGAN, SplineFlow, GaussianCopula)}

__all__ = ["MODELS", "ConditionError", "Generator", "TrainingDiverged", "load_model", "make_model"]


def make_model(name: str, **hyperparameters) -> Generator:
    try:
        cls = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}") from None
    return cls(**hyperparameters)


def load_model(directory: str | Path, *, device: str = "cpu") -> Generator:
    """Load a saved model of whichever kind ``config.json`` names (weights load with ``weights_only=True``)."""
    name = json.loads((Path(directory) / "config.json").read_text(encoding="utf-8")).get("model")
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"{directory} holds an unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    return MODELS[name].load(directory, device=device)
