"""bench.scale.upload at its quick size: the figures' structure and plausibility (no timing thresholds)."""

from __future__ import annotations

import pandas as pd

from bench.scale import upload
from clearinghouse.schema import Schema
from clearinghouse.tabular import read_csv_checked


def test_the_generated_csv_is_resampled_gbsg2_at_30_columns_and_passes_its_schema(tmp_path):
    path = tmp_path / "wide.csv"
    size, schema = upload.write_csv(path, 250)
    assert size == path.stat().st_size
    frame = read_csv_checked(path, Schema.from_dict(schema))
    assert frame.shape == (250, 30)  # pid dropped
    assert set(frame["cens"].unique()) <= {0, 1} and set(frame["tgrade"].cat.categories) == {"I", "II", "III"}
    assert isinstance(frame["horTh"].dtype, pd.CategoricalDtype) and str(frame["age"].dtype) == "Int64"


def test_measure_quick_uploads_in_a_fresh_process_and_reports_its_peak():
    result = upload.measure(quick=True)
    streamed = result["streamed"]
    assert (result["rows"], result["columns"]) == (upload.QUICK_ROWS, 30)
    assert (streamed["rows"], streamed["columns"]) == (upload.QUICK_ROWS, 30)
    assert 1_000_000 < result["csv_bytes"] < 10_000_000  # ~2.5 MB at 20k rows
    assert 0 < streamed["stored_bytes"] < result["csv_bytes"]
    # ru_maxrss in KiB: the process imported Django and pandas (> 50 MiB), and 20k rows do not need 2 GiB
    assert 50 * 1024 < streamed["rss_before_upload_kib"] <= streamed["peak_rss_kib"] < 2 * 1024**2
    assert streamed["wall_s"] > 0
    rows = upload.table(result)
    assert all(set(r) == {"figure", "value", "target", "status"} for r in rows)
    peak = next(r for r in rows if "peak RSS" in r["figure"])
    assert peak["value"].endswith(" GiB") and peak["target"] == "< 2.00 GiB" and peak["status"] == "met"
    assert [r["status"] for r in rows if r is not peak] == [""] * (len(rows) - 1)
    assert isinstance(upload.NOTES, str) and "bench.scale.upload" in upload.NOTES
