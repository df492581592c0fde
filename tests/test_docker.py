"""The Docker stack, checked without a Docker engine.

docker/compose.yaml is parsed and its services and their wiring are checked (one image for
every app process, start order, queues, GPU, the shared data volume); docker/.env.example
must document every variable the settings read and hold no real secret, and the production
profile built from it passes ``manage.py check --deploy``; docker/Dockerfile and
.dockerignore are checked for what the image must and must not contain.
"""

from __future__ import annotations

import ast
import base64
import binascii
import json
import os
import re
import shlex
import subprocess
import tomllib
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
SETTINGS_SOURCES = [ROOT / "clearinghouse" / "settings.py", ROOT / "clearinghouse" / "env.py"]
#: The project's packages as pyproject.toml names them (every one must reach the image), and the client.
PROJECT_PACKAGES = [pattern.rstrip("*") for pattern in
                    tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]]
IMAGE_FOLDERS = [*PROJECT_PACKAGES, "client"]

APP_SERVICES = ("migrate", "web", "worker", "worker-gpu", "beat")
ALL_SERVICES = ("postgres", "redis", *APP_SERVICES)
ENV_HELPERS = {"env_bool", "env_int", "env_list", "env_path", "env_secret", "env_str"}
PLACEHOLDER = re.compile(r"^$|change[-_]?me|example|replace|placeholder|<[^>]*>", re.IGNORECASE)


# --------------------------------------------------------------------------- parsers
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def services() -> dict:
    return compose()["services"]


def env_example(*, commented: bool = False) -> dict[str, str]:
    """NAME=value lines of .env.example; with ``commented``, also the ``#NAME=value`` examples."""
    values: dict[str, str] = {}
    pattern = re.compile(r"^(#)?([A-Z][A-Z0-9_]*)=(.*)$")
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line.strip())
        if match and (commented or not match.group(1)):
            values.setdefault(match.group(2), match.group(3))
    return values


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, arguments = line.partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
    assert not pending, "Dockerfile ends in a continuation line"
    return instructions


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "ENV":
            for token in shlex.split(arguments):
                name, _, value = token.partition("=")
                env[name] = value
    return env


def exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not the exec (JSON) form: {arguments}"
    return value


def command_of(service: dict) -> list[str]:
    command = service.get("command")
    assert command, "no command"
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def option(argv: list[str], *names: str) -> str | None:
    for position, token in enumerate(argv):
        for name in names:
            if token == name and position + 1 < len(argv):
                return argv[position + 1]
            if name.startswith("--") and token.startswith(name + "="):
                return token.split("=", 1)[1]
    return None


def queues_consumed(service: dict) -> set[str]:
    argv = command_of(service)
    assert argv[:1] == ["celery"] and "worker" in argv, f"not a celery worker: {argv}"
    raw = option(argv, "-Q", "--queues")
    assert raw, f"the worker names no queue (-Q): {argv}"
    return {queue.strip() for queue in raw.split(",") if queue.strip()}


def volume_mounts(service: dict) -> list[tuple[str, str]]:
    """(source, target) of each volume, short or long syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts.append((str(volume.get("source", "")), str(volume["target"])))
        else:
            parts = str(volume).split(":")
            mounts.append((parts[0], parts[1]) if len(parts) > 1 else ("", parts[0]))
    return mounts


def env_files(service: dict) -> list[str]:
    value = service.get("env_file")
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    return [item["path"] if isinstance(item, dict) else item for item in items]


def depends_on(service: dict) -> dict[str, str]:
    value = service.get("depends_on") or {}
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def literal_strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def possible_values(node: ast.AST | None) -> set[str]:
    """The literal strings an expression can evaluate to (``"a" if x == "b" else "c"``: a, c)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return possible_values(node.body) | possible_values(node.orelse)
    if isinstance(node, ast.BoolOp):
        return set().union(*(possible_values(value) for value in node.values))
    return set()


def settings_assignments() -> dict[str, ast.expr]:
    tree = ast.parse((ROOT / "clearinghouse" / "settings.py").read_text(encoding="utf-8"))
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values[target.id] = node.value
    return values


def variables_read_by_settings() -> set[str]:
    """Every environment variable the settings read: env helper calls (a secret also reads
    NAME_FILE) and direct os.environ / os.getenv reads, with a literal name."""
    names: set[str] = set()
    for source in SETTINGS_SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                function = node.func
                called = function.id if isinstance(function, ast.Name) else getattr(function, "attr", "")
                dotted = ast.unparse(function)
                literal = (node.args and isinstance(node.args[0], ast.Constant)
                           and isinstance(node.args[0].value, str))
                if not literal:
                    continue
                name = node.args[0].value
                if called in ENV_HELPERS:
                    names.add(name)
                    if called == "env_secret":
                        names.add(f"{name}_FILE")
                elif dotted in ("os.getenv", "os.environ.get", "environ.get", "getenv"):
                    names.add(name)
            elif isinstance(node, ast.Subscript) and ast.unparse(node.value) in ("os.environ", "environ"):
                if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                    names.add(node.slice.value)
    return names


def queues_routed_by_code() -> set[str]:
    """Queue names the code sends tasks to: the default queue, CELERY_TASK_ROUTES / _QUEUES,
    and literal names in ``queue=`` arguments or ``queue = ...`` assignments."""
    assignments = settings_assignments()
    default = assignments.get("CELERY_TASK_DEFAULT_QUEUE")
    assert isinstance(default, ast.Constant), "CELERY_TASK_DEFAULT_QUEUE is not a literal in settings.py"
    queues = {default.value}
    for name in ("CELERY_TASK_ROUTES", "CELERY_TASK_QUEUES"):
        node = assignments.get(name)
        if isinstance(node, ast.Dict):  # {"task.name": {"queue": "x"}} or {"task.name": "x"}
            for value in node.values:
                if isinstance(value, ast.Dict):
                    for key, inner in zip(value.keys, value.values):
                        if isinstance(key, ast.Constant) and key.value == "queue":
                            queues |= literal_strings(inner)
                else:
                    queues |= literal_strings(value)
        elif node is not None:  # a list of Queue("x", ...) or of names
            for element in ast.walk(node):
                if isinstance(element, ast.Call) and element.args and isinstance(element.args[0], ast.Constant):
                    queues.add(element.args[0].value)
                elif isinstance(element, (ast.List, ast.Tuple, ast.Set)):
                    queues |= {e.value for e in element.elts if isinstance(e, ast.Constant)}
    for package in PROJECT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.keyword) and node.arg == "queue":
                    queues |= possible_values(node.value)
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(isinstance(t, ast.Name) and t.id == "queue" for t in targets):
                        queues |= possible_values(node.value)
    return queues


# --------------------------------------------------------------------------- compose.yaml
def test_compose_has_every_service():
    assert set(ALL_SERVICES) <= set(services())


def test_every_dependency_exists_and_a_healthy_condition_has_a_healthcheck():
    all_services = services()
    for name, service in all_services.items():
        for target, condition in depends_on(service).items():
            assert target in all_services, f"{name} depends on unknown service {target}"
            if condition == "service_healthy":
                assert all_services[target].get("healthcheck", {}).get("test"), \
                    f"{name} waits for {target} to be healthy, but {target} has no healthcheck"


def test_postgres_and_redis_have_healthchecks():
    all_services = services()
    assert "pg_isready" in json.dumps(all_services["postgres"]["healthcheck"]["test"])
    assert all_services["redis"]["healthcheck"]["test"]


def test_migrate_is_one_shot_after_postgres_is_healthy():
    migrate = services()["migrate"]
    assert depends_on(migrate).get("postgres") == "service_healthy"
    assert migrate["restart"] == "no"  # quoted in YAML: a bare no would be False
    assert command_of(migrate)[:3] == ["python", "manage.py", "migrate"]
    assert "--noinput" in command_of(migrate)


@pytest.mark.parametrize("name", ["web", "worker", "worker-gpu", "beat"])
def test_app_processes_start_after_migrate_and_redis(name):
    dependencies = depends_on(services()[name])
    assert dependencies.get("migrate") == "service_completed_successfully"
    assert dependencies.get("redis") == "service_healthy"


def test_app_services_share_image_build_env_file_and_data_volume():
    all_services = services()
    data_dir = dockerfile_env()["DATA_DIR"]
    first = all_services[APP_SERVICES[0]]
    for name in APP_SERVICES:
        service = all_services[name]
        assert service.get("image") == first.get("image"), name
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}, name
        assert env_files(service) == env_files(first) == [".env"], name
        assert ("data", data_dir) in volume_mounts(service), f"{name} does not mount the data volume at {data_dir}"
    # The build context and env_file are relative to docker/: the repository root, docker/.env.
    context = (COMPOSE_FILE.parent / first["build"]["context"]).resolve()
    assert context == ROOT
    assert (context / first["build"]["dockerfile"]).resolve() == DOCKERFILE.resolve()
    assert (COMPOSE_FILE.parent / (env_files(first)[0] + ".example")).resolve() == ENV_EXAMPLE.resolve()
    # The settings read the same DATA_DIR as the mount.
    assert env_example()["DATA_DIR"] == data_dir


def test_every_named_volume_is_declared():
    declared = set(compose().get("volumes") or {})
    for name, service in services().items():
        for source, _target in volume_mounts(service):
            if source and not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name} uses undeclared volume {source!r}"


def test_workers_consume_default_and_gpu_and_the_gpu_worker_reserves_an_nvidia_gpu():
    all_services = services()
    default_queue = settings_assignments()["CELERY_TASK_DEFAULT_QUEUE"].value
    assert queues_consumed(all_services["worker"]) == {default_queue} == {"default"}
    assert queues_consumed(all_services["worker-gpu"]) == {"gpu"}
    for name in ("worker", "worker-gpu"):
        assert option(command_of(all_services[name]), "-A", "--app") == "clearinghouse"
    devices = all_services["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), devices
    # The CPU worker gets no GPU.
    assert "deploy" not in all_services["worker"] or "devices" not in json.dumps(all_services["worker"]["deploy"])


def test_the_queues_the_code_routes_to_are_all_consumed():
    routed = queues_routed_by_code()
    assert {"default", "gpu"} <= routed, routed  # the scan still finds the GPU routing
    all_services = services()
    consumed = set()
    for name, service in all_services.items():
        argv = command_of(service) if service.get("command") else []
        if argv[:1] == ["celery"] and "worker" in argv:
            consumed |= queues_consumed(service)
    assert routed <= consumed, f"no worker consumes {sorted(routed - consumed)}"


def test_web_runs_gunicorn_like_the_image_and_is_published_on_localhost():
    web = services()["web"]
    argv = command_of(web)
    assert argv[0] == "gunicorn" and argv[1] == "clearinghouse.wsgi:application"
    cmd = [exec_form(a) for k, a in dockerfile_instructions() if k == "CMD"][-1]
    assert argv == cmd, "web's command differs from the image's CMD"
    assert option(argv, "--bind", "-b").endswith(":8000")
    assert web["ports"] == ["127.0.0.1:8000:8000"]
    assert "/healthz" in json.dumps(web["healthcheck"]["test"])


def test_beat_runs_celery_beat_with_its_schedule_in_the_data_volume():
    all_services = services()
    beat = all_services["beat"]
    argv = command_of(beat)
    assert argv[:4] == ["celery", "-A", "clearinghouse", "beat"]
    # /app belongs to root: the default schedule file in the working directory is not writable.
    schedule = option(argv, "--schedule", "-s")
    assert schedule and schedule.startswith(dockerfile_env()["DATA_DIR"] + "/"), argv
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert sum("beat" in (command_of(s) if s.get("command") else []) for s in all_services.values()) == 1


def test_compose_interpolates_only_variables_the_example_defines():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text))
    assert used, "expected ${POSTGRES_*} interpolation"
    assert used <= set(env_example()), f"not in .env.example: {sorted(used - set(env_example()))}"


def test_the_example_database_and_broker_urls_point_at_the_compose_services():
    env = env_example()
    database = urlsplit(env["DATABASE_URL"])
    assert database.scheme in ("postgres", "postgresql")
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == env["POSTGRES_USER"]
    assert database.path.lstrip("/") == env["POSTGRES_DB"]
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        assert urlsplit(env[name]).hostname == "redis", name
    assert "postgres" in services() and "redis" in services()


# --------------------------------------------------------------------------- .env.example
def test_env_example_documents_every_variable_the_settings_read():
    read = variables_read_by_settings()
    assert {"SECRET_KEY", "DATA_ENCRYPTION_KEY", "ALLOWED_HOSTS", "DATABASE_URL"} <= read  # the scan works
    # A commented example line (#NAME=...) documents a variable that is left unset on purpose.
    documented = set(env_example(commented=True))
    missing = sorted(read - documented)
    assert not missing, f"settings read variables that docker/.env.example does not document: {missing}"


def test_env_example_holds_no_real_secret():
    env = env_example(commented=True)
    for name, value in env.items():
        if re.search(r"SECRET|PASSWORD|_KEY$", name) and not name.endswith("_FILE"):
            assert PLACEHOLDER.search(value), f"{name} holds a value that looks real: fill-in values stay empty"
        assert not is_fernet_key(value), f"{name} holds a usable Fernet key"
        url = urlsplit(value) if "://" in value else None
        if url is not None and url.password:
            assert PLACEHOLDER.search(url.password), f"{name} holds a real-looking password"
    assert env["SECRET_KEY"] == "" and env["DATA_ENCRYPTION_KEY"] == ""
    assert env["DJANGO_DEBUG"] == "0"


def production_env(tmp_path: Path, values: dict[str, str]) -> dict[str, str]:
    from cryptography.fernet import Fernet

    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
           if key in os.environ}
    env.update(values)
    if PLACEHOLDER.search(env.get("SECRET_KEY", "")) or len(env.get("SECRET_KEY", "")) < 50:
        import secrets

        env["SECRET_KEY"] = secrets.token_urlsafe(50)
    if not is_fernet_key(env.get("DATA_ENCRYPTION_KEY", "")):
        env["DATA_ENCRYPTION_KEY"] = Fernet.generate_key().decode("ascii")
    if PLACEHOLDER.search(env.get("POSTGRES_PASSWORD", "")):
        env["POSTGRES_PASSWORD"] = "not-used-by-this-test"
    env.update(
        DJANGO_SETTINGS_MODULE="clearinghouse.settings",
        DJANGO_DEBUG="0",
        DATABASE_URL=f"sqlite:///{tmp_path / 'check.sqlite3'}",
        DATA_DIR=str(tmp_path / "data"),
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def test_check_deploy_is_clean_with_the_example_environment(tmp_path):
    env = production_env(tmp_path, env_example())
    # The image's build ran collectstatic into STATIC_ROOT (else clearinghouse.E003: no manifest).
    env["STATIC_ROOT"] = str(tmp_path / "static")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "staticfiles.json").write_text('{"paths": {}, "version": "1.1"}')
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "no issues" in output, output


def test_the_build_time_collectstatic_values_pass_the_settings_checks(tmp_path):
    """The Dockerfile's dummy values must load the production settings (else the build fails)."""
    runs = [shlex.split(a) for k, a in dockerfile_instructions() if k == "RUN" and "collectstatic" in a]
    assert len(runs) == 1
    values = {}
    for token in runs[0]:
        if not re.match(r"^[A-Z_][A-Z0-9_]*=", token):
            break
        name, _, value = token.partition("=")
        values[name] = value
    assert values.get("DJANGO_DEBUG") == "0"
    assert {"SECRET_KEY", "DATA_ENCRYPTION_KEY", "ALLOWED_HOSTS", "DATA_DIR"} <= set(values)
    # Not the data volume: nothing from the build lands there.
    assert values["DATA_DIR"] != dockerfile_env()["DATA_DIR"]
    env = production_env(tmp_path, {})
    env.update(values, DATA_DIR=str(tmp_path / "build-data"), STATIC_ROOT=str(tmp_path / "static"))
    result = subprocess.run(
        [sys.executable, "-c", "import clearinghouse.settings as s; print(s.DEBUG, len(s.DATA_ENCRYPTION_KEYS))"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split() == ["False", "1"]


# --------------------------------------------------------------------------- Dockerfile
def test_dockerfile_base_image_is_python_311_or_newer():
    images = [a.split()[0] for k, a in dockerfile_instructions() if k == "FROM"]
    match = re.match(r"^python:3\.(\d+)", images[-1])
    assert match and int(match.group(1)) >= 11, images


def test_dockerfile_runs_as_a_non_root_user():
    users = [a for k, a in dockerfile_instructions() if k == "USER"]
    assert users, "no USER: the processes would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")


def test_dockerfile_installs_the_project_from_pyproject():
    instructions = dockerfile_instructions()
    copies = [a for k, a in instructions if k == "COPY"]
    assert any("pyproject.toml" in a.split() for a in copies)
    assert any(a.split() == [".", "."] for a in copies)
    runs = [a for k, a in instructions if k == "RUN"]
    assert any(re.search(r"pip install (--\S+ )*\.(\s|$)", a) for a in runs), "the project is not pip-installed"
    assert any("pip check" in a for a in runs)


def test_dockerfile_default_command_is_gunicorn_and_data_dir_is_a_volume():
    instructions = dockerfile_instructions()
    cmd = [exec_form(a) for k, a in instructions if k == "CMD"][-1]
    assert cmd[0] == "gunicorn" and cmd[1].startswith("clearinghouse.wsgi")
    env = dockerfile_env()
    assert env["DJANGO_DEBUG"] == "0"
    assert env["DJANGO_SETTINGS_MODULE"] == "clearinghouse.settings"
    volumes = [exec_form(a) if a.startswith("[") else a.split() for k, a in instructions if k == "VOLUME"]
    assert [env["DATA_DIR"]] in volumes
    assert "8000" in [a for k, a in instructions if k == "EXPOSE"]
    # Static files are collected outside the data volume.
    assert not env["STATIC_ROOT"].startswith(env["DATA_DIR"])


# --------------------------------------------------------------------------- .dockerignore
def dockerignore_patterns() -> list[tuple[bool, re.Pattern]]:
    """(negated, regex) per pattern, with Docker's matching: * and ? stay in one path
    segment, **/ spans folders, and a pattern that matches a folder covers what is inside."""
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex, position = "", 0
        while position < len(pattern):
            if pattern.startswith("**/", position):
                regex, position = regex + "(?:.*/)?", position + 3
            elif pattern.startswith("**", position):
                regex, position = regex + ".*", position + 2
            elif pattern[position] == "*":
                regex, position = regex + "[^/]*", position + 1
            elif pattern[position] == "?":
                regex, position = regex + "[^/]", position + 1
            elif pattern[position] == "[":
                end = pattern.index("]", position)
                regex, position = regex + pattern[position:end + 1], end + 1
            else:
                regex, position = regex + re.escape(pattern[position]), position + 1
        patterns.append((negated, re.compile(regex)))
    return patterns


def sent_to_docker(path: str) -> bool:
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for negated, regex in dockerignore_patterns():
        if any(regex.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included


def test_dockerignore_is_an_allow_list():
    first = next(line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
                 if line.strip() and not line.startswith("#"))
    assert first == "*"


@pytest.mark.parametrize("path", [
    ".env", "docker/.env", "clearinghouse/.env", "clearinghouse/.env.local", ".venv/bin/python",
    "var/clearinghouse.sqlite3", "var/.secrets/secret-key", "tests/conftest.py", "tests/data/gbsg2_small.csv",
    "clearinghouse/__pycache__/settings.cpython-311.pyc", "db.sqlite3", "accounts/local.sqlite3",
    "clearinghouse.egg-info/PKG-INFO", ".git/config", "staticfiles/admin/css/base.css",
])
def test_dockerignore_keeps_out(path):
    assert not sent_to_docker(path)


def test_dockerignore_lets_in_what_the_image_needs():
    needed = ["pyproject.toml", "README.md", "manage.py", "clearinghouse/settings.py", "clearinghouse/wsgi.py"]
    for package in IMAGE_FOLDERS:
        if (ROOT / package).is_dir():
            needed += [str(p.relative_to(ROOT)) for p in (ROOT / package).rglob("*")
                       if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
                       and not any(part.endswith(".egg-info") for part in p.parts)]  # build outputs
    refused = [path for path in needed if not sent_to_docker(path)]
    assert not refused, refused
