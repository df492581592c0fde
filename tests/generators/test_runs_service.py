"""Training-run services and tasks: the split, seeded training, failures (NaN, unexpected errors,
time limits, a killed worker, a failed save) and the Celery routing."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
import torch
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.utils import timezone

from clearinghouse.errors import ApplicationError
from clearinghouse.custody import CustodyError
from clearinghouse.models import AuditEvent
from generators import services, tasks
from generators.core.models.copula import GaussianCopula
from generators.models import GeneratorRun
from generators.services import (
    run_create, run_execute, run_generator, run_split, runs_fail_orphaned, runs_reap_stale,
)
from tests.generators.runs_fixtures import entries, events_after, last_seq, make_run, models_dir  # noqa: F401

SMALL_CTGAN = {"batch_size": 10, "generator_width": 32, "critic_width": 32}


# --------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 3, 6, 10, 686, 1001])
def test_run_split_is_a_seeded_disjoint_80_20_cover(n):
    train, holdout = run_split(n, 42)
    assert len(holdout) == round(0.2 * n)
    assert len(train) + len(holdout) == n
    assert not set(train) & set(holdout)
    assert sorted(set(train) | set(holdout)) == list(range(n))
    assert list(train) == sorted(train) and list(holdout) == sorted(holdout)
    again = run_split(n, 42)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], holdout)


def test_run_split_depends_on_the_seed():
    assert not np.array_equal(run_split(686, 0)[1], run_split(686, 1)[1])


@pytest.mark.django_db
def test_the_run_records_its_split(custodian, dataset, models_dir):
    run = run_execute(make_run(dataset, custodian[0], seed=11).pk)
    train, holdout = run_split(dataset.n_rows, 11)
    assert run.status == "succeeded"
    assert run.n_train == len(train)
    assert run.holdout_rows == holdout.tolist()


# --------------------------------------------------------------------------------------------
# Seeded training
# --------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_same_seed_trains_the_same_generator(custodian, dataset, models_dir):
    runs = [run_execute(make_run(dataset, custodian[0], model="ctgan", epochs=2, seed=seed,
                                 hyperparameters=SMALL_CTGAN).pk) for seed in (5, 5, 6)]
    assert [r.status for r in runs] == ["succeeded"] * 3, [r.error for r in runs]
    frames = [run_generator(r).sample(40, seed=3) for r in runs]
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert not frames[0].equals(frames[2])
    assert runs[0].losses == runs[1].losses


@pytest.mark.django_db
def test_a_flow_may_be_conditioned_on_a_categorical_column(custodian, dataset, models_dir):
    run = run_execute(make_run(dataset, custodian[0], model="flow", epochs=1,
                               hyperparameters={"condition_on": "horTh", "hidden_width": 16}).pk)
    assert run.status == "succeeded", run.error
    assert set(run_generator(run).sample(20, conditions={"horTh": "yes"}, seed=0)["horTh"]) == {"yes"}


@pytest.mark.django_db
def test_run_generator_refuses_a_run_without_a_checkpoint(custodian, dataset, models_dir):
    queued = make_run(dataset, custodian[0])
    with pytest.raises(ApplicationError) as refused:
        run_generator(queued)
    assert (refused.value.code, refused.value.status_code) == ("run_not_succeeded", 409)
    done = run_execute(make_run(dataset, custodian[0]).pk)
    (models_dir / done.checkpoint_name / "config.json.fernet").unlink()
    (models_dir / done.checkpoint_name / "weights.pt.fernet").unlink()
    with pytest.raises(ApplicationError) as missing:
        run_generator(done)
    assert missing.value.code == "checkpoint_missing"


@pytest.mark.django_db
def test_a_run_is_claimed_once(custodian, dataset, models_dir):
    run = make_run(dataset, custodian[0])
    assert run_execute(run.pk).status == "succeeded"
    before = last_seq()
    assert run_execute(run.pk) is None
    assert run_execute(987654) is None
    assert events_after(before) == []


# --------------------------------------------------------------------------------------------
# Failures: recorded on the run, audited, no checkpoint kept
# --------------------------------------------------------------------------------------------
def _assert_failed(run, models_dir, before, *words):
    assert run.status == "failed"
    assert run.finished_at is not None
    assert run.checkpoint_name == ""
    for word in words:
        assert word in run.error, run.error
    assert entries(models_dir) == set()  # no checkpoint, no staging folder
    finish = [e for e in events_after(before) if e.action == "run.finish"]
    assert len(finish) == 1
    assert (finish[0].outcome, finish[0].object_id, finish[0].details["status"]) == ("failed", str(run.pk), "failed")
    return finish[0]


@pytest.mark.django_db
def test_a_nan_loss_fails_the_run_with_a_message(custodian, dataset, models_dir, monkeypatch):
    monkeypatch.setattr(services, "PROGRESS_EVERY_SECONDS", 0)

    def diverging_fit(self, table, *, epochs, seed, progress):
        self._report(progress, 1, epochs, {"loss": 1.5})
        self._report(progress, 2, epochs, {"loss": float("nan")})

    monkeypatch.setattr(GaussianCopula, "_fit", diverging_fit)
    before = last_seq()
    run = run_execute(make_run(dataset, custodian[0], epochs=3).pk)
    event = _assert_failed(run, models_dir, before, "diverged", "nan")
    assert run.epoch == 1 and run.losses == {"loss": 1.5}
    assert "diverged" in event.details["error"]


@pytest.mark.django_db
def test_an_unexpected_error_fails_the_run_without_quoting_it(custodian, dataset, models_dir, monkeypatch):
    def failing_fit(self, table, *, epochs, seed, progress):
        raise ValueError(f"could not convert row p001 age={table['age'].iloc[0]}")

    monkeypatch.setattr(GaussianCopula, "_fit", failing_fit)
    before = last_seq()
    run = run_execute(make_run(dataset, custodian[0]).pk)
    event = _assert_failed(run, models_dir, before, "internal error (ValueError)")
    assert "p001" not in run.error and "age=" not in run.error
    assert "p001" not in str(event.details)


@pytest.mark.django_db
def test_the_soft_time_limit_fails_the_run(custodian, dataset, models_dir, monkeypatch, settings):
    def slow_fit(self, table, *, epochs, seed, progress):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(GaussianCopula, "_fit", slow_fit)
    before = last_seq()
    run = run_execute(make_run(dataset, custodian[0]).pk)
    _assert_failed(run, models_dir, before, "time limit", str(settings.GENERATOR_TIME_LIMIT_SECONDS))


@pytest.mark.django_db
def test_an_unreadable_dataset_fails_the_run(custodian, dataset, models_dir, monkeypatch):
    def unreadable(name):
        raise CustodyError("the stored dataset could not be decrypted")

    monkeypatch.setattr(services, "custody_read", unreadable)
    before = last_seq()
    run = run_execute(make_run(dataset, custodian[0]).pk)
    _assert_failed(run, models_dir, before, "decrypted")


@pytest.mark.django_db
def test_saving_is_atomic(custodian, dataset, models_dir, monkeypatch):
    real_save = torch.save

    def save_half_then_fail(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)  # the file is (partly) there, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    before = last_seq()
    run = run_execute(make_run(dataset, custodian[0]).pk)
    _assert_failed(run, models_dir, before, "internal error (OSError)")
    assert models_dir.is_dir()


# --------------------------------------------------------------------------------------------
# A worker killed mid-run
# --------------------------------------------------------------------------------------------
def _running(run, *, heartbeat, epoch: int, worker: str = "worker-1"):
    GeneratorRun.objects.filter(pk=run.pk).update(status="running", started_at=heartbeat - timedelta(seconds=5),
                                                  heartbeat_at=heartbeat, epoch=epoch, worker=worker)
    run.refresh_from_db()
    return run


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


@pytest.mark.django_db
def test_the_reaper_fails_a_silent_run_and_removes_what_it_left(custodian, dataset, models_dir, settings):
    settings.GENERATOR_STALE_AFTER_SECONDS = 900
    now = timezone.now()
    stale = _running(make_run(dataset, custodian[0], model="ctgan", epochs=10), heartbeat=now - timedelta(seconds=1000),
                     epoch=3)
    alive = _running(make_run(dataset, custodian[0], model="ctgan", epochs=10), heartbeat=now - timedelta(seconds=30),
                     epoch=4)
    models_dir.mkdir(parents=True)
    half = models_dir / f"run-{stale.pk}"  # renamed into place just before the worker died
    half.mkdir()
    (half / "config.json").write_text("{}")
    old_staging = models_dir / f".run-{stale.pk}-k1ll3d"
    old_staging.mkdir()
    (old_staging / "weights.pt").write_bytes(b"\x00" * 10)
    _age(old_staging, 2000)
    fresh_staging = models_dir / f".run-{alive.pk}-s4v1ng"
    fresh_staging.mkdir()

    before = last_seq()
    assert runs_reap_stale(now=now) == [stale.pk]

    stale.refresh_from_db()
    assert stale.status == "failed"
    assert "epoch 3 of 10" in stale.error
    assert stale.finished_at == now
    alive.refresh_from_db()
    assert (alive.status, alive.error, alive.finished_at) == ("running", "", None)
    assert entries(models_dir) == {fresh_staging.name}
    [event] = events_after(before)
    assert (event.action, event.outcome, event.actor_id) == ("run.finish", "failed", None)
    assert (event.object_type, event.object_id) == ("run", str(stale.pk))
    assert event.details["status"] == "failed"

    # a second pass finds nothing more to do
    before = last_seq()
    assert runs_reap_stale(now=now) == []
    assert events_after(before) == []


@pytest.mark.django_db
def test_the_reaper_leaves_queued_and_finished_runs_alone(custodian, dataset, models_dir):
    queued = make_run(dataset, custodian[0])
    done = run_execute(make_run(dataset, custodian[0]).pk)
    later = timezone.now() + timedelta(days=1)
    assert runs_reap_stale(now=later) == []
    queued.refresh_from_db()
    assert queued.status == "queued"
    assert run_generator(done) is not None  # its checkpoint is still there
    assert (models_dir / done.checkpoint_name).is_dir()


@pytest.mark.django_db
def test_the_reaper_copes_without_a_models_dir(custodian, dataset, models_dir):
    assert not models_dir.exists()
    assert runs_reap_stale() == []


@pytest.mark.django_db
def test_a_restarted_worker_fails_its_orphans_at_once(custodian, dataset, models_dir):
    now = timezone.now()
    mine = _running(make_run(dataset, custodian[0], model="ctgan", epochs=10), heartbeat=now, epoch=2,
                    worker="celery@gpu-1")
    other = _running(make_run(dataset, custodian[0], model="ctgan", epochs=10), heartbeat=now, epoch=2,
                     worker="celery@gpu-2")
    fitting = _running(make_run(dataset, custodian[0]), heartbeat=now, epoch=0, worker="celery@gpu-1")  # a copula
    before = last_seq()
    assert sorted(runs_fail_orphaned(worker="celery@gpu-1")) == [mine.pk, fitting.pk]
    mine.refresh_from_db()
    fitting.refresh_from_db()
    assert "while the run was in its one fitting pass" in fitting.error
    other.refresh_from_db()
    assert mine.status == "failed" and "epoch 2 of 10" in mine.error
    assert other.status == "running"
    assert sorted((e.action, e.outcome, e.object_id) for e in events_after(before)) == sorted(
        [("run.finish", "failed", str(mine.pk)), ("run.finish", "failed", str(fitting.pk))])


# --------------------------------------------------------------------------------------------
# The Celery task: ids only, queued on commit, on "gpu" when CUDA is asked for
# --------------------------------------------------------------------------------------------
@pytest.fixture
def queued_calls(monkeypatch, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # a broker is configured: nothing trains in-process
    calls = []
    monkeypatch.setattr(tasks.train_run, "apply_async", lambda *args, **kwargs: calls.append((args, kwargs)))
    return calls


@pytest.mark.django_db
def test_a_cuda_run_is_queued_on_gpu_on_commit(custodian, dataset, monkeypatch, queued_calls,
                                               django_capture_on_commit_callbacks):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = run_create(dataset=dataset, model="copula", epochs=1, device="cuda", by=custodian[0])
        assert queued_calls == []  # not before the commit
    assert len(callbacks) == 1
    assert queued_calls == [((), {"args": [run.pk], "queue": "gpu"})]
    assert GeneratorRun.objects.get(pk=run.pk).queue == "gpu"


@pytest.mark.django_db
def test_a_cuda_run_is_accepted_for_a_gpu_worker_without_local_cuda(custodian, dataset, monkeypatch, queued_calls,
                                                                     django_capture_on_commit_callbacks):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(dataset=dataset, model="copula", epochs=1, device="cuda", by=custodian[0])
    assert queued_calls == [((), {"args": [run.pk], "queue": "gpu"})]


@pytest.mark.django_db
@pytest.mark.parametrize("device", ["cpu", "auto"])
def test_cpu_and_auto_runs_go_to_the_default_queue(custodian, dataset, device, queued_calls,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(dataset=dataset, model="copula", epochs=1, device=device, by=custodian[0])
    assert queued_calls == [((), {"args": [run.pk], "queue": "default"})]
    assert run.queue == "default"


@pytest.mark.django_db
def test_nothing_is_queued_when_the_transaction_rolls_back(custodian, dataset, queued_calls,
                                                            django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                run_create(dataset=dataset, model="copula", epochs=1, device="cpu", by=custodian[0])
                raise RuntimeError("the request failed after creating the run")
    assert callbacks == []
    assert queued_calls == []
    assert GeneratorRun.objects.count() == 0
    assert not AuditEvent.objects.filter(action="run.create").exists()


@pytest.mark.django_db
def test_a_refused_run_queues_nothing(custodian, dataset, queued_calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ApplicationError):
            run_create(dataset=dataset, model="copula", epochs=0, by=custodian[0])
    assert callbacks == [] and queued_calls == []


@pytest.mark.django_db
def test_the_task_trains_by_id(custodian, dataset, models_dir):
    run = make_run(dataset, custodian[0])
    assert tasks.train_run.apply(args=[run.pk]).get() == "succeeded"
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.worker == socket.gethostname()[:200]
    assert tasks.train_run.apply(args=[run.pk]).get() is None  # already done: nothing to do


def test_the_task_has_time_limits(settings):
    assert tasks.train_run.soft_time_limit == settings.GENERATOR_TIME_LIMIT_SECONDS
    assert tasks.train_run.time_limit > tasks.train_run.soft_time_limit


@pytest.mark.django_db
def test_the_reap_task(custodian, dataset, models_dir, settings):
    run = _running(make_run(dataset, custodian[0]), epoch=0,
                   heartbeat=timezone.now() - timedelta(seconds=settings.GENERATOR_STALE_AFTER_SECONDS + 60))
    assert tasks.reap_stale_runs.apply().get() == [run.pk]


@pytest.mark.django_db
def test_a_worker_given_up_for_lost_keeps_no_checkpoint(custodian, dataset, models_dir):
    """The reaper fails a run whose worker was only slow; when that worker then finishes, the run stays
    failed and the checkpoint it saved is removed (no private model on disk that no run points to)."""
    reaped = []

    def relay(epoch, total, losses):  # the reaper runs while the worker trains
        reaped.extend(runs_reap_stale(now=timezone.now() + timedelta(days=1)))

    run = make_run(dataset, custodian[0])
    before = last_seq()
    run = run_execute(run.pk, relay=relay)
    assert reaped == [run.pk]
    assert run.status == "failed" and "stopped reporting" in run.error
    assert run.checkpoint_name == ""
    assert entries(models_dir) == set()
    assert [e.details["status"] for e in events_after(before) if e.action == "run.finish"] == ["failed"]
