"""`make demo`'s job, end to end, in a fresh data directory (SQLite, no broker)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_runs_to_its_end_and_prints_a_token_per_role(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "CELERY_"))}
    env.update({"DJANGO_DEBUG": "1", "DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "clearinghouse.settings"})
    # The same path as `make demo`, with fewer epochs (the demo's 300 are timed by hand, not here).
    for argv in (["migrate", "--noinput", "-v", "0"], ["demo", "--epochs", "20"]):
        result = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Dataset 'gbsg2': 686 real patients × 10 columns" in out
    assert "researcher lists datasets: ['gbsg2']" in out
    assert "researcher tries to upload: 403 permission_denied" in out
    assert "auditor checks the audit chain: valid=True" in out
    for username in ("demo-custodian", "demo-researcher", "demo-auditor"):
        line = next(l for l in out.splitlines() if l.strip().startswith(username))
        assert line.split()[-1].startswith("cht_")
    assert "run 1: succeeded after 20/20 epochs" in out
    assert "researcher asks for it before publication: 404 not_found" in out
    assert "researcher lists releases: [1]" in out
    assert "researcher downloads data.csv: 686 rows × 10 columns, sha256 matches the datasheet" in out
    downloaded = tmp_path / "demo" / "gbsg2-release-1.csv"
    assert downloaded.read_text().splitlines()[0] == "horTh,age,menostat,tsize,tgrade,pnodes,progrec,estrec,time,cens"
    assert len(downloaded.read_text().splitlines()) == 687
    assert out.rstrip().endswith("Demo finished.")
    assert list((tmp_path / "custody").glob("*.parquet.fernet")), "the cohort was not stored in custody"
