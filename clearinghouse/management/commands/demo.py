"""The end-to-end demo on the embedded default (SQLite, no broker): ``make demo``."""

from __future__ import annotations

import io
import json
import logging
import secrets
import tempfile
import threading
from pathlib import Path

from clearinghouse_client import Client, ClearinghouseError
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
#: The shell variable the demo's export line names each user's token by (the README's curl lines use them).
ROLE_VARIABLES = {"demo-custodian": "CUSTODIAN", "demo-researcher": "RESEARCHER", "demo-auditor": "AUDITOR"}
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
        tokens, passwords, token_ids = self._users()
        dataset = self._dataset(User.objects.get(username="demo-custodian"))
        out.write(f"\nDataset '{dataset.slug}': {dataset.n_rows} real patients × {dataset.n_columns} columns, "
                  f"stored encrypted ({dataset.stored_bytes} bytes).")

        server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler)
        server.set_app(get_internal_wsgi_application())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would bury the demo's
        # Without a broker a training run trains inside its request: the timeout covers the longest run.
        clients = {username: Client(url, token=raw, timeout=1800.0) for username, raw in tokens.items()}
        try:
            out.write(f"\nThrough the HTTP API ({url}/api/v1), with the Python client (clearinghouse_client):")
            researcher = clients["demo-researcher"]
            out.write(f"  researcher lists datasets: {[d.slug for d in researcher.datasets()]} (metadata only, no rows)")
            with tempfile.TemporaryDirectory(prefix="demo-") as scratch:  # refused before the file is read
                cohort = Path(scratch) / "cohort.csv"
                cohort.write_text("pid,horTh\n", encoding="utf-8")
                refused = _refusal(lambda: researcher.upload("gbsg2-copy", "a copy", cohort,
                                                             json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))))
            out.write(f"  researcher tries to upload: {refused.status} {refused.code}")
            run_id, release_id = self._synthetic(clients, options)
            self._verify(researcher, release_id)
            chain = clients["demo-auditor"].check_chain()
            out.write(f"  auditor checks the audit chain: valid={chain['valid']} over {chain['events_checked']} events")
        finally:
            for client in clients.values():
                client.close()
            server.shutdown()
            server.server_close()

        base = options["base_url"].rstrip("/")
        out.write("\nTokens: paste these export lines into your shell (the curl lines below and the README's use "
                  "$CUSTODIAN, $RESEARCHER and $AUDITOR; the Python client reads CLEARINGHOUSE_URL and "
                  "CLEARINGHOUSE_TOKEN):")
        out.write(f"  export CLEARINGHOUSE_URL={base}")
        for username, roles in DEMO_USERS.items():
            out.write(f"  export {ROLE_VARIABLES[username]}={tokens[username]}  # {'/'.join(roles)}: {username}")
        out.write("  export CLEARINGHOUSE_TOKEN=$RESEARCHER  # the client as the researcher (or $CUSTODIAN, $AUDITOR)")
        out.write("\nStart the server with `make serve`, then:")
        url = "$CLEARINGHOUSE_URL/api/v1"
        out.write(f"  API docs (Swagger UI): {base}/api/docs/")
        out.write(f"  OpenAPI schema:        {base}/api/v1/schema/")
        out.write(f"  Datasets:              curl -H \"Authorization: Bearer $RESEARCHER\" {url}/datasets/")
        out.write(f"  Release {release_id}:             curl -H \"Authorization: Bearer $RESEARCHER\" {url}/releases/{release_id}/")
        out.write(f"  Run {run_id}:                 curl -H \"Authorization: Bearer $CUSTODIAN\" {url}/runs/{run_id}/")
        out.write(f"  Audit log:             curl -H \"Authorization: Bearer $AUDITOR\" {url}/audit/events/")
        researcher_token = token_ids["demo-researcher"]
        out.write(f"  Revoke the researcher's demo token (id {researcher_token}): "
                  f"curl -X POST -H \"Authorization: Bearer $RESEARCHER\" {url}/auth/tokens/{researcher_token}/revoke/")
        out.write(f"  Python (researcher):   python -c \"from clearinghouse_client import Client; "
                  f"print(Client().download({release_id}).describe())\"")
        out.write(f"  Admin (custodians):    {base}/admin/  (sign in as demo-custodian)")
        out.write(f"\nPortal: {base}/  (start it with `make serve`, open the URL, sign in as one of these)")
        out.write("Logins (new passwords on every `make demo`, shown only here, stored hashed):")
        for username, roles in DEMO_USERS.items():
            out.write(f"  {'/'.join(roles):10s} {username:16s} {passwords[username]}")
        out.write("\nDemo finished.")

    def _synthetic(self, clients: dict[str, Client], options) -> tuple[int, int]:
        """Custodian trains a generator and publishes a release; the researcher downloads it."""
        out, custodian, researcher = self.stdout, clients["demo-custodian"], clients["demo-researcher"]
        out.write(f"  custodian trains {options['model']} on gbsg2 for {options['epochs']} epochs on CPU "
                  "(no broker: the job runs in-process when the request commits) ...")
        try:
            run = custodian.train("gbsg2", options["model"], epochs=options["epochs"], seed=0, device="cpu",
                                  progress=options.get("verbosity", 1) > 0)
        except ClearinghouseError as error:
            raise CommandError(f"training refused or failed: {error}") from error
        progress = run.progress
        out.write(f"  run {run.id}: {run.status} after {progress['epoch']}/{progress['epochs']} epochs in "
                  f"{progress['elapsed_seconds']} s on {run.device} ({run.n_train} training rows, "
                  f"{run.n_holdout} held out)")
        rows = 686
        release = custodian.make_release(run, rows, seed=0)
        out.write(f"  custodian samples release {release.id}: {release.rows} synthetic rows "
                  f"(CSV {release.files['csv']['bytes']} bytes, Parquet {release.files['parquet']['bytes']} bytes)")
        hidden = _refusal(lambda: researcher.release(release.id))
        out.write(f"  researcher asks for it before publication: {hidden.status} {hidden.code}")
        folder = options["download_dir"] or Path(settings.DATA_DIR) / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        self._report(custodian, researcher, release.id, folder)
        out.write(f"  researcher lists published releases: {[r.id for r in researcher.releases()]}")
        # Streamed to a temporary file beside the target, checked against the datasheet's SHA-256, then
        # moved into place (a mismatch raises and keeps nothing).
        frame = researcher.download(release.id, format="csv", path=folder)
        out.write(f"  researcher downloads data.csv: {len(frame)} rows × {len(frame.columns)} columns, sha256 "
                  f"matches the datasheet -> {frame.attrs['path']}")
        out.write(f"    horTh=yes in {100 * (frame['horTh'] == 'yes').mean():.1f} % of synthetic patients, "
                  f"{100 * frame['cens'].mean():.1f} % with an event, median follow-up {frame['time'].median():.0f} days")
        return run.id, release.id

    def _verify(self, researcher: Client, release_id: int) -> None:
        """The researcher previews (free) and then checks, on the real patients with ε-DP answers, a true
        finding of the release (hormonal therapy), an artefact of it (age looks protective in the
        synthetic patients, not in the real ones) and a plain summary."""
        out = self.stdout
        hypotheses = [
            ("hormonal therapy lowers the hazard of recurrence (Cox HR of horTh=yes < 1)",
             {"kind": "hazard_ratio", "params": {"exposure": {"column": "horTh", "value": "yes"}},
              "claim": {"direction": "less", "value": 1}, "epsilon": "1"}),
            ("older patients have a lower hazard (Cox HR per year of age < 1), read off the synthetic release",
             {"kind": "hazard_ratio", "params": {"exposure": {"column": "age"}},
              "claim": {"direction": "less", "value": 1}, "epsilon": "0.5"}),
            ("the median age is above 50",
             {"kind": "quantile", "params": {"column": "age", "q": 0.5},
              "claim": {"direction": "greater", "value": 50}, "epsilon": "0.5"}),
        ]
        out.write("  researcher previews (free, synthetic release only) and verifies three findings on the real "
                  "patients (ε-DP answers):")
        for text, spec in hypotheses:
            spec = dict(spec)
            kind, params = spec.pop("kind"), spec.pop("params")
            out.write(f"    {text}:")
            try:
                preview = researcher.preview(release_id, kind, params, where=(), **spec)
            except ClearinghouseError as error:
                out.write(f"      preview: {error.status} {error.code} ({error.message})")
            else:
                low, high = preview.expected_ci["low"], preview.expected_ci["high"]
                suggested = preview.suggested_epsilon
                out.write(f"      preview at ε = {preview.epsilon}: expected CI {_number(low)} to {_number(high)}, "
                          f"P(decisive) {preview.p_decisive:.2f}; smallest ε reaching 0.8: "
                          f"{suggested if suggested is not None else 'none within the limits'}")
            try:
                result = researcher.verify(release_id, kind, params, where=(), **spec)
            except ClearinghouseError as error:
                out.write(f"      {error.status} {error.code} ({error.message})")
                continue
            if result.withheld:
                out.write(f"      withheld ({result.reason}); ε {result.epsilon_charged} charged")
                continue
            cost = "reused: no charge" if result.reused else f"ε = {result.epsilon_charged}"
            out.write(f"      real ({cost}): {_number(result.estimate)}, 95 % CI "
                      f"{_number(result.ci_low)} to {_number(result.ci_high)} (noisy n {result.noisy_n}) → "
                      f"{result.verdict}")
            if not result.informative:
                out.write(f"      not informative: {result.reason}")
            out.write(f"      synthetic release: {_number(result.synthetic_estimate)}; "
                      f"budget left {result.budget.left} of {result.budget.allocation}")

    def _report(self, custodian: Client, researcher: Client, release_id: int, folder: Path) -> None:
        """Read the validation report (computed when the release was made), save both HTML pages,
        then publish: plainly when every gate passes, with a written override otherwise."""
        out = self.stdout
        try:  # with a broker the report is computed by a worker: wait for it
            report = custodian.report(release_id, wait=600.0)
        except ClearinghouseError as error:
            raise CommandError(f"report of release {release_id}: {error.message}") from error
        out.write(f"  validation report of release {release_id} (headline; range and direction in the report):")
        for key, value in report["headline"].items():
            out.write(f"    {key:32s} {'n/a' if value is None else f'{value:.3f}'}")
        pages = {"custodian": folder / f"gbsg2-release-{release_id}-report.html",
                 "public": folder / f"gbsg2-release-{release_id}-report-public.html"}
        pages["custodian"].write_text(custodian.report_html(release_id), encoding="utf-8")
        failed = [g for g in report["gates"] if not g["passed"]]
        for gate in report["gates"]:
            out.write(f"    gate {gate['gate']:13s} {'pass' if gate['passed'] else 'FAIL'}  {gate['reason']}")
        if not failed:
            custodian.publish(release_id)
            out.write("  every gate passes: the custodian publishes the release")
        else:
            refused = _refusal(lambda: custodian.publish(release_id))
            out.write(f"  publishing is refused: {refused.status} {refused.code} "
                      f"({len(refused.details['failed'])} failed gate(s))")
            justification = ("Demo only: a short training run on a public cohort (GBSG2 ships with lifelines); "
                              "the failed gates are accepted so the walkthrough can go on.")
            custodian.publish(release_id, override=justification)
            out.write("  the custodian publishes with a written override (audited, shown on the release)")
        pages["public"].write_text(researcher.report_html(release_id), encoding="utf-8")
        out.write(f"  HTML report (custodian): {pages['custodian']}")
        out.write(f"  HTML report (public):    {pages['public']}")

    def _users(self) -> tuple[dict[str, str], dict[str, str], dict[str, int]]:
        """One user per role with a fresh API token and a fresh password (``secrets.token_urlsafe``).
        Each password is returned to be printed once; only its hash is stored, and it is neither
        audited nor logged (the audit row says a password was set, not which)."""
        tokens, passwords, token_ids = {}, {}, {}
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
            token, raw = token_issue_for(user=user, name="demo")
            tokens[username], passwords[username], token_ids[username] = raw, password, token.pk
        return tokens, passwords, token_ids

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


def _refusal(call) -> ClearinghouseError:
    """The client's error for a call the demo expects the API to refuse."""
    try:
        call()
    except ClearinghouseError as error:
        return error
    raise CommandError("the API accepted a call the demo expected it to refuse")

