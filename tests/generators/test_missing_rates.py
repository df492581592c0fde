"""Missing rates: a generator reproduces each nullable column's share of gaps (issue 15, item 2).

The table is GBSG2 (686 rows) with three columns blanked at a fixed seed: ``tsize`` (a number) at
random with probability 0.3, ``tgrade`` (a category) at random with 0.25, and ``menostat`` (a
category) not at random: 0.4 where ``horTh`` is "yes", 0.1 where it is "no".

Tolerance. The training rates are fixed numbers; a model's rate is estimated from ``SAMPLE`` rows,
whose sampling sd is ``sqrt(p(1 − p)/SAMPLE)`` ≤ 0.005 at ``SAMPLE`` = 10,000, so ±0.015 is 3 sd of
sampling noise. A GAN trained for seconds adds its own error: at seeds 0 and 1 of this fit (200
epochs of the small test networks, 1,200 steps) ctgan's worst column was off by 0.016 and 0.024, so
ctgan gets ±0.035; the copula, whose margins are fitted in closed form, ±0.02. Before the fix (the
missing indicators outside ctgan's conditions, and generation conditions drawn among present
categories only) the same fit at seed 0 was off by 0.056 (``tsize``, ``tgrade``) and 0.043
(``menostat``), beyond the tolerance; the sampler test below pins the conditions' distribution exactly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from clearinghouse.schema import Schema
from generators.core.models import load_model
from generators.core.sampler import ConditionalSampler
from tests.generators.conftest import fit_small, schema_dict, typed_table

SAMPLE = 10_000
NULLABLE = ("tsize", "tgrade", "menostat")
CTGAN_TOLERANCE, COPULA_TOLERANCE = 0.035, 0.02
#: The small test networks for 200 epochs of 6 steps of 100 rows (5–10 s on one CPU thread).
CTGAN_FIT = {"epochs": 200, "batch_size": 100, "continuous": "quantile"}


@pytest.fixture(scope="module")
def blanked(gbsg2_raw) -> tuple[pd.DataFrame, Schema]:
    raw = schema_dict()
    for column in raw["columns"]:
        if column["name"] in NULLABLE:
            column["nullable"] = True
    schema = Schema.from_dict(raw)
    frame = gbsg2_raw.copy()
    u = np.random.default_rng(2024).random((len(frame), 3))
    blank = {"tsize": u[:, 0] < 0.3, "tgrade": u[:, 1] < 0.25,
             "menostat": u[:, 2] < np.where(frame["horTh"] == "yes", 0.4, 0.1)}
    for name, mask in blank.items():
        frame[name] = frame[name].astype("object").where(~mask, None)
    table = typed_table(frame, schema)
    assert {name: int(table[name].isna().sum()) for name in NULLABLE} == {k: int(v.sum()) for k, v in blank.items()}
    return table, schema


@pytest.fixture(scope="module")
def ctgan(blanked):
    table, schema = blanked
    hyper = dict(CTGAN_FIT)
    return fit_small("ctgan", table, schema, epochs=hyper.pop("epochs"), **hyper)


def rates(frame: pd.DataFrame) -> dict[str, float]:
    return {name: round(float(frame[name].isna().mean()), 3) for name in NULLABLE}


def test_ctgan_reproduces_each_nullable_columns_missing_rate(ctgan, blanked):
    table, _schema = blanked
    real, synthetic = rates(table), rates(ctgan.sample(SAMPLE, seed=1))
    for name in NULLABLE:
        assert abs(synthetic[name] - real[name]) <= CTGAN_TOLERANCE, (name, synthetic, real)
    # Non-nullable columns stay complete.
    assert not ctgan.sample(500, seed=2).drop(columns=list(NULLABLE)).isna().any().any()


def test_ctgan_conditions_on_the_missing_indicators_and_draws_them_at_their_rates(ctgan, blanked):
    table, _schema = blanked
    spans = ctgan.transformer.spans
    conditioned = [(spans[i].column, spans[i].role) for i in ctgan.category_spans]
    assert [c for c, role in conditioned if role == "missing"] == ["menostat", "tsize", "tgrade"]  # schema order
    assert ctgan.cond_dim == sum(spans[i].dim for i in ctgan.category_spans)
    # Generation conditions: a uniform row and discrete column, and that row's value there. A gap in a
    # nullable category counts on its indicator's "missing" entry, which so holds 2m/J (m/J from the
    # indicator, m/J from the category), and the category's present entries hold their share of all rows.
    probs = ctgan.sampler.original_probs.double()
    offsets = ctgan.sampler.offsets.tolist()
    j_count = len(conditioned)
    for j, (name, role) in enumerate(conditioned):
        share = probs[offsets[j]:offsets[j] + spans[ctgan.category_spans[j]].dim].tolist()
        if role == "missing":
            m = table[name].isna().mean()
            doubled = 2 if name in ("tgrade", "menostat") else 1
            assert share == pytest.approx([(1 - m) / j_count, doubled * m / j_count], abs=1e-6), name
        elif name in ("tgrade", "menostat"):
            counts = table[name].value_counts(sort=False).reindex(table[name].cat.categories)
            assert share == pytest.approx((counts / len(table) / j_count).tolist(), abs=1e-6), name
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-6)


def test_a_saved_ctgan_samples_the_same_rows_with_the_same_conditions(ctgan, tmp_path):
    ctgan.save(tmp_path / "ctgan")
    loaded = load_model(tmp_path / "ctgan")
    assert torch.equal(loaded.sampler.original_probs, ctgan.sampler.original_probs)
    pd.testing.assert_frame_equal(loaded.sample(300, seed=3), ctgan.sample(300, seed=3))
    fixed = loaded.sample(40, conditions={"tgrade": "III"}, seed=4)
    assert (fixed["tgrade"] == "III").all()


def test_the_sampler_draws_a_gap_as_its_missing_indicators_missing_entry():
    # One nullable categorical column (3 categories, codes −1 for gaps) and its indicator (present, missing).
    category = torch.tensor([0, 0, 1, 2, -1, -1, -1, 0, 1, -1])
    indicator = (category < 0).long()
    sampler = ConditionalSampler(torch.stack([category, indicator], 1), [3, 2], device=torch.device("cpu"),
                                 absent=[3 + 1, -1])
    # Column 1 of 2: 3/10, 2/10, 1/10 present, its 4/10 gaps counted on the indicator's "missing";
    # column 2 of 2: 6/10 present, 4/10 missing.
    expected = [0.15, 0.10, 0.05, 0.30, 0.20 + 0.20]
    assert sampler.original_probs.tolist() == pytest.approx(expected, abs=1e-6)
    gen = torch.Generator().manual_seed(0)
    cond = sampler.sample_original(20_000, gen)
    assert cond.sum(1).eq(1).all()
    # sd of a share of 20,000 draws ≤ 0.0036: 0.015 is > 4 sd.
    assert cond.mean(0).tolist() == pytest.approx(expected, abs=0.015)
    # Training draws the indicator in proportion to its counts (0.6, 0.4), not by log(1 + count).
    log_share = np.log1p(6) / (np.log1p(6) + np.log1p(4))  # 0.547: what a category column gets
    assert sampler.train_probs[1, :2].tolist() == pytest.approx([log_share, 1 - log_share], abs=1e-6)
    proportional = ConditionalSampler(torch.stack([category, indicator], 1), [3, 2], device=torch.device("cpu"),
                                      absent=[3 + 1, -1], proportional=[False, True])
    assert proportional.train_probs[1, :2].tolist() == pytest.approx([0.6, 0.4], abs=1e-6)
    assert proportional.train_probs[0].tolist() == pytest.approx(sampler.train_probs[0].tolist())
    # Without an absent entry the present categories share the column's mass (the old draw).
    old = ConditionalSampler(category[:, None], [3], device=torch.device("cpu"))
    assert old.original_probs.tolist() == pytest.approx([0.5, 1 / 3, 1 / 6], abs=1e-6)


def test_the_copula_reproduces_each_nullable_columns_missing_rate(blanked):
    table, schema = blanked
    model = fit_small("copula", table, schema)
    real, synthetic = rates(table), rates(model.sample(SAMPLE, seed=1))
    for name in NULLABLE:
        assert abs(synthetic[name] - real[name]) <= COPULA_TOLERANCE, (name, synthetic, real)


def test_ctgan_trains_on_filled_category_blocks_but_conditions_on_the_true_gaps(ctgan, blanked):
    table, _schema = blanked
    matrix = ctgan.transformer.transform(table, seed=0)
    codes = ctgan._category_codes(matrix)
    filled = ctgan._fill_absent(matrix.copy(), codes, np.random.default_rng(0))  # (it fills in place)
    spans = ctgan.transformer.spans
    starts = np.cumsum([0, *(span.dim for span in spans)])
    for j, i in enumerate(ctgan.category_spans):
        block = filled[:, starts[i]:starts[i + 1]]
        assert (block.sum(1) == 1).all(), spans[i]  # no all-zero block left for the critic to spot
        if spans[i].role == "category" and spans[i].column in NULLABLE:
            gaps = table[spans[i].column].isna().to_numpy()
            assert ((codes[:, j] < 0) == gaps).all()  # the sampler still sees the gaps as gaps
            assert np.array_equal(block[~gaps], matrix[~gaps, starts[i]:starts[i + 1]])
    # Decoding ignores the filler: the gaps come back as gaps.
    decoded = ctgan.transformer.inverse_transform(filled)
    assert rates(decoded) == rates(table)
