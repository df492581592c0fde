"""The custodian's journey in a real Chromium: upload a cohort with its drafted schema reviewed, watch a
training run's progress bar move, make a release, publish it over a failing gate with a written override,
and set a researcher's allocation — asserting the custody file, the database and the audit log."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import Allocation
from clearinghouse.models import AuditEvent, Dataset
from generators.models import GeneratorRun
from generators import services as generator_services
from generators.services import run_create, run_execute
from releases import reports as release_reports
from releases.models import Release
from tests.conftest import DATA, finish_report
from tests.portal.conftest import sign_in

pytestmark = pytest.mark.django_db(transaction=True)

OVERRIDE = "The membership-inference gate is strict for six rows; accepted for the demo cohort on the record."


class _Lockstep:
    """Holds the training thread at its first epochs until the page has shown the one before, so
    that the bar is seen at several values however fast the machine or slow the browser (no timing
    in the assertion: each wait is bounded only so that a broken page fails instead of hanging)."""

    HELD_EPOCHS = range(2, 5)  # epochs 1, 2 and 3 must each be shown before the next is written

    def __init__(self):
        self.shown = threading.Condition()
        self.highest = 0.0

    def page_shows(self, fraction: float) -> None:
        with self.shown:
            self.highest = max(self.highest, fraction)
            self.shown.notify_all()

    def relay(self, epoch: int, total: int, losses) -> None:
        if epoch in self.HELD_EPOCHS:
            with self.shown:
                # the page shows the fraction to four places
                self.shown.wait_for(lambda: self.highest >= (epoch - 1) / total - 1e-3, timeout=60)


def _train_in_background(run_id: int, lockstep: _Lockstep) -> threading.Thread:
    def work():
        try:
            run_execute(run_id, worker="browser-test", relay=lockstep.relay)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _watch_fraction(page, lockstep: _Lockstep, timeout: float = 120) -> list[float]:
    """Every value of the poll root's data-fraction (set by portal.js) until it says done."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    root = page.locator(".run-progress")
    while time.monotonic() < deadline:
        try:
            fraction, done = root.get_attribute("data-fraction"), root.get_attribute("data-done")
        except Exception:  # the page reloads when the run ends
            break
        if fraction is not None and (not seen or seen[-1] != float(fraction)):
            seen.append(float(fraction))
            lockstep.page_shows(float(fraction))
        if done == "true":
            break
        time.sleep(0.1)
    return seen


def test_custodian_uploads_trains_publishes_and_allocates(browser_page, live_users, monkeypatch):
    # progress is written at most once a second; it is written at every epoch here, and the first epochs
    # wait for the page to show the one before (_Lockstep)
    monkeypatch.setattr(generator_services, "PROGRESS_EVERY_SECONDS", 0)
    # the release's report would be computed inside the request (jobs are eager): it is left pending, the page
    # follows it, and the test finishes it with a failing gate
    monkeypatch.setattr(release_reports, "_enqueue", lambda report_id: None)
    page, cora, rhea = browser_page, live_users["custodian"], live_users["researcher"]
    sign_in(page, "cora")

    # upload: draft the schema from the file, review it in place (the file stays chosen), take it in
    page.click("text=Upload")
    # the fields exist before the deferred script has run: a click then would post the plain form
    page.wait_for_selector("form[data-upload][data-enhanced=true]", state="attached")
    page.set_input_files("input[name=file]", str(DATA / "gbsg2_small.csv"))
    page.fill("input[name=slug]", "gbsg2")
    page.fill("input[name=name]", "GBSG2 breast cancer")
    page.click("button[value=draft]")
    page.wait_for_selector("form[data-drafted=true]")
    draft = page.input_value("textarea[name=schema]")
    assert "identifier" in draft and "duration" in draft
    assert not Dataset.objects.exists()  # the draft step stores nothing
    reviewed = draft.replace("- name: age\n", "- name: age\n  description: Age at diagnosis (years)\n", 1)
    assert reviewed != draft
    page.fill("textarea[name=schema]", reviewed)
    page.click("button[value=upload]")
    page.wait_for_url("**/custody/datasets/gbsg2/")
    assert "6 rows" in page.content() and "Age at diagnosis (years)" in page.content()
    dataset = Dataset.objects.get(slug="gbsg2")
    assert dataset.created_by == cora and dataset.dropped_columns == ["pid"]
    assert (Path(settings.CUSTODY_DIR) / dataset.storage_name).is_file()
    assert AuditEvent.objects.filter(action="dataset.upload", outcome="success", actor=cora).count() == 1

    # train: jobs run eagerly in the suite, so the run is queued here and trained beside the open page
    run = run_create(dataset=dataset, model="flow", epochs=30, seed=0, device="cpu", by=cora, enqueue=False)
    page.goto(f"/custody/runs/{run.pk}/")
    lockstep = _Lockstep()
    thread = _train_in_background(run.pk, lockstep)
    seen = _watch_fraction(page, lockstep)
    thread.join(timeout=120)
    assert len({f for f in seen if 0 < f < 1}) >= 2, seen  # the bar moved
    page.wait_for_selector("text=Make a release")  # reloaded when done
    assert page.locator(".run-progress").get_attribute("data-done") == "true"
    assert "Finished" in page.content() and "30 of 30" in page.content()
    run.refresh_from_db()
    assert run.status == GeneratorRun.Status.SUCCEEDED

    # a plain release through the form; the page follows its report until it is done (set here with a
    # failing privacy gate) and reloads itself
    page.fill("input[name=rows]", "6")
    page.click("text=Make the release")
    page.wait_for_url("**/custody/releases/*/")
    assert "The report is being computed" in page.content()
    release = Release.objects.get(run=run)
    assert release.rows == 6 and release.conditions is None and not release.published
    finish_report(release, **{"privacy.ims": 0.9})
    page.wait_for_selector("text=The report is ready")
    assert "Failed" in page.content() and "1 gate failed" in page.content()
    page.click("text=Publish with this override")  # no reason: re-shown, nothing published
    page.wait_for_selector(".field-error")
    assert "written reason" in page.content()
    release.refresh_from_db()
    assert not release.published
    page.fill("textarea[name=justification]", OVERRIDE)
    page.click("text=Publish with this override")  # data-confirm: the dialog is accepted
    page.wait_for_selector("text=published with your written override")
    release.refresh_from_db()
    assert release.published and release.gate_override["justification"] == OVERRIDE
    assert AuditEvent.objects.filter(action="release.publish", outcome="success", actor=cora,
                                     object_id=str(release.pk)).count() == 1

    # the researcher's allocation on this dataset
    page.goto("/custody/datasets/gbsg2/budget/")
    page.select_option("select[name=researcher]", label="rhea")
    page.fill("input[name=epsilon]", "2.5")
    page.click("text=Set the allocation")
    page.wait_for_selector("text=rhea now has ε 2.5")
    allocation = Allocation.objects.get(user=rhea, dataset=dataset)
    assert str(allocation.epsilon.normalize()) == "2.5"
    assert "2.5" in page.locator("tr[data-researcher=rhea]").inner_text()
    assert AuditEvent.objects.filter(action="budget.allocation.set", outcome="success", actor=cora).count() == 1
