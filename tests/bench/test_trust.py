"""The trust benchmark's battery builder, non-private references and verdict metrics (bench/trust/).

Fast: no DP answers, one small battery on GBSG2 (the real rows stand in for the release)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.trust import battery, metrics, reference
from bench.trust.cohorts import SCHEMAS, load_schema, simulate, typed


def row(dp, np_, dp_ci=(0.0, 1.0), np_ci=(0.0, 1.0), target=0.5, ratio=False):
    return {"dp_verdict": dp, "np_verdict": np_, "dp_ci": None if dp is None else list(dp_ci), "np_ci": list(np_ci),
            "target": target, "ratio": ratio}


def test_width_is_on_the_log_scale_for_ratios_and_none_when_open():
    assert metrics.width([1.0, 3.0], ratio=False) == 2.0
    assert metrics.width([0.5, 2.0], ratio=True) == pytest.approx(math.log(4))
    assert metrics.width([0.5, None], ratio=True) is None
    assert metrics.width([0.0, 2.0], ratio=True) is None
    assert metrics.width_ratio([0.5, 2.0], [1.0, 2.0], ratio=True) == pytest.approx(2.0)


def test_covers_treats_an_open_side_as_infinite():
    assert metrics.covers([1.0, None], 1e9) is True
    assert metrics.covers([1.0, 2.0], 3.0) is False
    assert metrics.covers(None, 1.0) is None
    assert metrics.covers([1.0, 2.0], None) is None


def test_summarize_counts_false_verdicts_opposites_power_and_withheld():
    rows = [row("supported", "supported"), row("supported", "inconclusive"), row("contradicted", "supported"),
            row(None, "contradicted"), row("inconclusive", "inconclusive", dp_ci=(0.0, 2.0), target=3.0)]
    s = metrics.summarize(rows)
    assert s["answers"] == 5 and s["withheld"] == 1
    assert s["agreement"] == pytest.approx(2 / 5)
    assert s["false_supported"] == pytest.approx(1 / 5)  # supported where the reference is not
    assert s["false_contradicted"] == pytest.approx(1 / 5)
    assert s["opposite"] == 1
    assert s["decisive_reference"] == 3 and s["power"] == pytest.approx(1 / 3)
    assert s["coverage"] == pytest.approx(3 / 4) and s["coverage_n"] == 4  # the withheld answer has no CI
    assert s["width_ratio_median"] == pytest.approx(1.0)
    assert metrics.is_opposite("contradicted", "supported") and not metrics.is_opposite("supported", None)


def test_claims_follow_the_release_estimate():
    assert battery.claim_for("hazard_ratio", 0.8) == {"direction": "less", "value": 1}
    assert battery.claim_for("logrank", 1.2) == {"direction": "greater", "value": 1}
    assert battery.claim_for("correlation", -0.1) == {"direction": "less", "value": 0}
    assert battery.claim_for("mean", 50.0, spread=10.0) == {"direction": "greater", "value": 49.0}
    assert battery.claim_for("proportion", 0.4)["value"] == pytest.approx(0.37)
    assert battery.claim_for("km_median", 1000.0) == {"direction": "greater", "value": 900.0}


@pytest.fixture(scope="module")
def gbsg2():
    from bench.common import gbsg2 as load

    return load()


def test_candidates_cover_every_kind_within_the_caps_and_parse(gbsg2):
    frame, schema = gbsg2
    found = battery.candidates(schema)
    tags = [t for t, _, _ in found]
    for tag, cap in battery.CAPS.items():
        assert tags.count(tag) <= cap
    assert {s["kind"] for _, _, s in found} == {
        "hazard_ratio", "logistic_odds_ratio", "logrank", "km_median", "survival_at", "proportion", "mean",
        "quantile", "difference_in_means", "difference_in_proportions", "correlation"}
    for tag, _, spec in found:
        if tag.endswith("_cat"):
            assert "value" in spec["params"]["exposure"]
        if tag.endswith("_num"):
            assert "value" not in spec["params"]["exposure"]
        if tag == "hr_adj3":
            assert len(spec["params"]["adjust_for"]) == 2
        if spec["kind"] == "survival_at":
            spec = {**spec, "params": {**spec["params"], "time": 1000}}
        battery.parse({**spec, "claim": {"direction": "greater", "value": 1}}, schema)


def test_build_takes_claims_and_verdicts_from_the_release(gbsg2):
    frame, schema = gbsg2
    entries = battery.build(schema, frame)
    assert len(entries) >= 30
    for entry in entries:
        assert entry["synthetic"]["verdict"] in ("supported", "contradicted", "inconclusive")
        if entry["kind"] not in ("hazard_ratio", "logistic_odds_ratio"):  # (the slow fits: once is enough)
            again = reference.reference(frame, schema, battery.parse(entry["spec"], schema))
            assert again["verdict"] == entry["synthetic"]["verdict"]
    hr = next(e for e in entries if e["label"] == "HR horTh=yes")
    assert hr["spec"]["claim"] == {"direction": "less", "value": 1}  # hormonal therapy lowers the hazard in GBSG2
    assert 0.5 < hr["synthetic"]["estimate"] < 0.9
    times = {e["spec"]["params"]["time"] for e in entries if e["kind"] == "survival_at"}
    assert len(times) == 1 and 1000 < times.pop() < 3000


def test_reference_quantile_and_proportion_intervals():
    schema = load_schema(SCHEMAS / "simulated.schema.json")
    frame = typed(simulate(400, np.random.default_rng(0)), schema)
    h = battery.parse({"kind": "quantile", "params": {"column": "nodes", "q": 0.5},
                       "claim": {"direction": "greater", "value": -1}}, schema)
    r = reference.reference(frame, schema, h)
    assert r["estimate"] == 0.0 and r["ci"] == [0.0, 0.0] and r["verdict"] == "supported"
    h = battery.parse({"kind": "proportion", "params": {"column": "treat", "value": "yes"},
                       "claim": {"direction": "greater", "value": 0.9}}, schema)
    r = reference.reference(frame, schema, h)
    p = float((frame["treat"] == "yes").mean())
    half = 1.959964 * math.sqrt(p * (1 - p) / 400)
    assert r["estimate"] == pytest.approx(p) and r["ci"] == pytest.approx([p - half, p + half], rel=1e-5)
    assert r["verdict"] == "contradicted"


def test_simulation_has_the_designed_shape():
    frame = simulate(20_000, np.random.default_rng(1))
    assert 0.55 < (frame["nodes"] == 0).mean() < 0.65
    deaths = frame.loc[frame["event"] == 1, "time"]
    assert (deaths <= 100).mean() > 0.2  # early-clustered deaths: 100 days is under 3 % of follow-up
    assert frame["time"].max() <= 3650 and set(frame["grade"]) == {1, 2, 3}
    assert isinstance(frame, pd.DataFrame)
