"""A worker killed with SIGKILL while it trains (or while it saves the checkpoint) leaves its run
failed by the reaper, with no checkpoint and no staging folder left under MODELS_DIR.

The worker is a real child process: ``run_execute`` in a fresh Python, on the same database and
DATA_DIR, killed from here once the database shows it has got that far. The child must see the rows
this test made, so they are committed (``transaction=True``), and it must reach the same database from
another process, which the suite's SQLite test database (in memory) does not allow: PostgreSQL only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from clearinghouse.errors import ApplicationError
from clearinghouse.models import AuditEvent
from generators.models import GeneratorRun
from generators.services import run_generator, runs_reap_stale
from tests.generators.runs_fixtures import entries, make_run, models_dir  # noqa: F401

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (a second process on the same database)"),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parents[2]
SMALL_CTGAN = {"batch_size": 10, "generator_width": 32, "critic_width": 32}
#: The child: train run argv[1] with MODELS_DIR argv[2]. With a marker file argv[3], the save
#: announces itself there (the checkpoint is then in the clear under .plain-*) and waits to be killed.
CHILD = """
import sys, time
from pathlib import Path
import django
django.setup()
import torch
torch.set_num_threads(1)
from django.conf import settings
from generators import services
settings.MODELS_DIR = Path(sys.argv[2])
if len(sys.argv) > 3:
    def seal_after_a_long_pause(source, target):
        Path(sys.argv[3]).write_text(str(source))
        time.sleep(300)
    services.custody_seal_folder = seal_after_a_long_pause
services.run_execute(int(sys.argv[1]), worker="doomed-child")
"""


def database_url() -> str:
    """The URL of the database this test uses (pytest-django's test_<name>), for the child."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="") + (f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(run: GeneratorRun, models: Path, log: Path, *, marker: Path | None = None) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_XDIST_WORKER"}  # keep DATA_DIR
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=database_url(),
               DATA_DIR=str(django_settings.DATA_DIR), OMP_NUM_THREADS="1", DB_CONN_MAX_AGE="0")
    args = [sys.executable, "-c", CHILD, str(run.pk), str(models)] + ([str(marker)] if marker else [])
    with log.open("wb") as out:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(condition, child: subprocess.Popen, log: Path, *, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            pytest.fail(f"the worker exited ({child.returncode}) too soon:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            pytest.fail(f"the worker did not get there in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def kill(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def reap(settings) -> list[int]:
    """The reaper, on the real clock, once the killed worker's last report (and its files) are stale."""
    settings.GENERATOR_STALE_AFTER_SECONDS = 1
    time.sleep(1.5)
    return runs_reap_stale()


def assert_failed_as_lost_leaving_nothing(run: GeneratorRun, models: Path, *, stage: str) -> None:
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error.startswith(f"the worker stopped reporting {stage}")
    assert run.error.endswith("it was killed or lost; no checkpoint was kept")
    assert run.checkpoint_name == "" and run.finished_at is not None
    assert entries(models) == set()  # no run-N checkpoint, no .run-* / .plain-* staging folder
    with pytest.raises(ApplicationError) as refused:
        run_generator(run)
    assert refused.value.code == "run_not_succeeded"
    events = AuditEvent.objects.filter(object_type="run", object_id=str(run.pk)).order_by("seq")
    assert [(e.action, e.outcome) for e in events] == [
        ("run.create", "success"), ("run.start", "success"), ("run.finish", "failed")]
    _, start, finish = events
    assert start.details["worker"] == "doomed-child"
    assert (finish.actor_id, finish.details) == (None, {"status": "failed", "reason": "worker lost"})
    assert runs_reap_stale() == []  # once only


def test_a_worker_killed_mid_training_leaves_the_run_failed_and_no_checkpoint(custodian, dataset, models_dir,
                                                                              settings, tmp_path):
    run = make_run(dataset, custodian[0], model="ctgan", epochs=5000, hyperparameters=SMALL_CTGAN)
    log = tmp_path / "worker.log"
    child = start_worker(run, models_dir, log)
    wait_for(lambda: GeneratorRun.objects.filter(pk=run.pk, epoch__gte=1).exists(), child, log)
    kill(child)

    run.refresh_from_db()
    assert run.status == "running" and 1 <= run.epoch < run.epochs  # killed mid-training, not finished
    assert run.worker == "doomed-child" and run.heartbeat_at is not None
    epoch = run.epoch
    assert reap(settings) == [run.pk]
    assert_failed_as_lost_leaving_nothing(run, models_dir, stage=f"at epoch {epoch} of 5000")


def test_a_worker_killed_while_saving_leaves_no_checkpoint_in_the_clear(custodian, dataset, models_dir,
                                                                        settings, tmp_path):
    run = make_run(dataset, custodian[0], model="ctgan", epochs=2, hyperparameters=SMALL_CTGAN)
    log, marker = tmp_path / "worker.log", tmp_path / "saving"
    child = start_worker(run, models_dir, log, marker=marker)
    wait_for(marker.exists, child, log)
    kill(child)

    plain = Path(marker.read_text())  # the model as saved, unencrypted, in its .plain-* folder
    assert plain.parent.name.startswith(".plain-") and plain.parent.parent == models_dir
    assert any(plain.iterdir())  # the killed worker left the trained weights in the clear
    run.refresh_from_db()
    assert (run.status, run.epoch) == ("running", 2)
    assert reap(settings) == [run.pk]
    assert_failed_as_lost_leaving_nothing(run, models_dir, stage="at epoch 2 of 2")
