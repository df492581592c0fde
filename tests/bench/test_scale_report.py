"""bench.scale.report: the quick run's figures (20k rows, in a child process) and the docs table's rows.
No timing thresholds: the seconds are only checked to be there and to add up."""

from __future__ import annotations

import pytest

from bench.scale import report as part


@pytest.fixture(scope="module")
def quick() -> dict:
    return part.measure(quick=True)


def test_the_quick_run_times_every_part_of_the_report(quick):
    assert quick["rows"] == {"train": 16_000, "holdout": 4_000, "synthetic": 20_000}
    assert quick["columns"] == 30 and quick["runs"] == 1
    seconds = quick["seconds"]
    parts = ["section:fidelity", "section:survival", "section:privacy", "section:utility",
             "figures:custodian", "html:custodian", "figures:public", "html:public"]
    assert set(seconds) == {*parts, "total"}
    assert all(seconds[p] > 0 for p in parts)
    assert seconds["total"] >= sum(seconds[p] for p in parts) - 0.05
    assert 0 < quick["rss_after_tables_gib"] <= quick["peak_rss_gib"] < 64
    assert quick["html_bytes"] > 10_000
    # 20k rows stay below every sample size: the report is exact and says no sample.
    assert quick["samples"] == []
    assert 0.9 < quick["headline"]["fidelity.overall"] <= 1.0  # two draws of one simulator
    assert quick["headline"]["privacy.ims"] == 0.0


def test_the_table_rows(quick):
    rows = part.table(quick)
    assert [r["figure"] for r in rows][1:] == ["section fidelity", "section survival", "section privacy",
                                               "section utility", "figures + HTML pages (custodian and public)",
                                               "peak RSS (tables included)"]
    assert rows[0]["figure"].startswith("report, 20,000 real (16,000 train / 4,000 holdout) + 20,000 synthetic")
    assert all(set(r) == {"figure", "value", "target", "status"} for r in rows)
    assert all(r["value"].endswith(" s") for r in rows[:-1]) and rows[-1]["value"].endswith(" GiB")
    assert rows[0]["target"] == "" and rows[0]["status"] == ""  # the target is the million-row run's


@pytest.mark.parametrize("total, status", [(250.0, "met"), (300.0, "missed")])
def test_the_million_row_run_is_judged_against_five_minutes(quick, total, status):
    full = {**quick, "rows": {"train": 800_000, "holdout": 200_000, "synthetic": 1_000_000},
            "seconds": {**quick["seconds"], "total": total}}
    row = part.table(full)[0]
    assert row["target"] == "< 300 s on 2 cores" and row["status"] == status
    assert row["value"] == f"{total:.1f} s"
    assert "1,000,000 real (800,000 train / 200,000 holdout) + 1,000,000 synthetic rows × 30 columns" in row["figure"]
