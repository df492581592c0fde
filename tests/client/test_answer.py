"""Answer.summary(): one plain paragraph that never reads a withheld or uninformative answer as a finding;
Answer.plot(): a forest plot of the ε-DP CI and the synthetic estimate against the claim (Agg backend)."""

from __future__ import annotations

from decimal import Decimal

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from clearinghouse_client import Answer, Preview  # noqa: E402


def answer(kind="hazard_ratio", claim=None, **figures) -> Answer:
    body = {"estimate": 0.72, "ci_low": 0.55, "ci_high": 0.94, "confidence": 0.95, "noisy_n": 684,
            "withheld": False, "informative": True, "reason": "", "synthetic_estimate": 0.7, "verdict": "supported",
            **figures}
    return Answer.from_api({
        "id": 4, "dataset": "gbsg2", "release": 1, "kind": kind, "status": "answered", "reused": False,
        "reused_from": None, "epsilon_charged": "0.5", "answer": body, "unknown_future_field": 1,
        "hypothesis": {"kind": kind, "claim": claim or {"direction": "less", "value": 1}},
        "budget": {"dataset": "gbsg2", "allocation": "2", "spent": "0.5", "left": "1.5"}})


def test_summary_of_a_supported_finding():
    text = answer().summary()
    assert text == ("Hypothesis 4 (hazard_ratio on gbsg2, synthetic release 1) claimed that the statistic is less "
                    "than 1 on the real patients. The ε-DP estimate on the real rows is 0.72, 95 % CI 0.55 to 0.94 "
                    "(noisy n 684); the synthetic release gave 0.7. The whole CI lies below 1: the claim is "
                    "supported. ε = 0.5 was charged. Budget left on gbsg2: ε = 1.5 of 2.")
    assert "\n" not in text and answer().budget.left == Decimal("1.5") and answer().epsilon_charged == Decimal("0.5")


def test_summary_never_reads_a_withheld_or_uninformative_answer_as_a_finding():
    withheld = answer(estimate=None, ci_low=None, ci_high=None, withheld=True, verdict=None,
                      reason="insufficient data: the noisy subgroup size is below the minimum of 20").summary()
    assert "withheld (insufficient data" in withheld and "not a finding either way" in withheld
    assert "supported" not in withheld and "CI" not in withheld
    flat = answer(informative=False, verdict="inconclusive", reason="the DP noise swamps the sampling error").summary()
    assert "not informative (the DP noise swamps the sampling error)" in flat and "must not be read as a finding" in flat
    assert "claim is supported" not in flat
    assert "inconclusive, neither supporting nor contradicting" in answer(verdict="inconclusive").summary()
    assert "claim is contradicted" in answer(verdict="contradicted").summary()
    reused = Answer.from_api({**_raw(), "reused": True, "reused_from": 2, "epsilon_charged": "0"}).summary()
    assert "earlier identical hypothesis (verification 2): no ε was charged" in reused


def _raw() -> dict:
    return {"id": 5, "dataset": "gbsg2", "release": 1, "kind": "mean", "answer": {"estimate": 53.0, "ci_low": 52.0,
            "ci_high": 54.0, "verdict": "supported"}, "hypothesis": {"claim": {"direction": "greater", "value": 50}}}


@pytest.mark.parametrize("kind, scale", [("hazard_ratio", "log"), ("mean", "linear")])
def test_plot_draws_the_ci_the_synthetic_estimate_and_the_claim(kind, scale):
    import matplotlib.pyplot as plt

    ax = answer(kind=kind).plot()
    try:
        ci = next(c for c in ax.collections if c.get_gid() == "ci")
        (start, end), = [tuple(x for x, _y in segment) for segment in ci.get_segments()]
        assert (start, end) == (0.55, 0.94)
        lines = {line.get_gid(): line for line in ax.get_lines()}
        assert list(lines["synthetic"].get_xdata()) == [0.7] and list(lines["estimate"].get_xdata()) == [0.72]
        assert list(lines["claim"].get_xdata()) == [1, 1]
        assert ax.get_xscale() == scale and "supported" in ax.get_title()
    finally:
        plt.close(ax.figure)
    fig, given = plt.subplots()
    assert answer(withheld=True, ci_low=None, ci_high=None, estimate=None).plot(ax=given) is given
    assert not [c for c in given.collections if c.get_gid() == "ci"] and "withheld" in given.get_title()
    plt.close(fig)


def test_preview_reads_every_epsilon_as_a_decimal():
    preview = Preview.from_api({"epsilon": 0.1, "max_epsilon": "2", "budget_left": "1.5", "suggested_epsilon": "0.3",
                                "searched": [{"epsilon": 0.3, "p_decisive": 0.85}], "expected_ci": {"low": 1, "high": 2},
                                "kind": "mean", "draws": 40, "target": 0.8, "p_decisive": 0.5, "p_withheld": 0.0})
    assert (preview.epsilon, preview.max_epsilon, preview.suggested_epsilon) == (Decimal("0.1"), Decimal("2"),
                                                                                   Decimal("0.3"))
    assert preview.searched == [{"epsilon": Decimal("0.3"), "p_decisive": 0.85}]
    assert "smallest ε reaching P(decisive) 0.8 is 0.3" in preview.summary()
