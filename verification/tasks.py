"""Periodic verification housekeeping (thin: it calls the service)."""

from celery import shared_task

from verification.services import verifications_reap_stale


@shared_task(name="verification.reap_stale", time_limit=300)
def reap_stale() -> list[int]:
    """Beat runs this every minute: verifications whose process died are failed and refunded."""
    return verifications_reap_stale()
