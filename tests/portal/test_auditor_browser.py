"""The auditor's journey in a real Chromium: sign in, filter the log, open an event, run the chain check."""

from __future__ import annotations

import pytest

from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_record
from tests.portal.conftest import sign_in


def test_auditor_filters_the_log_opens_an_event_and_checks_the_chain(browser_page, live_users):
    page = browser_page
    rhea = live_users["researcher"]
    refused = audit_record(action="release.read", actor=rhea, outcome=AuditEvent.Outcome.DENIED,
                           object_type="release", object_id="42", details={"status": 403, "code": "not_verified"})
    sign_in(page, "otto")

    page.click("nav.main-nav >> text=Audit log")
    page.wait_for_url("**/audit/")
    page.fill("input[name=user]", "rhea")
    page.select_option("select[name=outcome]", "denied")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**/audit/?*outcome=denied*")
    rows = page.locator("table.audit-log tbody tr")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-seq") == str(refused.seq)
    assert "user=rhea" in page.get_attribute("#export-link", "href")

    rows.first.locator("a", has_text="release.read").click()
    page.wait_for_url(f"**/audit/events/{refused.seq}/")
    assert page.text_content("h1") == f"Audit event #{refused.seq}: release.read"
    assert '"code": "not_verified"' in page.text_content("#event-details")
    assert page.text_content("#event-hash").strip() == refused.hash

    page.click("nav.main-nav >> text=Chain check")
    page.click("button:has-text('Check the chain')")
    page.wait_for_selector("#chain-result")
    assert "The chain holds" in page.text_content("#chain-result")
    checked = int(page.text_content("#events-checked"))
    assert checked >= refused.seq

    otto = live_users["auditor"]
    portal = AuditEvent.objects.filter(actor=otto, channel="portal").order_by("seq")
    actions = [e.action for e in portal]
    assert actions[-4:] == ["audit.events.list", "audit.events.read", "audit.chain.read", "audit.verify"]
    assert portal.filter(action="audit.events.list").last().details == {
        "query": {"user": "rhea", "action": "", "outcome": "denied", "channel": "", "object_type": "", "object_id": "",
                  "since": "", "until": ""}}
    assert portal.last().details == {"valid": True, "events_checked": checked, "first_broken_seq": None}
