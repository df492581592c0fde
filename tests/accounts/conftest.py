"""Fixtures for the accounts tests.

Login-failure counters and DRF's anonymous rate limit live in the cache. The cache is
Redis on the PostgreSQL pass and survives between runs (locmem survives between tests),
so every test here starts from an empty cache.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache

PASSWORD = "correct horse battery staple"  # the password tests/conftest.py gives every user


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def issue_token(client, username: str, password: str = PASSWORD, **extra):
    """POST /api/v1/auth/token/ as JSON."""
    return client.post("/api/v1/auth/token/", {"username": username, "password": password, **extra}, format="json")


def assert_error(response, status: int, code: str) -> dict:
    """The one error body: ``{"error": {"code", "message", "details"}}``; returns the inner object."""
    assert response.status_code == status, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]
