"""bench.missing_rates' tables and bench.generators' missing-rate gap (the bench itself is not run)."""

from __future__ import annotations

import pandas as pd

from bench.generators import missing_rate_gap
from bench.missing_rates import blanked_table, lung_table


def test_the_lung_cohort_loads_with_its_own_gaps():
    table, schema = lung_table()
    assert len(table) == 228 and "inst" not in table.columns  # the institution code is an identifier
    assert [c.name for c in schema.kept if c.nullable] == ["ph_ecog", "ph_karno", "pat_karno", "meal_cal", "wt_loss"]
    assert table.isna().sum()[lambda s: s > 0].to_dict() == {"ph_ecog": 1, "ph_karno": 1, "pat_karno": 3,
                                                              "meal_cal": 47, "wt_loss": 14}


def test_the_blanked_table_is_seeded_and_its_gaps_depend_on_other_columns():
    table, _schema = blanked_table(1)
    again, _ = blanked_table(1)
    pd.testing.assert_frame_equal(table, again)
    post = (table["menostat"].astype("string") == "Post").fillna(False).to_numpy(dtype=bool)
    assert table["progrec"][post].isna().mean() > 2 * table["progrec"][~post].isna().mean()


def test_the_missing_rate_gap_is_the_worst_nullable_columns_difference():
    table, schema = lung_table()
    synthetic = table.copy()
    synthetic.loc[:22, "wt_loss"] = pd.NA  # 23 of 228 missing instead of 14 (some of them already were)
    expected = abs(synthetic["wt_loss"].isna().mean() - table["wt_loss"].isna().mean())
    assert missing_rate_gap(table, synthetic, schema) == round(expected, 4) > 0
    assert missing_rate_gap(table, table, schema) == 0.0
