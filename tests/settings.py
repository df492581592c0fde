"""Test settings: the production profile with test secrets and a throwaway DATA_DIR.

``DATABASE_URL`` and ``REDIS_URL`` / ``CELERY_BROKER_URL`` come from the environment
(the Makefile runs the suite on SQLite, then on PostgreSQL with Redis).
"""

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-" + "k3y-" * 15)
os.environ.setdefault("DATA_ENCRYPTION_KEY", "dGVzdC1rZXktZm9yLWNsZWFyaW5naG91c2UtMzJieXQ=")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
# Each pytest-xdist worker (`make test` runs two) gets its own DATA_DIR: a parent's setting is
# inherited by the workers, so it is replaced here rather than defaulted.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
if WORKER or "DATA_DIR" not in os.environ:
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix=f"clearinghouse-test-{WORKER or 'main'}-")

from clearinghouse.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; production uses PBKDF2
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Jobs run in-process in the suite, broker or not; tests/clearinghouse/test_celery_broker.py
# sends a real task through Redis when a broker is configured.
CELERY_TASK_ALWAYS_EAGER = True

# ... and its own Redis database for the cache (a test that clears the cache flushes its database).
if WORKER and REDIS_URL:  # noqa: F405
    from urllib.parse import urlsplit, urlunsplit

    _parts = urlsplit(REDIS_URL)  # noqa: F405
    _base = int(_parts.path.strip("/") or 0)
    _index = int("".join(ch for ch in WORKER if ch.isdigit()) or 0)
    CACHES["default"]["LOCATION"] = urlunsplit(_parts._replace(path=f"/{_base + 1 + _index}"))  # noqa: F405
