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


# --- gunicorn's config file: -c/--config FILE, else ./gunicorn.conf.py (issue 14) ------------------

@pytest.fixture
def gunicorn_env(settings, monkeypatch, tmp_path):
    """Production with the per-process cache, in an empty working directory, no worker count anywhere."""
    settings.DEBUG, settings.CACHES = False, LOCMEM
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["gunicorn", "clearinghouse.wsgi:application"])
    return tmp_path


def test_it_reads_workers_from_the_default_config_file_in_the_working_directory(gunicorn_env):
    assert checks.web_worker_processes() == 1
    (gunicorn_env / "gunicorn.conf.py").write_text("bind = '0.0.0.0:8000'\nworkers = 4\ntimeout = 120\n")
    assert checks.web_worker_processes() == 4
    [error] = checks.shared_cache_for_several_workers(None)
    assert error.id == "clearinghouse.E002" and error.msg.startswith("4 web worker processes with the LocMemCache")


@pytest.mark.parametrize("flag", [["-c", "{path}"], ["--config", "{path}"], ["--config={path}"], ["-c{path}"]])
def test_it_reads_workers_from_the_config_file_named_on_the_command_line(gunicorn_env, monkeypatch, flag):
    named = gunicorn_env / "deploy" / "web.py"
    named.parent.mkdir()
    named.write_text("workers: int = 3\n")
    (gunicorn_env / "gunicorn.conf.py").write_text("workers = 1\n")  # not read: -c names another file
    monkeypatch.setattr(sys, "argv", ["gunicorn", "app"] + [f.format(path=named) for f in flag])
    assert checks.web_worker_processes() == 3


def test_the_config_file_can_be_named_in_gunicorn_cmd_args(gunicorn_env, monkeypatch):
    (gunicorn_env / "web.conf.py").write_text("workers = 5\n")
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--bind 127.0.0.1:9000 -c web.conf.py")
    assert checks.web_worker_processes() == 5


def test_the_precedence_is_gunicorns_command_line_then_env_then_file_then_web_concurrency(gunicorn_env, monkeypatch):
    (gunicorn_env / "gunicorn.conf.py").write_text("workers = 4\n")
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    assert checks.web_worker_processes() == 4                     # the file over WEB_CONCURRENCY
    monkeypatch.setenv("GUNICORN_CMD_ARGS", "--workers 6")
    assert checks.web_worker_processes() == 6                     # GUNICORN_CMD_ARGS over the file
    monkeypatch.setattr(sys, "argv", ["gunicorn", "app", "-w", "1"])
    assert checks.web_worker_processes() == 1                     # the command line over both
    assert checks.shared_cache_for_several_workers(None) == []
    (gunicorn_env / "gunicorn.conf.py").write_text("threads = 4\n")  # a file without workers: falls through
    monkeypatch.delenv("GUNICORN_CMD_ARGS")
    monkeypatch.setattr(sys, "argv", ["gunicorn", "app"])
    assert checks.web_worker_processes() == 2


@pytest.mark.parametrize(("text", "expected"), [
    ("import multiprocessing\nworkers = multiprocessing.cpu_count() * 2 + 1\n", "cpu*2+1"),
    ("import os\nworkers = os.cpu_count()\n", "cpu"),
    ("import os\nworkers = int(os.environ.get('WEB_WORKERS', '3'))\n", 3),
    ("import os\nworkers = int(os.getenv('WEB_WORKERS', 7))\n", 7),
    ("workers = 2\nworkers = 8\n", 8),                            # the last assignment wins
])
def test_it_evaluates_the_usual_worker_expressions_without_running_the_file(gunicorn_env, text, expected):
    import os

    (gunicorn_env / "gunicorn.conf.py").write_text(text)
    cpu = os.cpu_count() or 1
    assert checks.web_worker_processes() == {"cpu*2+1": cpu * 2 + 1, "cpu": cpu}.get(expected, expected)


@pytest.mark.parametrize("text", [
    "workers = __import__('pathlib').Path('{marker}').write_text('ran') or 4\n",  # never executed
    "open('{marker}', 'w').write('ran')\nworkers = compute()\n",
    "workers = 'four'\n",
    "workers = (\n",                                                # a syntax error
    "workers = 10**100\n",
    "workers = 2\nif True:\n    workers = 9\n",                   # only running it would tell
    "workers = 2\nworkers += 1\n",
])
def test_a_config_file_it_cannot_read_safely_falls_back_and_runs_nothing(gunicorn_env, monkeypatch, text):
    marker = gunicorn_env / "ran.txt"
    (gunicorn_env / "gunicorn.conf.py").write_text(text.format(marker=marker))
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert checks.web_worker_processes() == 3
    assert not marker.exists()


def test_a_missing_or_module_config_falls_back_to_web_concurrency(gunicorn_env, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    monkeypatch.setattr(sys, "argv", ["gunicorn", "app", "-c", str(gunicorn_env / "absent.py")])
    assert checks.web_worker_processes() == 2
    monkeypatch.setattr(sys, "argv", ["gunicorn", "app", "-c", "python:deploy.gunicorn_conf"])
    assert checks.web_worker_processes() == 2


def test_a_config_file_named_outside_gunicorn_is_not_read(gunicorn_env, monkeypatch):
    (gunicorn_env / "web.py").write_text("workers = 4\n")
    monkeypatch.setattr(sys, "argv", ["manage.py", "check", "-c", "web.py"])  # not gunicorn's -c
    assert checks.web_worker_processes() == 1
