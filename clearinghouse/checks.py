"""System checks: real data sit outside anything the web server serves; production has its static
manifest, named hosts and counters shared between worker processes."""

import os
import shlex
import sys
from pathlib import Path

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register()
def data_dir_not_served(app_configs, **kwargs):
    errors = []
    data_dir = Path(settings.DATA_DIR).resolve()
    for name in ("STATIC_ROOT", "MEDIA_ROOT"):
        value = getattr(settings, name, None)
        if not value:
            continue
        served = Path(value).resolve()
        if data_dir == served or data_dir.is_relative_to(served) or served.is_relative_to(data_dir):
            errors.append(
                Error(f"DATA_DIR ({data_dir}) overlaps {name} ({served}).", id="clearinghouse.E001")
            )
    return errors


# --- production: static files, hosts, shared counters ------------------------------------
# ``check --deploy`` runs the deploy-tagged checks; the shared-counter check also runs at every
# start (no tag: ``migrate``, ``runserver``, ``check``) and clearinghouse/wsgi.py refuses to serve
# when it fails, since gunicorn does not run system checks.


def _cache_is_shared() -> bool:
    """Whether every process of this host sees the same cache (not process memory, not nothing)."""
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    return backend.rsplit(".", 1)[-1] not in ("LocMemCache", "DummyCache")


def _gunicorn_workers(argv: list[str]) -> int | None:
    """``-w N`` / ``--workers N`` / ``--workers=N`` on a gunicorn command line, if given."""
    for index, arg in enumerate(argv):
        value = None
        if arg in ("-w", "--workers") and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--workers="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-w") and arg[2:].isdigit():
            value = arg[2:]
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return None
    return None


def web_worker_processes() -> int:
    """How many processes can serve requests, as far as this process can tell.

    gunicorn takes its worker count from ``-w``/``--workers`` (on its command line or in
    ``GUNICORN_CMD_ARGS``), else from ``WEB_CONCURRENCY`` (docker/ sets 3), else 1.
    """
    # .../bin/gunicorn, or .../gunicorn/__main__.py under `python -m gunicorn`
    started_by_gunicorn = bool(sys.argv) and "gunicorn" in Path(sys.argv[0] or "").parts[-2:]
    for argv in (sys.argv if started_by_gunicorn else [],
                 shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))):
        workers = _gunicorn_workers(list(argv))
        if workers is not None:
            return workers
    try:
        return int(os.environ.get("WEB_CONCURRENCY", "") or 1)
    except ValueError:
        return 1


def unshared_counters_problem() -> str | None:
    """Why production must not start: login lockouts and rate limits would count per process."""
    if settings.DEBUG or _cache_is_shared():
        return None
    workers = web_worker_processes()
    if workers <= 1:
        return None
    backend = settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1]
    limit = settings.LOGIN_FAILURES_PER_USERNAME
    return (f"{workers} web worker processes with the {backend} cache: each process would keep its own "
            f"failed-login and rate-limit counters (a lockout after {limit} failures would allow {limit} per "
            "process). "
            "Set REDIS_URL, or run a single worker (WEB_CONCURRENCY=1).")


@register()
def shared_cache_for_several_workers(app_configs, **kwargs):
    problem = unshared_counters_problem()
    return [Error(problem, id="clearinghouse.E002")] if problem else []


@register(Tags.security, deploy=True)
def shared_cache_in_production(app_configs, **kwargs):
    if settings.DEBUG or _cache_is_shared():
        return []
    return [Warning(
        "The cache is process memory: failed-login lockouts and rate limits are not shared with other "
        "processes and are lost on restart.",
        hint="Set REDIS_URL (docker/compose.yaml runs Redis).", id="clearinghouse.W001")]


@register(Tags.security, deploy=True)
def allowed_hosts_not_wildcard(app_configs, **kwargs):
    if "*" not in settings.ALLOWED_HOSTS:
        return []
    return [Warning(
        "ALLOWED_HOSTS contains '*': any Host header is accepted (links built from it can point anywhere).",
        hint="List the host names the service is reached by.", id="clearinghouse.W002")]


@register(Tags.staticfiles, deploy=True)
def static_manifest_collected(app_configs, **kwargs):
    from django.contrib.staticfiles.storage import ManifestFilesMixin
    from django.core.files.storage import storages

    storage = storages["staticfiles"]
    if not isinstance(storage, ManifestFilesMixin):
        return []
    manifest = Path(settings.STATIC_ROOT) / storage.manifest_name
    if manifest.is_file():
        return []
    return [Error(
        f"No static files manifest at {manifest}: pages that use static files (/api/docs/, /admin/) "
        "answer 500.",
        hint="Run `python manage.py collectstatic --noinput` (the Docker image does it at build time).",
        id="clearinghouse.E003")]
