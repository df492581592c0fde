"""The public view holds scores and synthetic statistics only: no per-column breakdown (a column's
similarity next to the synthetic statistic gives the real one back) and none of the metrics whose
value is an invertible function of one real statistic."""

from __future__ import annotations

import math

import pandas as pd

from generators.core.evaluation import evaluate
from generators.core.evaluation.report import CUSTODIAN_ONLY, HEADLINE_KEYS


def _keys(view: dict) -> set[str]:
    return {m["key"] for metrics in view["sections"].values() for m in metrics}


def _numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list):
        return [x for v in value for x in _numbers(v)]
    return [float(value)] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def test_the_public_view_holds_scores_and_synthetic_statistics_only(gbsg2_split, gbsg2_schema, copula_synthetic):
    train, holdout = gbsg2_split
    report = evaluate(train, holdout, copula_synthetic, gbsg2_schema)
    custodian, public = report.to_dict("custodian"), report.to_dict("public")
    assert CUSTODIAN_ONLY <= _keys(custodian)
    assert _keys(custodian) - _keys(public) == CUSTODIAN_ONLY
    assert not CUSTODIAN_ONLY & set(HEADLINE_KEYS)  # the headline is the same for both
    assert public["headline"] == custodian["headline"]
    for metrics in public["sections"].values():
        for metric in metrics:
            assert "details" not in metric and "real_details" not in metric, metric["key"]
    # Real statistics a breakdown would have given back (the share of each binary column, the real
    # maximum and median follow-up) appear nowhere in the public view.
    cohort = pd.concat([train, holdout], ignore_index=True)
    secrets = [float((cohort["horTh"] == "yes").mean()), float((cohort["menostat"] == "Post").mean()),
               float(cohort["time"].max())]
    shown = _numbers(public)
    for secret in secrets:
        assert not any(math.isclose(secret, x, rel_tol=1e-9) for x in shown), secret
