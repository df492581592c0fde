"""The validation report's pure core: real-train, real-holdout and synthetic frames in, a
:class:`Report` out. No Django imports; usable from a notebook.

>>> report = evaluate(train, holdout, synthetic, schema, target="cens", seed=0)
>>> report.value("fidelity.overall"), report.value("privacy.leakage_coefficient")
"""

from __future__ import annotations

import time

import pandas as pd

from clearinghouse.schema import Schema
from generators.core.evaluation import fidelity, privacy, survival, utility
from generators.core.evaluation.gates import DEFAULT_GATES, GateResult, check_gates, parse_gates
from generators.core.evaluation.report import SECTIONS, EvalContext, Metric, Report, ReportProgress

__all__ = [
    "DEFAULT_GATES", "EvalContext", "GateResult", "Metric", "Report", "check_gates", "default_target",
    "evaluate", "evaluate_context", "make_context", "parse_gates",
]

_SECTIONS = {"fidelity": fidelity.metrics, "survival": survival.metrics, "privacy": privacy.metrics,
             "utility": utility.metrics}


def default_target(schema: Schema) -> str | None:
    """The utility target when none is set: the survival event, else the last categorical column."""
    if schema.survival is not None:
        return schema.survival.event
    categorical = [c.name for c in schema.kept if c.type in ("categorical", "event")]
    return categorical[-1] if categorical else None


def _columns(frame: pd.DataFrame, schema: Schema, what: str) -> pd.DataFrame:
    names = [c.name for c in schema.kept]
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"the {what} rows lack the schema's columns {missing}")
    return frame[names].reset_index(drop=True)


def make_context(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *,
                 target: str | None = None, seed: int = 0) -> EvalContext:
    """The three frames cut to the schema's stored columns, with the utility target checked
    (default: :func:`default_target`)."""
    if target is None:
        target = default_target(schema)
    elif target not in schema or schema[target].type not in ("categorical", "event"):
        raise ValueError(f"target {target!r} is not a categorical or event column of the schema")
    return EvalContext(train=_columns(train, schema, "training"), holdout=_columns(holdout, schema, "holdout"),
                       synthetic=_columns(synthetic, schema, "synthetic"), schema=schema, target=target, seed=seed)


def evaluate_context(ctx: EvalContext, *, progress: ReportProgress | None = None) -> Report:
    sections: dict[str, list[Metric]] = {}
    timings: dict[str, float] = {}
    for done, name in enumerate(SECTIONS):
        started = time.perf_counter()
        sections[name] = _SECTIONS[name](ctx)
        timings[name] = round(time.perf_counter() - started, 3)
        if progress is not None:
            progress(done + 1, len(SECTIONS), name)
    schema = ctx.schema
    meta = {"rows": {"train": len(ctx.train), "holdout": len(ctx.holdout), "synthetic": len(ctx.synthetic)},
            "target": ctx.target, "seed": ctx.seed, "seconds": timings,
            "survival": ({"duration": schema.survival.duration, "event": schema.survival.event}
                         if schema.survival else None)}
    if ctx.samples:
        meta["samples"] = list(ctx.samples)
    return Report(sections=sections, meta=meta)


def evaluate(train: pd.DataFrame, holdout: pd.DataFrame, synthetic: pd.DataFrame, schema: Schema, *,
             target: str | None = None, seed: int = 0, progress: ReportProgress | None = None) -> Report:
    """Every section's metrics on the three frames. ``target`` is the utility classification
    column (default: :func:`default_target`)."""
    return evaluate_context(make_context(train, holdout, synthetic, schema, target=target, seed=seed),
                            progress=progress)
