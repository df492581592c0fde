"""Real task round trips through a broker and a worker.

The rest of the suite runs tasks eagerly. Here a task is published, consumed by a worker thread
(``celery.contrib.testing.worker.start_worker``) and its effect is seen in the database:

* through the embedded broker `make serve` uses (``filesystem://`` under DATA_DIR/broker/), always, by
  running `manage.py serve` itself in its own processes (a worker thread inside the suite's process was
  dropped: in the full suite its messages were sometimes never consumed, a state of the shared process that
  a separate process does not have);
* through Redis, when ``CELERY_BROKER_URL`` is configured (the PostgreSQL pass of `make test`).
"""

import contextlib
import runpy
import time
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from clearinghouse.celery import app
from clearinghouse.management.commands import serve
from clearinghouse.models import AuditEvent
from clearinghouse.tasks import audit_chain_verify_task

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "clearinghouse" / "settings.py"


def _wait_for(predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return predicate()


@contextlib.contextmanager
def _broker(url: str, transport_options: dict | None = None):
    """Point the app at a real broker for the block (not eager), then back to the suite's eager mode."""
    saved = {key: app.conf[key] for key in ("broker_url", "broker_transport_options", "task_always_eager")}
    app.close()  # drop a connection pool made for another broker
    app.conf.update(broker_url=url, broker_transport_options=transport_options or {}, task_always_eager=False)
    try:
        yield
    finally:
        app.close()
        app.conf.update(saved)


def _settings_with(monkeypatch, tmp_path, **env) -> dict:
    """The settings module executed afresh with ``env`` (the process's own settings stay as they are)."""
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DJANGO_DEBUG", "1")
    for key, value in env.items():
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_settings_parse_the_embedded_broker_url(monkeypatch, tmp_path):
    conf = _settings_with(monkeypatch, tmp_path, CELERY_BROKER_URL="filesystem://")
    assert conf["CELERY_BROKER_URL"] == "filesystem://" and conf["CELERY_TASK_ALWAYS_EAGER"] is False
    options = conf["CELERY_BROKER_TRANSPORT_OPTIONS"]
    queue = tmp_path / "broker" / "queue"
    assert options["data_folder_in"] == options["data_folder_out"] == str(queue)
    assert options["control_folder"] == str(tmp_path / "broker" / "control")
    assert options["store_processed"] is False and options["polling_interval"] == 0.1
    assert queue.is_dir() and (queue.stat().st_mode & 0o777) == 0o700  # outside any served directory
    assert conf["CELERY_BEAT_SCHEDULE_FILENAME"] == str(tmp_path / "broker" / "celerybeat-schedule")

    monkeypatch.setenv("CELERY_EMBEDDED_POLL_SECONDS", "0.5")
    assert runpy.run_path(str(SETTINGS_FILE))["CELERY_BROKER_TRANSPORT_OPTIONS"]["polling_interval"] == 0.5


def test_settings_leave_other_brokers_and_no_broker_as_they_were(monkeypatch, tmp_path):
    redis = _settings_with(monkeypatch, tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert redis["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0" and redis["CELERY_TASK_ALWAYS_EAGER"] is False
    assert "CELERY_BROKER_TRANSPORT_OPTIONS" not in redis and "CELERY_BEAT_SCHEDULE_FILENAME" not in redis
    eager = _settings_with(monkeypatch, tmp_path, CELERY_BROKER_URL=None)
    assert eager["CELERY_BROKER_URL"] is None and eager["CELERY_TASK_ALWAYS_EAGER"] is True
    assert not (tmp_path / "broker").exists()


def test_serve_runs_the_web_server_and_a_worker_on_the_projects_queues_with_beat(monkeypatch):
    monkeypatch.delenv("CELERY_BROKER_URL", raising=False)
    commands = serve.child_commands(addr="127.0.0.1:8000", concurrency=2, beat=True, loglevel="INFO")
    assert commands["web"][-3:] == ["runserver", "127.0.0.1:8000", "--noreload"]
    worker = commands["worker"]
    assert worker[worker.index("-Q") + 1] == "default,gpu" and "-B" in worker
    assert "-B" not in serve.child_commands(addr="x:1", concurrency=1, beat=False, loglevel="INFO")["worker"]
    assert serve.child_environment()["CELERY_BROKER_URL"] == "filesystem://"
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://example:6379/0")
    assert serve.child_environment()["CELERY_BROKER_URL"] == "redis://example:6379/0"  # used as given


@pytest.mark.skipif(not settings.CELERY_BROKER_URL, reason="no CELERY_BROKER_URL: jobs run in-process")
@pytest.mark.django_db(transaction=True)
def test_a_task_goes_through_the_broker_and_a_worker():
    with _broker(settings.CELERY_BROKER_URL, getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})):
        app.control.purge()
        with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=30):
            result = audit_chain_verify_task.apply_async()
            event = _wait_for(lambda: AuditEvent.objects.filter(action="audit.chain.check").first(), 20)
    assert event is not None, "the worker did not run the task"
    assert event.channel == "task"
    assert event.request_id == result.id.replace("-", "")
    assert event.outcome == "success" and event.details["valid"] is True


#: Run inside the serve test's own DATA_DIR: a custodian with a token and the small GBSG2 cohort.
SEED_WORLD = """
import django
django.setup()
from accounts.services import token_issue_for, user_create
from clearinghouse.services.datasets import dataset_create
from tests.conftest import DATA, GBSG2_SCHEMA
user, _ = user_create(username="cora", roles=["custodian"], password="correct horse battery staple")
dataset_create(slug="gbsg2-small", name="GBSG2 (small)", schema=GBSG2_SCHEMA,
               data=(DATA / "gbsg2_small.csv").read_bytes(), by=user)
print(token_issue_for(user=user)[1])
"""


def test_make_serve_answers_a_run_at_once_trains_it_in_its_worker_and_stops_both_on_ctrl_c(tmp_path):
    """`manage.py serve` as `make serve` runs it: the API queues a run (202, queued), the worker on
    the embedded broker trains it, and SIGINT (Ctrl-C) stops the web server and the worker together."""
    import json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    root = SETTINGS_FILE.parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "CELERY_"))}
    env.update({"DJANGO_DEBUG": "1", "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "clearinghouse.settings",
                "PYTHONPATH": str(root)})
    manage = [sys.executable, str(root / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=root, env=env, check=True, timeout=300)
    seeded = subprocess.run([sys.executable, "-c", SEED_WORLD], cwd=root, env=env, capture_output=True, text=True,
                            timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    token = seeded.stdout.strip().splitlines()[-1]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = f"http://127.0.0.1:{port}/api/v1"

    def call(method, path, body=None):
        request = urllib.request.Request(f"{api}{path}", method=method, data=json.dumps(body).encode() if body else None,
                                         headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())

    serve = subprocess.Popen([*manage, "serve", f"127.0.0.1:{port}", "--grace", "20"], cwd=root, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / "serve.log"

    def worker_ready():
        return log.exists() and " ready." in log.read_text()

    try:
        # Collect the output in a thread (the pipe must be drained), until the worker says it is ready.
        import threading


        def drain():
            with log.open("w") as sink:
                for line in serve.stdout:
                    sink.write(line)
                    sink.flush()

        threading.Thread(target=drain, daemon=True).start()
        assert _wait_for(worker_ready, 150), log.read_text() if log.exists() else "no output"

        def web_up():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2).close()
                return True
            except OSError:
                return False

        assert _wait_for(web_up, 60), log.read_text()
        status, run = call("POST", "/datasets/gbsg2-small/runs/", {"model": "copula", "epochs": 1, "seed": 0,
                                                                    "device": "cpu"})
        assert (status, run["status"]) == (202, "queued")  # answered before the job ran: eager would say succeeded
        finished = _wait_for(lambda: call("GET", f"/runs/{run['id']}/")[1]["status"] in ("succeeded", "failed"), 90)
        final = call("GET", f"/runs/{run['id']}/")[1]
        assert finished and final["status"] == "succeeded", final
        assert list((tmp_path / "broker" / "queue").iterdir()) == []
    finally:
        serve.send_signal(signal.SIGINT)  # what Ctrl-C sends to the foreground process
        code = serve.wait(timeout=60)
    text = log.read_text()
    assert "broker: filesystem://" in text and "serve: stopping the web server and the worker" in text
    assert code == 0, text
    assert not web_up(), "the web server still answers after Ctrl-C"
    alive = _wait_for(lambda: not _processes_with(f"DATA_DIR={tmp_path}"), 10) or _processes_with(f"DATA_DIR={tmp_path}")
    assert alive is True, f"processes left running: {alive}"


def _processes_with(variable: str) -> list[str]:
    """Live processes whose environment holds ``variable`` (serve's children and their forks carry DATA_DIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().split(")")[-1].split()[0]
            except OSError:
                continue
            if variable.encode() in environ and state != "Z":
                found.append(entry.name)
    return found
