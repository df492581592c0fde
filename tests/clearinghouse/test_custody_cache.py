"""The per-process cache of decrypted tables in clearinghouse.custody.

A second read of the same file under the same keys does not decrypt; a rewritten or removed file
and a key rotation miss; the byte bound evicts the least recently used; a table larger than the
budget is read every time (never an error, never cached); the age bound expires, also without a
request (the timer); a budget of 0 decrypts every read; nothing a caller does to the frame it got
changes what the next read returns.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
import pytest
from cryptography.fernet import Fernet
from pandas.testing import assert_frame_equal

from clearinghouse import custody, framecache
from clearinghouse.custody import (
    CustodyError, custody_cache_clear, custody_cache_info, custody_read, custody_remove, custody_write,
)

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def cache_on(settings, tmp_path):
    settings.CUSTODY_DIR = tmp_path / "data" / "custody"
    settings.DATA_ENCRYPTION_KEYS = [OLD_KEY]
    settings.CUSTODY_CACHE_BYTES = 64 * MIB
    settings.CUSTODY_CACHE_SECONDS = 300
    custody_cache_clear()
    yield settings
    custody_cache_clear()


@pytest.fixture
def decrypts(monkeypatch) -> list[str]:
    """The storage names actually decrypted, in order."""
    calls: list[str] = []
    real = custody._decrypt_table

    def counted(token, storage_name):
        calls.append(storage_name)
        return real(token, storage_name)

    monkeypatch.setattr(custody, "_decrypt_table", counted)
    return calls


@pytest.fixture
def clock(monkeypatch):
    """The cache's clock, moved by hand."""
    now = [1000.0]
    monkeypatch.setattr(custody, "_clock", lambda: now[0])
    return now


def table(rows: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "age": pd.array(rng.integers(18, 100, rows), dtype="Int64"),
        "bmi": rng.normal(25, 4, rows).round(2),
        "tgrade": pd.Categorical(rng.choice(["I", "II", "III"], rows), categories=["I", "II", "III"]),
        "cens": pd.array(rng.integers(0, 2, rows), dtype="Int8"),
    })


def nbytes(frame: pd.DataFrame) -> int:
    return int(frame.memory_usage(index=True, deep=True).sum())


# --- hits ----------------------------------------------------------------------------------


def test_a_second_read_is_served_without_decrypting(decrypts):
    stored = custody_write(table())
    first = custody_read(stored.storage_name)
    second = custody_read(stored.storage_name)
    assert decrypts == [stored.storage_name]
    assert_frame_equal(first, table())
    assert_frame_equal(second, table())
    assert first is not second  # each caller gets its own frame object
    assert custody_cache_info() == {"entries": 1, "bytes": nbytes(table())}


def test_a_write_does_not_fill_the_cache_and_two_tables_are_kept_apart(decrypts):
    a, b = custody_write(table(seed=1)), custody_write(table(seed=2))
    assert custody_cache_info()["entries"] == 0
    for _ in range(3):
        assert_frame_equal(custody_read(a.storage_name), table(seed=1))
        assert_frame_equal(custody_read(b.storage_name), table(seed=2))
    assert decrypts == [a.storage_name, b.storage_name]


def test_concurrent_readers_all_get_the_table(decrypts):
    stored = custody_write(table(rows=2000))
    results, errors = [], []

    def read():
        try:
            results.append(custody_read(stored.storage_name))
        except Exception as exc:  # pragma: no cover - the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 8
    for frame in results:
        assert_frame_equal(frame, table(rows=2000))
    assert 1 <= len(decrypts) <= 8 and custody_cache_info()["entries"] == 1


# --- invalidation --------------------------------------------------------------------------


def test_a_rewritten_file_for_the_same_name_misses(settings, decrypts):
    stored = custody_write(table(seed=1))
    path = settings.CUSTODY_DIR / stored.storage_name
    assert_frame_equal(custody_read(stored.storage_name), table(seed=1))
    # Another process replaces the file under the same name (write elsewhere, rename over it).
    other = custody_write(table(seed=2))
    os.replace(settings.CUSTODY_DIR / other.storage_name, path)
    assert_frame_equal(custody_read(stored.storage_name), table(seed=2))
    assert decrypts == [stored.storage_name, stored.storage_name]
    assert custody_cache_info() == {"entries": 1, "bytes": nbytes(table(seed=2))}  # the old version is gone


def test_a_file_rewritten_in_place_misses(settings, decrypts):
    """Same inode, same size (a token of the same frame): only the modification time differs."""
    stored = custody_write(table())
    path = settings.CUSTODY_DIR / stored.storage_name
    custody_read(stored.storage_name)
    raw = path.read_bytes()
    path.write_bytes(raw)
    before = os.stat(path).st_mtime_ns
    os.utime(path, ns=(before + 1_000_000, before + 1_000_000))
    custody_read(stored.storage_name)
    assert decrypts == [stored.storage_name] * 2


def test_a_changed_file_is_refused_even_after_a_cached_read(settings):
    stored = custody_write(table())
    path = settings.CUSTODY_DIR / stored.storage_name
    custody_read(stored.storage_name)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] = ord("A") if raw[len(raw) // 2] != ord("A") else ord("B")
    path.write_bytes(bytes(raw))
    with pytest.raises(CustodyError, match="cannot be decrypted"):
        custody_read(stored.storage_name)
    assert custody_cache_info()["entries"] == 0


def test_custody_remove_drops_the_entry_and_a_later_read_is_missing(decrypts):
    stored = custody_write(table())
    custody_read(stored.storage_name)
    custody_remove(stored.storage_name)
    assert custody_cache_info() == {"entries": 0, "bytes": 0}
    with pytest.raises(CustodyError, match="is missing"):
        custody_read(stored.storage_name)


def test_a_file_deleted_behind_the_cache_is_missing_not_served(settings):
    """Another process removed it (its custody_remove cannot reach this process's cache)."""
    stored = custody_write(table())
    custody_read(stored.storage_name)
    (settings.CUSTODY_DIR / stored.storage_name).unlink()
    with pytest.raises(CustodyError, match="is missing"):
        custody_read(stored.storage_name)


def test_a_key_rotation_misses_and_a_retired_key_is_refused(settings, decrypts):
    stored = custody_write(table())
    custody_read(stored.storage_name)
    settings.DATA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]  # rotation: the new key first
    assert_frame_equal(custody_read(stored.storage_name), table())
    assert decrypts == [stored.storage_name] * 2
    custody_read(stored.storage_name)
    assert len(decrypts) == 2  # cached again under the new keys
    settings.DATA_ENCRYPTION_KEYS = [NEW_KEY]  # the old key retired: the cached frame is not served
    with pytest.raises(CustodyError, match="cannot be decrypted with the configured keys"):
        custody_read(stored.storage_name)


def test_the_fingerprint_names_no_key(settings):
    settings.DATA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]
    fingerprint = custody._keys_fingerprint()
    assert NEW_KEY not in fingerprint and OLD_KEY not in fingerprint and len(fingerprint) == 64
    settings.DATA_ENCRYPTION_KEYS = [OLD_KEY, NEW_KEY]  # the order matters: it says which key encrypts
    assert custody._keys_fingerprint() != fingerprint


# --- bounds --------------------------------------------------------------------------------


def test_the_byte_bound_evicts_the_least_recently_used(settings, decrypts):
    size = nbytes(table(rows=1000))
    settings.CUSTODY_CACHE_BYTES = 2 * size + size // 2  # room for two tables, not three
    a, b, c = (custody_write(table(rows=1000, seed=s)) for s in (1, 2, 3))
    custody_read(a.storage_name)
    custody_read(b.storage_name)
    custody_read(a.storage_name)  # a is now the most recently used: b goes first
    assert decrypts == [a.storage_name, b.storage_name]
    custody_read(c.storage_name)
    assert custody_cache_info() == {"entries": 2, "bytes": 2 * size}
    decrypts.clear()
    custody_read(a.storage_name)
    custody_read(c.storage_name)
    assert decrypts == []
    assert_frame_equal(custody_read(b.storage_name), table(rows=1000, seed=2))  # evicted: read again
    assert decrypts == [b.storage_name]
    assert custody_cache_info()["bytes"] <= settings.CUSTODY_CACHE_BYTES


def test_a_table_larger_than_the_budget_is_read_every_time_and_not_cached(settings, decrypts):
    small, big = custody_write(table(rows=10)), custody_write(table(rows=5000))
    settings.CUSTODY_CACHE_BYTES = nbytes(table(rows=5000)) - 1
    custody_read(small.storage_name)
    for _ in range(3):
        frame = custody_read(big.storage_name)
        assert_frame_equal(frame, table(rows=5000))
    assert decrypts == [small.storage_name] + [big.storage_name] * 3
    # It evicted nothing either, and the frame is the caller's own (writable).
    assert custody_cache_info() == {"entries": 1, "bytes": nbytes(table(rows=10))}
    frame.loc[0, "bmi"] = -1.0
    assert custody_read(big.storage_name).loc[0, "bmi"] != -1.0


def test_the_age_bound_expires_an_entry(settings, decrypts, clock):
    settings.CUSTODY_CACHE_SECONDS = 60
    stored = custody_write(table())
    custody_read(stored.storage_name)
    clock[0] += 59
    custody_read(stored.storage_name)
    assert len(decrypts) == 1  # a hit does not extend the entry's life...
    clock[0] += 1
    custody_read(stored.storage_name)
    assert len(decrypts) == 2  # ...60 s after it was decrypted it is read again


def test_an_expired_entry_is_dropped_without_a_request(settings):
    """The timer: an idle process does not keep decrypted rows past CUSTODY_CACHE_SECONDS."""
    settings.CUSTODY_CACHE_SECONDS = 1
    stored = custody_write(table())
    custody_read(stored.storage_name)
    assert custody_cache_info()["entries"] == 1
    deadline = time.monotonic() + 5
    while custody_cache_info()["entries"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert custody_cache_info() == {"entries": 0, "bytes": 0}


@pytest.mark.parametrize("setting", ["CUSTODY_CACHE_BYTES", "CUSTODY_CACHE_SECONDS"])
def test_zero_switches_the_cache_off_and_drops_what_it_held(settings, decrypts, setting):
    stored = custody_write(table())
    custody_read(stored.storage_name)
    setattr(settings, setting, 0)
    for _ in range(3):
        assert_frame_equal(custody_read(stored.storage_name), table())
    assert decrypts == [stored.storage_name] * 4
    assert custody_cache_info() == {"entries": 0, "bytes": 0}


def test_a_failure_while_caching_falls_back_to_the_table_read(decrypts, monkeypatch):
    def broken(frame):
        raise MemoryError("no room")

    monkeypatch.setattr(framecache, "freeze", broken)
    stored = custody_write(table())
    for _ in range(2):
        assert_frame_equal(custody_read(stored.storage_name), table())
    assert len(decrypts) == 2 and custody_cache_info()["entries"] == 0


def test_a_column_type_the_cache_cannot_lock_is_read_uncached(decrypts):
    frame = table()
    frame["when"] = pd.array(pd.period_range("2020-01", periods=len(frame), freq="M"))  # not known to _buffers
    stored = custody_write(frame)
    for _ in range(2):
        assert_frame_equal(custody_read(stored.storage_name), frame)
    assert len(decrypts) == 2 and custody_cache_info()["entries"] == 0


# --- callers cannot change the cached frame -------------------------------------------------


def test_changing_a_returned_frame_does_not_change_the_next_read(decrypts):
    stored = custody_write(table())
    first = custody_read(stored.storage_name)
    first["bmi"] = 0.0                                  # a column replaced
    first["extra"] = 1                                  # a column added
    del first["age"]                                    # a column dropped
    first.rename(columns={"tgrade": "grade"}, inplace=True)
    first.drop(index=[0, 1], inplace=True)
    assert_frame_equal(custody_read(stored.storage_name), table())
    writes = {  # each on a frame of its own, as each request gets one
        "loc": lambda f: f.loc.__setitem__((0, "bmi"), -1.0),
        "iloc": lambda f: f.iloc.__setitem__((0, 0), 7),
        "numpy view": lambda f: f["bmi"].to_numpy().__setitem__(0, -1.0),
        "masked data": lambda f: f["cens"].array._data.__setitem__(0, 9),
        "category codes": lambda f: f["tgrade"].array._codes.__setitem__(0, 2),
        "sort in place": lambda f: f["bmi"].to_numpy().sort(),
    }
    refused = []
    for name, write in writes.items():
        try:
            write(custody_read(stored.storage_name))
        except ValueError as exc:  # writing in place into a cached buffer is refused...
            assert "read-only" in str(exc), name
            refused.append(name)
    assert {"numpy view", "masked data", "category codes", "sort in place"} <= set(refused)
    assert_frame_equal(custody_read(stored.storage_name), table())  # ...and never reaches the cache
    assert decrypts == [stored.storage_name]


def test_a_copy_of_a_returned_frame_is_writable():
    stored = custody_write(table())
    custody_read(stored.storage_name)
    mine = custody_read(stored.storage_name).copy()
    mine.loc[0, "bmi"] = -1.0
    mine.iloc[1, 0] = 7
    assert mine.loc[0, "bmi"] == -1.0 and mine.iloc[1, 0] == 7
    assert_frame_equal(custody_read(stored.storage_name), table())
