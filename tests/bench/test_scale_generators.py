"""bench.scale.generators: its 30-column cohort, and measure(quick=True) and table() (structure and
plausibility; no timing thresholds: timings live in bench/ only)."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.scale import generators as part
from generators.core.transformer import DataTransformer


def test_the_cohort_is_seeded_typed_as_custody_and_has_thirty_columns_three_with_gaps():
    frame, schema = part.cohort(2000)
    again, _ = part.cohort(2000)
    pd.testing.assert_frame_equal(frame, again)
    assert len(frame) == 2000 and len(schema.kept) == 30 == frame.shape[1]
    assert {c.type for c in schema.kept} == {"continuous", "integer", "duration", "event", "categorical"}
    assert sorted(c.name for c in schema.kept if c.nullable) == ["count_2", "lab_3", "site"]
    for column in schema.kept:
        series = frame[column.name]
        assert bool(series.isna().mean() > 0.05) == column.nullable, column.name  # 10 % blanked
        if column.is_numeric:
            assert column.min <= series.min() and series.max() <= column.max
    # custody's dtypes, so the transformer encodes it as it encodes an uploaded cohort
    assert str(frame["count_0"].dtype) == "Int64" and str(frame["event"].dtype) == "Int8"
    assert isinstance(frame["cat_0"].dtype, pd.CategoricalDtype)
    transformer = DataTransformer().fit(frame, schema)
    decoded = transformer.inverse_transform(transformer.transform(frame))
    for column in schema.kept:
        if not column.is_numeric:
            assert decoded[column.name].astype("string").equals(frame[column.name].astype("string")), column.name


@pytest.fixture(scope="module")
def quick():
    return part.measure(quick=True)


def test_measure_quick_times_the_transformer_and_one_epoch_at_5000_rows(quick):
    assert quick["quick"] is True
    [size] = quick["sizes"]
    assert (size["rows"], size["columns"]) == (5000, 30)
    assert size["device"] in ("cpu", "cuda")
    assert size["device_name"].startswith("CPU: ") if size["device"] == "cpu" else size["device_name"]
    for continuous in ("mode", "quantile"):
        figures = size[continuous]
        assert figures["fit_s"] > 0 and figures["transform_s"] > 0
        assert figures["encoded_mib"] == pytest.approx(5000 * figures["encoded_columns"] * 4 / 2**20, abs=0.06)
    assert size["quantile"]["encoded_columns"] < size["mode"]["encoded_columns"]  # one unit vs unit + modes
    training = size["training"]
    assert (training["batch_size"], training["timed_steps"], training["timed_epochs"], training["epoch_steps"]) == (
        500, 10, 1, 10)
    assert training["step_ms_range"][0] <= training["step_ms"] <= training["step_ms_range"][1]
    assert training["epoch_measured_whole"] is True
    assert training["epoch_s_extrapolated"] == pytest.approx(training["step_ms"] * 10 / 1e3, rel=0.01, abs=0.01)
    assert training["rows_per_s"] == pytest.approx(500 / (training["step_ms"] / 1e3), rel=0.01)
    assert training["step_cpu_ms"] > 0
    assert set(training["final_losses"]) == {"epoch", "generator", "critic", "gradient_penalty"}
    # the child's peak holds at least the table and its encodings, and is not absurd at 5,000 rows
    assert size["frame_rss_gib"] <= size["peak_rss_gib"] < 8


def test_the_table_has_every_figure_with_units_and_says_when_no_gpu_was_lent(quick):
    rows = part.table(quick)
    assert all(set(row) == {"figure", "value", "target", "status"} for row in rows)
    assert all(row["status"] in ("", "met", "missed") for row in rows)
    figures = [row["figure"] for row in rows]
    assert figures[:2] == ["transformer fit + transform (normal scores, the default), 5,000 rows × 30",
                           "transformer fit + transform (mode-specific, 5,000-row fit), 5,000 rows × 30"]
    epoch = rows[2]
    assert epoch["figure"].startswith("ctgan seconds per epoch (one whole epoch), 5,000 rows × 30, ")
    assert epoch["value"].endswith("CPU ms/step)") and " s (" in epoch["value"] and "rows/s" in epoch["value"]
    assert rows[3]["value"].endswith(" GiB")
    assert all(" s + " in row["value"] for row in rows[:2])
    if quick["sizes"][0]["device"] == "cpu":
        assert rows[-1] == {"figure": "ctgan seconds per epoch on a GPU, 5,000 rows", "value": part.NOT_LENT,
                            "target": "", "status": ""}
    assert "extrapolated" in part.NOTES and "python -m bench.scale.generators" in part.NOTES


def test_every_size_of_the_cohort_shares_its_columns_distributions():
    small, _ = part.cohort(20_000)
    large, _ = part.cohort(200_000)
    for name in ("lab_0", "lab_11", "count_5", "time"):  # means within 5 % of each other (seeded; the SE is ~1 %)
        assert small[name].astype("float64").mean() == pytest.approx(large[name].astype("float64").mean(), rel=0.05)
    for name in ("cat_0", "cat_8"):  # category shares within 0.02
        shares = small[name].value_counts(normalize=True).sort_index()
        assert (shares - large[name].value_counts(normalize=True).sort_index()).abs().max() < 0.02
