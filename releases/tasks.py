"""Celery tasks for releases: thin, ids only; the work is in ``releases.reports`` and
``releases.sweeps``. The task names are the ones they had before the move, so that messages
already queued still run."""

from celery import shared_task
from django.conf import settings

from releases.reports import report_compute, reports_reap_stale
from releases.sweeps import sweep_execute


@shared_task(name="clearinghouse.compute_report", time_limit=settings.REPORT_TIME_LIMIT_SECONDS + 60,
             soft_time_limit=settings.REPORT_TIME_LIMIT_SECONDS)
def compute_report(report_id: int) -> str | None:
    """Compute one release's validation report (queued when the release is made)."""
    report = report_compute(report_id)
    return report.status if report is not None else None


@shared_task(name="releases.reap_stale_reports", time_limit=300)
def reap_stale_reports() -> list[int]:
    """Beat runs this every minute: reports whose worker died (or whose job was lost) are failed with
    a reason, so that a custodian may ask for them again."""
    return reports_reap_stale()


@shared_task(name="generators.run_sweep", time_limit=6 * settings.GENERATOR_TIME_LIMIT_SECONDS)
def run_sweep(sweep_id: int) -> str | None:
    """Train, sample and report every candidate of a sweep, one after the other, in this worker."""
    sweep = sweep_execute(sweep_id)
    return sweep.status if sweep is not None else None
