"""A report whose worker died (or whose job was lost) stays pending or running only until it is reaped:
failed with a reason, audited as a failed ``report.compute``, and a custodian may then ask for it again.
A worker given up for lost that comes back writes nothing over the failed report, nor over the new
claim of a worker that took the report after it was asked for again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from clearinghouse.models import AuditEvent
from releases import reports, tasks
from releases.models import Release, ReleaseReport
from releases.reports import PARTS, report_compute, report_rerun, reports_reap_stale
from tests.conftest import finish_report
from tests.releases.conftest import draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def releases(clients, run) -> list[Release]:
    return [draft(clients, run, seed=seed) for seed in (1, 2, 3, 4)]


def report_of(release: Release) -> ReleaseReport:
    return ReleaseReport.objects.get(release=release)


def reaper_events() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="report.compute").order_by("seq"))


def test_it_fails_stale_running_and_pending_reports_and_leaves_fresh_and_finished_ones(releases, settings):
    settings.REPORT_TIME_LIMIT_SECONDS = 600  # stale after 660 s
    now = timezone.now()
    running, pending, fresh, done = releases
    ReleaseReport.objects.filter(release=running).update(
        status="running", stage="privacy", parts_done=2, started_at=now - timedelta(seconds=700),
        requested_at=now - timedelta(seconds=720))
    ReleaseReport.objects.filter(release=pending).update(requested_at=now - timedelta(seconds=661))
    ReleaseReport.objects.filter(release=fresh).update(status="running", stage="fidelity",
                                                       started_at=now - timedelta(seconds=600),
                                                       requested_at=now - timedelta(seconds=5000))
    finish_report(done)
    ReleaseReport.objects.filter(release=done).update(requested_at=now - timedelta(days=3))
    assert reaper_events() == []

    reaped = reports_reap_stale(now=now)

    assert sorted(reaped) == sorted([report_of(running).pk, report_of(pending).pk])
    lost = report_of(running)
    assert (lost.status, lost.finished_at, lost.stage, lost.parts_done) == ("failed", now, "privacy", 2)
    assert lost.error.startswith("the worker stopped during privacy (part 3 of 6")
    assert "within 660 s: it was killed or lost; ask for the report again" in lost.error
    waiting = report_of(pending)
    assert (waiting.status, waiting.finished_at) == ("failed", now)
    assert waiting.error.startswith("no worker took the report within 660 s") and "job was lost" in waiting.error
    assert (report_of(fresh).status, report_of(fresh).error, report_of(fresh).finished_at) == ("running", "", None)
    assert report_of(done).status == "succeeded"

    events = reaper_events()
    assert [(e.object_type, e.object_id, e.outcome, e.actor_id) for e in events] == [
        ("report", str(report.pk), "failed", None) for report in sorted([lost, waiting], key=lambda r: r.pk)]
    by_id = {e.object_id: e.details for e in events}
    assert by_id[str(lost.pk)] == {"release": running.pk, "dataset": "gbsg2-small", "error": lost.error,
                                   "reason": "worker lost", "was": "running"}
    assert by_id[str(waiting.pk)]["was"] == "pending" and by_id[str(waiting.pk)]["error"] == waiting.error
    # The custodian reads why; a researcher would not (the error is the custodian's view only).
    assert "privacy" in lost.error and "parquet" not in lost.error

    assert reports_reap_stale(now=now) == []  # once only
    assert len(reaper_events()) == 2


def test_a_reaped_report_is_shown_failed_and_may_be_asked_for_again_through_the_api(
        clients, release, custodian, settings, django_capture_on_commit_callbacks):
    long_ago = timezone.now() - timedelta(seconds=settings.REPORT_TIME_LIMIT_SECONDS + 120)
    ReleaseReport.objects.filter(release=release).update(status="running", stage="utility", parts_done=3,
                                                         started_at=long_ago)
    [reaped] = reports_reap_stale()
    error = clients["custodian"].get(f"/api/v1/releases/{release.pk}/report/").json()["error"]
    assert (error["code"], error["details"]) == ("report_failed", {"status": "failed"})
    assert "the worker stopped during utility" in error["message"]
    shown = clients["custodian"].get(f"/api/v1/releases/{release.pk}/").json()["report"]
    assert shown["status"] == "failed" and shown["error"].startswith("the worker stopped during utility")

    with django_capture_on_commit_callbacks(execute=True):  # the queued task computes it at commit (eager)
        again = clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/")
    assert again.status_code == 202, again.content
    assert (again.json()["status"], again.json()["error"]) == ("pending", "")
    request = AuditEvent.objects.filter(action="report.request").order_by("-seq").first()
    assert (request.actor_id, request.object_id, request.details["rerun"]) == (custodian[0].pk, str(release.pk), True)
    report = report_of(release)
    assert (report.pk, report.status, report.error, report.parts_done) == (reaped, "succeeded", "", len(PARTS))
    assert [e.outcome for e in reaper_events()] == ["failed", "success"]


def test_the_reap_task_runs_the_reaper(release, settings):
    ReleaseReport.objects.filter(release=release).update(
        requested_at=timezone.now() - timedelta(seconds=settings.REPORT_TIME_LIMIT_SECONDS + 61))
    assert tasks.reap_stale_reports.apply().get() == [report_of(release).pk]
    assert settings.CELERY_BEAT_SCHEDULE["release-reports-reap"] == {"task": "releases.reap_stale_reports",
                                                                     "schedule": 60}


def test_a_worker_given_up_for_lost_writes_nothing_over_the_failed_report(release, monkeypatch):
    """The reaper fails the report while its (only slow) worker computes; the worker then finishes and
    its result is refused: the report stays failed, with one audit row, the reaper's."""
    real = reports.evaluate_context

    def reaped_meanwhile(ctx, progress):
        assert reports_reap_stale(now=timezone.now() + timedelta(days=1)) == [report_of(release).pk]
        return real(ctx, progress=progress)  # its progress writes are refused too

    monkeypatch.setattr(reports, "evaluate_context", reaped_meanwhile)
    finished = report_compute(report_of(release).pk)

    assert finished.status == "failed" and finished.error.startswith("the worker stopped during fidelity")
    assert (finished.content, finished.html, finished.public_html, finished.parts_done) == ({}, "", "", 0)
    assert [(e.outcome, e.details["reason"]) for e in reaper_events()] == [("failed", "worker lost")]


def test_a_worker_given_up_for_lost_writes_nothing_over_the_next_claim(release, custodian, monkeypatch):
    """Reaped, asked for again and taken by another worker, while the first one still computes: when
    the first finishes, neither its progress nor its result reaches the row the second worker owns."""
    real = reports.evaluate_context
    claims = {}

    def reaped_rerun_and_claimed_meanwhile(ctx, progress):
        claims["first"] = report_of(release).started_at
        reports_reap_stale(now=timezone.now() + timedelta(days=1))
        report_rerun(release=release, by=custodian[0])
        claims["second"] = reports._claim(report_of(release).pk)  # the second worker's claim
        return real(ctx, progress=progress)

    monkeypatch.setattr(reports, "evaluate_context", reaped_rerun_and_claimed_meanwhile)
    first = report_of(release)
    zombie = report_compute(first.pk)

    second = claims["second"]
    assert second is not None and second.started_at > claims["first"]
    report = report_of(release)
    assert (zombie.status, report.status) == ("running", "running")
    assert (report.started_at, report.stage, report.parts_done) == (second.started_at, PARTS[0], 0)
    assert (report.content, report.html, report.error, report.finished_at) == ({}, "", "", None)
    assert [e.outcome for e in reaper_events()] == ["failed"]  # the reaper's; nothing from the first worker

    # The second worker's own writes do go through.
    reports._progress(second, 4, PARTS[4])
    assert (report_of(release).parts_done, report_of(release).stage) == (4, PARTS[4])
