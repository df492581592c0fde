"""Checks shared by the services that take numbers from callers (API and commands alike)."""

from __future__ import annotations

from typing import Any

from clearinghouse.errors import ApplicationError

__all__ = ["MAX_SEED", "check_whole_number"]

#: Seeds are stored and passed to numpy and torch as unsigned 32-bit integers.
MAX_SEED = 2**32 - 1


def check_whole_number(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` when it is an int in [lo, hi]; else a 400 ``invalid_<name>`` naming the problem."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApplicationError(f"{name} must be a whole number.", code=f"invalid_{name}")
    if not lo <= value <= hi:
        raise ApplicationError(f"{name} must be between {lo} and {hi}, not {value}.", code=f"invalid_{name}")
    return value
