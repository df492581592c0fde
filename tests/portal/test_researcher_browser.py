"""A researcher's journey in a real Chromium: browse datasets → a dataset → a release → its report, download
the CSV, open "Verify a finding", preview for free, verify, read the answer, and see the budget drop by exactly
the ε charged (checked against the ledger). The cohort, its trained generator and its published release are made
with the services the API calls."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.budgets import policy_set
from accounts.models import Allocation, LedgerEntry
from clearinghouse.services.datasets import dataset_create
from generators.models import GeneratorRun
from generators.services import run_create
from releases.services import release_create, release_publish
from releases.storage import release_file
from tests.conftest import DATA, GBSG2_SCHEMA, finish_report
from tests.portal.conftest import sign_in
from tests.test_permissions import REAL_MARKER
from verification.models import Verification


@pytest.fixture
def published(live_users, monkeypatch, seeded_noise):
    monkeypatch.setattr("verification.services.secrets.randbits", lambda bits: 1)  # the preview's simulations (answers: seeded_noise)
    custodian = live_users["custodian"]
    dataset = dataset_create(slug="gbsg2-small", name="GBSG2 (small)", description="German breast cancer study",
                             schema=GBSG2_SCHEMA, data=(DATA / "gbsg2_small.csv").read_bytes(), by=custodian)
    run = run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian)
    run.refresh_from_db()  # no transaction around the test: the eager task trained it on commit
    assert run.status == GeneratorRun.Status.SUCCEEDED, run.error
    release = release_create(run=run, rows=40, seed=1, by=custodian, queue_report=False)
    release = release_publish(release=finish_report(release), by=custodian)
    # six patients: answer subgroups of any size, so the answer is not withheld
    policy_set(dataset=dataset, changes={"min_subgroup": 1}, by=custodian)
    return release


def test_a_researcher_browses_downloads_previews_verifies_and_sees_the_budget_drop(browser_page, live_users,
                                                                                  published, tmp_path):
    page, release, rhea = browser_page, published, live_users["researcher"]
    sign_in(page, "rhea")

    page.click("nav >> text=Datasets")
    page.wait_for_url("**/datasets/")
    assert "German breast cancer study" in page.inner_text("main")
    page.click("text=GBSG2 (small)")
    page.wait_for_url("**/datasets/gbsg2-small/")
    assert "I, II, III" in page.inner_text("table.schema")
    page.click(f"text=Release {release.pk}")
    page.wait_for_url(f"**/releases/{release.pk}/")
    assert "Known limits" in page.inner_text("main")

    page.click("text=Read the validation report")
    page.wait_for_url(f"**/releases/{release.pk}/report/")
    assert page.title() == "public"  # the public part (finish_report's page for researchers)
    page.go_back()

    with page.expect_download() as download:
        page.click("a:text-is('CSV')")
    saved = tmp_path / "release.csv"
    download.value.save_as(saved)
    assert download.value.suggested_filename == f"gbsg2-small-release-{release.pk}.csv"
    assert saved.read_bytes() == release_file(release, "csv").read_bytes()

    page.click("text=Verify a finding")
    page.wait_for_url(f"**/releases/{release.pk}/verify/")
    left_before = Decimal(page.inner_text("[data-field=budget-left]"))
    page.select_option("select[name=kind]", "hazard_ratio")
    assert page.is_visible("select[name=exposure_column]") and page.is_hidden("select[name=x]")
    page.select_option("select[name=kind]", "mean")
    assert page.is_visible("select[name=column]") and page.is_hidden("select[name=exposure_column]")
    page.select_option("select[name=column]", "age")
    page.fill("input[name=claim_value]", "40")
    page.fill("input[name=epsilon]", "0.4")
    page.click("button[value=preview]")
    page.wait_for_selector("#preview")
    assert "Chance of a decisive answer" in page.inner_text("#preview")
    assert not LedgerEntry.objects.filter(user=rhea, kind=LedgerEntry.Kind.CHARGE).exists()  # free
    assert page.input_value("input[name=claim_value]") == "40"  # still filled in

    page.click("button[value=verify]")
    page.wait_for_url("**/verifications/*/")
    verification = Verification.objects.get(user=rhea)
    assert page.url.endswith(f"/verifications/{verification.pk}/")
    verdict = page.inner_text(".verdict-sentence")
    assert "the mean of age is greater than 40" in verdict and ("The real data" in verdict or "not informative" in verdict)
    assert page.is_visible("figure.forest-plot svg")
    assert page.inner_text("[data-field=epsilon-charged]").startswith("0.4")

    page.click("nav >> text=My ε budget")
    page.wait_for_url("**/budget/")
    left_after = Decimal(page.inner_text("tr[data-dataset=gbsg2-small] [data-field=left]"))
    [charge] = LedgerEntry.objects.filter(user=rhea, kind=LedgerEntry.Kind.CHARGE)
    assert charge.epsilon_micro == 400_000 and charge.verification_id == verification.pk
    assert left_before - left_after == Decimal("0.4")
    allocation = Allocation.objects.get(user=rhea, dataset=release.dataset)
    assert Decimal(page.inner_text("tr[data-dataset=gbsg2-small] [data-field=spent]")) == allocation.spent
    assert REAL_MARKER not in page.content()
