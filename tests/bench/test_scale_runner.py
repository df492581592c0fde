"""bench/scale's runner: each part's rows in one table, a failing part recorded (not fatal to the
others), and the docs section written between its markers (on fake parts: no measurement here)."""

from __future__ import annotations

import sys
import types

import pytest

from bench.common import replace_section
from bench.scale import __main__ as runner


def _fake_part(name: str, *, fails: bool = False) -> types.ModuleType:
    module = types.ModuleType(f"bench.scale.{name}")

    def measure(*, quick: bool = False) -> dict:
        if fails:
            raise RuntimeError("the part broke")
        return {"quick": quick, "seconds": 1.5}

    module.measure = measure
    module.table = lambda result: [{"figure": f"{name} figure", "value": "1.50 s", "target": "< 2 s",
                                    "status": "met"}]
    module.NOTES = f"What {name} measures."
    return module


def test_a_failing_part_is_recorded_and_the_others_keep_their_figures(monkeypatch):
    monkeypatch.setitem(sys.modules, "bench.scale.fine", _fake_part("fine"))
    monkeypatch.setitem(sys.modules, "bench.scale.broken", _fake_part("broken", fails=True))
    results = runner.run_parts(["fine", "broken"], quick=True)
    assert results["fine"]["figures"] == {"quick": True, "seconds": 1.5}
    assert results["fine"]["table"][0]["status"] == "met"
    assert "the part broke" in results["broken"]["error"] and "figures" not in results["broken"]

    info = {"cpu": "test CPU", "cores": 2, "load_average_at_start": [0.1, 0.2, 0.3]}
    text = runner.markdown(results, info, "2026-12-04 00:00 UTC", "make bench-scale")
    assert text.startswith(runner.START) and text.endswith(runner.END)
    assert "| fine | fine figure | 1.50 s | < 2 s | ✓ met |" in text
    assert "| broken | the part failed (see bench/results/scale.json) | — | — | ✗ |" in text
    assert "What fine measures." in text and "What broken measures." not in text


def test_the_section_replaces_only_its_own_markers(tmp_path):
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nkept above\n", encoding="utf-8")
    first = f"{runner.START}\nold\n{runner.END}"
    replace_section(first, runner.START, runner.END, docs)
    replace_section(f"{runner.START}\nnew\n{runner.END}", runner.START, runner.END, docs)
    text = docs.read_text(encoding="utf-8")
    assert "kept above" in text and "new" in text and "old" not in text and text.count(runner.START) == 1


def test_an_unknown_part_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        runner.main(["--parts", "nope"])
    assert exit_.value.code == 2
    assert "unknown part(s) nope" in capsys.readouterr().err
