"""Training runs: create (checked, queued on commit), execute (the task body), cancel, reap.

The pure core (``generators.core``) does the training; this module adds custody, the split,
progress in the database, the checkpoint on disk and the audit trail.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clearinghouse.errors import ApplicationError
from clearinghouse.custody import CustodyError, custody_open_folder, custody_read, custody_seal_folder
from clearinghouse.jobs import enqueue
from clearinghouse.models import AuditEvent, Dataset
from clearinghouse.schema import Schema
from clearinghouse.services.audit import audit_record
from clearinghouse.services.checks import MAX_SEED, check_whole_number
from generators.core.models import MODELS, Generator, TrainingDiverged, load_model
from generators.core.models.base import resolve_device
from generators.models import GeneratorRun

__all__ = [
    "HOLDOUT_FRACTION", "MODELS_WITHOUT_EPOCHS", "RunCancelled", "run_cancel", "run_create", "run_epoch_progress",
    "run_execute", "run_generator",
    "run_split", "runs_fail_orphaned", "runs_reap_stale", "trains_by_epochs",
]

logger = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.2
#: Progress is written to the database at most this often (and always at the last epoch).
PROGRESS_EVERY_SECONDS = 1.0

Status = GeneratorRun.Status


#: Models fitted in one pass, not by epochs (generators/core/models/copula.py: "``epochs`` is accepted
#: and ignored"). Their runs take no ``epochs``; one is stored for the core's ``fit`` and never shown.
MODELS_WITHOUT_EPOCHS = frozenset({"copula"})


def trains_by_epochs(model: str) -> bool:
    return model not in MODELS_WITHOUT_EPOCHS


def run_epoch_progress(run: GeneratorRun) -> dict[str, Any]:
    """``epoch``, ``epochs`` and ``fraction`` as the API and the portal show them. A model that does
    not train by epochs has none (null): its fraction is 0 until the run has succeeded, then 1."""
    if not trains_by_epochs(run.model):
        return {"epoch": None, "epochs": None, "fraction": 1.0 if run.status == Status.SUCCEEDED else 0.0}
    fraction = round(run.epoch / run.epochs, 4) if run.epochs else 0.0
    return {"epoch": run.epoch, "epochs": run.epochs, "fraction": fraction}


class RunCancelled(Exception):
    """Raised inside training when the run's cancellation was asked for."""


# --------------------------------------------------------------------------- create
def run_create(
    *,
    dataset: Dataset,
    model: str,
    epochs: int | None = None,
    seed: int = 0,
    device: str = "auto",
    hyperparameters: dict[str, Any] | None = None,
    by,
    enqueue: bool = True,
) -> GeneratorRun:
    """Check everything a worker would trip over, then record the run and queue it when the
    transaction commits. Nothing is stored or queued when a check fails."""
    if model not in MODELS:
        raise ApplicationError(f"Unknown model {model!r}; available: {', '.join(sorted(MODELS))}.",
                               code="unknown_model")
    if trains_by_epochs(model):
        if epochs is None:
            raise ApplicationError(f"epochs is required for {model} (1 to {settings.GENERATOR_MAX_EPOCHS}).",
                                   code="invalid_epochs")
        check_whole_number("epochs", epochs, 1, settings.GENERATOR_MAX_EPOCHS)
    else:
        if epochs is not None:  # accepted and ignored, as before; still a whole number in range
            check_whole_number("epochs", epochs, 1, settings.GENERATOR_MAX_EPOCHS)
        epochs = 1  # one fitting pass
    check_whole_number("seed", seed, 0, MAX_SEED)
    if device not in GeneratorRun.Device.values:
        raise ApplicationError(f"device must be one of {', '.join(GeneratorRun.Device.values)}, not {device!r}.",
                               code="invalid_device")
    hyperparameters = dict(hyperparameters or {})
    try:
        parsed = MODELS[model].Hyper.parse(hyperparameters)
    except (ValueError, TypeError) as exc:
        raise ApplicationError(f"hyperparameters: {exc}.", code="invalid_hyperparameters") from None
    condition_on = getattr(parsed, "condition_on", "")  # a column name: checkable only against the schema
    if condition_on:
        schema = Schema.from_dict(dataset.schema)
        column = schema[condition_on] if condition_on in schema else None
        if column is None or column.type not in ("categorical", "event"):
            raise ApplicationError(f"hyperparameters: condition_on must name a categorical or event column of "
                                   f"the dataset, not {condition_on!r}.", code="invalid_hyperparameters")
    if device == "cuda" and settings.CELERY_TASK_ALWAYS_EAGER and not torch.cuda.is_available():
        raise ApplicationError("device 'cuda' was asked for, but this machine has no CUDA device and no broker "
                               "is configured to reach a GPU worker.", code="cuda_unavailable")
    queue = "gpu" if device == "cuda" else settings.CELERY_TASK_DEFAULT_QUEUE
    with transaction.atomic():
        run = GeneratorRun.objects.create(
            dataset=dataset, model=model, hyperparameters=hyperparameters, epochs=epochs, seed=seed,
            device_requested=device, queue=queue, created_by=by,
        )
        audit_record(action="run.create", actor=by, object_type="run", object_id=run.pk,
                     details={"dataset": dataset.slug, "model": model,
                              "epochs": epochs if trains_by_epochs(model) else None, "seed": seed,
                              "device": device, "queue": queue, "hyperparameters": hyperparameters})
        if enqueue:
            transaction.on_commit(lambda: _enqueue(run))
    return run


def _enqueue(run: GeneratorRun) -> None:
    enqueue("generators.train_run", run.pk, queue=run.queue)


# --------------------------------------------------------------------------- execute
def run_split(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded 80/20 split of row positions: (train, holdout), each sorted."""
    order = np.random.default_rng(seed).permutation(n_rows)
    n_holdout = int(round(HOLDOUT_FRACTION * n_rows))
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"


def checkpoint_path(run: GeneratorRun) -> Path:
    return Path(settings.MODELS_DIR) / run.checkpoint_name


def _checkpoint_dir(run_id: int) -> Path:
    """Where run ``run_id``'s checkpoint goes (before ``checkpoint_name`` is recorded on success)."""
    return Path(settings.MODELS_DIR) / f"run-{run_id}"


@contextmanager
def _private_folder():
    """A 0700 scratch folder under MODELS_DIR for a checkpoint in the clear; always removed."""
    root = Path(settings.MODELS_DIR)
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix=".plain-", dir=root) as folder:
        yield Path(folder)


def _save_sealed(generator: Generator, run: GeneratorRun) -> None:
    """The checkpoint (state_dict + JSON config), encrypted at rest: it holds values of real rows."""
    with _private_folder() as plain:
        generator.save(plain / "model")
        custody_seal_folder(plain / "model", checkpoint_path(run))  # staged and renamed: whole or absent


def _claim(run_id: int, worker: str) -> GeneratorRun | None:
    """queued → running, or None when the run is no longer queued (cancelled, or claimed twice)."""
    with transaction.atomic():
        run = GeneratorRun.objects.select_for_update().select_related("dataset").filter(pk=run_id).first()
        if run is None or run.status != Status.QUEUED:
            return None
        now = timezone.now()
        run.status, run.started_at, run.heartbeat_at, run.worker = Status.RUNNING, now, now, worker[:200]
        run.save(update_fields=["status", "started_at", "heartbeat_at", "worker"])
        audit_record(action="run.start", object_type="run", object_id=run.pk,
                     details={"dataset": run.dataset.slug, "worker": run.worker})
    return run


def _finish(run: GeneratorRun, status: str, *, error: str = "", **fields: Any) -> GeneratorRun:
    outcome = {Status.SUCCEEDED: AuditEvent.Outcome.SUCCESS, Status.CANCELLED: AuditEvent.Outcome.SUCCESS}.get(
        status, AuditEvent.Outcome.FAILED)
    with transaction.atomic():
        updated = GeneratorRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
            status=status, error=error, finished_at=timezone.now(), **fields)
        if updated:
            audit_record(action="run.finish", outcome=outcome, object_type="run", object_id=run.pk,
                         details={"status": status, "epoch": run.epoch, "epochs": run.epochs,
                                  **({"error": error} if error else {})})
    run.refresh_from_db()
    return run


def _progress_writer(run: GeneratorRun, relay: Callable[[int, int, dict], None] | None):
    last_write = 0.0

    def progress(epoch: int, total: int, losses: dict[str, float]) -> None:
        nonlocal last_write
        run.epoch, run.losses = epoch, {k: round(float(v), 6) for k, v in losses.items()}
        if relay is not None:
            relay(epoch, total, losses)
        now = time.monotonic()
        if now - last_write < PROGRESS_EVERY_SECONDS and epoch < total:
            return
        last_write = now
        GeneratorRun.objects.filter(pk=run.pk).update(epoch=run.epoch, losses=run.losses, heartbeat_at=timezone.now())
        if GeneratorRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
            raise RunCancelled()

    return progress


def run_execute(run_id: int, *, worker: str = "", relay: Callable[[int, int, dict], None] | None = None) -> GeneratorRun | None:
    """The task body. Never raises for a run that fails: the failure is recorded on the run.

    ``relay(epoch, total, losses)`` is called after every epoch (the ``train`` command's bar).
    """
    run = _claim(run_id, worker)
    if run is None:
        return None
    run.checkpoint_name = _checkpoint_dir(run.pk).name
    try:
        schema = Schema.from_dict(run.dataset.schema)
        table = custody_read(run.dataset.storage_name)
        train, holdout = run_split(len(table), run.seed)
        device = resolve_device(run.device_requested)
        run.device = _device_label(device)
        GeneratorRun.objects.filter(pk=run.pk).update(n_train=len(train), holdout_rows=holdout.tolist(),
                                                      device=run.device)
        generator = MODELS[run.model](**run.hyperparameters)
        generator.fit(table.iloc[train].reset_index(drop=True), schema, epochs=run.epochs, seed=int(run.seed),
                      device=str(device), progress=_progress_writer(run, relay))
        if GeneratorRun.objects.filter(pk=run.pk, cancel_requested=True).exists():
            raise RunCancelled()  # asked for after the last progress report: keep no checkpoint
        _save_sealed(generator, run)
    except RunCancelled:
        return _finish(run, Status.CANCELLED, error="cancelled on request", epoch=run.epoch)
    except TrainingDiverged as exc:
        return _finish(run, Status.FAILED, error=f"training diverged: {exc}", epoch=run.epoch)
    except CustodyError as exc:
        return _finish(run, Status.FAILED, error=str(exc), epoch=run.epoch)
    except SoftTimeLimitExceeded:
        return _finish(run, Status.FAILED, epoch=run.epoch, error=(
            f"stopped at the time limit of {settings.GENERATOR_TIME_LIMIT_SECONDS} s, at epoch {run.epoch} of "
            f"{run.epochs}: train fewer epochs, or on a GPU"))
    except Exception as exc:
        # The message of an unexpected error may quote data; the worker log has the traceback.
        logger.exception("run %s failed", run.pk)
        return _finish(run, Status.FAILED, epoch=run.epoch,
                       error=f"internal error ({type(exc).__name__}) at epoch {run.epoch}; see the worker log")
    finished = _finish(run, Status.SUCCEEDED, epoch=run.epoch, losses=run.losses, checkpoint_name=run.checkpoint_name)
    if finished.status != Status.SUCCEEDED:
        # Failed meanwhile (the reaper took this worker for lost): keep no checkpoint that no run points to.
        shutil.rmtree(_checkpoint_dir(run.pk), ignore_errors=True)
    return finished


def run_generator(run: GeneratorRun, *, device: str = "cpu") -> Generator:
    """The trained generator of a succeeded run (loaded with ``weights_only``: no code is unpickled)."""
    if run.status != Status.SUCCEEDED:
        raise ApplicationError(f"Run {run.pk} is {run.status}; only a succeeded run has a generator.",
                               code="run_not_succeeded", status_code=409)
    try:
        with _private_folder() as plain:
            custody_open_folder(checkpoint_path(run), plain / "model")
            return load_model(plain / "model", device=device)
    except FileNotFoundError:
        raise ApplicationError(f"Run {run.pk}'s checkpoint is missing from the server.", code="checkpoint_missing",
                               status_code=409) from None


# --------------------------------------------------------------------------- cancel, reap
def run_cancel(*, run: GeneratorRun, by) -> GeneratorRun:
    """A queued run is cancelled at once; a running one stops at its next progress report."""
    with transaction.atomic():
        run = GeneratorRun.objects.select_for_update().get(pk=run.pk)
        if run.finished:
            raise ApplicationError(f"Run {run.pk} has already {run.status}; there is nothing to cancel.",
                                   code="run_finished", status_code=409)
        if run.status == Status.QUEUED:
            run.status, run.finished_at, run.error = Status.CANCELLED, timezone.now(), "cancelled before it started"
            run.save(update_fields=["status", "finished_at", "error"])
        else:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
        audit_record(action="run.cancel", actor=by, object_type="run", object_id=run.pk,
                     details={"status": run.status})
    return run


def _fail_lost(runs, *, now, reason: str, error: Callable[[GeneratorRun], str]) -> list[int]:
    """Fail each of ``runs`` (a queryset of running runs) whose row still matches it, audit it, and
    remove any checkpoint its worker may have left. Returns the ids of the runs failed."""
    failed = []
    for run in runs:
        with transaction.atomic():
            if runs.filter(pk=run.pk).update(status=Status.FAILED, finished_at=now, error=error(run)):
                audit_record(action="run.finish", outcome=AuditEvent.Outcome.FAILED, object_type="run",
                             object_id=run.pk, details={"status": Status.FAILED, "reason": reason})
                failed.append(run.pk)
        shutil.rmtree(_checkpoint_dir(run.pk), ignore_errors=True)
    return failed


def _stage(run: GeneratorRun) -> str:
    """Where a lost run was, in words: its epoch, or its one fitting pass for a model without epochs."""
    return f"at epoch {run.epoch} of {run.epochs}" if trains_by_epochs(run.model) else "in its one fitting pass"


def runs_fail_orphaned(*, worker: str) -> list[int]:
    """At worker start: runs still marked running on this worker belong to a previous process
    that was killed (OOM, SIGKILL, reboot). Fail them now rather than after the stale timeout."""
    return _fail_lost(
        GeneratorRun.objects.filter(status=Status.RUNNING, worker=worker[:200]), now=timezone.now(),
        reason="worker restarted",
        error=lambda run: (f"the worker {worker} was restarted while the run was {_stage(run)}: it was killed; "
                           "no checkpoint was kept"))


def runs_reap_stale(*, now=None) -> list[int]:
    """Fail running runs whose worker went silent (killed, out of memory, machine lost), and remove
    checkpoints that were being staged when a worker died. Returns the ids of the failed runs."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.GENERATOR_STALE_AFTER_SECONDS)
    reaped = _fail_lost(
        GeneratorRun.objects.filter(status=Status.RUNNING, heartbeat_at__lt=cutoff), now=now, reason="worker lost",
        error=lambda run: (f"the worker stopped reporting {_stage(run)} (last report "
                           f"{run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC): it was killed or lost; no checkpoint was kept"))
    staging_cutoff = time.time() - settings.GENERATOR_STALE_AFTER_SECONDS
    models_dir = Path(settings.MODELS_DIR)
    if models_dir.is_dir():
        # Checkpoints are staged in .run-N-XXXX next to the target; .plain-* hold them in the clear
        # while a worker saves or loads them. A killed worker leaves either behind.
        for staging in [*models_dir.glob(".run-*"), *models_dir.glob(".plain-*")]:
            if staging.stat().st_mtime < staging_cutoff:
                shutil.rmtree(staging, ignore_errors=True)
    return reaped
