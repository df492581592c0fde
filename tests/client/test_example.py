"""docs/examples/verify_a_finding.py runs to its end against a live server: it signs in from the environment,
downloads the release, fits a Cox model on the synthetic rows, previews and verifies the hazard ratio, prints the
answer's summary and saves its plot."""

from __future__ import annotations

import io
import json
import runpy
from decimal import Decimal
from pathlib import Path

from accounts.budgets import policy_set
from accounts.services import token_issue_for
from clearinghouse.services.datasets import dataset_create
from generators.models import GeneratorRun
from generators.services import run_create
from releases.services import release_create, release_publish
from tests.conftest import finish_report
from verification.models import Verification

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "examples" / "verify_a_finding.py"


def test_the_example_verifies_a_finding_against_a_live_server(live_server, live_users, tmp_path, monkeypatch,
                                                               capsys):
    from lifelines.datasets import load_gbsg2

    monkeypatch.setattr("verification.services.secrets.randbits", lambda bits: 1)  # the preview's simulations (answers: seeded_noise)
    custodian, researcher = live_users["custodian"], live_users["researcher"]
    buffer = io.StringIO()
    load_gbsg2().to_csv(buffer, index=False)
    schema = json.loads((ROOT / "clearinghouse" / "fixtures" / "gbsg2.schema.json").read_text(encoding="utf-8"))
    schema["columns"] = [c for c in schema["columns"] if c["name"] != "pid"]
    dataset = dataset_create(slug="gbsg2", name="GBSG2", schema=schema, data=buffer.getvalue().encode(), by=custodian)
    run = run_create(dataset=dataset, model="copula", epochs=1, seed=0, device="cpu", by=custodian)
    run.refresh_from_db()
    assert run.status == GeneratorRun.Status.SUCCEEDED, run.error
    release = release_publish(release=finish_report(release_create(run=run, rows=300, seed=1, by=custodian,
                                                                   queue_report=False)), by=custodian)
    policy_set(dataset=dataset, changes={"default_allocation": "2"}, by=custodian)
    _token, raw = token_issue_for(user=researcher, name="example")
    monkeypatch.setenv("CLEARINGHOUSE_URL", live_server.url)
    monkeypatch.setenv("CLEARINGHOUSE_TOKEN", raw)
    monkeypatch.setenv("CLEARINGHOUSE_EPSILON", "0.5")
    monkeypatch.setenv("CLEARINGHOUSE_PLOT", str(tmp_path / "answer.png"))
    monkeypatch.delenv("CLEARINGHOUSE_RELEASE", raising=False)

    namespace = runpy.run_path(str(SCRIPT), run_name="__main__")

    printed = capsys.readouterr().out
    answer = namespace["answer"]
    stored = Verification.objects.get(pk=answer.id)
    assert stored.user == researcher and stored.release_id == release.id and stored.kind == "hazard_ratio"
    assert answer.epsilon_charged == Decimal("0.5") == stored.epsilon and answer.budget.left == Decimal("1.5")
    assert answer.summary() in printed and f"release {release.id} of gbsg2: 300 synthetic rows" in printed
    assert "Preview of hazard_ratio at ε = 0.5 (nothing charged" in printed
    assert (tmp_path / "answer.png").read_bytes().startswith(b"\x89PNG")
    assert namespace["frame"].shape == (300, 10)
