"""Periodic custody tasks (thin: they call services)."""

import logging

from celery import shared_task

from clearinghouse import context
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_chain_verify, audit_record
from clearinghouse.services.refusals import audit_refusals_flush

logger = logging.getLogger(__name__)


@shared_task(name="clearinghouse.audit_chain_verify", time_limit=1800, soft_time_limit=1700)
def audit_chain_verify_task() -> dict:
    """Beat runs this hourly; a broken chain is logged at ERROR and recorded as a failed check."""
    report = audit_chain_verify()
    if not report.valid:
        logger.error("Audit chain broken at seq %s: %s", report.first_broken_seq, report.reason)
    audit_record(
        action="audit.chain.check",
        outcome=AuditEvent.Outcome.SUCCESS if report.valid else AuditEvent.Outcome.FAILED,
        object_type="audit",
        details={"valid": report.valid, "events_checked": report.events_checked, "head_seq": report.head_seq,
                 "head_hash": report.head_hash, "first_broken_seq": report.first_broken_seq},
    )
    return {"valid": report.valid, "events_checked": report.events_checked}


@shared_task(name="clearinghouse.audit_refusals_flush", time_limit=300)
def audit_refusals_flush_task() -> int:
    """Beat runs this every minute: the counts of repeated refusals whose window has closed become
    ``api.refusals_repeated`` events."""
    with context.bound(channel="task"):
        return audit_refusals_flush()
