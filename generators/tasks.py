"""Celery tasks for training runs: thin, ids only; the work is in ``generators.services``."""

import socket

from celery import shared_task, signals
from django.conf import settings

from clearinghouse import context
from generators.services import run_execute, runs_fail_orphaned, runs_reap_stale


@shared_task(
    name="generators.train_run",
    bind=True,
    time_limit=settings.GENERATOR_TIME_LIMIT_SECONDS + 60,
    soft_time_limit=settings.GENERATOR_TIME_LIMIT_SECONDS,
)
def train_run(self, run_id: int) -> str | None:
    """Train one run. The queue ("default" or "gpu") is chosen when the run is created."""
    run = run_execute(run_id, worker=self.request.hostname or socket.gethostname())
    return run.status if run is not None else None


@shared_task(name="generators.reap_stale_runs", time_limit=300)
def reap_stale_runs() -> list[int]:
    """Beat runs this every minute: runs whose worker went silent are failed with a reason."""
    return runs_reap_stale()


@signals.worker_ready.connect
def _fail_orphaned_runs(sender=None, **kwargs):
    """A worker that starts again fails the runs its killed predecessor left ``running``."""
    with context.bound(channel="task"):
        runs_fail_orphaned(worker=getattr(sender, "hostname", None) or socket.gethostname())
