"""clearinghouse.custody: the only reader and writer of real rows at rest.

Round trips keep every dtype; files are Fernet tokens (no Parquet bytes in the clear), 0600 in a
0700 folder; keys rotate (the first encrypts, all decrypt); a wrong key or a changed file is a
CustodyError, never garbage; a failed write leaves no file, not even a temporary one.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cryptography.fernet import Fernet, InvalidToken
from pandas.testing import assert_frame_equal

from clearinghouse import custody
from clearinghouse.custody import (
    CustodyError, StoredTable, custody_open_folder, custody_read, custody_remove, custody_seal_folder, custody_write,
)
from tests.clearinghouse.conftest import files_in, mode

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
OTHER_KEY = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def custody_dir(settings, tmp_path) -> Path:
    folder = tmp_path / "data" / "custody"
    settings.CUSTODY_DIR = folder
    settings.DATA_ENCRYPTION_KEYS = [OLD_KEY]
    return folder


def frame() -> pd.DataFrame:
    """One column of each stored type, with gaps where the schema may allow them."""
    return pd.DataFrame({
        "age": pd.array([70, 56, None, 59], dtype="Int64"),
        "bmi": np.array([24.5, np.nan, 31.25, 19.0], dtype="float64"),
        "horTh": pd.Categorical(["no", "yes", None, "yes"], categories=["no", "yes"]),
        "tgrade": pd.Categorical(["I", "III", "II", "III"], categories=["I", "II", "III"]),
        "time": np.array([1814.0, 2018.0, 712.5, 0.0]),
        "cens": pd.array([1, 0, 1, 0], dtype="Int8"),
    })


# --- round trip -----------------------------------------------------------------------------


def test_a_written_frame_reads_back_identical(custody_dir):
    original = frame()
    stored = custody_write(original)
    assert isinstance(stored, StoredTable)
    back = custody_read(stored.storage_name)
    assert_frame_equal(back, original)
    assert list(back["tgrade"].cat.categories) == ["I", "II", "III"]  # declared order, not sorted by the data
    assert isinstance(back.index, pd.RangeIndex)


def test_the_file_is_a_fernet_token_of_a_parquet_file_with_private_modes(custody_dir):
    stored = custody_write(frame())
    path = custody_dir / stored.storage_name
    raw = path.read_bytes()
    assert stored.stored_bytes == len(raw) == path.stat().st_size
    assert raw.startswith(b"gAAAAA")
    # Only the token's base64 alphabet (no Parquet bytes), and no name in clear. Strings of five
    # letters or more only: a shorter one ("yes", "PAR1") turns up by chance in a random token.
    assert re.fullmatch(rb"[A-Za-z0-9_=-]+", raw.strip())
    parquet = Fernet(OLD_KEY.encode()).decrypt(raw)
    assert parquet[:4] == parquet[-4:] == b"PAR1"
    for plain in (b"horTh", b"tgrade", b"pandas"):
        assert plain in parquet and plain not in raw, plain
    assert mode(path) == 0o600 and mode(custody_dir) == 0o700
    assert files_in(custody_dir) == {stored.storage_name}  # no temporary file left beside it


def test_each_write_gets_a_new_name_and_two_writes_of_the_same_frame_differ(custody_dir):
    first, second = custody_write(frame()), custody_write(frame())
    assert first.storage_name != second.storage_name
    assert first.storage_name.endswith(".parquet.fernet") and "/" not in first.storage_name
    assert (custody_dir / first.storage_name).read_bytes() != (custody_dir / second.storage_name).read_bytes()
    assert files_in(custody_dir) == {first.storage_name, second.storage_name}


def test_remove_deletes_the_file_and_is_idempotent(custody_dir):
    stored = custody_write(frame())
    custody_remove(stored.storage_name)
    assert files_in(custody_dir) == set()
    custody_remove(stored.storage_name)  # already gone: no error
    with pytest.raises(CustodyError, match="is missing"):
        custody_read(stored.storage_name)


@pytest.mark.parametrize("name", ["../escape.parquet.fernet", "a/b", "a\\b", ".incoming-x", "..", ""])
def test_a_storage_name_cannot_leave_the_folder_or_name_a_hidden_file(name):
    with pytest.raises(CustodyError, match="Invalid storage name"):
        custody_read(name)
    with pytest.raises(CustodyError, match="Invalid storage name"):
        custody_remove(name)


# --- keys -----------------------------------------------------------------------------------


def test_a_file_written_under_an_old_key_reads_after_rotation(settings, custody_dir):
    old = custody_write(frame())
    settings.DATA_ENCRYPTION_KEYS = [NEW_KEY, OLD_KEY]  # rotation: the new key first
    assert_frame_equal(custody_read(old.storage_name), frame())
    new = custody_write(frame())
    raw = (custody_dir / new.storage_name).read_bytes()
    Fernet(NEW_KEY.encode()).decrypt(raw)  # the first key encrypts
    with pytest.raises(InvalidToken):
        Fernet(OLD_KEY.encode()).decrypt(raw)
    settings.DATA_ENCRYPTION_KEYS = [NEW_KEY]  # the old key retired: the old file is unreadable...
    with pytest.raises(CustodyError, match="cannot be decrypted with the configured keys"):
        custody_read(old.storage_name)
    assert_frame_equal(custody_read(new.storage_name), frame())  # ...the new one still reads


def test_a_wrong_key_is_a_clear_error_not_garbage(settings):
    stored = custody_write(frame())
    settings.DATA_ENCRYPTION_KEYS = [OTHER_KEY]
    with pytest.raises(CustodyError) as info:
        custody_read(stored.storage_name)
    assert str(info.value) == f"The stored file {stored.storage_name} cannot be decrypted with the configured keys."
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no InvalidToken trace to wade through


def test_a_changed_file_is_refused(custody_dir):
    stored = custody_write(frame())
    path = custody_dir / stored.storage_name
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] = ord("A") if raw[len(raw) // 2] != ord("A") else ord("B")  # still valid base64
    path.write_bytes(bytes(raw))
    with pytest.raises(CustodyError, match="cannot be decrypted"):
        custody_read(stored.storage_name)


def test_a_plaintext_parquet_file_put_in_custody_is_refused(custody_dir):
    stored = custody_write(frame())
    frame().to_parquet(custody_dir / stored.storage_name)  # someone bypasses the module
    with pytest.raises(CustodyError, match="cannot be decrypted"):
        custody_read(stored.storage_name)


# --- atomic writes --------------------------------------------------------------------------


def _boom(*args, **kwargs):
    raise OSError("disk on fire")


@pytest.mark.parametrize("target", ["os.replace", "os.fsync", "os.chmod"])
def test_a_write_that_fails_leaves_no_file_at_all(custody_dir, monkeypatch, target):
    custody_write(frame())  # an earlier file stays untouched
    before = files_in(custody_dir)
    monkeypatch.setattr(f"clearinghouse.custody.{target}", _boom)
    with pytest.raises(OSError, match="disk on fire"):
        custody_write(frame())
    monkeypatch.undo()
    assert files_in(custody_dir) == before
    assert not [p for p in custody_dir.iterdir() if p.name.startswith(".incoming-")]


def test_a_failing_encryption_writes_nothing(custody_dir, monkeypatch):
    class Broken:
        def encrypt(self, data):
            raise RuntimeError("no cipher")

    monkeypatch.setattr(custody, "_cipher", lambda: Broken())
    with pytest.raises(RuntimeError, match="no cipher"):
        custody_write(frame())
    assert files_in(custody_dir) == set()


def test_a_frame_that_cannot_be_serialized_writes_nothing(custody_dir):
    bad = pd.DataFrame({"x": [object(), object()]})
    with pytest.raises(Exception):
        custody_write(bad)
    assert files_in(custody_dir) == set()


def test_an_interrupt_during_the_write_removes_the_temporary_file(custody_dir, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("clearinghouse.custody.os.replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        custody_write(frame())
    monkeypatch.undo()
    assert files_in(custody_dir) == set()


# --- sealed folders (trained generators) ----------------------------------------------------


def _model_folder(root: Path) -> Path:
    source = root / "plain-model"
    source.mkdir()
    (source / "state.pt").write_bytes(b"\x80\x02 weights fitted on real rows")
    (source / "config.json").write_text('{"knots": [70, 56, 58]}')
    return source


def test_a_sealed_folder_is_encrypted_private_and_opens_back(tmp_path):
    source = _model_folder(tmp_path)
    target = tmp_path / "models" / "run-1"
    total = custody_seal_folder(source, target)
    sealed = sorted(p.name for p in target.iterdir())
    assert sealed == ["config.json.fernet", "state.pt.fernet"]
    assert total == sum((target / name).stat().st_size for name in sealed)
    for name in sealed:
        raw = (target / name).read_bytes()
        assert raw.startswith(b"gAAAAA") and b"knots" not in raw and b"weights" not in raw
        assert mode(target / name) == 0o600
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    opened = tmp_path / "opened"
    custody_open_folder(target, opened)
    assert (opened / "state.pt").read_bytes() == (source / "state.pt").read_bytes()
    assert (opened / "config.json").read_text() == (source / "config.json").read_text()
    assert mode(opened) == 0o700 and mode(opened / "state.pt") == 0o600


def test_resealing_replaces_the_folder_and_a_failed_seal_keeps_the_previous_one(tmp_path, monkeypatch):
    source = _model_folder(tmp_path)
    target = tmp_path / "models" / "run-1"
    custody_seal_folder(source, target)
    (source / "extra.bin").write_bytes(b"more")
    custody_seal_folder(source, target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json.fernet", "extra.bin.fernet", "state.pt.fernet"]
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    monkeypatch.setattr("clearinghouse.custody.os.fsync", _boom)
    with pytest.raises(OSError, match="disk on fire"):
        custody_seal_folder(source, target)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["run-1"]


def test_a_sealed_folder_under_a_wrong_key_is_a_custody_error(tmp_path, settings):
    target = tmp_path / "models" / "run-1"
    custody_seal_folder(_model_folder(tmp_path), target)
    settings.DATA_ENCRYPTION_KEYS = [OTHER_KEY]
    with pytest.raises(CustodyError, match="cannot be decrypted with the configured keys"):
        custody_open_folder(target, tmp_path / "opened")
    settings.DATA_ENCRYPTION_KEYS = [OTHER_KEY, OLD_KEY]
    custody_open_folder(target, tmp_path / "opened-2")
    assert (tmp_path / "opened-2" / "config.json").exists()


def test_opening_a_missing_sealed_folder_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        custody_open_folder(tmp_path / "nothing-here", tmp_path / "opened")
    assert not (tmp_path / "opened").exists()

