"""verification.core.preview on GBSG2 standing in for a synthetic release: the figures, P(decisive)
against ε, the ε search within its limits, and reproducibility from a seed (small draws: fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.verification.core.conftest import hyp
from verification.core import kinds as kinds_module
from verification.core.kinds import EXACT, apply_where
from verification.core.preview import EPSILON_GRID, NOTE, Preview, preview, simulate

AGE_OVER_40 = {"direction": "greater", "value": 40}  # GBSG2's mean age is about 53: a large effect
HR_LESS = {"direction": "less", "value": 1}
HORTH_YES = {"exposure": {"column": "horTh", "value": "yes"}}


def _preview(frame, schema, hypothesis, *, seed=0, max_epsilon=1.0, draws=10, search_draws=None,
             **kwargs) -> Preview:
    """A preview with few draws; the search uses as many as the asked ε unless told otherwise."""
    return preview(frame, schema, hypothesis, rng=np.random.default_rng(seed), min_subgroup=20,
                   max_epsilon=max_epsilon, draws=draws, search_draws=search_draws, **kwargs)


def test_it_reports_every_figure_with_its_type(gbsg2, gbsg2_schema):
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.5, claim=AGE_OVER_40)
    result = _preview(gbsg2, gbsg2_schema, h).to_dict()
    assert set(result) == {"epsilon", "draws", "p_decisive", "p_withheld", "p_uninformative", "expected_ci_width",
                           "expected_ci_width_log", "expected_ci", "synthetic_estimate", "max_epsilon",
                           "suggested_epsilon", "suggestion_reason", "target", "searched", "note"}
    assert (result["epsilon"], result["draws"], result["max_epsilon"], result["target"]) == (0.5, 10, 1.0, 0.8)
    for name in ("p_decisive", "p_withheld", "p_uninformative"):
        assert 0.0 <= result[name] <= 1.0
    assert result["expected_ci_width"] > 0 and result["expected_ci_width_log"] is None  # a mean is not a ratio
    low, high = result["expected_ci"]["low"], result["expected_ci"]["high"]
    assert low < high and math.isclose(high - low, result["expected_ci_width"], rel_tol=0.2)
    expected = EXACT["mean"](apply_where(gbsg2, h.where), gbsg2_schema, h)
    assert result["synthetic_estimate"] == pytest.approx(expected) and 50 < expected < 56
    assert low < expected < high
    assert result["note"] == NOTE and "synthetic" in NOTE and "will differ" in NOTE


def test_p_decisive_is_high_at_large_epsilon_and_low_at_tiny_epsilon(gbsg2, gbsg2_schema):
    large = simulate(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=1.0,
                                              claim=AGE_OVER_40), seed=3, draws=10, min_subgroup=20)
    tiny = simulate(gbsg2, gbsg2_schema, hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.002,
                                             claim=AGE_OVER_40), seed=3, draws=10, min_subgroup=20)
    assert large.p_decisive == 1.0 and large.p_withheld == 0.0
    assert tiny.p_decisive <= 0.3
    assert tiny.expected_ci_width is None or tiny.expected_ci_width > 10 * large.expected_ci_width


def test_a_withheld_draw_is_not_decisive(gbsg2, gbsg2_schema):
    """A count of a 20-patient subgroup at tiny ε: the noisy n falls below the minimum subgroup often."""
    h = hyp(gbsg2_schema, "count", {}, epsilon=0.01, where=[{"column": "age", "op": "<", "value": 31}],
            claim={"direction": "greater", "value": 1})
    result = simulate(gbsg2, gbsg2_schema, h, seed=1, draws=20, min_subgroup=20)
    assert result.p_withheld > 0
    assert result.p_decisive + result.p_withheld <= 1.0


def test_a_ratio_kind_reports_its_log_width(gbsg2, gbsg2_schema):
    h = hyp(gbsg2_schema, "hazard_ratio", HORTH_YES, epsilon=1.0, claim=HR_LESS)
    result = _preview(gbsg2, gbsg2_schema, h, draws=5, search_draws=3)
    low, high = result.expected_ci["low"], result.expected_ci["high"]
    assert 0 < low < high and result.expected_ci_width > 0
    assert result.expected_ci_width_log == pytest.approx(math.log(high / low), rel=0.5)
    assert result.synthetic_estimate is not None and 0 < result.synthetic_estimate < 2


def test_it_suggests_the_smallest_decisive_epsilon_within_the_limit(gbsg2, gbsg2_schema):
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=1.0, claim={"direction": "greater", "value": 52})
    result = _preview(gbsg2, gbsg2_schema, h, max_epsilon=2.0, draws=10)
    assert result.suggested_epsilon in EPSILON_GRID and result.suggested_epsilon <= 2.0
    searched = {row["epsilon"]: row["p_decisive"] for row in result.searched}
    assert searched[result.suggested_epsilon] >= 0.8
    smaller = [e for e in searched if e < result.suggested_epsilon]
    assert all(searched[e] < 0.8 for e in smaller)  # the grid point just below was tried and fell short
    below = max(e for e in EPSILON_GRID if e < result.suggested_epsilon) if result.suggested_epsilon > 0.05 else None
    assert below is None or below in searched
    assert len(searched) <= 6  # bisection, not every grid point
    assert "smallest" in result.suggestion_reason


def test_it_suggests_nothing_when_the_limit_is_tiny(gbsg2, gbsg2_schema):
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.01, claim=AGE_OVER_40)
    tiny = _preview(gbsg2, gbsg2_schema, h, max_epsilon=0.01, draws=5)
    assert tiny.suggested_epsilon is None and tiny.max_epsilon == 0.01
    assert "Even at ε = 0.01" in tiny.suggestion_reason
    for left in (0.0, 0.0005):  # nothing left, or less than the smallest ε a hypothesis may ask for
        nothing = _preview(gbsg2, gbsg2_schema, h, max_epsilon=left, draws=5)
        assert nothing.suggested_epsilon is None and nothing.max_epsilon == left
        assert "No ε is left" in nothing.suggestion_reason
        assert nothing.p_decisive == tiny.p_decisive  # the asked ε is still previewed (same seed)


def test_it_suggests_nothing_when_no_allowed_epsilon_is_decisive(gbsg2, gbsg2_schema):
    """Mean age > 53 (about the mean itself) is not decided at any ε ≤ 0.3 with 686 patients."""
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.3,
            claim={"direction": "greater", "value": round(float(gbsg2["age"].astype(float).mean()), 1)})
    result = _preview(gbsg2, gbsg2_schema, h, max_epsilon=0.3, draws=10)
    assert result.suggested_epsilon is None
    assert "Even at ε = 0.3" in result.suggestion_reason
    assert [row["epsilon"] for row in result.searched] == [0.3]


def test_a_limit_between_grid_points_is_tried_itself(gbsg2, gbsg2_schema):
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.04, claim=AGE_OVER_40)
    result = _preview(gbsg2, gbsg2_schema, h, max_epsilon=0.0425, draws=5)
    assert result.suggested_epsilon == 0.0425  # the grid starts at 0.05; what is left is tried


def test_it_is_reproducible_from_a_seed_and_varies_without_one(gbsg2, gbsg2_schema):
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.05, claim={"direction": "greater", "value": 52})
    first = _preview(gbsg2, gbsg2_schema, h, seed=7, draws=8)
    assert _preview(gbsg2, gbsg2_schema, h, seed=7, draws=8) == first
    assert _preview(gbsg2, gbsg2_schema, h, seed=8, draws=8).expected_ci != first.expected_ci


def test_it_only_calls_the_engines_answer_on_the_frame_it_is_given(gbsg2, gbsg2_schema, monkeypatch):
    seen = []
    real = kinds_module.answer

    def spy(frame, *args, **kwargs):
        seen.append((id(frame), id(kwargs.get("synthetic"))))
        return real(frame, *args, **kwargs)

    monkeypatch.setattr("verification.core.preview.answer", spy)
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.5, claim=AGE_OVER_40)
    result = _preview(gbsg2, gbsg2_schema, h, draws=4)
    # the release is both the stand-in for the real rows and the public release the mechanism reads
    assert seen and set(seen) == {(id(gbsg2), id(gbsg2))}
    assert len(seen) == 4 * len(result.searched) + (0 if 0.5 in {r["epsilon"] for r in result.searched} else 4)


def test_the_search_reuses_the_first_draws_at_the_asked_epsilon(gbsg2, gbsg2_schema):
    """Common random numbers: the asked ε's first ``search_draws`` draws are exactly the search's simulation."""
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.05, claim={"direction": "greater", "value": 52})
    result = _preview(gbsg2, gbsg2_schema, h, seed=5, draws=12, search_draws=6)
    seed = int(np.random.default_rng(5).integers(0, 2**63 - 1))
    alone = simulate(gbsg2, gbsg2_schema, h, seed=seed, draws=6, min_subgroup=20)
    assert {r["epsilon"]: r["p_decisive"] for r in result.searched}[0.05] == alone.p_decisive
    assert result.draws == 12


def test_it_refuses_no_draws_and_a_bad_target(gbsg2, gbsg2_schema):
    h = hyp(gbsg2_schema, "mean", {"column": "age"}, epsilon=0.5, claim=AGE_OVER_40)
    with pytest.raises(ValueError):
        _preview(gbsg2, gbsg2_schema, h, draws=0)
    with pytest.raises(ValueError):
        _preview(gbsg2, gbsg2_schema, h, search_draws=0)
    with pytest.raises(ValueError):
        _preview(gbsg2, gbsg2_schema, h, target=0)
