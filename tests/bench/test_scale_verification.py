"""bench.scale.verification at its quick size (20k rows, 2 answers per kind): every kind is timed
through the engine's entry point and the table carries units and the targets (no timing thresholds)."""

from __future__ import annotations

import json
import math

from bench.scale import verification as part
from bench.verification.data import KIND_SPECS


def test_it_times_every_kind_and_tables_the_figures():
    result = part.measure(quick=True)
    json.dumps(result)  # JSON-able
    assert result["rows"] == result["release_rows"] == part.QUICK_ROWS and result["repetitions"] == 2
    kinds = result["kinds"]
    assert set(KIND_SPECS) <= set(kinds) and set(part.EXTRA_CASES) <= set(kinds)
    for name, figure in kinds.items():
        assert math.isfinite(figure["p50_s"]) and 0 < figure["p50_s"] <= figure["max_s"], name
        assert figure["answered"], name  # 20k rows at ε = 1: every kind answers
        targeted = figure["kind"] in part.TARGETED
        assert (figure["target_s"] == part.TARGET_S) is targeted and (figure["met"] is None) is not targeted
    mechanisms = {name: kinds[name]["mechanism"] for name in part.EXTRA_CASES}
    assert all(m.startswith("DP Newton") for m in mechanisms.values()), mechanisms
    assert kinds["hazard_ratio"]["mechanism"].startswith("noisy exit table")

    rows = part.table(result)
    assert len(rows) == len(kinds)
    for row in rows:
        assert set(row) == {"figure", "value", "target", "status"}
        assert row["value"].endswith((" ms", " s")) and "20,000 rows" in row["figure"]
        assert row["status"] in ("met", "missed", "")
        assert (row["target"] == "≤ 1 s") is (row["status"] != "")
    assert sum(row["target"] != "" for row in rows) == 2 + 4  # the two regression kinds, every mechanism
    assert "1,000,000" in part.NOTES and "python -m bench.scale.verification" in part.NOTES
