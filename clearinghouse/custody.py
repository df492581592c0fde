"""The one module that writes and reads real rows at rest.

Real data are stored as Parquet, encrypted with Fernet (AES-128-CBC + HMAC-SHA256)
under ``DATA_ENCRYPTION_KEYS`` (the first key encrypts, all decrypt, so keys can be
rotated), in ``CUSTODY_DIR`` (mode 0700, files 0600), outside any served directory.
Nothing outside this module opens those files, and no API serializer ever receives
the frame this module returns.

Decrypted tables are kept in a per-process cache (``CUSTODY_CACHE_BYTES``,
``CUSTODY_CACHE_SECONDS``; either 0 switches it off), so that a verification does not
decrypt and parse the whole dataset on every request. An entry is keyed by the file's
path, its identity on disk (mtime in ns, size, inode, device) and a fingerprint of the
configured keys: a rewritten or removed file and a key rotation miss. The trade-off is that
decrypted real rows stay in the worker's memory for up to ``CUSTODY_CACHE_SECONDS``
(a timer drops them then, used or not). A table larger than the whole budget is read and
decrypted every time, never an error. A cached table (from the read that fills the cache on)
is returned as a shallow copy whose column buffers are read-only: adding, dropping or replacing
a column changes only the caller's copy, and writing a cell in place raises ``ValueError``
rather than changing what the next request reads (take ``.copy()`` first).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from cryptography.fernet import InvalidToken, MultiFernet, Fernet
from django.conf import settings

from clearinghouse.framecache import frame_cache

__all__ = [
    "CustodyError", "StoredTable", "custody_cache_clear", "custody_cache_info", "custody_open_folder", "custody_read",
    "custody_remove", "custody_seal_folder", "custody_write",
]

_clock = time.monotonic  # the cache's clock (tests move it)


class CustodyError(RuntimeError):
    """A stored file is missing, or cannot be decrypted with any configured key."""


@dataclass(frozen=True)
class StoredTable:
    storage_name: str
    stored_bytes: int


def _cipher() -> MultiFernet:
    return MultiFernet([Fernet(key.encode("ascii")) for key in settings.DATA_ENCRYPTION_KEYS])


def _folder() -> Path:
    folder = Path(settings.CUSTODY_DIR)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def _path(storage_name: str) -> Path:
    if not storage_name or "/" in storage_name or "\\" in storage_name or storage_name.startswith("."):
        raise CustodyError("Invalid storage name.")
    return _folder() / storage_name


def custody_write(frame: pd.DataFrame) -> StoredTable:
    """Encrypt and store ``frame``; the file appears whole or not at all (write, fsync, rename)."""
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    token = _cipher().encrypt(buffer.getvalue())
    storage_name = f"{uuid.uuid4().hex}.parquet.fernet"
    final = _path(storage_name)
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(token)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _cache.forget(str(final))  # a new name every time; forgetting it keeps the rule "a write invalidates"
    return StoredTable(storage_name=storage_name, stored_bytes=len(token))


def custody_read(storage_name: str) -> pd.DataFrame:
    """Decrypt and load a stored table (for the generator and verification services only).

    Served from the per-process cache when the same file, under the same keys, was read within
    ``CUSTODY_CACHE_SECONDS`` (see the module's docstring): then the column buffers are read-only.
    A missing file is a CustodyError whether or not it was cached."""
    path = _path(storage_name)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise CustodyError(f"The stored file {storage_name} is missing.") from None
    with handle:
        # The identity is taken from the open file, so the bytes read below are the ones it names
        # even if the file is replaced meanwhile (a replacement is a new inode).
        info = os.fstat(handle.fileno())
        stamp = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_dev, _keys_fingerprint())
        key = str(path)
        budget, seconds = _cache_limits()
        if budget and seconds:
            cached = _cache.get(key, stamp)
            if cached is not None:
                return cached.copy(deep=False)
        else:
            _cache.clear()  # switched off (at run time, by settings): hold nothing any more
        token = handle.read()
    frame = _decrypt_table(token, storage_name)
    if budget and seconds:
        frame = _cache.put(key, stamp, frame, budget=budget, seconds=seconds)
    return frame


def _decrypt_table(token: bytes, storage_name: str) -> pd.DataFrame:
    try:
        plain = _cipher().decrypt(token)
    except InvalidToken:
        raise CustodyError(f"The stored file {storage_name} cannot be decrypted with the configured keys.") from None
    return pd.read_parquet(io.BytesIO(plain), engine="pyarrow")


def custody_remove(storage_name: str) -> None:
    path = _path(storage_name)
    _cache.forget(str(path))
    path.unlink(missing_ok=True)


def custody_cache_clear() -> None:
    """Drop every decrypted table this process holds (e.g. after retiring a key by hand)."""
    _cache.clear()


def custody_cache_info() -> dict[str, int]:
    """How many tables the cache holds and their bytes (sizes only: never a name or a value)."""
    return _cache.info()


# --- the per-process cache of decrypted tables -------------------------------------------


def _cache_limits() -> tuple[int, int]:
    return (max(int(getattr(settings, "CUSTODY_CACHE_BYTES", 0)), 0),
            max(int(getattr(settings, "CUSTODY_CACHE_SECONDS", 0)), 0))


def _keys_fingerprint() -> str:
    """A digest of the configured keys, in order (a rotation changes it); never the keys."""
    return hashlib.sha256("\n".join(settings.DATA_ENCRYPTION_KEYS).encode("ascii")).hexdigest()


_cache = frame_cache(clock=lambda: _clock(), label="custody")


# --- folders derived from real rows (trained generators) ---------------------------------
# A generator fitted on real rows holds values of them (a copula's quantile points, a GMM's
# means), so its checkpoint is encrypted at rest like the table itself.
SEALED_SUFFIX = ".fernet"


def custody_seal_folder(source: Path, target: Path) -> int:
    """Encrypt every file of ``source`` into ``target`` (staged next to it, then renamed: whole
    or absent). Returns the bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    cipher, total = _cipher(), 0
    try:
        for path in sorted(source.iterdir()):
            token = cipher.encrypt(path.read_bytes())
            sealed = staging / (path.name + SEALED_SUFFIX)
            with open(sealed, "wb") as handle:
                handle.write(token)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(sealed, 0o600)
            total += len(token)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return total


def custody_open_folder(source: Path, target: Path) -> None:
    """Decrypt a sealed folder into ``target`` (a private temporary folder the caller removes)."""
    if not source.is_dir():
        raise FileNotFoundError(source)
    cipher = _cipher()
    target.mkdir(mode=0o700, exist_ok=True)
    for path in sorted(source.glob("*" + SEALED_SUFFIX)):
        try:
            plain = cipher.decrypt(path.read_bytes())
        except InvalidToken:
            raise CustodyError(f"{path.name} cannot be decrypted with the configured keys.") from None
        out = target / path.name[: -len(SEALED_SUFFIX)]
        out.write_bytes(plain)
        os.chmod(out, 0o600)
