"""The engine at a million rows (issue 15): what was made cheaper keeps its answers.

* a correlation's settings below the tuning cap are the ones the engine chose before the cap (values
  recorded from that code on the same seeded release); above it they are a deterministic function
  of the release (a subsample seeded by its size);
* randomized rounding takes random bits only for entries with a fractional part (whole numbers are
  rounded with certainty), and still has the exact law (tests/verification/core/test_exact_noise.py);
* the DP Newton steps read a seeded subsample of a release larger than ``NEWTON_ROWS``: the answer
  is the one the subsample itself gives as the release, and the same for the same seed.
Fixed seeds; exact comparisons unless a tolerance is stated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clearinghouse.schema import Schema
from tests.verification.core.conftest import hyp
from verification.core import kinds, kinds_models, newton, tuning
from verification.core.mechanisms import noisy_vector_sum
from verification.core.noise import NoiseSource, round_randomly


def skewed_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.lognormal(3, 0.9, n)
    return x, 0.4 * np.log(x) + rng.normal(0, 5, n) + 20


# --- correlation tuning --------------------------------------------------------------------------------


def test_it_tunes_a_correlation_below_the_cap_as_before(monkeypatch):
    # step 1 only (ranges, centres, split): the tighter product bounds of step 2 came later
    monkeypatch.setattr(tuning, "_product_bounds", lambda *args: (None,))
    x, y = skewed_pairs(3000, 20261204)
    settings = tuning.correlation_settings(x, y, (0, 500), (0, 100), 1.0, 10)
    # recorded from correlation_settings before the cap and the cached resamples (commit 47da27a)
    before = {"clip_x": [0, 203.14817895128232], "clip_y": [6.1443826156238615, 35.24072908722132],
              "center_x": 101.57408947564116, "center_y": 21.173376809286744, "clip_bias_z": 0.005078030508089443,
              "clip_bias_sd_z": 0.004392443949909394, "tuned_on_release": True}
    split = {"count": 0.0778603814726444, "sum_x": 0.08565979634782195, "sum_y": 0.3110605145373281,
             "sum_xx": 0.07412887336178375, "sum_yy": 0.06756382786809581, "sum_xy": 0.38372660641232603}
    details = settings.details()
    for key, value in before.items():
        assert details[key] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    assert settings.split == pytest.approx(split, rel=1e-12)
    assert settings.bias_z != 0  # the clipping-bias path (the resampled variance) was exercised


def test_a_large_release_is_tuned_on_a_seeded_subsample(monkeypatch):
    x, y = skewed_pairs(3000, 7)
    full = tuning.correlation_settings(x, y, (0, 500), (0, 100), 1.0, 10)
    monkeypatch.setattr(tuning, "TUNING_ROWS", 800)
    np.random.seed(1)  # the global generator plays no part
    first = tuning.correlation_settings(x, y, (0, 500), (0, 100), 1.0, 10)
    np.random.seed(2)
    again = tuning.correlation_settings(x, y, (0, 500), (0, 100), 1.0, 10)
    assert first == again and first.tuned
    assert first != full  # the subsample, not the whole release, was read
    rows = tuning.release_sample(3000, 800)
    assert len(rows) == 800 and len(np.unique(rows)) == 800 and (np.diff(rows) > 0).all()
    assert np.array_equal(rows, tuning.release_sample(3000, 800))
    assert tuning.release_sample(800, 800) is None and tuning.release_sample(10, 800) is None


# --- randomized rounding ---------------------------------------------------------------------------------


def test_whole_numbers_take_no_random_bits():
    rounded = round_randomly(np.array([[0.0, 3.0], [-2.0, 7.0]]), NoiseSource.seeded(9))
    assert rounded.tolist() == [[0, 3], [-2, 7]] and rounded.dtype == np.int64
    source, fresh = NoiseSource.seeded(9), NoiseSource.seeded(9)
    round_randomly(np.array([0.0, -5.0, 12.0]), source)
    assert source.getrandbits(64) == fresh.getrandbits(64)  # nothing was drawn
    # the fractional entries get the same words whatever whole numbers sit between them
    mixed = round_randomly(np.array([0.0, 2.5, 4.0, -1.25, 0.0]), NoiseSource.seeded(4))
    alone = round_randomly(np.array([2.5, -1.25]), NoiseSource.seeded(4))
    assert mixed[[1, 3]].tolist() == alone.tolist() and mixed[[0, 2, 4]].tolist() == [0, 4, 0]
    assert round_randomly(np.array(1.0), NoiseSource.seeded(1)).shape == ()


def test_a_vector_sum_leaves_its_rows_alone():
    rows = np.random.default_rng(3).normal(size=(50, 3))
    kept = rows.copy()
    noisy_vector_sum(rows, 1.0, 1.0, np.random.default_rng(0))
    assert np.array_equal(rows, kept)


# --- DP Newton on a release subsample ----------------------------------------------------------------------

SCHEMA = Schema.from_dict({"columns": [
    {"name": "nodes", "type": "integer", "min": 0, "max": 50},
    {"name": "y", "type": "event"},
]})


def cohort(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    nodes = np.where(rng.random(n) < 0.5, 0, np.minimum(rng.geometric(0.2, n), 50))
    return pd.DataFrame({"nodes": nodes, "y": (rng.random(n) < 1 / (1 + np.exp(1.0 - 0.1 * nodes))).astype(int)})


def test_the_newton_steps_read_a_seeded_subsample_of_a_large_release(monkeypatch):
    real, release = cohort(2000, 1), cohort(1200, 2)
    hypothesis = hyp(SCHEMA, "logistic_odds_ratio", {"outcome": {"column": "y", "value": 1},
                                                     "exposure": {"column": "nodes"}})

    def ask(synthetic: pd.DataFrame) -> tuple:
        newton._bootstraps.clear()
        result = kinds.answer(real, SCHEMA, hypothesis, rng=np.random.default_rng(5), synthetic=synthetic)
        assert result.method.startswith("DP Newton")
        return result.estimate, result.ci_low, result.ci_high, result.details["start"]

    whole = ask(release)
    monkeypatch.setattr(kinds_models, "NEWTON_ROWS", 400)
    capped = ask(release)
    assert capped == ask(release)  # deterministic: the subsample is seeded by the release's size
    assert capped != whole
    # exactly the answer the subsample gives as the release (the same 400 rows, the same steps)
    assert capped == ask(release.iloc[tuning.release_sample(len(release), 400)])


# --- where: only the hypothesis's columns are copied -----------------------------------------------------


def test_a_filtered_answer_copies_only_the_hypothesis_columns_and_answers_as_before(gbsg2, gbsg2_schema):
    where = [{"column": "age", "op": ">", "value": 50}]
    cases = [("count", {}), ("mean", {"column": "tsize"}),
             ("odds_ratio", {"a": {"column": "horTh", "value": "yes"}, "b": {"column": "cens", "value": 1}}),
             ("hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}, "adjust_for": ["pnodes"]}),
             ("km_median", {"group": {"column": "tgrade", "value": "II"}})]
    for kind, params in cases:
        hypothesis = hyp(gbsg2_schema, kind, params, where=where)
        columns = kinds.hypothesis_columns(gbsg2_schema, hypothesis)
        assert "age" in columns and "pid" not in columns
        assert ({"time", "cens"} <= set(columns)) is (kind in ("hazard_ratio", "km_median"))
        assert "progrec" not in columns  # a column the hypothesis does not name
        narrow = kinds.apply_where(gbsg2, hypothesis.where, columns)
        assert list(narrow.columns) == columns
        pd.testing.assert_frame_equal(narrow, kinds.apply_where(gbsg2, hypothesis.where)[columns])
        newton._bootstraps.clear()
        result = kinds.answer(gbsg2, gbsg2_schema, hypothesis, rng=np.random.default_rng(3), synthetic=gbsg2)
        # the kind on the whole filtered frame (every column), with the same seed, answers the same
        whole = kinds.KINDS[kind].compute(kinds.Request(
            frame=kinds.apply_where(gbsg2, hypothesis.where), schema=gbsg2_schema, hypothesis=hypothesis,
            rng=np.random.default_rng(3), min_subgroup=10, confidence=0.95,
            synthetic=kinds.apply_where(gbsg2, hypothesis.where)))
        assert (result.estimate, result.ci_low, result.ci_high, result.noisy_n) == \
            (whole.estimate, whole.ci_low, whole.ci_high, whole.noisy_n), kind



def test_a_vector_sum_in_blocks_is_the_one_pass_sum(monkeypatch):
    """Blocks of rows (VECTOR_SUM_BLOCK entries) are clipped, rounded and summed as one pass over all rows
    would: rows already on the grid take no random bits, so at a fixed seed the released sums are equal;
    other rows' rounded sums stay unbiased (the noise at ε = 1000 and the rounding are far below the
    tolerance, a mistake at a block's edge is not)."""
    from verification.core import mechanisms

    gamma = 6.0 / mechanisms.GRID_STEPS
    rng = np.random.default_rng(8)
    on_grid = np.round(rng.normal(size=(1000, 3)) * 2 / gamma) * gamma  # some rows above the bound 6: clipped
    on_grid[::7] = 0.0
    assert (np.abs(on_grid).sum(axis=1) > 6).any()
    norms = np.abs(on_grid).sum(axis=1)
    on_grid = on_grid[norms <= 6]  # clipping would take a row off the grid
    whole = noisy_vector_sum(on_grid, 6.0, 1.0, NoiseSource.seeded(2))
    monkeypatch.setattr(mechanisms, "VECTOR_SUM_BLOCK", 30)  # 10 rows per block, the last one short
    blocked = noisy_vector_sum(on_grid, 6.0, 1.0, NoiseSource.seeded(2))
    assert np.array_equal(whole[0], blocked[0]) and whole[1] == blocked[1]
    rows = rng.normal(size=(1000, 3)) * 5
    norms = np.abs(rows).sum(axis=1, keepdims=True)
    clipped = (rows * np.minimum(1.0, 6.0 / norms)).sum(axis=0)
    noisy, sd = noisy_vector_sum(rows, 6.0, 1000.0, NoiseSource.seeded(5))
    assert sd < 0.01 and np.all(np.abs(noisy - clipped) < 0.1)
    assert np.all(np.abs(rows.sum(axis=0) - clipped) > 1.0)  # the clip matters: a skipped one would show


def test_the_exact_ratios_of_a_large_frame_read_a_seeded_subsample(monkeypatch):
    """A frame above EXACT_ROWS (a big synthetic release) gives the exact OR / HR of the seeded subsample
    tuning.release_sample picks (the same each time); a frame at or below it is fitted whole."""
    from tests.verification.core.test_kinds_models import COX, LOGISTIC, SIM_SCHEMA, simulate

    frame = simulate(np.random.default_rng(4), 1200)
    for kind, params in (("hazard_ratio", COX), ("logistic_odds_ratio", LOGISTIC)):
        hypothesis = hyp(SIM_SCHEMA, kind, params, epsilon=1.0)
        whole = kinds.EXACT[kind](frame, SIM_SCHEMA, hypothesis)
        monkeypatch.setattr(kinds_models, "EXACT_ROWS", 1200)
        assert kinds.EXACT[kind](frame, SIM_SCHEMA, hypothesis) == whole  # at the cap: every row
        monkeypatch.setattr(kinds_models, "EXACT_ROWS", 400)
        sampled = kinds.EXACT[kind](frame, SIM_SCHEMA, hypothesis)
        subsample = frame.iloc[tuning.release_sample(1200, 400)]
        monkeypatch.setattr(kinds_models, "EXACT_ROWS", 10**9)
        assert sampled == kinds.EXACT[kind](subsample, SIM_SCHEMA, hypothesis)
        assert sampled != whole and sampled == pytest.approx(whole, rel=0.5)
        monkeypatch.setattr(kinds_models, "EXACT_ROWS", 400)
        assert kinds.EXACT[kind](frame, SIM_SCHEMA, hypothesis) == sampled  # seeded: the same subsample again
        monkeypatch.undo()


def test_the_newton_score_in_pieces_is_one_release_per_block(monkeypatch):
    """newton._blocks sums each block's rounded rows piece by piece and releases each block once: rows on
    the grid (no rounding bits) give the same release at a fixed seed whatever the pieces, and each
    block's noise has its own share of ε."""
    bounds = {"head": 2.0, "exposure": 1.0, "adjusters": 4.0}  # grids 2^-15, 2^-16, 2^-14
    rng = np.random.default_rng(11)
    rows = np.zeros((700, 5))  # head: 2 coordinates, exposure: 1, adjusters: 2
    rows[:, :2] = np.round(rng.uniform(-0.9, 0.9, (700, 2)) * 2**15) / 2**15
    rows[:, 2] = np.round(rng.uniform(-1, 1, 700) * 2**16) / 2**16
    rows[:, 3:] = np.round(rng.uniform(-1.4, 1.4, (700, 2)) * 2**14) / 2**14
    seen = []

    def rows_of(start, stop):
        seen.append((start, stop))
        return rows[start:stop]

    whole = newton._blocks(rows_of, len(rows), 2, bounds, 1.0, NoiseSource.seeded(6))
    assert seen == [(0, 0), (0, 700)]  # an empty piece first: the coordinates' count
    monkeypatch.setattr(newton, "SCORE_CHUNK_ROWS", 64)
    seen.clear()
    pieces = newton._blocks(rows_of, len(rows), 2, bounds, 1.0, NoiseSource.seeded(6))
    assert seen[1] == (0, 64) and seen[-1] == (640, 700) and len(seen) == 12
    assert np.array_equal(whole[0], pieces[0]) and np.array_equal(whole[1], pieces[1])
    shares = {name: share / sum(newton.BLOCK_SHARES.values()) for name, share in newton.BLOCK_SHARES.items()}
    expected = ([mechanisms_sd(bounds["head"], shares["head"], 2)] * 2
                + [mechanisms_sd(bounds["exposure"], shares["exposure"], 1)]
                + [mechanisms_sd(bounds["adjusters"], shares["adjusters"], 2)] * 2)
    assert np.allclose(np.sqrt(pieces[1]), expected)
    assert np.all(np.abs(pieces[0] - rows.sum(axis=0)) < 8 * np.sqrt(pieces[1]))


def mechanisms_sd(bound, epsilon, width):
    from verification.core.mechanisms import vector_sum_noise_sd

    return vector_sum_noise_sd(bound, epsilon, width)
