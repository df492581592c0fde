"""A per-process cache of DataFrames read from files (Django-free).

Used by ``clearinghouse.custody`` (decrypted real tables) and ``releases.selectors`` (a release's
typed synthetic rows). Bounded by total bytes (``frame.memory_usage(deep=True)``; least recently
used first out) and by each entry's age (from when it was read, not from its last use; a timer
drops expired entries even in an idle process). An entry is served only for the same stamp (the
caller's identity of the file: mtime, size, inode, device, and for custody the keys); a frame
larger than the whole budget is not cached. A cached frame's column buffers are made read-only and
each caller gets a shallow copy: it may add, drop or replace columns of its own copy; writing a
cell in place raises ``ValueError`` instead of changing what the next caller gets.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["FrameCache", "frame_cache", "freeze"]

logger = logging.getLogger(__name__)


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


def freeze(frame: pd.DataFrame) -> bool:
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


class FrameCache:
    """Least recently used first; bounded by total bytes and by each entry's age. One entry per
    key (a file's path): a newer version of a file replaces the older one."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, label: str = "frame") -> None:
        self._clock, self._label = clock, label
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._timer: threading.Timer | None = None

    def get(self, key: str, stamp: tuple) -> pd.DataFrame | None:
        with self._lock:
            self._expire(self._clock())
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
                logger.info("%s cache: a table of %d bytes exceeds the budget of %d; read uncached",
                            self._label, nbytes, budget)
                with self._lock:
                    self._drop(key)
                return frame
            if not freeze(frame):
                return frame
            with self._lock:
                now = self._clock()
                self._expire(now)
                self._drop(key)
                while self._entries and self._bytes + nbytes > budget:
                    self._drop(next(iter(self._entries)))  # the least recently used
                self._entries[key] = _Entry(stamp=stamp, frame=frame, nbytes=nbytes, expires=now + seconds)
                self._bytes += nbytes
                self._schedule(now)
            return frame.copy(deep=False)
        except Exception:  # noqa: BLE001 - the cache is an optimization: reading must not fail because of it
            logger.warning("%s cache: a table could not be cached; read uncached", self._label, exc_info=True)
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
        outlive its age bound in an idle process."""
        if self._timer is not None or not self._entries:
            return
        delay = max(min(e.expires for e in self._entries.values()) - now, 0.0) + 0.05
        self._timer = threading.Timer(delay, self._sweep)
        self._timer.daemon = True
        self._timer.start()

    def _sweep(self) -> None:
        with self._lock:
            self._timer = None
            now = self._clock()
            self._expire(now)
            self._schedule(now)


def frame_cache(*, clock: Callable[[], float] = time.monotonic, label: str = "frame") -> FrameCache:
    """A new cache that a forked child (a Celery or gunicorn worker) starts empty."""
    cache = FrameCache(clock=clock, label=label)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=cache.after_fork)
    return cache
