"""System checks: real data sit outside anything the web server serves; production has its static
manifest, named hosts and counters shared between worker processes."""

import ast
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


def _gunicorn_option(argv: list[str], short: str, long: str) -> str | None:
    """The value of ``short VALUE`` / ``shortVALUE`` / ``long VALUE`` / ``long=VALUE`` on a command line
    (the last one given wins, as with gunicorn's argparse), else None."""
    found = None
    for index, arg in enumerate(argv):
        if arg in (short, long) and index + 1 < len(argv):
            found = argv[index + 1]
        elif arg.startswith(long + "="):
            found = arg.split("=", 1)[1]
        elif arg.startswith(short) and len(arg) > len(short) and not arg.startswith("--"):
            found = arg[len(short):]
    return found


def _gunicorn_workers(argv: list[str]) -> int | None:
    """``-w N`` / ``--workers N`` / ``--workers=N`` on a gunicorn command line, if given."""
    value = _gunicorn_option(argv, "-w", "--workers")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


#: Calls a config file may make in its ``workers`` expression: they read the machine, never change it.
_CPU_COUNT_CALLS = {("os", "cpu_count"), ("multiprocessing", "cpu_count")}


def _safe_value(node: ast.AST):
    """The value of a config file's expression, for the few forms a worker count takes: a literal,
    ``+ - * //`` of values, ``os.cpu_count()`` / ``multiprocessing.cpu_count()``, ``int(...)`` and
    ``os.environ.get(NAME, default)`` / ``os.getenv(NAME, default)``. Anything else raises ValueError:
    nothing in the file is executed or imported."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, str)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv)):
        left, right = _safe_value(node.left), _safe_value(node.right)
        if not (isinstance(left, int) and isinstance(right, int)):
            raise ValueError("arithmetic on a non-integer")
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            if abs(left) > 10**6 or abs(right) > 10**6:
                raise ValueError("implausibly large")
            return left * right
        if right == 0:
            raise ValueError("division by zero")
        return left // right
    if isinstance(node, ast.Call) and not node.keywords:
        func = node.func
        dotted = (func.value.id, func.attr) if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) \
            else None
        if dotted in _CPU_COUNT_CALLS and not node.args:
            return os.cpu_count() or 1
        if isinstance(func, ast.Name) and func.id == "int" and len(node.args) == 1:
            return int(_safe_value(node.args[0]))
        getenv = dotted == ("os", "getenv") or (
            isinstance(func, ast.Attribute) and func.attr == "get" and isinstance(func.value, ast.Attribute)
            and isinstance(func.value.value, ast.Name) and (func.value.value.id, func.value.attr) == ("os", "environ"))
        if getenv and 1 <= len(node.args) <= 2:
            name = _safe_value(node.args[0])
            default = _safe_value(node.args[1]) if len(node.args) == 2 else None
            return os.environ.get(str(name), default)
    raise ValueError(f"not a value this check reads: {ast.dump(node)[:80]}")


def _config_file_workers(path: Path) -> int | None:
    """``workers = ...`` at the top level of a gunicorn config file (the last assignment wins), read
    from its syntax tree, never executed. None when the file is missing or unreadable, assigns no
    ``workers``, assigns one this reading cannot evaluate (see ``_safe_value``), or assigns it inside a
    block (``if``, ``def``, ...), where only running the file would tell."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return None
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):  # an assignment under an if/for/def/with: its value depends on running it
        if id(node) not in top_level and isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)) and any(
                isinstance(t, ast.Name) and t.id == "workers"
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])):
            return None
    workers = None
    for statement in tree.body:
        if isinstance(statement, ast.AugAssign):  # workers += 1: not evaluated, so unknown from here on
            targets, value = [statement.target], None
        elif isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "workers" for t in targets):
            try:
                workers = None if value is None else int(_safe_value(value))
            except (ValueError, TypeError, OverflowError, RecursionError):
                workers = None
    return workers


def _gunicorn_config_file(argv: list[str], env_argv: list[str]) -> Path | None:
    """The config file gunicorn reads: ``-c``/``--config`` on its command line, else in
    ``GUNICORN_CMD_ARGS``, else ``./gunicorn.conf.py`` when it exists. A ``python:module`` config
    is a module gunicorn imports: not read here (None)."""
    for source in (argv, env_argv):
        value = _gunicorn_option(source, "-c", "--config")
        if value is not None:
            return None if value.startswith("python:") else Path(value)
    default = Path.cwd() / "gunicorn.conf.py"
    return default if default.is_file() else None


def web_worker_processes() -> int:
    """How many processes can serve requests, as far as this process can tell.

    In gunicorn's order of precedence: ``-w``/``--workers`` on its command line, then in
    ``GUNICORN_CMD_ARGS``, then ``workers = N`` in its config file (``-c``/``--config`` FILE, else
    ``./gunicorn.conf.py``; read as a syntax tree, never executed), then ``WEB_CONCURRENCY``
    (docker/ sets 3), else 1.
    """
    # .../bin/gunicorn, or .../gunicorn/__main__.py under `python -m gunicorn`
    started_by_gunicorn = bool(sys.argv) and "gunicorn" in Path(sys.argv[0] or "").parts[-2:]
    argv = list(sys.argv) if started_by_gunicorn else []
    try:
        env_argv = shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))
    except ValueError:  # unbalanced quotes: gunicorn would refuse it too
        env_argv = []
    for source in (argv, env_argv):
        workers = _gunicorn_workers(source)
        if workers is not None:
            return workers
    config = _gunicorn_config_file(argv, env_argv)
    workers = _config_file_workers(config) if config is not None else None
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
