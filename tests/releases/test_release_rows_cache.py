"""The per-process cache of a release's typed synthetic rows (releases.selectors).

Every verification reads them; a second read of the same file and schema does not read the file; a
rewritten file, a removed one (FileNotFoundError, as without the cache) and another schema miss;
0 switches it off; a caller cannot change what the next one gets.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from clearinghouse.schema import Schema
from releases import selectors
from releases.selectors import release_rows_cache_clear, release_synthetic_rows

SCHEMA = Schema.from_dict({"columns": [
    {"name": "age", "type": "integer", "min": 18, "max": 100},
    {"name": "tgrade", "type": "categorical", "categories": ["I", "II", "III"]},
    {"name": "time", "type": "duration", "min": 0, "max": 3000},
    {"name": "cens", "type": "event"},
], "survival": {"duration": "time", "event": "cens"}})


@pytest.fixture(autouse=True)
def releases_dir(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"
    settings.RELEASE_CACHE_BYTES = 64 * 1024 * 1024
    settings.RELEASE_CACHE_SECONDS = 300
    release_rows_cache_clear()
    yield settings.RELEASES_DIR
    release_rows_cache_clear()


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = pd.read_parquet

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", counted)
    return calls


def synthetic(rows: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"age": rng.integers(18, 100, rows), "tgrade": rng.choice(["I", "II", "III"], rows),
                         "time": rng.uniform(0, 3000, rows).round(1), "cens": rng.integers(0, 2, rows)})


def release(folder, name: str = "r1", seed: int = 0) -> SimpleNamespace:
    (folder / name).mkdir(parents=True, exist_ok=True)
    synthetic(seed=seed).to_parquet(folder / name / "data.parquet", index=False, engine="pyarrow")
    return SimpleNamespace(storage_name=name)


def test_a_second_read_does_not_read_the_file_and_types_as_before(releases_dir, reads):
    r = release(releases_dir)
    first = release_synthetic_rows(r, SCHEMA)
    second = release_synthetic_rows(r, SCHEMA)
    assert len(reads) == 1
    assert_frame_equal(first, second)
    assert list(first["tgrade"].cat.categories) == ["I", "II", "III"]
    assert selectors._rows_cache.info()["entries"] == 1


def test_a_rewritten_or_removed_file_and_another_schema_miss(releases_dir, reads):
    r = release(releases_dir, seed=1)
    release_synthetic_rows(r, SCHEMA)
    release(releases_dir, seed=2)  # the same path, other rows
    assert_frame_equal(release_synthetic_rows(r, SCHEMA)[["age", "time"]],
                       synthetic(seed=2)[["age", "time"]].astype({"time": "float64"}), check_dtype=False)
    assert len(reads) == 2
    narrower = Schema.from_dict({"columns": [{"name": "age", "type": "integer", "min": 18, "max": 100}]})
    assert list(release_synthetic_rows(r, narrower).columns) == ["age"]
    assert len(reads) == 3
    (releases_dir / "r1" / "data.parquet").unlink()
    with pytest.raises(FileNotFoundError):
        release_synthetic_rows(r, SCHEMA)


def test_zero_switches_it_off(settings, releases_dir, reads):
    r = release(releases_dir)
    release_synthetic_rows(r, SCHEMA)
    settings.RELEASE_CACHE_BYTES = 0
    release_synthetic_rows(r, SCHEMA)
    release_synthetic_rows(r, SCHEMA)
    assert len(reads) == 3 and selectors._rows_cache.info() == {"entries": 0, "bytes": 0}


def test_a_caller_cannot_change_the_next_read(releases_dir):
    r = release(releases_dir)
    expected = release_synthetic_rows(r, SCHEMA).copy()
    mine = release_synthetic_rows(r, SCHEMA)
    mine["age"] = 0
    with pytest.raises(ValueError, match="read-only"):
        mine["time"].to_numpy()[0] = -1.0
    assert_frame_equal(release_synthetic_rows(r, SCHEMA), expected)
