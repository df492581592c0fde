"""A ratio whose log-scale CI runs past every representable number (a fit with almost no information after
the noise) is answered, capped at e^±LOG_CI_CAP and marked uninformative; it never overflows into a 500."""

from __future__ import annotations

import math

import numpy as np
import pytest

from verification.core import kinds_models
from verification.core.kinds import LOG_CI_CAP, Request, answer, ratio_release

from .conftest import hyp

LESS = {"direction": "less", "value": 1.0}


def _request(gbsg2, gbsg2_schema, kind="hazard_ratio", params=None):
    hypothesis = hyp(gbsg2_schema, kind, params or {"exposure": {"column": "horTh", "value": "yes"}}, claim=LESS)
    return Request(frame=gbsg2, schema=gbsg2_schema, hypothesis=hypothesis, rng=np.random.default_rng(0),
                   min_subgroup=10, confidence=0.95)


@pytest.mark.parametrize("half", [800.0, math.inf, math.nan])
def test_a_ci_past_the_cap_is_capped_and_uninformative(gbsg2, gbsg2_schema, half):
    result = ratio_release(_request(gbsg2, gbsg2_schema), -0.4, half, 686, "m", {}, {}, ratio="HR")
    assert (result.ci_low, result.ci_high) == (math.exp(-LOG_CI_CAP), math.exp(LOG_CI_CAP))
    assert result.estimate == pytest.approx(math.exp(-0.4)) and not result.informative
    assert "public cap" in result.reason


def test_a_ci_inside_the_cap_is_left_as_it_is(gbsg2, gbsg2_schema):
    result = ratio_release(_request(gbsg2, gbsg2_schema), -0.4, 0.2, 686, "m", {}, {}, ratio="HR")
    assert (result.ci_low, result.ci_high) == pytest.approx((math.exp(-0.6), math.exp(-0.2)))
    assert result.informative and result.reason == ""


def test_a_hazard_ratio_with_an_unbounded_sd_is_answered_inconclusive(gbsg2, gbsg2_schema, monkeypatch):
    # the fit of a tiny release gave sd ≈ 1e3 on the log scale: math.exp raised OverflowError (a 500 preview)
    real_fit = kinds_models.fit_grouped_hazards

    def hopeless(table):
        fit = real_fit(table)
        return type(fit)(fit.beta, fit.sampling_cov * 1e6, fit.noise_cov * 1e6, fit.converged, fit.bounded)

    monkeypatch.setattr(kinds_models, "fit_grouped_hazards", hopeless)
    hypothesis = hyp(gbsg2_schema, "hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}}, claim=LESS)
    result = answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(1))
    assert result.ci_high == math.exp(LOG_CI_CAP) and result.verdict == "inconclusive" and not result.informative
