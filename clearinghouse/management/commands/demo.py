"""The end-to-end demo on the embedded default (SQLite, no broker): ``make demo``."""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
from django.conf import settings
from django.core.management.base import CommandError
from django.db import transaction
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

from accounts.models import User
from accounts.services import token_issue_for, user_create
from clearinghouse.services.audit import audit_record
from clearinghouse.management.base import AuditedCommand
from clearinghouse.models import Dataset
from clearinghouse.services.datasets import dataset_create

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "fixtures" / "gbsg2.schema.json"
DEMO_USERS = {
    "demo-custodian": ["custodian"],
    "demo-researcher": ["researcher"],
    "demo-auditor": ["auditor"],
}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # keep the demo's output readable
        pass


class Command(AuditedCommand):
    help = "Import the GBSG2 cohort, create one user per role, and exercise the API over HTTP."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000",
                            help="where `make serve` will listen (for the printed URLs)")
        parser.add_argument("--model", default="ctgan", help="the generator to train (ctgan, flow or copula)")
        parser.add_argument("--epochs", type=int, default=300)
        parser.add_argument("--download-dir", type=Path, default=None,
                            help="where the researcher's download is saved (default: DATA_DIR/demo)")

    def handle(self, *args, **options):
        out = self.stdout
        tokens, passwords = self._users()
        dataset = self._dataset(User.objects.get(username="demo-custodian"))
        out.write(f"\nDataset '{dataset.slug}': {dataset.n_rows} real patients × {dataset.n_columns} columns, "
                  f"stored encrypted ({dataset.stored_bytes} bytes).")

        server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler)
        server.set_app(get_internal_wsgi_application())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api = f"http://127.0.0.1:{server.server_address[1]}/api/v1"
        try:
            out.write(f"\nThrough the HTTP API ({api}):")
            listing = _call("GET", f"{api}/datasets/", tokens["demo-researcher"])
            out.write(f"  researcher lists datasets: {[d['slug'] for d in listing['results']]} (metadata only, no rows)")
            refused = _call("POST", f"{api}/datasets/", tokens["demo-researcher"], expect_error=True)
            out.write(f"  researcher tries to upload: {refused['status']} {refused['error']['code']}")
            release_id = self._synthetic(api, tokens, options)
            self._verify(api, tokens["demo-researcher"], release_id)
            chain = _call("GET", f"{api}/audit/verify/", tokens["demo-auditor"])
            out.write(f"  auditor checks the audit chain: valid={chain['valid']} over {chain['events_checked']} events")
        finally:
            server.shutdown()
            server.server_close()

        base = options["base_url"].rstrip("/")
        out.write("\nTokens (Authorization: Bearer <token>):")
        for username, raw in tokens.items():
            out.write(f"  {username:16s} {raw}")
        out.write("\nStart the server with `make serve`, then:")
        out.write(f"  API docs (Swagger UI): {base}/api/docs/")
        out.write(f"  OpenAPI schema:        {base}/api/v1/schema/")
        out.write(f"  Datasets:              curl -H 'Authorization: Bearer {tokens['demo-researcher']}' {base}/api/v1/datasets/")
        out.write(f"  Releases:              curl -H 'Authorization: Bearer {tokens['demo-researcher']}' {base}/api/v1/releases/")
        out.write(f"  Audit log:             curl -H 'Authorization: Bearer {tokens['demo-auditor']}' {base}/api/v1/audit/events/")
        out.write(f"  Admin (custodians):    {base}/admin/  (sign in as demo-custodian)")
        out.write(f"\nPortal: {base}/  (start it with `make serve`, open the URL, sign in as one of these)")
        out.write("Logins (new passwords on every `make demo`, shown only here, stored hashed):")
        for username, roles in DEMO_USERS.items():
            out.write(f"  {'/'.join(roles):10s} {username:16s} {passwords[username]}")
        out.write("\nDemo finished.")

    def _synthetic(self, api: str, tokens: dict[str, str], options) -> int:
        """Custodian trains a generator and publishes a release; the researcher downloads it."""
        out, custodian, researcher = self.stdout, tokens["demo-custodian"], tokens["demo-researcher"]
        out.write(f"  custodian trains {options['model']} on gbsg2 for {options['epochs']} epochs on CPU "
                  "(no broker: the job runs in-process when the request commits) ...")
        run = _call("POST", f"{api}/datasets/gbsg2/runs/", custodian,
                    body={"model": options["model"], "epochs": options["epochs"], "seed": 0, "device": "cpu"})
        run = _call("GET", f"{api}/runs/{run['id']}/", custodian)
        if run["status"] != "succeeded":
            raise CommandError(f"run {run['id']} {run['status']}: {run['error']}")
        progress = run["progress"]
        out.write(f"  run {run['id']}: {run['status']} after {progress['epoch']}/{progress['epochs']} epochs in "
                  f"{progress['elapsed_seconds']} s on {run['device']} ({run['n_train']} training rows, "
                  f"{run['n_holdout']} held out)")
        rows = 686
        release = _call("POST", f"{api}/runs/{run['id']}/releases/", custodian, body={"rows": rows, "seed": 0})
        out.write(f"  custodian samples release {release['id']}: {release['rows']} synthetic rows "
                  f"(CSV {release['files']['csv']['bytes']} bytes, Parquet {release['files']['parquet']['bytes']} bytes)")
        hidden = _call("GET", f"{api}/releases/{release['id']}/", researcher, expect_error=True)
        out.write(f"  researcher asks for it before publication: {hidden['status']} {hidden['error']['code']}")
        folder = options["download_dir"] or Path(settings.DATA_DIR) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        self._report(api, release["id"], custodian, researcher, folder)
        listing = _call("GET", f"{api}/releases/", researcher)
        out.write(f"  researcher lists published releases: {[r['id'] for r in listing['results']]}")
        target = folder / f"gbsg2-release-{release['id']}.csv"
        data = _call("GET", f"{api}/releases/{release['id']}/data.csv", researcher, raw=True)
        target.write_bytes(data)
        frame = pd.read_csv(io.BytesIO(data))
        digest = hashlib.sha256(data).hexdigest()
        out.write(f"  researcher downloads data.csv: {len(frame)} rows × {len(frame.columns)} columns, sha256 "
                  f"{'matches' if digest == release['files']['csv']['sha256'] else 'DIFFERS FROM'} the datasheet "
                  f"-> {target}")
        out.write(f"    horTh=yes in {100 * (frame['horTh'] == 'yes').mean():.1f} % of synthetic patients, "
                  f"{100 * frame['cens'].mean():.1f} % with an event, median follow-up {frame['time'].median():.0f} days")
        return release["id"]

    def _verify(self, api: str, researcher: str, release_id: int) -> None:
        """The researcher previews (free) and then checks, on the real patients with ε-DP answers, a true
        finding of the release (hormonal therapy), an artefact of it (age looks protective in the
        synthetic patients, not in the real ones) and a plain summary."""
        out = self.stdout
        hypotheses = [
            ("hormonal therapy lowers the hazard of recurrence (Cox HR of horTh=yes < 1)",
             {"kind": "hazard_ratio", "params": {"exposure": {"column": "horTh", "value": "yes"}},
              "claim": {"direction": "less", "value": 1}, "epsilon": 1.0}),
            ("older patients have a lower hazard (Cox HR per year of age < 1), read off the synthetic release",
             {"kind": "hazard_ratio", "params": {"exposure": {"column": "age"}},
              "claim": {"direction": "less", "value": 1}, "epsilon": 0.5}),
            ("the median age is above 50",
             {"kind": "quantile", "params": {"column": "age", "q": 0.5},
              "claim": {"direction": "greater", "value": 50}, "epsilon": 0.5}),
        ]
        out.write("  researcher previews (free, synthetic release only) and verifies three findings on the real "
                  "patients (ε-DP answers):")
        for text, spec in hypotheses:
            body = {"release": release_id, "where": [], **spec}
            out.write(f"    {text}:")
            preview = _call("POST", f"{api}/verifications/preview/", researcher, body=body, expect_error=True)
            if "error" in preview:
                out.write(f"      preview: {preview['status']} {preview['error']['code']} ({preview['error']['message']})")
            else:
                low, high = preview["expected_ci"]["low"], preview["expected_ci"]["high"]
                suggested = preview["suggested_epsilon"]
                out.write(f"      preview at ε = {preview['epsilon']}: expected CI {_number(low)} to {_number(high)}, "
                          f"P(decisive) {preview['p_decisive']:.2f}; smallest ε reaching 0.8: "
                          f"{suggested if suggested is not None else 'none within the limits'}")
            result = _call("POST", f"{api}/verifications/", researcher, body=body, expect_error=True)
            if "error" in result:
                out.write(f"      {result['status']} {result['error']['code']} ({result['error']['message']})")
                continue
            answer = result["answer"]
            if answer["withheld"]:
                out.write(f"      withheld ({answer['reason']}); ε {result['epsilon_charged']} charged")
                continue
            cost = "reused: no charge" if result["reused"] else f"ε = {result['epsilon_charged']}"
            out.write(f"      real ({cost}): {_number(answer['estimate'])}, 95 % CI "
                      f"{_number(answer['ci_low'])} to {_number(answer['ci_high'])} (noisy n {answer['noisy_n']}) → "
                      f"{answer['verdict']}")
            if not answer.get("informative", True):
                out.write(f"      not informative: {answer['reason']}")
            synthetic = answer["synthetic_estimate"]
            out.write(f"      synthetic release: {_number(synthetic)}; "
                      f"budget left {result['budget']['left']} of {result['budget']['allocation']}")

    def _report(self, api: str, release_id: int, custodian: str, researcher: str, folder: Path) -> None:
        """Read the validation report (computed when the release was made), save both HTML pages,
        then publish: plainly when every gate passes, with a written override otherwise."""
        out = self.stdout
        for _ in range(600):  # with a broker the report is computed by a worker: wait for it
            report = _call("GET", f"{api}/releases/{release_id}/report/", custodian, expect_error=True)
            if report.get("status") != 409 or report["error"]["code"] != "report_not_ready":
                break
            time.sleep(1.0)
        if "error" in report:
            raise CommandError(f"report of release {release_id}: {report['error']['message']}")
        out.write(f"  validation report of release {release_id} (headline; range and direction in the report):")
        for key, value in report["headline"].items():
            out.write(f"    {key:32s} {'n/a' if value is None else f'{value:.3f}'}")
        pages = {"custodian": folder / f"gbsg2-release-{release_id}-report.html",
                 "public": folder / f"gbsg2-release-{release_id}-report-public.html"}
        pages["custodian"].write_bytes(_call("GET", f"{api}/releases/{release_id}/report/?format=html", custodian,
                                             raw=True, accept="text/html"))
        failed = [g for g in report["gates"] if not g["passed"]]
        for gate in report["gates"]:
            out.write(f"    gate {gate['gate']:13s} {'pass' if gate['passed'] else 'FAIL'}  {gate['reason']}")
        if not failed:
            _call("POST", f"{api}/releases/{release_id}/publish/", custodian)
            out.write("  every gate passes: the custodian publishes the release")
        else:
            refused = _call("POST", f"{api}/releases/{release_id}/publish/", custodian, expect_error=True)
            out.write(f"  publishing is refused: {refused['status']} {refused['error']['code']} "
                      f"({len(refused['error']['details']['failed'])} failed gate(s))")
            justification = ("Demo only: a short training run on a public cohort (GBSG2 ships with lifelines); "
                              "the failed gates are accepted so the walkthrough can go on.")
            _call("POST", f"{api}/releases/{release_id}/publish/", custodian,
                  body={"override": {"justification": justification}})
            out.write("  the custodian publishes with a written override (audited, shown on the release)")
        pages["public"].write_bytes(_call("GET", f"{api}/releases/{release_id}/report/?format=html", researcher,
                                          raw=True, accept="text/html"))
        out.write(f"  HTML report (custodian): {pages['custodian']}")
        out.write(f"  HTML report (public):    {pages['public']}")

    def _users(self) -> tuple[dict[str, str], dict[str, str]]:
        """One user per role with a fresh API token and a fresh password (``secrets.token_urlsafe``).
        Each password is returned to be printed once; only its hash is stored, and it is neither
        audited nor logged (the audit row says a password was set, not which)."""
        tokens, passwords = {}, {}
        for username, roles in DEMO_USERS.items():
            password = secrets.token_urlsafe(18)
            user = User.objects.filter(username=username).first()
            if user is None:
                user, _generated = user_create(username=username, roles=roles, password=password, verified=True)
            else:
                with transaction.atomic():
                    user.set_password(password)
                    user.save(update_fields=["password"])
                    audit_record(action="accounts.password_set", object_type="user", object_id=user.pk,
                                 details={"username": username, "by": "demo"})
            _token, raw = token_issue_for(user=user, name="demo")
            tokens[username], passwords[username] = raw, password
        return tokens, passwords

    def _dataset(self, custodian: User) -> Dataset:
        existing = Dataset.objects.filter(slug="gbsg2").first()
        if existing is not None:
            return existing
        from lifelines.datasets import load_gbsg2

        frame = load_gbsg2()
        frame.insert(0, "pid", [f"GBSG2-{i:04d}" for i in range(1, len(frame) + 1)])
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        return dataset_create(
            slug="gbsg2",
            name="German Breast Cancer Study Group 2",
            description="686 node-positive breast-cancer patients (Schumacher et al., 1994), as shipped by lifelines.",
            schema=json.loads(SCHEMA_PATH.read_text(encoding="utf-8")),
            data=buffer.getvalue().encode("utf-8"),
            by=custodian,
        )


def _number(value: float | None) -> str:
    """A figure for the demo's lines: four significant digits, or n/a."""
    return "n/a" if value is None else f"{value:.4g}"


def _call(method: str, url: str, token: str, *, body: dict | None = None, expect_error: bool = False,
          raw: bool = False, accept: str = "application/json"):
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode("utf-8"), "application/json"
    request = urllib.request.Request(url, method=method, headers=headers, data=data)
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            payload = response.read()
            return payload if raw else json.loads(payload)
    except urllib.error.HTTPError as exc:
        if not expect_error:
            raise
        return {"status": exc.code, **json.loads(exc.read())}
