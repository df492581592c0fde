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
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="clearinghouse-test-"))

from clearinghouse.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; production uses PBKDF2
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# Jobs run in-process in the suite, broker or not; tests/clearinghouse/test_celery_broker.py
# sends a real task through Redis when a broker is configured.
CELERY_TASK_ALWAYS_EAGER = True
