"""A live server with one user per role, and a client per role (the package under client/, over HTTP)."""

from __future__ import annotations

import pytest
from clearinghouse_client import Client

from accounts.services import token_issue_for
from tests.portal.conftest import live_users  # noqa: F401  (one user per role, committed rows)


@pytest.fixture(autouse=True)
def _seeded(seeded_noise):
    """Fixed draws for the six-patient world's answers (tests/conftest.py seeded_noise)."""


@pytest.fixture
def live_clients(live_server, live_users):
    """A :class:`clearinghouse_client.Client` per role (and ``anonymous``) on the live server; fast retries."""
    clients = {"anonymous": Client(live_server.url, token="", backoff=0.0, timeout=60.0)}
    for role, user in live_users.items():
        _token, raw = token_issue_for(user=user, name=f"client-{role}")
        clients[role] = Client(live_server.url, token=raw, backoff=0.0, timeout=60.0)
    yield clients
    for client in clients.values():
        client.close()

