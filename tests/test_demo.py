"""`make demo`'s job, end to end, in a fresh data directory (SQLite, no broker)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from generators.core.evaluation.gates import DEFAULT_GATES
from generators.core.evaluation.report import HEADLINE_KEYS

ROOT = Path(__file__).resolve().parent.parent


#: Signs in through the portal's login form with the Django test client, in the demo's database.
SIGN_IN = """
import json, sys, django
django.setup()
from django.test import Client
from clearinghouse.models import AuditEvent
out = {}
for username, password in json.loads(sys.argv[1]).items():
    client = Client(HTTP_HOST="127.0.0.1")
    wrong = client.post("/login/", {"username": username, "password": password + "x"})
    right = client.post("/login/", {"username": username, "password": password})
    home = client.get("/home/")
    out[username] = {"wrong": wrong.status_code, "right": right.status_code, "location": right.get("Location"),
                     "home": home.status_code, "home_names_user": username in home.content.decode()}
out["logins"] = list(AuditEvent.objects.filter(action="auth.portal_login").values_list("outcome", flat=True))
out["details"] = [json.dumps(e.details) for e in AuditEvent.objects.all()]
from accounts.models import ApiToken
out["token_ids"] = {t.user.username: t.pk for t in ApiToken.objects.filter(name="demo").order_by("pk")}
print(json.dumps(out))
"""


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
    passwords = assert_the_portal_and_the_logins_were_printed(out)
    signed_in = assert_the_printed_passwords_sign_in(env, passwords, tmp_path)
    assert_the_tokens_were_printed_as_export_lines(out, signed_in["token_ids"]["demo-researcher"])
    assert "run 1: succeeded after 20/20 epochs" in out
    assert "researcher asks for it before publication: 404 not_found" in out
    assert "researcher lists published releases: [1]" in out
    assert "researcher downloads data.csv: 686 rows × 10 columns, sha256 matches the datasheet" in out
    downloaded = tmp_path / "demo" / "gbsg2-release-1.csv"
    assert downloaded.read_text().splitlines()[0] == "horTh,age,menostat,tsize,tgrade,pnodes,progrec,estrec,time,cens"
    assert len(downloaded.read_text().splitlines()) == 687
    assert out.rstrip().endswith("Demo finished.")

    # Run again: the same users get new passwords (printed once more), the old ones stop working.
    again = subprocess.run([sys.executable, "manage.py", "demo", "--model", "copula", "--epochs", "1"], cwd=ROOT,
                           env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    renewed = assert_the_portal_and_the_logins_were_printed(again.stdout)
    assert all(renewed[name] != passwords[name] for name in passwords)
    assert_the_printed_passwords_sign_in(env, renewed, tmp_path)
    stale = _sign_in(env, {"demo-auditor": passwords["demo-auditor"]})["demo-auditor"]
    assert stale["right"] == 200 and stale["home"] == 302, stale  # refused: the form again; home sends to /login/

    assert_the_report_was_shown_and_saved(out, tmp_path / "demo")
    assert_the_two_findings_were_verified(out)
    assert list((tmp_path / "custody").glob("*.parquet.fernet")), "the cohort was not stored in custody"


def assert_the_tokens_were_printed_as_export_lines(out: str, researcher_token_id: int) -> None:
    """``export CLEARINGHOUSE_URL=…``, one ``export ROLE=…  # role: user`` line per role and the client's
    ``CLEARINGHOUSE_TOKEN``, and examples whose ids exist after the demo (release 1, run 1, the researcher's
    demo token)."""
    lines = out.splitlines()
    start = lines.index("  export CLEARINGHOUSE_URL=http://127.0.0.1:8000")
    tokens = []
    for line, (variable, role, username) in zip(lines[start + 1:start + 4], (
            ("CUSTODIAN", "custodian", "demo-custodian"), ("RESEARCHER", "researcher", "demo-researcher"),
            ("AUDITOR", "auditor", "demo-auditor"))):
        assert re.fullmatch(rf"  export {variable}=cht_[A-Za-z0-9_-]+  # {role}: {username}", line), line
        tokens.append(line.split("=", 1)[1].split()[0])
    assert len(set(tokens)) == 3
    assert lines[start + 4].startswith("  export CLEARINGHOUSE_TOKEN=$RESEARCHER  #")
    assert 'curl -H "Authorization: Bearer $RESEARCHER" $CLEARINGHOUSE_URL/api/v1/releases/1/' in out
    assert 'curl -H "Authorization: Bearer $CUSTODIAN" $CLEARINGHOUSE_URL/api/v1/runs/1/' in out
    assert 'curl -H "Authorization: Bearer $AUDITOR" $CLEARINGHOUSE_URL/api/v1/audit/events/' in out
    assert (f"demo token (id {researcher_token_id}): curl -X POST -H \"Authorization: Bearer "
            f"$RESEARCHER\" $CLEARINGHOUSE_URL/api/v1/auth/tokens/{researcher_token_id}/revoke/") in out
    assert "Client().download(1)" in out


def assert_the_report_was_shown_and_saved(out: str, folder: Path) -> None:
    """The release's headline scores and gates, its publication (plain, or with a written override when a
    gate fails) and the two HTML pages, saved where the output says."""
    lines = out.splitlines()
    assert "  validation report of release 1 (headline; range and direction in the report):" in lines
    headline = {}
    for key in HEADLINE_KEYS:
        line = next(l for l in lines if l.strip().startswith(key + " "))
        headline[key] = line.split()[-1]
        assert re.fullmatch(r"-?\d+\.\d{3}|n/a", headline[key]), line
    assert headline["fidelity.overall"] != "n/a" and headline["privacy.ims"] != "n/a"
    gates = {}
    for line in lines:
        if line.startswith("    gate "):
            name, verdict = line.split()[1:3]
            gates[name] = verdict
    assert list(gates) == list(DEFAULT_GATES) and set(gates.values()) <= {"pass", "FAIL"}
    failed = [name for name, verdict in gates.items() if verdict == "FAIL"]
    if failed:
        assert f"  publishing is refused: 409 gates_failed ({len(failed)} failed gate(s))" in lines
        assert "  the custodian publishes with a written override (audited, shown on the release)" in lines
        assert "every gate passes" not in out
    else:
        assert "  every gate passes: the custodian publishes the release" in lines
        assert "publishing is refused" not in out and "override" not in out

    pages = {"custodian": folder / "gbsg2-release-1-report.html",
             "public": folder / "gbsg2-release-1-report-public.html"}
    assert f"  HTML report (custodian): {pages['custodian']}" in lines
    assert f"  HTML report (public):    {pages['public']}" in lines
    html = {audience: path.read_text(encoding="utf-8") for audience, path in pages.items()}
    for page in html.values():
        assert page.lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>")
        assert "<img" in page and "data:image/png;base64," in page
    assert "Real rows (custodian only)" in html["custodian"] and "Real rows" not in html["public"]
    assert len(html["public"]) < len(html["custodian"])


def assert_the_two_findings_were_verified(out: str) -> None:
    """Each finding: the free preview, then the ε-DP answer on the real rows (estimate, CI, noisy n,
    verdict) next to the synthetic release's estimate, with the budget left after each charge
    (2 = 1 + 0.5 + 0.5). The age hazard ratio is an artefact of the synthetic release: never supported."""
    lines = out.splitlines()
    assert ("  researcher previews (free, synthetic release only) and verifies three findings on the real "
            "patients (ε-DP answers):") in lines
    number = r"-?\d+(\.\d+)?(e[-+]\d+)?"
    previews = [line for line in lines if line.startswith("      preview at ε = ")]
    assert len(previews) == 3, previews
    for line in previews:
        assert re.fullmatch(rf"      preview at ε = [\d.]+: expected CI {number} to {number}, P\(decisive\) [01]\.\d\d; "
                            r"smallest ε reaching 0.8: ([\d.]+|none within the limits)", line), line
    reals = [line for line in lines if line.startswith("      real (")]
    assert len(reals) == 3, reals
    for line, epsilon in zip(reals, ("1", "0.5", "0.5")):
        assert re.fullmatch(rf"      real \(ε = {epsilon}\): {number}, 95 % CI {number} to {number} \(noisy n \d+\) → "
                            r"(supported|contradicted|inconclusive)", line), line
    assert not reals[1].endswith("supported")  # the synthetic release's age artefact
    flagged = [line for line in lines if line.startswith("      not informative: ")]
    assert len(flagged) <= 3 and all(len(line) > len("      not informative: ") for line in flagged), flagged
    synthetic = [line for line in lines if line.startswith("      synthetic release: ")]
    assert [line.split("budget left ")[1] for line in synthetic] == ["1 of 2", "0.5 of 2", "0 of 2"]
    assert all(re.match(rf"      synthetic release: {number};", line) for line in synthetic), synthetic


def assert_the_portal_and_the_logins_were_printed(out: str) -> dict[str, str]:
    """The portal's URL, the hint to run `make serve`, then one login line per role, just before the end."""
    lines = out.rstrip().splitlines()
    start = lines.index("Portal: http://127.0.0.1:8000/  (start it with `make serve`, open the URL, sign in as one of these)")
    assert lines[start + 1] == "Logins (new passwords on every `make demo`, shown only here, stored hashed):"
    passwords = {}
    for line, (role, username) in zip(lines[start + 2:start + 5], (("custodian", "demo-custodian"),
                                                                    ("researcher", "demo-researcher"),
                                                                    ("auditor", "demo-auditor"))):
        assert line.split()[:2] == [role, username], line
        passwords[username] = line.split()[2]
        assert len(passwords[username]) >= 24 and re.fullmatch(r"[A-Za-z0-9_-]+", passwords[username])
    assert lines[start + 5:] == ["", "Demo finished."]
    assert len(set(passwords.values())) == 3
    for password in passwords.values():
        assert out.count(password) == 1, "a password was printed more than once"
    return passwords


def _sign_in(env: dict, passwords: dict[str, str]) -> dict:
    result = subprocess.run([sys.executable, "-c", SIGN_IN, json.dumps(passwords)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def assert_the_printed_passwords_sign_in(env: dict, passwords: dict[str, str], data_dir: Path) -> dict:
    """Each printed password signs in at /login/ (a wrong one does not); only hashes are stored: the
    password is in neither the database file nor any audit row."""
    result = _sign_in(env, passwords)
    for username in passwords:
        seen = result[username]
        assert seen["wrong"] == 200, seen  # the form again, with its message
        assert seen["right"] == 302 and seen["location"] == "/home/", seen
        assert seen["home"] == 200 and seen["home_names_user"], seen
    assert result["logins"].count("success") >= len(passwords)
    database = (data_dir / "clearinghouse.sqlite3").read_bytes()
    for password in passwords.values():
        assert password.encode() not in database
        assert not any(password in details for details in result["details"])
    return result
