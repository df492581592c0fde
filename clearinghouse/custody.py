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
decrypted every time, never an error. A frame served from the cache is a shallow copy whose
column buffers are read-only: adding, dropping or replacing a column changes only the
caller's copy, and writing a cell in place raises ``ValueError`` rather than changing what
the next request reads (take ``.copy()`` first).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from cryptography.fernet import InvalidToken, MultiFernet, Fernet
from django.conf import settings

__all__ = [
    "CustodyError", "StoredTable", "custody_cache_clear", "custody_cache_info", "custody_open_folder", "custody_read",
    "custody_remove", "custody_seal_folder", "custody_write",
]

logger = logging.getLogger(__name__)
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


def _buffers(values) -> list[np.ndarray] | None:
    """The NumPy buffers behind one block of a frame, or None for a kind of array not known here
    (then the frame is not cached: it could be written through a buffer this module cannot lock)."""
    if isinstance(values, np.ndarray):
        return [values]
    if isinstance(values, pd.arrays.ArrowExtensionArray):
        return []  # Arrow arrays are immutable
    found = [inner for name in ("_data", "_mask", "_codes", "_ndarray")
             if isinstance(inner := getattr(values, name, None), np.ndarray)]
    if isinstance(values, (pd.Categorical, pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray,
                           pd.arrays.DatetimeArray, pd.arrays.TimedeltaArray, pd.arrays.StringArray,
                           pd.arrays.NumpyExtensionArray)) and found:
        return found
    return None


def _freeze(frame: pd.DataFrame) -> bool:
    """Make every column buffer of ``frame`` read-only; False (and nothing changed) when one
    cannot be."""
    found = []
    for values in frame._mgr.arrays:
        buffers = _buffers(values)
        if buffers is None:
            return False
        found.extend(buffers)
    for buffer in found:
        buffer.flags.writeable = False
    return True


@dataclass
class _Entry:
    stamp: tuple
    frame: pd.DataFrame
    nbytes: int
    expires: float


class _FrameCache:
    """Least recently used first; bounded by total bytes and by each entry's age. One entry per
    path: a newer version of a file replaces the older one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._timer: threading.Timer | None = None

    def get(self, key: str, stamp: tuple) -> pd.DataFrame | None:
        with self._lock:
            self._expire(_clock())
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.stamp != stamp:  # rewritten, or read under other keys: never served again
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry.frame

    def put(self, key: str, stamp: tuple, frame: pd.DataFrame, *, budget: int, seconds: int) -> pd.DataFrame:
        """Cache ``frame`` when it fits; returns what the caller gets (a copy of the cached frame,
        or ``frame`` itself when it is not cached). Never raises: a table the cache cannot hold
        is simply not cached."""
        try:
            nbytes = int(frame.memory_usage(index=True, deep=True).sum())
            if nbytes > budget:
                logger.info("custody cache: a table of %d bytes exceeds CUSTODY_CACHE_BYTES=%d; read uncached",
                            nbytes, budget)
                with self._lock:
                    self._drop(key)
                return frame
            if not _freeze(frame):
                return frame
            with self._lock:
                now = _clock()
                self._expire(now)
                self._drop(key)
                while self._entries and self._bytes + nbytes > budget:
                    self._drop(next(iter(self._entries)))  # the least recently used
                self._entries[key] = _Entry(stamp=stamp, frame=frame, nbytes=nbytes, expires=now + seconds)
                self._bytes += nbytes
                self._schedule(now)
            return frame.copy(deep=False)
        except Exception:  # noqa: BLE001 - the cache is an optimization: reading must not fail because of it
            logger.warning("custody cache: a table could not be cached; read uncached", exc_info=True)
            return frame

    def forget(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"entries": len(self._entries), "bytes": self._bytes}

    def after_fork(self) -> None:
        """A forked child starts with an empty cache (and a fresh lock; no timer thread survives a fork)."""
        self._lock = threading.Lock()
        self._entries = OrderedDict()
        self._bytes = 0
        self._timer = None

    # The methods below run under the lock.
    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.nbytes

    def _expire(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires <= now]:
            self._drop(key)

    def _schedule(self, now: float) -> None:
        """A timer drops expired entries even when no request comes: decrypted rows do not
        outlive CUSTODY_CACHE_SECONDS in an idle process."""
        if self._timer is not None or not self._entries:
            return
        delay = max(min(e.expires for e in self._entries.values()) - now, 0.0) + 0.05
        self._timer = threading.Timer(delay, self._sweep)
        self._timer.daemon = True
        self._timer.start()

    def _sweep(self) -> None:
        with self._lock:
            self._timer = None
            now = _clock()
            self._expire(now)
            self._schedule(now)


_cache = _FrameCache()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_cache.after_fork)


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
