"""The client against a live server (pytest-django's ``live_server``), per role: every call, and the
wrong role's refusals with the server's code. The custodian uploads, trains a copula, samples, publishes
with an override; the researcher lists, downloads (both formats, SHA-256 checked), reads the report,
previews, verifies, reads the budget and the history; the auditor reads, exports and checks the log."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest
from clearinghouse_client import Answer, Client, ClearinghouseError, Dataset, Preview, Release, Run, User

from accounts.models import ApiToken
from accounts.models import User as UserModel
from clearinghouse.models import AuditEvent
from releases.models import Release as ReleaseModel
from tests.conftest import DATA, GBSG2_SCHEMA, finish_report
from tests.portal.conftest import PASSWORD
from verification.models import Verification

MEAN = {"column": "age"}  # a mean: the six-patient cohort is too small for a stable Cox model
CLAIM = {"direction": "greater", "value": 40}


def refused(call, status: int, code: str) -> ClearinghouseError:
    with pytest.raises(ClearinghouseError) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code), caught.value
    assert caught.value.message
    return caught.value


def test_every_call_per_role_against_a_live_server(live_clients, live_users, tmp_path, monkeypatch):
    monkeypatch.setattr("verification.services.secrets.randbits", lambda bits: 1)  # the preview's simulations (answers: seeded_noise)
    from releases import services

    queue = services.report_request  # the report's own computation is tested elsewhere: a pending row only
    monkeypatch.setattr(services, "report_request", lambda release, enqueue=True: queue(release, enqueue=False))
    custodian, researcher, auditor = live_clients["custodian"], live_clients["researcher"], live_clients["auditor"]

    # --- custodian: upload, train (following the run), sample, publish over failed gates
    dataset = custodian.upload("gbsg2-small", "GBSG2 (small)", DATA / "gbsg2_small.csv", GBSG2_SCHEMA,
                               description="six patients")
    assert isinstance(dataset, Dataset) and (dataset.slug, dataset.n_rows, dataset.n_columns) == ("gbsg2-small", 6, 10)
    refused(lambda: custodian.upload("gbsg2-small", "again", DATA / "gbsg2_small.csv", GBSG2_SCHEMA), 409,
            "duplicate_slug")
    refused(lambda: custodian.train("gbsg2-small", "nope", epochs=1, progress=False), 400, "unknown_model")
    refused(lambda: custodian.train("gbsg2-small", "ctgan", progress=False), 400, "invalid_epochs")
    # the copula is fitted in one pass: no epochs to send, none shown, and a bar that ends full
    run = custodian.train("gbsg2-small", "copula", device="cpu", progress=True, poll=0.05)
    assert isinstance(run, Run) and run.status == "succeeded" and run.epochs is None
    assert run.progress["epochs"] is None and run.progress["fraction"] == 1
    assert custodian.run(run.id) == run and [r.id for r in custodian.runs("gbsg2-small")] == [run.id]
    refused(lambda: custodian.cancel(run.id), 409, "run_finished")
    release = custodian.make_release(run, 40, seed=1)
    assert isinstance(release, Release) and (release.rows, release.run, release.published) == (40, run.id, False)
    finish_report(ReleaseModel.objects.get(pk=release.id), **{"privacy.mia_auc": 0.9})  # one gate fails
    refused(lambda: custodian.publish(release), 409, "gates_failed")
    refused(lambda: custodian.publish(release, override="too short"), 400, "invalid_override")
    justification = "Test only: six patients, the failed gate is accepted for the client's test."
    published = custodian.publish(release.id, override=justification)
    assert published.published and published.gate_override["justification"] == justification
    refused(lambda: custodian.publish(release), 409, "already_published")
    assert custodian.report(release)["gates"] and "<" in custodian.report_html(release)

    policy = custodian.budget_policy("gbsg2-small")
    assert isinstance(policy["total_cap"], Decimal)
    policy = custodian.set_budget_policy("gbsg2-small", min_subgroup=1, max_epsilon_per_query="2")
    assert (policy["min_subgroup"], policy["max_epsilon_per_query"]) == (1, Decimal("2"))
    rhea = live_users["researcher"]
    allocation = custodian.set_allocation("gbsg2-small", rhea.pk, "3.5")
    assert (allocation["allocation"], allocation["spent"], allocation["user"]) == (Decimal("3.5"), Decimal("0"), rhea.pk)
    refused(lambda: custodian.set_allocation("gbsg2-small", rhea.pk, "abc"), 400, "invalid_epsilon")
    pending = custodian.accounts(role="researcher", verified=False)
    assert [u.username for u in pending] == ["uma"] and isinstance(pending[0], User)
    assert {u.username for u in custodian.accounts()} == {"cora", "rhea", "uma", "otto"}
    refused(lambda: live_clients["unverified"].datasets(), 403, "permission_denied")  # until she is verified
    assert custodian.verify_researcher(pending[0]).verified is True
    assert [d.slug for d in live_clients["unverified"].datasets()] == ["gbsg2-small"]
    refused(lambda: custodian.verify_researcher(pending[0].id), 409, "already_verified")

    # --- researcher: browse, download (checked), report, preview, verify, budget, history
    assert [d.slug for d in researcher.datasets()] == ["gbsg2-small"]
    assert researcher.dataset("gbsg2-small").schema == dataset.schema
    assert [r.id for r in researcher.releases()] == [release.id] == [r.id for r in researcher.releases("gbsg2-small")]
    assert researcher.releases(dataset="other") == []
    assert researcher.release(release.id).files["parquet"]["sha256"] == published.files["parquet"]["sha256"]
    frame = researcher.download(release.id)
    assert frame.shape == (40, 10) and frame.attrs["path"] is None
    saved = researcher.download(published, format="csv", path=tmp_path)
    target = tmp_path / f"gbsg2-small-release-{release.id}.csv"
    assert saved.attrs["path"] == str(target) and sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    with target.open() as handle:
        assert next(csv.reader(handle)) == list(frame.columns) and len(handle.readlines()) == 40
    assert list(saved["age"]) == list(frame["age"]) and list(saved["horTh"]) == list(frame["horTh"])
    public = researcher.report(release)
    assert "gates" in public and "Real rows (custodian only)" not in researcher.report_html(release)

    # a Cox HR on a 40-row release of six patients: the preview is hopeless but answered (it overflowed to a 500)
    hopeless = researcher.preview(release, "hazard_ratio", {"exposure": {"column": "horTh", "value": "yes"}},
                                  claim={"direction": "less", "value": 1}, epsilon="0.5")
    assert hopeless.kind == "hazard_ratio" and hopeless.p_decisive < 0.5
    preview = researcher.preview(release, "mean", MEAN, claim=CLAIM, epsilon="0.5")
    assert isinstance(preview, Preview) and preview.epsilon == Decimal("0.5") and preview.budget_left == Decimal("3.5")
    assert preview.draws == 40 and preview.kind == "mean"
    answer = researcher.verify(release, "mean", MEAN, claim=CLAIM, epsilon=Decimal("0.5"))
    assert isinstance(answer, Answer) and answer.epsilon_charged == Decimal("0.5") and not answer.reused
    assert (answer.budget.left, answer.budget.allocation, answer.budget.spent) == (Decimal("3"), Decimal("3.5"),
                                                                                   Decimal("0.5"))
    stored = Verification.objects.get(pk=answer.id)
    assert stored.answer == answer.answer and answer.verdict in ("supported", "contradicted", "inconclusive")
    again = researcher.verify(release, "mean", MEAN, claim=CLAIM, epsilon="0.5")
    assert again.reused and again.epsilon_charged == Decimal("0") and again.budget.left == Decimal("3")
    refused(lambda: researcher.verify(release, "mean", MEAN, claim=CLAIM, epsilon="5"), 400,
            "epsilon_above_maximum")
    refused(lambda: researcher.verify(release, "no_such_kind", {}, claim=CLAIM, epsilon="0.5"), 400, "unknown_kind")
    budget = {b.dataset: b for b in researcher.budget()}["gbsg2-small"]
    assert (budget.left, budget.spent, budget.max_epsilon_per_query) == (Decimal("3"), Decimal("0.5"), Decimal("2"))
    history = researcher.history()
    assert sorted(v.id for v in history) == sorted([answer.id, again.id]) and history[0].budget is None
    assert researcher.verification(answer.id).answer == answer.answer
    assert researcher.me().username == "rhea"
    signed_in = Client.login(researcher.base_url, "rhea", PASSWORD, name="laptop", expires_in_days=3)
    try:
        assert signed_in.me().username == "rhea" and signed_in.issued.user.username == "rhea"
        assert ApiToken.objects.get(pk=signed_in.issued.id).name == "laptop"
    finally:
        signed_in.close()
    refused(lambda: Client.login(researcher.base_url, "rhea", "wrong password"), 401, "invalid_credentials")

    # --- auditor: the log as a frame (every page), its CSV export, the chain
    events = auditor.events(action="verification.*")
    assert {"verification.create", "verification.preview", "verification.charge"} <= set(events["action"])
    assert set(events["action"].str.split(".").str[0]) == {"verification"}
    assert len(events) == AuditEvent.objects.filter(action__startswith="verification.").count()
    everything = auditor.events(page_size=7)  # several pages
    assert len(everything) == AuditEvent.objects.count() - 1  # this very list is audited after it is read
    exported = auditor.export_events(tmp_path / "audit" / "events.csv", outcome="refused")
    with exported.open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and {r["outcome"] for r in rows} == {"refused"}
    assert len(rows) == AuditEvent.objects.filter(outcome="refused").count()
    # the JSON Lines export: the exact stored values (an unescaped object_id, details as an object)
    refused_events = AuditEvent.objects.filter(outcome="refused").order_by("seq")
    parsed = auditor.export_events(format="jsonl", outcome="refused")
    assert [(e["seq"], e["hash"], e["object_id"], e["details"]) for e in parsed] == [
        (e.seq, e.hash, e.object_id, e.details) for e in refused_events]
    written = auditor.export_events(tmp_path / "audit" / "events.jsonl", format="jsonl", outcome="refused")
    assert [json.loads(line)["seq"] for line in written.read_text().splitlines()] == [e["seq"] for e in parsed]
    assert list(AuditEvent.objects.filter(action="audit.events.export").order_by("-seq").values_list(
        "details", flat=True)[:2]) == [{"query": {"outcome": "refused"}, "format": "jsonl"}] * 2
    assert auditor.check_chain()["valid"] is True
    refused(lambda: auditor.events(outcome="nope"), 400, "invalid")

    # --- the wrong role: refused with the server's code, nothing stored
    refused(lambda: researcher.upload("x-set", "x", DATA / "gbsg2_small.csv", GBSG2_SCHEMA), 403, "permission_denied")
    refused(lambda: researcher.train("gbsg2-small", "copula", epochs=1, progress=False), 403, "permission_denied")
    refused(lambda: researcher.budget_policy("gbsg2-small"), 403, "permission_denied")
    refused(lambda: researcher.events(), 403, "permission_denied")
    refused(lambda: custodian.verify(release, "mean", MEAN, claim=CLAIM, epsilon="0.5"), 403, "permission_denied")
    refused(lambda: custodian.history(), 403, "permission_denied")
    refused(lambda: auditor.download(release.id), 403, "permission_denied")
    refused(lambda: auditor.make_release(run, 10), 403, "permission_denied")
    refused(lambda: custodian.check_chain(), 403, "permission_denied")
    refused(lambda: live_clients["anonymous"].datasets(), 401, "not_authenticated")
    refused(lambda: live_clients["anonymous"].release(release.id), 401, "not_authenticated")
    refused(lambda: researcher.release(10_000), 404, "not_found")
    assert not UserModel.objects.filter(username="x").exists() and ReleaseModel.objects.count() == 1
    assert Verification.objects.count() == 2
