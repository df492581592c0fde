"""`make serve`: the development web server and a Celery worker, started and stopped together.

Without ``CELERY_BROKER_URL`` both processes get the embedded broker (``filesystem://``: kombu's
filesystem transport under ``DATA_DIR/broker/``, no server to run), so ``POST /api/v1/datasets/<slug>/runs/``
answers 202 at once and the run trains in the worker while its progress and cancel are seen on the
web. With ``CELERY_BROKER_URL`` set (Redis, RabbitMQ) that broker is used as given. The worker
listens on the project's queues (``default`` and ``gpu``) and, unless ``--no-beat``, runs Celery beat
in the same process (the reapers and the hourly audit-chain check).

Each child runs in its own process group; Ctrl-C (SIGINT) or SIGTERM stops both: SIGTERM to each
child (the worker finishes its current task: a warm shutdown), then SIGKILL to each child's whole
group after ``--grace`` seconds (a run killed there is failed later by the reaper). When either child exits on its own the other is stopped too, and the command exits with
the first one's status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

MANAGE = Path(__file__).resolve().parents[3] / "manage.py"
QUEUES = ("default", "gpu")  # generators.services: queue "gpu" for device cuda, else the default queue


def child_commands(*, addr: str, concurrency: int, beat: bool, loglevel: str) -> dict[str, list[str]]:
    """The two command lines, by name (a function, so a test can read them without starting anything)."""
    worker = [sys.executable, "-m", "celery", "-A", "clearinghouse", "worker", "-Q", ",".join(QUEUES),
              "-c", str(concurrency), "-l", loglevel, "-n", "serve@%h"]
    if beat:
        worker += ["-B", "-s", str(Path(settings.DATA_DIR) / "broker" / "celerybeat-schedule")]
    return {
        "web": [sys.executable, str(MANAGE), "runserver", addr, "--noreload"],
        "worker": worker,
    }


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("CELERY_BROKER_URL", settings.EMBEDDED_BROKER_URL)
    env.setdefault("DJANGO_SETTINGS_MODULE", os.environ.get("DJANGO_SETTINGS_MODULE", "clearinghouse.settings"))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class Command(BaseCommand):
    help = "Run the development web server and a Celery worker (embedded broker by default); Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("addr", nargs="?", default="127.0.0.1:8000", help="address:port for the web server")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes (default 2)")
        parser.add_argument("--no-beat", action="store_true", help="do not run Celery beat in the worker")
        parser.add_argument("--grace", type=float, default=10.0,
                            help="seconds to wait for both to stop before killing them (default 10)")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, **options):
        env = child_environment()
        commands = child_commands(addr=options["addr"], concurrency=options["concurrency"],
                                  beat=not options["no_beat"], loglevel=options["loglevel"])
        broker = env["CELERY_BROKER_URL"]
        where = f" (messages under {Path(settings.DATA_DIR) / 'broker'})" if broker.startswith("filesystem") else ""
        self.stdout.write(f"Portal and API: http://{options['addr']}/   broker: {broker}{where}")
        self.stdout.write(f"Worker queues: {', '.join(QUEUES)}; beat: {'off' if options['no_beat'] else 'on'}. "
                          "Ctrl-C stops both.")
        self.stdout.flush()

        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        status = 0
        try:
            for name, argv in commands.items():
                # Own process group: our signal reaches the child and everything it forks (worker pool, beat).
                children[name] = subprocess.Popen(argv, env=env, start_new_session=True)
            while not stopping:
                exited = [(name, proc.returncode) for name, proc in children.items() if proc.poll() is not None]
                if exited:
                    name, status = exited[0]
                    self.stderr.write(f"serve: {name} exited with status {status}; stopping the other.")
                    break
                time.sleep(0.2)
        finally:
            if stopping:
                self.stdout.write("serve: stopping the web server and the worker ...")
            _stop_all(children, grace=options["grace"])
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if status:
            sys.exit(status)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _stop_all(children: dict[str, subprocess.Popen], *, grace: float) -> None:
    for proc in children.values():
        # The leader only: the worker's main process then stops its pool itself (a warm shutdown).
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in children.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # The group may outlive its leader (a pool process, beat): make sure nothing is left.
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
