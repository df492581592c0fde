"""Settings come from the environment and fail fast, naming the variable, on a bad value."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from clearinghouse.env import env_bool, env_int, env_list, env_secret

ROOT = Path(__file__).resolve().parent.parent
GOOD_KEY = "dGVzdC1rZXktZm9yLWNsZWFyaW5naG91c2UtMzJieXQ="


def test_it_parses_booleans_strictly(monkeypatch):
    monkeypatch.setenv("X_FLAG", "yes")
    assert env_bool("X_FLAG", False) is True
    monkeypatch.setenv("X_FLAG", "0")
    assert env_bool("X_FLAG", True) is False
    monkeypatch.setenv("X_FLAG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="X_FLAG='maybe' is not a boolean"):
        env_bool("X_FLAG", False)


def test_it_checks_integers_and_their_bounds(monkeypatch):
    monkeypatch.setenv("X_INT", "12")
    assert env_int("X_INT", 1, minimum=1, maximum=20) == 12
    monkeypatch.setenv("X_INT", "twelve")
    with pytest.raises(ImproperlyConfigured, match="X_INT='twelve' is not an integer"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_INT", "0")
    with pytest.raises(ImproperlyConfigured, match="X_INT=0 is below the minimum 1"):
        env_int("X_INT", 1, minimum=1)


def test_it_refuses_empty_list_items(monkeypatch):
    monkeypatch.setenv("X_LIST", "a.example,b.example")
    assert env_list("X_LIST", []) == ["a.example", "b.example"]
    monkeypatch.setenv("X_LIST", "a.example,,b.example")
    with pytest.raises(ImproperlyConfigured, match="X_LIST has an empty item"):
        env_list("X_LIST", [])


def test_it_reads_a_secret_from_a_file_but_not_from_both(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.delenv("X_SECRET", raising=False)
    monkeypatch.setenv("X_SECRET_FILE", str(secret))
    assert env_secret("X_SECRET") == "s3cret"
    monkeypatch.setenv("X_SECRET", "other")
    with pytest.raises(ImproperlyConfigured, match="Set X_SECRET or X_SECRET_FILE, not both"):
        env_secret("X_SECRET")
    monkeypatch.delenv("X_SECRET")
    monkeypatch.setenv("X_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_secret("X_SECRET")


def _load_settings(tmp_path: Path, **overrides: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "CELERY_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "clearinghouse.settings",
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": "x" * 20 + "abcdefghijklmnopqrstuvwxyz0123456789",
        "DATA_ENCRYPTION_KEY": GOOD_KEY,
        "ALLOWED_HOSTS": "clearinghouse.example",
        "DATA_DIR": str(tmp_path / "data"),
    })
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_production_profile_loads_with_its_required_values(tmp_path):
    result = _load_settings(tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": None}, "SECRET_KEY (or SECRET_KEY_FILE) is required when DJANGO_DEBUG is off"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is too weak"),
        ({"DATA_ENCRYPTION_KEY": None}, "DATA_ENCRYPTION_KEY (or DATA_ENCRYPTION_KEY_FILE) is required"),
        ({"DATA_ENCRYPTION_KEY": "not-a-key"}, "DATA_ENCRYPTION_KEY item 1 is not a 32-byte url-safe base64 key"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS is required when DJANGO_DEBUG is off"),
        ({"DJANGO_DEBUG": "sometimes"}, "DJANGO_DEBUG='sometimes' is not a boolean"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL must be PostgreSQL or SQLite"),
        ({"API_TOKEN_TTL_DAYS": "0"}, "API_TOKEN_TTL_DAYS=0 is below the minimum 1"),
    ],
)
def test_it_fails_fast_naming_the_bad_variable(tmp_path, overrides, message):
    result = _load_settings(tmp_path, **overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_development_profile_generates_its_own_secrets_once(tmp_path):
    first = _load_settings(tmp_path, DJANGO_DEBUG="1", SECRET_KEY=None, DATA_ENCRYPTION_KEY=None, ALLOWED_HOSTS=None)
    assert first.returncode == 0, first.stderr
    secrets_dir = tmp_path / "data" / ".secrets"
    key = (secrets_dir / "data-encryption-key").read_text()
    assert oct((secrets_dir / "data-encryption-key").stat().st_mode & 0o777) == "0o600"
    second = _load_settings(tmp_path, DJANGO_DEBUG="1", SECRET_KEY=None, DATA_ENCRYPTION_KEY=None, ALLOWED_HOSTS=None)
    assert second.returncode == 0 and (secrets_dir / "data-encryption-key").read_text() == key


@pytest.mark.django_db
@pytest.mark.parametrize("supplied, kept", [
    ("client-req-0001", True),
    ("client-req-0001\n", False),   # a trailing newline must not pass (``$`` would accept it)
    ("short", False),
    ("x" * 65, False),
    ("has space here", False),
])
def test_it_keeps_a_well_formed_client_request_id_and_replaces_any_other(supplied, kept):
    from django.test import Client

    response = Client().get("/healthz", HTTP_X_REQUEST_ID=supplied)
    assert (response["X-Request-ID"] == supplied) is kept
    assert len(response["X-Request-ID"]) <= 64 and "\n" not in response["X-Request-ID"]
