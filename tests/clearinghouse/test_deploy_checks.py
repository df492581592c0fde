"""Production checks: the static manifest, ALLOWED_HOSTS='*', and counters shared between workers.

A production start with several web workers and a per-process cache is refused (clearinghouse.E002,
also raised by clearinghouse/wsgi.py, since gunicorn runs no system checks).
"""

from __future__ import annotations

import importlib
import sys

import pytest

from django.core.exceptions import ImproperlyConfigured

from clearinghouse import checks

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
REDIS = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://x:6379/1"}}
MANIFEST = {"default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}}


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_a_missing_static_manifest_is_an_error_until_collectstatic_wrote_it(settings, tmp_path):
    settings.STORAGES, settings.STATIC_ROOT = MANIFEST, str(tmp_path)
    [error] = checks.static_manifest_collected(None)
    assert error.id == "clearinghouse.E003" and str(tmp_path / "staticfiles.json") in error.msg
    assert "collectstatic" in error.hint
    (tmp_path / "staticfiles.json").write_text('{"paths": {}, "version": "1.1"}')
    assert checks.static_manifest_collected(None) == []


def test_a_wildcard_host_is_flagged_and_named_hosts_are_not(settings):
    settings.ALLOWED_HOSTS = ["clearinghouse.example", "*"]
    assert ids(checks.allowed_hosts_not_wildcard(None)) == ["clearinghouse.W002"]
    settings.ALLOWED_HOSTS = ["clearinghouse.example", ".example.org"]
    assert checks.allowed_hosts_not_wildcard(None) == []


@pytest.mark.parametrize(("debug", "caches", "workers", "argv", "expected"), [
    (False, LOCMEM, "3", ["gunicorn"], ["clearinghouse.E002"]),               # docker/'s WEB_CONCURRENCY
    (False, LOCMEM, "", ["gunicorn", "app", "-w", "4"], ["clearinghouse.E002"]),
    (False, LOCMEM, "", ["gunicorn", "app", "--workers=2"], ["clearinghouse.E002"]),
    (False, LOCMEM, "", ["/venv/lib/gunicorn/__main__.py", "app", "-w", "2"], ["clearinghouse.E002"]),  # python -m
    (False, LOCMEM, "", ["manage.py", "check", "-w", "2"], []),                # not gunicorn's -w
    (False, LOCMEM, "3", ["gunicorn", "app", "-w1"], []),                      # the command line wins
    (False, LOCMEM, "", ["gunicorn", "app"], []),                              # gunicorn's default: 1
    (False, REDIS, "4", ["gunicorn"], []),
    (True, LOCMEM, "4", ["gunicorn"], []),                                     # development
])
def test_several_workers_without_a_shared_cache_are_refused(settings, monkeypatch, debug, caches, workers, argv,
                                                             expected):
    settings.DEBUG, settings.CACHES = debug, caches
    monkeypatch.setenv("WEB_CONCURRENCY", workers)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.setattr(sys, "argv", argv)
    assert ids(checks.shared_cache_for_several_workers(None)) == expected
    assert ids(checks.shared_cache_in_production(None)) == ([] if debug or caches is REDIS else ["clearinghouse.W001"])


def test_the_wsgi_application_refuses_to_load_for_several_workers_without_a_shared_cache(settings, monkeypatch):
    settings.DEBUG, settings.CACHES = False, LOCMEM
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    monkeypatch.setattr(sys, "argv", ["gunicorn", "clearinghouse.wsgi:application"])
    monkeypatch.delitem(sys.modules, "clearinghouse.wsgi", raising=False)
    with pytest.raises(ImproperlyConfigured, match="4 web worker processes with the LocMemCache cache"):
        importlib.import_module("clearinghouse.wsgi")
    monkeypatch.setenv("WEB_CONCURRENCY", "1")
    monkeypatch.delitem(sys.modules, "clearinghouse.wsgi", raising=False)
    assert importlib.import_module("clearinghouse.wsgi").application is not None
