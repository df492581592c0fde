"""The benchmarks' big cohort (bench/common.py resampled_gbsg2): GBSG2 resampled with noise, widened
to the asked number of columns, uploadable against its own schema."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.common import resampled_gbsg2
from clearinghouse.schema import Schema
from clearinghouse.tabular import read_csv_checked


def test_the_cohort_has_the_asked_shape_fits_its_schema_and_is_seeded():
    frame, spec = resampled_gbsg2(3000, columns=30, seed=4)
    assert frame.shape == (3000, 31) and list(frame.columns[:2]) == ["pid", "horTh"]
    schema = Schema.from_dict(spec)
    typed = read_csv_checked(frame.to_csv(index=False).encode(), schema)
    assert typed.shape == (3000, 30)  # pid dropped
    nullable = [c.name for c in schema.kept if c.nullable]
    assert len(nullable) == 10 and {"horTh_3", "age_2"} <= set(nullable)
    for name in nullable:  # 5 % blank, binomial sd ≈ 0.004 at 3,000 rows: ± 0.02 is over 4 sd
        assert typed[name].isna().mean() == pytest.approx(0.05, abs=0.02), name
    assert not typed.drop(columns=nullable).isna().any().any()
    again, _ = resampled_gbsg2(3000, columns=30, seed=4)
    pd.testing.assert_frame_equal(frame, again)
    other, _ = resampled_gbsg2(3000, columns=30, seed=5)
    assert not frame["age"].equals(other["age"])


def test_a_noisy_copy_follows_its_source_and_stays_in_bounds():
    frame, spec = resampled_gbsg2(5000, columns=12, seed=0)
    assert list(frame.columns[-2:]) == ["horTh_2", "age_2"]
    age = next(c for c in spec["columns"] if c["name"] == "age_2")
    values = frame["age_2"].dropna().astype(float)
    assert age["min"] <= values.min() and values.max() <= age["max"]
    both = frame[["age", "age_2"]].dropna().astype(float)
    assert both["age"].corr(both["age_2"]) > 0.9  # noise of a quarter of the spread: r ≈ 0.97
    assert (frame["horTh"] != frame["horTh_2"]).mean() == pytest.approx(0.10, abs=0.02)


def test_fewer_than_gbsg2s_columns_is_refused():
    with pytest.raises(ValueError):
        resampled_gbsg2(10, columns=9)
