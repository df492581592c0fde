"""Helpers for the clearinghouse tests: the error body, the custody folder, a clean cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

H = "pid,horTh,age,menostat,tsize,tgrade,pnodes,progrec,estrec,time,cens"
ROW = "p001,no,70,Post,21,II,3,48,66,1814,1"


@pytest.fixture(autouse=True)
def _empty_cache():
    """DRF's throttle counters live in the cache (Redis on the PostgreSQL pass, kept between runs)."""
    cache.clear()
    yield
    cache.clear()


def csv_bytes(*rows: str, header: str = H) -> bytes:
    """A GBSG2-shaped CSV: the header, then ``rows`` (each a line without its newline)."""
    return ("\n".join([header, *rows]) + "\n").encode("utf-8")


def row(**changes: str) -> str:
    """ROW with some cells replaced, by column name."""
    names = H.split(",")
    cells = dict(zip(names, ROW.split(",")))
    cells.update(changes)
    return ",".join(cells[n] for n in names)


def files_in(folder) -> set[str]:
    """Every file under ``folder`` (relative names), hidden ones included; empty if it does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def custody_files() -> set[str]:
    return files_in(settings.CUSTODY_DIR)


def upload_temp_files() -> set[str]:
    return files_in(settings.UPLOAD_TEMP_DIR)


def mode(path) -> int:
    return os.stat(path).st_mode & 0o777


def assert_error(response, status: int, code: str | None = None) -> dict:
    """The one error body ``{"error": {"code", "message", "details"}}``; returns the inner object."""
    assert response.status_code == status, (response.status_code, response.content[:2000])
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"].strip()
    return body["error"]
