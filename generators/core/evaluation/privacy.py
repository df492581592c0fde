"""Privacy metrics of the validation report (see generators.core.evaluation.report)."""

from __future__ import annotations

from generators.core.evaluation.report import EvalContext, Metric


def metrics(ctx: EvalContext) -> list[Metric]:
    return []
