"""Lock out a username, or a client address, after repeated failed logins.

Counters live in the cache (Redis in production) for ``LOGIN_FAILURE_WINDOW_SECONDS``.
A success clears the username's counter; the address counter only expires.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

__all__ = ["locked_for", "record_failure", "clear"]


def _key(kind: str, value: str) -> str:
    return f"login-fail:{kind}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


def _keys(username: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(_key("user", username), settings.LOGIN_FAILURES_PER_USERNAME)]
    if address:
        keys.append((_key("addr", address), settings.LOGIN_FAILURES_PER_ADDRESS))
    return keys


def locked_for(username: str, address: str | None) -> int | None:
    """Seconds to wait if this username or address is locked out, else ``None``."""
    for key, limit in _keys(username, address):
        if (cache.get(key) or 0) >= limit:
            return settings.LOGIN_FAILURE_WINDOW_SECONDS
    return None


def record_failure(username: str, address: str | None) -> None:
    for key, _limit in _keys(username, address):
        cache.add(key, 0, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=settings.LOGIN_FAILURE_WINDOW_SECONDS)


def clear(username: str) -> None:
    cache.delete(_key("user", username))
