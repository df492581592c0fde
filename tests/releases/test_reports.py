"""Release validation reports on the Django side (issue 4): computed when a release commits, read per
audience (custodian: all of it; verified researcher: the public part of a published release), as JSON or
as an HTML page; pending and failed reports; the publication gates, the written override, the dataset's
thresholds.

Two kinds of release are used:

* real reports on the full GBSG2 cohort (686 rows), computed once for the module (``gbsg2``): an honest
  copula release made through the API, whose report the eager task computes when the request commits,
  and a *leaking* release whose ``data.parquet`` is overwritten with the run's own training rows before
  its report is computed. These rows are committed (the module's fixture runs outside the tests'
  transactions) and removed again when the module ends;
* releases of the six-row ``dataset`` fixture whose report is finished by hand (``finish_report``) with
  chosen gate metrics, for the publication rules, or left pending, or made to fail.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from clearinghouse.custody import custody_read
from clearinghouse.models import AuditEvent, Dataset
from releases.models import Release, ReleaseReport
from clearinghouse.services.datasets import dataset_create
from releases.services import release_create
from releases.storage import release_file
from releases.reports import PARTS, report_compute
from generators.core.evaluation.gates import DEFAULT_GATES
from generators.core.evaluation.html import GATES_MARKER
from generators.core.evaluation.report import HEADLINE_KEYS, SECTIONS
from generators.models import GeneratorRun
from generators.services import checkpoint_path
from tests.clearinghouse.conftest import assert_error
from tests.conftest import GBSG2_SCHEMA, _empty_append_only_tables, client_for, finish_report, last_event, make_user

pytestmark = pytest.mark.django_db

PRIVACY_GATES = ("ims_max", "leakage_max", "dcr_margin", "mia_auc_max")
JUSTIFICATION = "Reviewed by the data-access committee on 3 March: acceptable for this teaching cohort."


def gbsg2_csv() -> bytes:
    from lifelines.datasets import load_gbsg2

    frame = load_gbsg2()
    frame.insert(0, "pid", [f"GBSG2-{i:04d}" for i in range(1, len(frame) + 1)])
    return frame.to_csv(index=False).encode()


def metrics_of(body: dict) -> list[dict]:
    return [metric for section in body["sections"].values() for metric in section]


def metric(body: dict, key: str) -> dict:
    return next(m for m in metrics_of(body) if m["key"] == key)


def gates_of(body: dict) -> dict[str, dict]:
    return {g["gate"]: g for g in body["gates"]}


def keys_in(value) -> set[str]:
    """Every key of every mapping nested in ``value``."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_in(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_in(v)}
    return set()


def floats_in(value) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list):
        return [f for v in value for f in floats_in(v)]
    return []


# --------------------------------------------------------------------------------------------
# Real reports on the full GBSG2 cohort, computed once for the module
# --------------------------------------------------------------------------------------------

@dataclass
class Gbsg2:
    keeper: User  # the custodian who made them ("cora" is the tests' own custodian)
    dataset: Dataset
    run: GeneratorRun
    honest: Release  # a copula release made through the API; its report computed when the request committed
    leaking: Release  # the run's own training rows as "synthetic" ones
    training_rows: int


def _make_gbsg2() -> Gbsg2:
    keeper, token = make_user("keeper", ["custodian"])
    api = client_for(token)
    dataset = dataset_create(slug="gbsg2", name="GBSG2", schema=GBSG2_SCHEMA, data=gbsg2_csv(), by=keeper)
    # Outside a test's transaction each request commits, and its on-commit task runs at once (eager Celery).
    started = api.post("/api/v1/datasets/gbsg2/runs/", {"model": "copula", "epochs": 1, "seed": 0, "device": "cpu"},
                       format="json")
    assert started.status_code == 202, started.content
    run = GeneratorRun.objects.get(pk=started.json()["id"])
    assert run.status == GeneratorRun.Status.SUCCEEDED, run.error
    made = api.post(f"/api/v1/runs/{run.pk}/releases/", {"rows": dataset.n_rows, "seed": 0}, format="json")
    assert made.status_code == 201, made.content
    honest = Release.objects.get(pk=made.json()["id"])

    # The leak: a "generator" that hands back its training rows. The report reads the release's parquet.
    table = custody_read(dataset.storage_name)
    in_holdout = np.zeros(len(table), dtype=bool)
    in_holdout[np.asarray(run.holdout_rows, dtype="int64")] = True
    training = table.loc[~in_holdout].reset_index(drop=True)
    leaking = release_create(run=run, rows=len(training), seed=1, by=keeper, queue_report=False)
    training.to_parquet(release_file(leaking, "parquet"), index=False, engine="pyarrow")
    report_compute(leaking.report.pk)
    return Gbsg2(keeper=keeper, dataset=dataset, run=run, honest=honest, leaking=leaking,
                 training_rows=len(training))


def _remove_gbsg2() -> None:
    """Everything the module's fixture committed, rows and files."""
    _empty_append_only_tables()
    for release in Release.objects.all():
        shutil.rmtree(Path(settings.RELEASES_DIR) / release.storage_name, ignore_errors=True)
    Release.objects.all().delete()  # the reports go with them
    for run in GeneratorRun.objects.all():
        if run.checkpoint_name:
            shutil.rmtree(checkpoint_path(run), ignore_errors=True)
    GeneratorRun.objects.all().delete()
    for dataset in Dataset.objects.all():
        (Path(settings.CUSTODY_DIR) / dataset.storage_name).unlink(missing_ok=True)
    Dataset.objects.all().delete()
    User.objects.all().delete()


@pytest.fixture(scope="module")
def gbsg2(django_db_setup, django_db_blocker) -> Gbsg2:
    with django_db_blocker.unblock():
        try:
            made = _make_gbsg2()
        except BaseException:
            _remove_gbsg2()
            raise
    yield made
    with django_db_blocker.unblock():
        _remove_gbsg2()


def figure_titles(html: str) -> list[str]:
    return re.findall(r'<img[^>]*\salt="([^"]*)"', html)


def report_json(client: APIClient, release: Release, **query):
    return client.get(f"/api/v1/releases/{release.pk}/report/", query or None)


def publish(client: APIClient, release: Release, body: dict | None = None):
    return client.post(f"/api/v1/releases/{release.pk}/publish/", body, format="json")


def test_a_release_made_through_the_api_gets_its_report_computed_when_it_commits(gbsg2):
    report = ReleaseReport.objects.get(release=gbsg2.honest)
    assert (report.status, report.error, report.stage) == ("succeeded", "", "")
    assert report.parts_done == report.parts_total == len(PARTS)
    assert report.requested_at <= report.started_at <= report.finished_at
    assert report.target == "cens"  # the survival event, by default
    for view in (report.content, report.public):
        assert set(view["sections"]) == set(SECTIONS)
        assert all(view["sections"][name] for name in SECTIONS)  # no section left empty on GBSG2
        json.dumps(view, allow_nan=False)  # plain JSON: no NaN, no infinity
        # every metric states its range and direction, and a value inside that range (or none, with a reason)
        for m in metrics_of(view):
            assert m["better"] in ("higher", "lower") and len(m["range"]) == 2, m["key"]
            if m["value"] is None:
                assert not m["applicable"] and m["reason"], m["key"]
            else:
                low, high = m["range"]
                assert (low is None or m["value"] >= low - 1e-9) and (high is None or m["value"] <= high + 1e-9), m
    # the headline: every score measurable on GBSG2, the same in both views
    assert set(report.content["headline"]) == set(HEADLINE_KEYS)  # stored as jsonb on PostgreSQL: any key order
    assert all(value is not None for value in report.content["headline"].values()), report.content["headline"]
    assert report.public["headline"] == report.content["headline"]
    assert all(page.lower().startswith("<!doctype html>") for page in (report.html, report.public_html))

    computed = AuditEvent.objects.get(action="report.compute", object_id=str(report.pk))
    created = AuditEvent.objects.get(action="release.create", object_id=str(gbsg2.honest.pk))
    assert (computed.outcome, computed.object_type, computed.details["release"], computed.details["dataset"]) == (
        "success", "report", gbsg2.honest.pk, "gbsg2")
    assert computed.details["headline"] == report.content["headline"]
    assert computed.seq > created.seq


def test_the_release_shows_its_report_status_and_headline(gbsg2, clients):
    body = clients["custodian"].get(f"/api/v1/releases/{gbsg2.honest.pk}/").json()
    report = ReleaseReport.objects.get(release=gbsg2.honest)
    assert body["report"] == {"status": "succeeded", "stage": "", "parts_done": 6, "parts_total": 6, "error": "",
                              "headline": report.content["headline"],
                              "url": f"/api/v1/releases/{gbsg2.honest.pk}/report/"}
    assert list(body["report"]["headline"]) == list(HEADLINE_KEYS)  # in its documented order on every database
    assert list(report_json(clients["custodian"], gbsg2.honest).json()["headline"]) == list(HEADLINE_KEYS)
    assert body["gate_override"] is None


def test_a_custodian_reads_the_whole_report(gbsg2, clients, custodian):
    response = report_json(clients["custodian"], gbsg2.honest)
    assert response.status_code == 200 and response["Content-Type"].startswith("application/json")
    body = response.json()
    report = ReleaseReport.objects.get(release=gbsg2.honest)
    assert {k: v for k, v in body.items() if k in report.content} == report.content
    assert (body["release"], body["dataset"], body["override"]) == (gbsg2.honest.pk, "gbsg2", None)
    assert body["computed_at"] == report.finished_at.isoformat()
    assert all("real_details" in m for m in metrics_of(body))
    # statistics of the real rows: the real Kaplan–Meier curve and the real univariable Cox hazard ratios
    assert len(metric(body, "survival.km_divergence")["real_details"]["km"]["survival"]) > 100
    assert metric(body, "survival.cox_sign_agreement")["real_details"]["covariates"]["pnodes"]["hr"] > 1
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_id, event.details) == (
        "report.read", "success", custodian[0].pk, str(gbsg2.honest.pk), {"audience": "custodian", "format": "json"})


def test_a_researcher_reads_only_the_public_part_of_a_published_release_s_report(gbsg2, clients, researcher):
    assert_error(report_json(clients["researcher"], gbsg2.honest), 404, "not_found")  # a draft: not there at all
    assert publish(clients["custodian"], gbsg2.honest).status_code == 200  # every gate passes: no override

    response = report_json(clients["researcher"], gbsg2.honest)
    assert response.status_code == 200
    body, text = response.json(), response.content.decode()
    report = ReleaseReport.objects.get(release=gbsg2.honest)
    assert {k: v for k, v in body.items() if k in report.public} == report.public
    assert "real_details" not in keys_in(body) and "real_details" not in text
    # none of the real statistics the custodian sees is in it
    custodian_view = report.content
    real_km = metric(custodian_view, "survival.km_divergence")["real_details"]["km"]
    assert metric(body, "survival.km_divergence")["synthetic_details"]["km"] != real_km
    assert json.dumps(real_km["survival"]) not in text
    covariates = metric(custodian_view, "survival.cox_sign_agreement")["real_details"]["covariates"]
    real_hrs = [c["hr"] for c in covariates.values()]
    assert len(real_hrs) == 9 and not [hr for hr in real_hrs if repr(hr) in text]
    real_numbers = {f for m in metrics_of(custodian_view) for f in floats_in(m["real_details"])
                    if len(repr(f)) > 12}  # long decimals: no chance coincidence
    assert len(real_numbers) > 100
    # (the one exception allowed: a number that is also a statistic of the synthetic rows, such as the KM horizon,
    # the shorter of the two cohorts' follow-ups, which here is the synthetic one)
    synthetic_side = {f for m in metrics_of(body) for f in floats_in(m["synthetic_details"])}
    assert [f for f in real_numbers if repr(f) in text and f not in synthetic_side] == []
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.details) == (
        "report.read", "success", researcher[0].pk, {"audience": "public", "format": "json"})


def test_the_html_page_embeds_its_plots_and_the_public_page_shows_no_real_side(gbsg2, clients, researcher):
    custodian_page = clients["custodian"].get(f"/api/v1/releases/{gbsg2.honest.pk}/report/?format=html")
    assert custodian_page.status_code == 200 and custodian_page["Content-Type"] == "text/html; charset=utf-8"
    custodian_html = custodian_page.content.decode()
    stored = ReleaseReport.objects.get(release=gbsg2.honest)
    # the stored page, with the gate results as judged when it is read
    assert custodian_html.replace(custodian_html[custodian_html.index("<h2>Publication gates"):
                                                 custodian_html.index(GATES_MARKER)], "") == stored.html
    assert "Every publication gate passed." in custodian_html  # an honest copula release
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', custodian_html)) >= 5
    assert "Real rows (custodian only)" in custodian_html
    assert "Kaplan–Meier: real vs synthetic" in figure_titles(custodian_html)

    publish(clients["custodian"], gbsg2.honest)
    public_page = clients["researcher"].get(f"/api/v1/releases/{gbsg2.honest.pk}/report/", {"format": "html"})
    assert public_page.status_code == 200 and public_page["Content-Type"].startswith("text/html")
    public_html = public_page.content.decode()
    assert public_html.replace(public_html[public_html.index("<h2>Publication gates"):
                                           public_html.index(GATES_MARKER)], "") == stored.public_html
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', public_html)) >= 5
    assert len(public_html) < len(custodian_html)
    assert "Real rows" not in public_html
    titles = figure_titles(public_html)
    assert len(titles) >= 5 and "Kaplan–Meier: synthetic" in titles
    assert [title for title in titles if "real" in title.lower()] == []  # synthetic-side figures only
    # the real hazard ratios, as the custodian's page prints them, are not on the public page (where a synthetic
    # hazard ratio may print the same, the custodian's page has that row once more)
    from generators.core.evaluation.html import _number

    covariates = metric(ReleaseReport.objects.get(release=gbsg2.honest).content,
                        "survival.cox_sign_agreement")["real_details"]["covariates"]
    printed = [f'<th>{name}</th><td class="num">{_number(c["hr"])}</td>' for name, c in covariates.items()]
    assert len(printed) == 9
    assert [cell for cell in printed if custodian_html.count(cell) <= public_html.count(cell)] == []
    event = last_event()
    assert (event.action, event.actor_id, event.details) == (
        "report.read", researcher[0].pk, {"audience": "public", "format": "html"})


@pytest.mark.parametrize("fmt", ["xml", "csv", "HTML", ""])
def test_an_unknown_format_is_a_400_in_json(gbsg2, clients, fmt):
    response = report_json(clients["custodian"], gbsg2.honest, format=fmt)
    error = assert_error(response, 400, "invalid_format")
    assert response["Content-Type"].startswith("application/json") and repr(fmt) in error["message"]
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("report.read", "refused", "invalid_format")


def test_an_unknown_format_from_an_anonymous_caller_is_still_a_401(gbsg2, clients):
    response = report_json(clients["anonymous"], gbsg2.honest, format="xml")
    assert_error(response, 401, "not_authenticated")


def test_an_honest_copula_release_of_gbsg2_passes_the_privacy_gates(gbsg2, clients):
    body = report_json(clients["custodian"], gbsg2.honest).json()
    gates = gates_of(body)
    assert list(gates) == list(DEFAULT_GATES)
    assert {name: gates[name]["passed"] for name in PRIVACY_GATES} == dict.fromkeys(PRIVACY_GATES, True), body["gates"]
    assert gates["ims_max"]["value"] == 0.0
    assert gates["leakage_max"]["value"] < 0.05
    assert gates["dcr_margin"]["value"] >= 0.9 and gates["dcr_margin"]["threshold"] == pytest.approx(0.9)
    assert gates["mia_auc_max"]["value"] <= 0.6
    assert gates["fidelity_min"]["passed"]


def test_a_leaking_release_of_gbsg2_fails_the_privacy_gates_and_is_not_published(gbsg2, clients, custodian):
    assert ReleaseReport.objects.get(release=gbsg2.leaking).status == "succeeded"
    body = report_json(clients["custodian"], gbsg2.leaking).json()
    gates = gates_of(body)
    assert gates["ims_max"]["passed"] is False and gates["ims_max"]["value"] == 1.0  # every row a training row
    assert metric(body, "privacy.ims")["real_details"]["training_rows_copied"] == gbsg2.training_rows
    # (measured against holdout-sized subsets of the training rows, of which the copies are a quarter each)
    assert gates["dcr_margin"]["passed"] is False and gates["dcr_margin"]["value"] < 0.9
    assert gates["mia_auc_max"]["passed"] is False and gates["mia_auc_max"]["value"] > 0.9

    refused = publish(clients["custodian"], gbsg2.leaking)
    error = assert_error(refused, 409, "gates_failed")
    failed = {g["gate"] for g in error["details"]["failed"]}
    assert {"ims_max", "dcr_margin", "mia_auc_max"} <= failed and failed <= set(DEFAULT_GATES)
    assert "ims_max" in error["message"] and "override" in error["message"]
    assert Release.objects.get(pk=gbsg2.leaking.pk).published_at is None
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.details["code"]) == (
        "release.publish", "refused", custodian[0].pk, "gates_failed")


# --------------------------------------------------------------------------------------------
# Pending and failed reports (the six-row dataset)
# --------------------------------------------------------------------------------------------

def test_a_report_is_a_409_while_it_is_pending_or_running(clients, release):
    assert ReleaseReport.objects.get(release=release).status == "pending"
    assert clients["custodian"].get(f"/api/v1/releases/{release.pk}/").json()["report"]["status"] == "pending"
    for query in ({}, {"format": "html"}):
        response = report_json(clients["custodian"], release, **query)
        error = assert_error(response, 409, "report_not_ready")
        assert response["Content-Type"].startswith("application/json")  # errors are JSON, whatever was asked for
        assert error["details"] == {"status": "pending", "stage": "", "parts_done": 0, "parts_total": 6}
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("report.read", "refused", "report_not_ready")
    assert_error(publish(clients["custodian"], release), 409, "report_not_ready")
    assert_error(clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/"), 409, "report_not_ready")

    ReleaseReport.objects.filter(release=release).update(status="running", stage="privacy", parts_done=2,
                                                         started_at=timezone.now())
    error = assert_error(report_json(clients["custodian"], release), 409, "report_not_ready")
    assert error["details"] == {"status": "running", "stage": "privacy", "parts_done": 2, "parts_total": 6}
    assert "2 of 6" in error["message"]
    assert_error(clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/"), 409, "report_not_ready")
    assert Release.objects.get(pk=release.pk).published_at is None


def test_a_report_whose_worker_died_may_be_asked_for_again(clients, release, settings):
    long_ago = timezone.now() - timedelta(seconds=settings.REPORT_TIME_LIMIT_SECONDS + 120)
    ReleaseReport.objects.filter(release=release).update(status="running", started_at=long_ago)
    response = clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/")
    assert response.status_code == 202 and response.json()["status"] == "pending"


def test_a_report_that_cannot_be_computed_fails_with_a_message_then_may_be_asked_for_again(
        clients, release, custodian, django_capture_on_commit_callbacks):
    from releases.tasks import compute_report

    release_file(release, "parquet").unlink()  # the synthetic rows are gone
    compute_report.delay(release.report.pk)  # the task, as the commit would have queued it (eager)
    report = ReleaseReport.objects.get(release=release)
    assert report.status == "failed" and report.finished_at is not None
    assert report.error.startswith("could not compute the report") and "data.parquet" in report.error
    assert (report.content, report.html) == ({}, "")
    event = AuditEvent.objects.get(action="report.compute", object_id=str(report.pk))
    assert (event.outcome, event.details["error"]) == ("failed", report.error)
    assert clients["custodian"].get(f"/api/v1/releases/{release.pk}/").json()["report"]["error"] == report.error

    error = assert_error(report_json(clients["custodian"], release), 409, "report_failed")
    assert report.error in error["message"]
    assert_error(publish(clients["custodian"], release), 409, "report_failed")
    assert Release.objects.get(pk=release.pk).published_at is None

    rerun = clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/")
    assert rerun.status_code == 202
    assert (rerun.json()["status"], rerun.json()["error"], rerun.json()["headline"]) == ("pending", "", None)
    again = ReleaseReport.objects.get(release=release)
    assert (again.pk, again.status, again.error, again.finished_at, again.parts_done) == (
        report.pk, "pending", "", None, 0)
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.details) == (
        "report.request", "success", custodian[0].pk, {"dataset": "gbsg2-small", "rerun": True})

    # asked for again with the file back in place, the queued task computes it when the request commits
    pd.DataFrame(pd.read_csv(release_file(release, "csv"))).to_parquet(release_file(release, "parquet"), index=False)
    ReleaseReport.objects.filter(pk=report.pk).update(status="failed")
    with django_capture_on_commit_callbacks(execute=True):
        assert clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/").status_code == 202
    assert ReleaseReport.objects.get(pk=report.pk).status == "succeeded"


def test_a_release_without_a_report_says_so(clients, release):
    ReleaseReport.objects.filter(release=release).delete()
    assert clients["custodian"].get(f"/api/v1/releases/{release.pk}/").json()["report"] is None
    assert_error(report_json(clients["custodian"], release), 409, "report_missing")
    assert_error(publish(clients["custodian"], release), 409, "report_missing")
    response = clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/")
    assert response.status_code == 202 and ReleaseReport.objects.get(release=release).status == "pending"


@pytest.mark.parametrize("role", ["researcher", "auditor", "unverified", "anonymous"])
def test_only_a_custodian_asks_for_a_report_again(clients, release, role):
    finish_report(release)
    response = clients[role].post(f"/api/v1/releases/{release.pk}/report/")
    assert response.status_code in (401, 403, 404)
    assert ReleaseReport.objects.get(release=release).status == "succeeded"


# --------------------------------------------------------------------------------------------
# Gates and the override (reports finished by hand)
# --------------------------------------------------------------------------------------------

def test_publishing_a_release_that_fails_gates_is_a_409_listing_exactly_those_gates(clients, release, custodian):
    finish_report(release, **{"privacy.ims": 0.2, "privacy.mia_auc": 0.8})
    response = publish(clients["custodian"], release)
    error = assert_error(response, 409, "gates_failed")
    assert [{k: g[k] for k in ("gate", "metric", "value", "comparison", "threshold", "passed")}
            for g in error["details"]["failed"]] == [
        {"gate": "ims_max", "metric": "privacy.ims", "value": 0.2, "comparison": "<=", "threshold": 0.0,
         "passed": False},
        {"gate": "mia_auc_max", "metric": "privacy.mia_auc", "value": 0.8, "comparison": "<=", "threshold": 0.6,
         "passed": False},
    ]
    assert all(g["reason"].startswith(g["metric"]) and "fails" in g["reason"] for g in error["details"]["failed"])
    assert "2 publication gate(s)" in error["message"] and "ims_max" in error["message"]
    release.refresh_from_db()
    assert (release.published_at, release.published_by, release.gate_override) == (None, None, None)
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_id, event.details["code"]) == (
        "release.publish", "refused", custodian[0].pk, str(release.pk), "gates_failed")
    assert clients["researcher"].get(f"/api/v1/releases/{release.pk}/").status_code == 404
    assert not AuditEvent.objects.filter(action="release.publish", outcome="success").exists()


def test_a_gate_whose_metric_was_not_measured_fails(clients, release):
    finish_report(release, **{"privacy.leakage_coefficient": None})
    error = assert_error(publish(clients["custodian"], release), 409, "gates_failed")
    [failed] = error["details"]["failed"]
    assert (failed["gate"], failed["value"], failed["passed"]) == ("leakage_max", None, False)
    assert failed["reason"] == "not measured: set so by the test"


def test_a_written_override_publishes_and_is_stored_audited_and_shown(clients, release, custodian):
    finish_report(release, **{"privacy.ims": 0.2, "privacy.mia_auc": 0.8})
    response = publish(clients["custodian"], release, {"override": {"justification": f"  {JUSTIFICATION}  "}})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["published"] is True
    override = body["gate_override"]
    assert set(override) == {"justification", "failed", "by", "at"}
    assert (override["justification"], override["by"]) == (JUSTIFICATION, "cora")
    assert [(g["gate"], g["value"]) for g in override["failed"]] == [("ims_max", 0.2), ("mia_auc_max", 0.8)]
    release.refresh_from_db()
    assert release.published_by == custodian[0] and release.gate_override == override
    assert override["at"] == release.published_at.isoformat()

    # shown on the release and with the report; researchers see the justification and the failed
    # gates, not which custodian wrote it
    public = {key: value for key, value in override.items() if key != "by"}
    shown = clients["researcher"].get(f"/api/v1/releases/{release.pk}/").json()
    assert shown["gate_override"] == public
    assert report_json(clients["researcher"], release).json()["override"] == public
    assert report_json(clients["custodian"], release).json()["override"] == override

    event = AuditEvent.objects.get(action="release.publish", object_id=str(release.pk))
    assert (event.outcome, event.actor_id) == ("success", custodian[0].pk)
    assert event.details["override"]["justification"] == JUSTIFICATION
    assert event.details["override"]["failed"] == override["failed"]
    assert [(g["gate"], g["passed"]) for g in event.details["gates"]] == [
        ("ims_max", False), ("leakage_max", True), ("dcr_margin", True), ("mia_auc_max", False), ("fidelity_min", True)]


@pytest.mark.parametrize("override", [
    {"justification": "too short"},
    {"justification": "x" * 19},
    {"justification": " " * 40},
    {"justification": 12345678901234567890},
    {"reason": JUSTIFICATION},
    {},
    JUSTIFICATION,
    [JUSTIFICATION],
])
def test_an_override_needs_a_written_justification(clients, release, override):
    finish_report(release, **{"privacy.ims": 0.2})
    error = assert_error(publish(clients["custodian"], release, {"override": override}), 400, "invalid_override")
    assert "20 characters" in error["message"]
    release.refresh_from_db()
    assert (release.published_at, release.gate_override) == (None, None)
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("release.publish", "refused", "invalid_override")


def test_a_justification_of_twenty_characters_is_enough(clients, release):
    finish_report(release, **{"privacy.ims": 0.2})
    response = publish(clients["custodian"], release, {"override": {"justification": "x" * 20}})
    assert response.status_code == 200 and response.json()["gate_override"]["justification"] == "x" * 20


def test_an_override_of_a_release_that_passes_every_gate_is_refused(clients, release):
    finish_report(release)
    error = assert_error(publish(clients["custodian"], release, {"override": {"justification": JUSTIFICATION}}),
                         400, "override_not_needed")
    assert "passes every gate" in error["message"]
    assert Release.objects.get(pk=release.pk).published_at is None
    assert publish(clients["custodian"], release, {"override": None}).status_code == 200  # null: no override


# --------------------------------------------------------------------------------------------
# A dataset's gate thresholds
# --------------------------------------------------------------------------------------------

def gates_url(dataset) -> str:
    return f"/api/v1/datasets/{dataset.slug}/gates/"


def test_a_custodian_reads_the_default_gates_with_their_descriptions(clients, dataset):
    body = clients["custodian"].get(gates_url(dataset)).json()
    assert body["gates"] == body["defaults"] == DEFAULT_GATES == {
        "ims_max": 0.0, "leakage_max": 0.05, "dcr_margin": 0.1, "mia_auc_max": 0.6, "fidelity_min": 0.85}
    assert set(body["descriptions"]) == set(DEFAULT_GATES) and all(body["descriptions"].values())


def test_setting_a_gate_changes_the_verdict_and_is_audited_with_before_and_after(clients, release, dataset, custodian):
    finish_report(release, **{"privacy.mia_auc": 0.65})
    error = assert_error(publish(clients["custodian"], release), 409, "gates_failed")
    assert [g["gate"] for g in error["details"]["failed"]] == ["mia_auc_max"]

    response = clients["custodian"].put(gates_url(dataset), {"mia_auc_max": 0.7}, format="json")
    assert response.status_code == 200
    assert response.json()["gates"] == {**DEFAULT_GATES, "mia_auc_max": 0.7}
    dataset.refresh_from_db()
    assert dataset.gates == {"mia_auc_max": 0.7}  # only what was set; the others follow the defaults
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.object_type, event.object_id) == (
        "dataset.gates.set", "success", custodian[0].pk, "dataset", dataset.slug)
    assert event.details == {"before": DEFAULT_GATES, "after": {**DEFAULT_GATES, "mia_auc_max": 0.7}}

    # the stored report is judged against the gates as they are now
    gates = gates_of(report_json(clients["custodian"], release).json())
    assert (gates["mia_auc_max"]["threshold"], gates["mia_auc_max"]["passed"]) == (0.7, True)
    published = publish(clients["custodian"], release)
    assert published.status_code == 200 and published.json()["gate_override"] is None

    # a second, partial update keeps the first
    clients["custodian"].put(gates_url(dataset), {"ims_max": 0.01, "dcr_margin": 0.2}, format="json")
    dataset.refresh_from_db()
    assert dataset.gates == {"mia_auc_max": 0.7, "ims_max": 0.01, "dcr_margin": 0.2}
    assert last_event().details["before"] == {**DEFAULT_GATES, "mia_auc_max": 0.7}
    body = clients["custodian"].get(gates_url(dataset)).json()
    assert body["gates"] == {**DEFAULT_GATES, "mia_auc_max": 0.7, "ims_max": 0.01, "dcr_margin": 0.2}
    assert body["defaults"] == DEFAULT_GATES


def test_a_stricter_gate_stops_a_release_that_passed_the_defaults(clients, release, dataset):
    finish_report(release)  # fidelity 0.9
    clients["custodian"].put(gates_url(dataset), {"fidelity_min": 0.95}, format="json")
    error = assert_error(publish(clients["custodian"], release), 409, "gates_failed")
    assert [(g["gate"], g["value"], g["threshold"]) for g in error["details"]["failed"]] == [
        ("fidelity_min", 0.9, 0.95)]


@pytest.mark.parametrize(("body", "named"), [
    ({"colour": 1}, "colour: unknown gate"),
    ({"ims_max": "none"}, "ims_max: must be a finite number"),
    ({"ims_max": None}, "ims_max: must be a finite number"),
    ({"mia_auc_max": True}, "mia_auc_max: must be a finite number"),
    ({"mia_auc_max": [0.55]}, "mia_auc_max: must be a finite number"),
    ({"mia_auc_max": 0.2}, "mia_auc_max: must lie in [0.5, 1], not 0.2"),
    ({"fidelity_min": 1.5}, "fidelity_min: must lie in [0, 1], not 1.5"),
    ({"leakage_max": -0.01}, "leakage_max: must lie in [0, 10]"),
    ({"mia_auc_max": 0.55, "colour": 1}, "colour: unknown gate"),  # nothing stored, the valid one neither
    ({}, "Send an object of gate thresholds"),
    ([{"mia_auc_max": 0.55}], "Send an object of gate thresholds"),
])
def test_invalid_gates_are_refused_naming_the_problem_and_nothing_is_stored(clients, dataset, custodian, body, named):
    response = clients["custodian"].put(gates_url(dataset), body, format="json")
    error = assert_error(response, 400, "invalid_gates")
    assert named in error["message"], error["message"]
    dataset.refresh_from_db()
    assert dataset.gates == {}
    event = last_event()
    assert (event.action, event.outcome, event.actor_id, event.details["code"]) == (
        "dataset.gates.set", "refused", custodian[0].pk, "invalid_gates")


def test_gates_of_an_unknown_dataset_are_a_404(clients):
    assert_error(clients["custodian"].get("/api/v1/datasets/no-such/gates/"), 404, "not_found")
    assert_error(clients["custodian"].put("/api/v1/datasets/no-such/gates/", {"ims_max": 0.0}, format="json"), 404)


def test_a_published_release_keeps_the_report_it_was_published_on(clients, release):
    finish_report(release, **{"privacy.ims": 0.2})
    assert publish(clients["custodian"], release, {"override": {"justification": JUSTIFICATION}}).status_code == 200
    before = ReleaseReport.objects.get(release=release)
    response = clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/")
    assert_error(response, 409, "already_published")
    after = ReleaseReport.objects.get(release=release)
    assert (after.status, after.content, after.finished_at) == (before.status, before.content, before.finished_at)
    event = last_event()
    assert (event.action, event.outcome, event.details["code"]) == ("report.request", "refused", "already_published")


def test_researchers_never_read_why_a_report_failed(clients, release):
    ReleaseReport.objects.filter(release=release).update(status="failed", error="could not compute: /data/x.parquet")
    Release.objects.filter(pk=release.pk).update(published_at=timezone.now())
    researcher = clients["researcher"]
    assert researcher.get(f"/api/v1/releases/{release.pk}/").json()["report"]["error"] == ""
    error = assert_error(report_json(researcher, release), 409, "report_failed")
    assert "parquet" not in error["message"]
    custodian = assert_error(report_json(clients["custodian"], release), 409, "report_failed")
    assert "parquet" in custodian["message"]


def test_a_report_waiting_for_a_lost_message_can_be_asked_for_again(clients, release, settings):
    ReleaseReport.objects.filter(release=release).update(status="pending", content={}, finished_at=None)
    assert_error(clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/"), 409, "report_not_ready")
    settings.REPORT_TIME_LIMIT_SECONDS = 60
    ReleaseReport.objects.filter(release=release).update(requested_at=timezone.now() - timedelta(seconds=121))
    assert clients["custodian"].post(f"/api/v1/releases/{release.pk}/report/").status_code == 202


def test_a_gate_threshold_too_large_for_a_float_is_a_400(clients, dataset):
    response = clients["custodian"].put(f"/api/v1/datasets/{dataset.slug}/gates/", {"mia_auc_max": 10**400},
                                        format="json")
    error = assert_error(response, 400, "invalid_gates")
    assert "finite number" in error["message"]
