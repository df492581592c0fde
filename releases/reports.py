"""Validation reports: requested with each release, computed by a task, read per audience, and
the publication gates checked against them.

The pure core (``generators.core.evaluation``) measures; this module brings the frames together
(the run's training split and holdout from custody, the release's synthetic rows from disk),
records progress, stores both views and audits the work.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clearinghouse.errors import ApplicationError
from clearinghouse.custody import CustodyError, custody_read
from clearinghouse.jobs import enqueue
from clearinghouse.models import AuditEvent, Dataset
from clearinghouse.schema import Schema
from clearinghouse.services.audit import audit_record
from generators.core.evaluation import GateResult, Report, check_gates, evaluate_context, make_context, parse_gates
from generators.core.evaluation.report import HEADLINE_KEYS
from releases.models import Release, ReleaseReport
from releases.selectors import release_synthetic_rows

__all__ = [
    "dataset_set_gates", "release_gate_results", "report_compute", "report_html", "report_request",
    "public_override", "report_rerun", "report_status", "report_view", "reports_reap_stale",
]

logger = logging.getLogger(__name__)

Status = ReleaseReport.Status
#: The four sections, then the custodian's and the public figures with their pages.
PARTS = ("fidelity", "survival", "privacy", "utility", "custodian page", "public page")


# --------------------------------------------------------------------------- request
def report_request(release: Release, *, enqueue: bool = True) -> ReleaseReport:
    """Record a pending report and queue its task when the surrounding transaction commits
    (``enqueue=False``: the caller computes it itself, as a sweep does)."""
    report, _ = ReleaseReport.objects.update_or_create(
        release=release,
        defaults={"status": Status.PENDING, "stage": "", "parts_done": 0, "parts_total": len(PARTS),
                  "content": {}, "public": {}, "html": "", "public_html": "", "error": "",
                  "requested_at": timezone.now(), "started_at": None, "finished_at": None},
    )
    if enqueue:
        transaction.on_commit(lambda: _enqueue(report.pk))
    return report


def _enqueue(report_id: int) -> None:
    enqueue("clearinghouse.compute_report", report_id)


def _stale_after() -> timedelta:
    """The task's hard limit: a report running (or waiting) longer than this has no live worker."""
    return timedelta(seconds=settings.REPORT_TIME_LIMIT_SECONDS + 60)


def _stale(report: ReleaseReport, now) -> bool:
    """Running, or still waiting for a worker, for longer than the task's hard limit: its worker is
    gone or its message was lost (a broker that was down when it was queued)."""
    since = report.started_at if report.status == Status.RUNNING else report.requested_at
    return report.status in (Status.RUNNING, Status.PENDING) and since is not None and now - since > _stale_after()


def report_rerun(*, release: Release, by) -> ReleaseReport:
    """A custodian asks for the report again: after a failure, or to measure against changed
    settings. Refused while one is pending or running."""
    if release.published:
        raise ApplicationError(f"Release {release.pk} is published; its report is the one it was published on.",
                               code="already_published", status_code=409)
    with transaction.atomic():
        report = ReleaseReport.objects.select_for_update().filter(release=release).first()
        if report is not None and not report.finished and not _stale(report, timezone.now()):
            raise ApplicationError(f"Release {release.pk}'s report is {report.status}; wait for it to finish.",
                                   code="report_not_ready", status_code=409,
                                   details={"status": report.status, "stage": report.stage})
        report = report_request(release)
        audit_record(action="report.request", actor=by, object_type="release", object_id=release.pk,
                     details={"dataset": release.dataset.slug, "rerun": True})
    return report


def _lost_error(report: ReleaseReport) -> str:
    """Why a stale report failed, in words, with where its worker was."""
    limit = int(_stale_after().total_seconds())
    if report.status == Status.RUNNING:
        return (f"the worker stopped during {report.stage or 'the report'} (part {report.parts_done + 1} of "
                f"{report.parts_total}, started {report.started_at:%Y-%m-%d %H:%M:%S} UTC) and did not finish "
                f"within {limit} s: it was killed or lost; ask for the report again")
    return (f"no worker took the report within {limit} s (asked for {report.requested_at:%Y-%m-%d %H:%M:%S} UTC): "
            "its job was lost; ask for the report again")


def reports_reap_stale(*, now=None) -> list[int]:
    """Fail reports still pending or running past the task's hard limit (their worker was killed, or
    their job lost), each audited as a failed ``report.compute``, so that a custodian may ask for them
    again. A row that changed meanwhile (claimed, finished) is left as it is. Returns the ids failed."""
    now = now or timezone.now()
    cutoff = now - _stale_after()
    candidates = ReleaseReport.objects.filter(
        Q(status=Status.RUNNING, started_at__lt=cutoff) | Q(status=Status.PENDING, requested_at__lt=cutoff))
    failed = []
    for report in candidates.select_related("release__dataset").order_by("pk"):  # in order, in the log too
        error = _lost_error(report)
        with transaction.atomic():
            # Conditional on the row as read: the same status and the same claim (a worker may take a
            # pending report, or finish a running one, between the read and this write).
            updated = ReleaseReport.objects.filter(
                pk=report.pk, status=report.status, started_at=report.started_at,
                requested_at=report.requested_at,
            ).update(status=Status.FAILED, error=error, finished_at=now)
            if updated:
                audit_record(action="report.compute", outcome=AuditEvent.Outcome.FAILED, object_type="report",
                             object_id=report.pk, details={
                                 "release": report.release_id, "dataset": report.release.dataset.slug,
                                 "error": error, "reason": "worker lost", "was": report.status})
                failed.append(report.pk)
    return failed


# --------------------------------------------------------------------------- compute
def _claim(report_id: int) -> ReleaseReport | None:
    claimed = ReleaseReport.objects.filter(pk=report_id, status=Status.PENDING).update(
        status=Status.RUNNING, started_at=timezone.now(), stage=PARTS[0])
    if not claimed:
        return None  # gone, already taken by another worker, or already finished
    return ReleaseReport.objects.select_related("release__dataset", "release__run").get(pk=report_id)


def _mine(report: ReleaseReport):
    """The report's row while it is still this worker's claim: running, with the ``started_at`` this
    worker's claim wrote. A worker given up for lost (reaped, perhaps asked for again and claimed by
    another worker since) matches nothing, so it can no longer write progress or a result."""
    return ReleaseReport.objects.filter(pk=report.pk, status=Status.RUNNING, started_at=report.started_at)


def _progress(report: ReleaseReport, done: int, stage: str) -> None:
    _mine(report).update(parts_done=done, stage=stage)


def _frames(release: Release, schema: Schema) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The run's training rows and holdout (by the positions the run recorded) and the release."""
    run = release.run
    table = custody_read(release.dataset.storage_name)
    holdout_rows = np.asarray(run.holdout_rows, dtype="int64")
    if len(holdout_rows) == 0 or holdout_rows.max(initial=-1) >= len(table):
        raise ValueError(f"run {run.pk} recorded no usable holdout for this dataset")
    in_holdout = np.zeros(len(table), dtype=bool)
    in_holdout[holdout_rows] = True
    train = table.loc[~in_holdout].reset_index(drop=True)
    holdout = table.loc[in_holdout].reset_index(drop=True)
    synthetic = release_synthetic_rows(release, schema)
    return train, holdout, synthetic


def report_compute(report_id: int) -> ReleaseReport | None:
    """The task body. Never raises for a report that fails: the failure is recorded on it."""
    from generators.core.evaluation.html import render_html
    from generators.core.evaluation.plots import render_figures

    report = _claim(report_id)
    if report is None:
        return None
    release = report.release
    try:
        schema = Schema.from_dict(release.dataset.schema)
        train, holdout, synthetic = _frames(release, schema)
        ctx = make_context(train, holdout, synthetic, schema, seed=int(release.seed))
        target = ctx.target
        result = evaluate_context(ctx, progress=lambda done, total, name: _progress(report, done, PARTS[done]))
        content, public = result.to_dict("custodian"), result.to_dict("public")
        title = f"Validation report: release {release.pk} of {release.dataset.slug} ({release.run.model})"
        group = next(iter(release.conditions or {}), None)  # KM curves by the conditioned column, if any
        html = render_html(content, render_figures(ctx, "custodian", km_group=group), title=title, audience="custodian")
        _progress(report, len(PARTS) - 1, PARTS[-1])
        public_html = render_html(public, render_figures(ctx, "public", km_group=group), title=title,
                                  audience="public")
    except (CustodyError, FileNotFoundError, ValueError) as exc:
        return _finish(report, Status.FAILED, error=f"could not compute the report: {exc}")
    except SoftTimeLimitExceeded:
        return _finish(report, Status.FAILED, error=(
            f"stopped at the time limit of {settings.REPORT_TIME_LIMIT_SECONDS} s during {report.stage or 'the report'}"))
    except Exception as exc:
        logger.exception("report %s failed", report.pk)
        return _finish(report, Status.FAILED, error=f"internal error ({type(exc).__name__}); see the worker log")
    return _finish(report, Status.SUCCEEDED, target=target or "", content=content, public=public, html=html,
                   public_html=public_html, parts_done=len(PARTS), stage="")


def _finish(report: ReleaseReport, status: str, *, error: str = "", **fields: Any) -> ReleaseReport:
    with transaction.atomic():
        updated = _mine(report).update(status=status, error=error, finished_at=timezone.now(), **fields)
        if updated:
            details: dict[str, Any] = {"release": report.release_id, "dataset": report.release.dataset.slug}
            if status == Status.SUCCEEDED:
                details["headline"] = fields["content"].get("headline", {})
            else:
                details["error"] = error
            audit_record(action="report.compute", object_type="report", object_id=report.pk, details=details,
                         outcome=AuditEvent.Outcome.SUCCESS if status == Status.SUCCEEDED
                         else AuditEvent.Outcome.FAILED)
    report.refresh_from_db()
    return report


# --------------------------------------------------------------------------- read
def _report_of(release: Release) -> ReleaseReport | None:
    return ReleaseReport.objects.filter(release=release).first()


def _ready(release: Release, *, audience: str = "custodian") -> ReleaseReport:
    report = _report_of(release)
    if report is None:
        raise ApplicationError(f"Release {release.pk} has no report; ask for one with POST.",
                               code="report_missing", status_code=409)
    if report.status == Status.FAILED:
        why = f": {report.error}" if audience == "custodian" else ""
        raise ApplicationError(f"Release {release.pk}'s report failed{why}", code="report_failed",
                               status_code=409, details={"status": report.status})
    if report.status != Status.SUCCEEDED:
        raise ApplicationError(
            f"Release {release.pk}'s report is still being computed ({report.status}, {report.parts_done} of "
            f"{report.parts_total} parts done); try again shortly.", code="report_not_ready", status_code=409,
            details={"status": report.status, "stage": report.stage, "parts_done": report.parts_done,
                     "parts_total": report.parts_total})
    return report


def release_gate_results(release: Release) -> list[GateResult]:
    """The dataset's gates (as set now) against the release's finished report."""
    report = _ready(release)
    return check_gates(Report.from_dict(report.content), release.dataset.gates)


def _ordered(headline: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline in its documented order (PostgreSQL's jsonb does not keep key order)."""
    if headline is None:
        return None
    return {key: headline[key] for key in HEADLINE_KEYS if key in headline}


def report_view(release: Release, *, audience: str) -> dict[str, Any]:
    """The stored report for ``audience`` ("custodian" or "public"), with the gate results and
    any override. The HTML page is read separately (:func:`report_html`)."""
    report = _ready(release, audience=audience)
    body = dict(report.content if audience == "custodian" else report.public)
    body["headline"] = _ordered(body.get("headline"))
    body["release"] = release.pk
    body["dataset"] = release.dataset.slug
    body["computed_at"] = report.finished_at.isoformat() if report.finished_at else None
    body["gates"] = [r.to_dict() for r in check_gates(Report.from_dict(report.content), release.dataset.gates)]
    body["override"] = public_override(release.gate_override) if audience == "public" else release.gate_override
    return body


def public_override(override: dict[str, Any] | None) -> dict[str, Any] | None:
    """An override as researchers see it: the justification, the failed gates and when; not who."""
    if override is None:
        return None
    return {key: value for key, value in override.items() if key != "by"}


def report_html(release: Release, *, audience: str) -> str:
    """The stored page, with the gate results (and any override) as judged now."""
    from generators.core.evaluation.html import with_gates

    report = _ready(release, audience=audience)
    page = report.html if audience == "custodian" else report.public_html
    return with_gates(page, report_view(release, audience=audience))


def report_status(release: Release, *, audience: str = "custodian") -> dict[str, Any] | None:
    """A short summary for the release's own representation (the error text only for custodians)."""
    report = _report_of(release)
    if report is None:
        return None
    return {"status": report.status, "stage": report.stage, "parts_done": report.parts_done,
            "parts_total": report.parts_total, "error": report.error if audience == "custodian" else "",
            "headline": _ordered(report.content.get("headline")) if report.status == Status.SUCCEEDED else None,
            "url": f"/api/v1/releases/{release.pk}/report/"}


# --------------------------------------------------------------------------- gates
def dataset_set_gates(*, dataset: Dataset, gates: Any, by) -> Dataset:
    """Set some of a dataset's gate thresholds (the others keep their defaults)."""
    try:
        merged = parse_gates(gates)
    except ValueError as exc:
        raise ApplicationError(f"gates: {exc}.", code="invalid_gates") from None
    with transaction.atomic():
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        before = parse_gates(dataset.gates)
        dataset.gates = {**dataset.gates, **{k: merged[k] for k in gates}}
        dataset.save(update_fields=["gates"])
        audit_record(action="dataset.gates.set", actor=by, object_type="dataset", object_id=dataset.slug,
                     details={"before": before, "after": parse_gates(dataset.gates)})
    return dataset
