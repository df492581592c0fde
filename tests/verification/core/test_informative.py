"""Issue 11, part 3: an estimate that sits on a clamp bound or is swamped by noise is returned
(it was paid for) with ``informative: false``, a plain reason, and an inconclusive verdict.

GBSG2's hormonal-therapy hazard ratio adjusted for age at ε = 1 is answered by sample-and-aggregate
(686 rows, 6 blocks; age is numeric): the README's request used to come back as HR 20.09 = e³, the
clamp bound, with a verdict. The same HR without the numeric adjuster is answered from a noisy exit
table and is informative at ε = 1. Fixed seeds; at ε = 50 both are informative in every one of 20 runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from verification.core import answer
from verification.core.aggregate import LOG_BOUND, NOISE_DOMINANCE
from tests.verification.core.conftest import hyp

HR = {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["age"]}
TABLE_HR = {"exposure": {"column": "horTh", "value": "yes"}}
LESS = {"direction": "less", "value": 1.0}


def test_a_clamped_hazard_ratio_is_flagged_and_never_a_finding(gbsg2, gbsg2_schema):
    hypothesis = hyp(gbsg2_schema, "hazard_ratio", HR, epsilon=1.0, claim=LESS)
    flagged = 0
    for seed in range(20):
        result = answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(seed))
        assert not result.withheld and result.estimate is not None  # paid for: still shown
        if not result.informative:
            flagged += 1
            assert result.verdict == "inconclusive"
            assert result.reason and ("clamp" in result.reason or "noise" in result.reason
                                      or "whole public range" in result.reason)
        on_bound = abs(math.log(result.estimate)) >= LOG_BOUND - 1e-9
        assert not (on_bound and result.informative)
        noise, sampling = result.details["noise_sd_log"], result.details["sampling_sd_log"]
        assert not (noise > NOISE_DOMINANCE * sampling and result.informative)
    assert flagged >= 15  # 686 patients at ε = 1: the mechanism cannot say more


@pytest.mark.parametrize("params,epsilon", [(HR, 50.0), (TABLE_HR, 50.0), (TABLE_HR, 1.0)])
def test_a_precise_hazard_ratio_is_informative(gbsg2, gbsg2_schema, params, epsilon):
    hypothesis = hyp(gbsg2_schema, "hazard_ratio", params, epsilon=epsilon, claim=LESS)
    # Sample-and-aggregate's HR at ε = 50 is informative for about 96 % of seeds (10-11 of 200 not: a block
    # spread near the clamp), so 20 seeds in a row all pass only 44 % of the time: asserted on 17 of 20 or more
    # (P(fail) < 1 % at 96 %); every informative answer has an empty reason and a verdict that is not a reversal.
    informative = 0
    for seed in range(20):
        result = answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(seed))
        assert result.verdict in ("supported", "inconclusive")
        if result.informative:
            informative += 1
            assert result.reason == ""
        else:
            assert result.reason and result.verdict == "inconclusive"
    assert informative >= 17


@pytest.mark.parametrize("kind,params", [("mean", {"column": "age"}), ("count", {})])
def test_the_other_kinds_stay_informative(gbsg2, gbsg2_schema, kind, params):
    result = answer(gbsg2, gbsg2_schema, hyp(gbsg2_schema, kind, params, epsilon=1.0),
                    rng=np.random.default_rng(0))
    assert result.informative and result.to_dict()["informative"] is True
