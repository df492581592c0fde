"""The privacy canary: a real dataset's unique values never come back out, to anyone.

A custodian imports, through the API, a cohort whose ``pid`` identifier column holds a
unique string marker and whose kept continuous ``bmi`` column holds a unique numeric
marker (every other value is round). Then every endpoint is called as every role, the
successes and the refusals (duplicate slug, failing rows that carry the markers, unknown
fields, wrong content types, bad filters, 404s, 405s, an oversized upload), a generator
trained on the cohort and its synthetic releases (made, published, listed, downloaded), ε-DP
verifications of the published release on the real rows (a mean of ``bmi``, charged, then
reused) and their free previews on the synthetic release, budgets, policies and allocations, the audit log and its export, the OpenAPI document, and every admin page a custodian can open; and every researcher page of the
portal (datasets, the release, its report and downloads, the verify form's preview and refusals, the answer,
the history and the budget), signed in as each role.
Every response is collected, and one loop checks that no marker appears in any body or header
(in synthetic rows, only the identifier marker is looked for: see ``find_in_synthetic_rows``).

The markers must also be absent from the audit table and from the encrypted file in
custody, while ``custody_read`` still returns the numeric one (so this test can fail).
"""

from __future__ import annotations

import io
import json
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.forms.models import model_to_dict
from django.test import Client, override_settings
from django.urls import get_resolver, resolve

from accounts import login_throttle
from accounts.models import Allocation, ApiToken, BudgetPolicy, LedgerEntry, User
from accounts.services import token_issue_for
from clearinghouse.custody import custody_read
from clearinghouse.models import AuditEvent, Dataset
from releases.models import Release
from generators.models import GeneratorRun
from portal.views import researcher as researcher_pages
from tests.conftest import ROLES, make_user
from verification.models import Verification

MARKER = f"CANARY-7f3a9c-{uuid.uuid4().hex}"
NUMBER = 23.456789
NUMBER_TEXTS = ("23.456789", "23.45678")
NEEDLES = (MARKER, *NUMBER_TEXTS)
PASSWORD = "correct horse battery staple"
SLUG = "canary-cohort"

SCHEMA = {
    "columns": [
        {"name": "pid", "type": "identifier"},
        {"name": "bmi", "type": "continuous", "min": 10, "max": 60},
        {"name": "age", "type": "integer", "min": 18, "max": 100},
        {"name": "arm", "type": "categorical", "categories": ["a", "b"]},
        {"name": "time", "type": "duration", "min": 0, "max": 3000},
        {"name": "cens", "type": "event"},
    ],
    "survival": {"duration": "time", "event": "cens"},
}
HEADER = "pid,bmi,age,arm,time,cens"
ROUND_ROWS = [f"p{i:02d},{20 + i}.0,{40 + i},{'ab'[i % 2]},{100 * i},{i % 2}" for i in range(1, 12)]
MARKER_ROW = f"{MARKER},{NUMBER_TEXTS[0]},50,a,700,1"


def cohort_csv(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


CANARY_CSV = cohort_csv(ROUND_ROWS[0], ROUND_ROWS[1], MARKER_ROW, *ROUND_ROWS[2:])


@pytest.fixture(autouse=True)
def _fresh_rate_limits(monkeypatch):
    """Every role makes many calls here; rate limits and login lockouts live in the cache, which outlives a test."""
    from rest_framework.throttling import AnonRateThrottle

    # Every anonymous call counts against the address before its 401: more than the default rate here.
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {**AnonRateThrottle.THROTTLE_RATES, "anon": "100000/min"})
    usernames = ("cora", "rhea", "uma", "otto", "ghost", "pat", "quinn")

    def clear():
        keys = ["throttle_anon_127.0.0.1", login_throttle._key("addr", "127.0.0.1")]
        cache.delete_many(keys + [login_throttle._key("user", name) for name in usernames])

    clear()
    yield
    clear()


# --------------------------------------------------------------------------------------------
# Collecting every response
# --------------------------------------------------------------------------------------------

@dataclass
class Seen:
    label: str
    method: str
    path: str
    status: int
    body: bytes
    headers: bytes


@dataclass
class Recorder:
    seen: list[Seen] = field(default_factory=list)

    def call(self, label: str, client, method: str, path: str, data=None, *, expect: int, fmt: str | None = None,
             content_type: str | None = None, **query):
        if method == "GET":
            response = client.get(path, query or None)
        elif content_type is not None:
            response = client.generic(method, path, data or b"", content_type=content_type)
        elif data is None:
            response = client.generic(method, path)
        elif fmt is None:  # django.test.Client (admin forms)
            response = getattr(client, method.lower())(path, data)
        else:
            response = getattr(client, method.lower())(path, data, format=fmt)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        headers = "\n".join(f"{k}: {v}" for k, v in response.items()) + "\n" + response.cookies.output()
        self.seen.append(Seen(label, method, path, response.status_code, body, headers.encode()))
        assert response.status_code == expect, (label, method, path, body[:400])
        return response


def by_role(anonymous: int, unverified: int, researcher: int, auditor: int, custodian: int) -> dict[str, int]:
    return dict(zip(ROLES, (anonymous, unverified, researcher, auditor, custodian)))


def find_needles(blob: bytes) -> list[str]:
    return [needle for needle in NEEDLES if needle.encode() in blob]


SYNTHETIC_ROWS = ("data.csv", "data.parquet")


def is_synthetic_rows(path: str) -> bool:
    """A release's data file (a download URL or the file on disk)."""
    return path.rsplit("/", 1)[-1] in SYNTHETIC_ROWS


def find_in_synthetic_rows(blob: bytes, name: str) -> list[str]:
    """Only the identifier marker, in the bytes and in the decoded table (Parquet compresses its strings).

    A generator may produce a numeric value equal to a real one by chance (the copula interpolates
    between real values), so the numeric marker is not looked for in synthetic rows; exact-match
    disclosure is measured by each release's validation report (issue 4). The identifier column is
    dropped at import, so no generator can ever produce its marker.
    """
    text = blob
    if name.endswith("data.parquet") and blob.startswith(b"PAR1"):
        text += pd.read_parquet(io.BytesIO(blob)).to_csv(index=False).encode()
    return [MARKER] if MARKER.encode() in text else []


def upload(slug: str, csv_bytes: bytes = CANARY_CSV, schema=None, **extra) -> dict:
    payload = {"slug": slug, "name": "Canary cohort", "description": "synthetic canary",
               "schema": schema if isinstance(schema, str) else json.dumps(SCHEMA if schema is None else schema),
               "file": SimpleUploadedFile("cohort.csv", csv_bytes, content_type="text/csv")}
    payload.update(extra)
    return payload


# --------------------------------------------------------------------------------------------
# The workload
# --------------------------------------------------------------------------------------------

def import_canary(rec: Recorder, custodian_client) -> Dataset:
    response = rec.call("import the canary cohort", custodian_client, "POST", "/api/v1/datasets/",
                        upload(SLUG), fmt="multipart", expect=201)
    body = response.json()
    assert (body["n_rows"], body["dropped_columns"]) == (12, ["pid"])
    assert [c["name"] for c in body["schema"]["columns"]] == ["pid", "bmi", "age", "arm", "time", "cens"]
    return Dataset.objects.get(slug=SLUG)


def refused_uploads() -> list[tuple[str, dict, int, dict]]:
    """(label, multipart payload, status for a custodian, settings) — the CSV rows carry the markers."""
    tight = json.loads(json.dumps(SCHEMA))
    tight["columns"][1]["min"] = 30  # the numeric marker is now below the minimum
    broken_schema = {"columns": [{"name": "pid", "type": "identifier"}, {"name": "bmi", "type": "continuous"}]}
    return [
        ("duplicate slug", upload(SLUG), 409, {}),
        ("failing row: age out of bounds beside both markers",
         upload("fail-age", cohort_csv(ROUND_ROWS[0], f"{MARKER},{NUMBER_TEXTS[0]},170,a,700,1")), 400, {}),
        ("failing row: the numeric marker below the minimum", upload("fail-bmi", CANARY_CSV, tight), 400, {}),
        ("failing row: the string marker in a numeric column",
         upload("fail-nan", cohort_csv(f"{MARKER},{MARKER},50,a,700,1")), 400, {}),
        ("failing row: the string marker as a category",
         upload("fail-cat", cohort_csv(f"{MARKER},{NUMBER_TEXTS[0]},50,{MARKER},700,1")), 400, {}),
        ("failing row: an event that is neither 0 nor 1", upload("fail-event", cohort_csv(f"{MARKER},25.0,50,a,700,2")),
         400, {}),
        ("failing row: a missing value beside the markers",
         upload("fail-missing", cohort_csv(f"{MARKER},{NUMBER_TEXTS[0]},,a,700,1")), 400, {}),
        ("malformed CSV: an extra field in the marker row",
         upload("fail-fields", cohort_csv(ROUND_ROWS[0], MARKER_ROW + ",extra")), 400, {}),
        ("malformed CSV: an unclosed quote before the marker",
         upload("fail-quote", cohort_csv(ROUND_ROWS[0], f'"{MARKER},{NUMBER_TEXTS[0]},50,a,700,1')), 400, {}),
        ("short row with the markers", upload("fail-short", cohort_csv(f"{MARKER},{NUMBER_TEXTS[0]}")), 400, {}),
        ("not UTF-8, with the markers", upload("fail-utf8", b"\xff\xfe" + CANARY_CSV), 400, {}),
        ("header does not match the schema", upload("fail-header", cohort_csv(MARKER_ROW, header=HEADER + ",extra")),
         400, {}),
        ("invalid schema", upload("fail-schema", CANARY_CSV, broken_schema), 400, {}),
        ("schema not JSON", upload("fail-json", CANARY_CSV, "{not json"), 400, {}),
        ("unknown field", upload("fail-unknown", CANARY_CSV, None, colour="blue"), 400, {}),
        ("invalid slug", upload("Not A Slug!", CANARY_CSV), 400, {}),
        ("missing file", {k: v for k, v in upload("fail-nofile").items() if k != "file"}, 400, {}),
        ("over the upload limit", upload("fail-big", CANARY_CSV * 20), 413, {"MAX_UPLOAD_BYTES": 2048}),
    ]


def exercise_api(rec: Recorder, role: str, client, world: dict) -> None:
    """Every API endpoint, successes and refusals, as one role."""
    user = world["users"].get(role)
    verified = by_role(401, 403, 200, 200, 200)
    auditor_only = by_role(401, 403, 403, 200, 403)
    custodian_only = by_role(401, 403, 403, 403, 200)
    authenticated = by_role(401, 200, 200, 200, 200)

    def pick(statuses: dict[str, int], when_allowed: int) -> int:
        """``when_allowed`` for the roles the endpoint admits; their 401/403 for the others."""
        return when_allowed if statuses[role] < 400 else statuses[role]

    call = rec.call
    # tokens
    who = user.username if user else "rhea"
    call("issue a token", client, "POST", "/api/v1/auth/token/", {"username": who, "password": PASSWORD},
         fmt="json", expect=201)
    call("issue a token, wrong password", client, "POST", "/api/v1/auth/token/",
         {"username": user.username if user else "ghost", "password": "wrong password!"}, fmt="json", expect=401)
    call("issue a token, unknown field", client, "POST", "/api/v1/auth/token/",
         {"username": who, "password": PASSWORD, "scope": "all"}, fmt="json", expect=400)
    call("issue a token, not JSON", client, "POST", "/api/v1/auth/token/", b"{oops", content_type="application/json",
         expect=400)
    call("list tokens", client, "GET", "/api/v1/auth/tokens/", expect=authenticated[role])
    call("revoke another's token", client, "POST", f"/api/v1/auth/tokens/{world['other_token']}/revoke/",
         expect=pick(authenticated, 404))
    call("revoke an unknown token", client, "POST", "/api/v1/auth/tokens/987654/revoke/", expect=pick(authenticated, 404))
    if user is not None:
        spare = token_issue_for(user=user, name="spare")[0]
        call("revoke own token", client, "POST", f"/api/v1/auth/tokens/{spare.pk}/revoke/", expect=200)
        call("revoke own token again", client, "POST", f"/api/v1/auth/tokens/{spare.pk}/revoke/", expect=409)
    # accounts
    call("register", client, "POST", "/api/v1/accounts/register/",
         {"username": f"canary-{role}", "password": PASSWORD, "email": f"{role}@example.org"}, fmt="json", expect=202)
    call("register a taken username", client, "POST", "/api/v1/accounts/register/",  # answered alike: 202
         {"username": f"canary-{role}", "password": PASSWORD, "email": f"{role}@example.org"}, fmt="json", expect=202)
    call("register with a weak password", client, "POST", "/api/v1/accounts/register/",
         {"username": f"weak-{role}", "password": "12345", "email": f"{role}@example.org"}, fmt="json", expect=400)
    call("register with an unknown field", client, "POST", "/api/v1/accounts/register/",
         {"username": f"odd-{role}", "password": PASSWORD, "email": "o@example.org", "is_custodian": True},
         fmt="json", expect=400)
    call("read own account", client, "GET", "/api/v1/accounts/me/", expect=authenticated[role])
    call("list accounts", client, "GET", "/api/v1/accounts/", expect=custodian_only[role])
    call("list pending accounts", client, "GET", "/api/v1/accounts/", expect=custodian_only[role],
         role="researcher", verified="false")
    call("list accounts, bad filter", client, "GET", "/api/v1/accounts/", expect=pick(custodian_only, 400),
         role="wizard")
    call("verify an unknown user", client, "POST", "/api/v1/accounts/987654/verify/", expect=pick(custodian_only, 404))
    call("verify a researcher", client, "POST", f"/api/v1/accounts/{world['pending']}/verify/",
         expect=custodian_only[role])
    call("verify a custodian", client, "POST", f"/api/v1/accounts/{world['custodian_id']}/verify/",
         expect=pick(custodian_only, 409))
    # datasets
    call("list datasets", client, "GET", "/api/v1/datasets/", expect=verified[role])
    call("list datasets, page 2", client, "GET", "/api/v1/datasets/", expect=pick(verified, 404), page="2")
    call("list datasets, bad page", client, "GET", "/api/v1/datasets/", expect=pick(verified, 404), page="zero")
    call("read the canary dataset", client, "GET", f"/api/v1/datasets/{SLUG}/", expect=verified[role])
    call("read an unknown dataset", client, "GET", "/api/v1/datasets/no-such-cohort/", expect=pick(verified, 404))
    call("delete the canary dataset", client, "DELETE", f"/api/v1/datasets/{SLUG}/", expect=pick(verified, 405))
    call("replace the canary dataset", client, "PUT", f"/api/v1/datasets/{SLUG}/", upload(SLUG), fmt="multipart",
         expect=pick(verified, 405))
    for label, payload, status, overrides in refused_uploads():
        with override_settings(**overrides):
            call(f"upload, {label}", client, "POST", "/api/v1/datasets/", payload, fmt="multipart",
                 expect=pick(custodian_only, status))
    call("upload as JSON", client, "POST", "/api/v1/datasets/",
         {"slug": "as-json", "name": "x", "schema": SCHEMA, "file": CANARY_CSV.decode()}, fmt="json",
         expect=pick(custodian_only, 415))
    call("upload as a bare CSV body", client, "POST", "/api/v1/datasets/", CANARY_CSV, content_type="text/csv",
         expect=pick(custodian_only, 415))
    call("upload with a broken multipart body", client, "POST", "/api/v1/datasets/", CANARY_CSV,
         content_type="multipart/form-data", expect=pick(custodian_only, 400))
    # audit
    walk_audit_pages(rec, role, client, auditor_only[role])
    call("audit events, dataset actions", client, "GET", "/api/v1/audit/events/", expect=auditor_only[role],
         action="dataset.*", page_size="200")
    call("audit events, the canary's object", client, "GET", "/api/v1/audit/events/", expect=auditor_only[role],
         object_type="dataset", object_id=SLUG)
    call("audit events, refusals", client, "GET", "/api/v1/audit/events/", expect=auditor_only[role],
         outcome="refused", page_size="200")
    call("audit events, bad outcome", client, "GET", "/api/v1/audit/events/", expect=pick(auditor_only, 400),
         outcome="bogus")
    call("audit events, bad range", client, "GET", "/api/v1/audit/events/", expect=pick(auditor_only, 400),
         since="2030-01-01T00:00:00Z", until="2020-01-01T00:00:00Z")
    call("audit events, bad date", client, "GET", "/api/v1/audit/events/", expect=pick(auditor_only, 400),
         since="yesterday")
    call("audit events, unknown filter", client, "GET", "/api/v1/audit/events/", expect=pick(auditor_only, 400),
         colour="blue")
    call("audit events, page out of range", client, "GET", "/api/v1/audit/events/", expect=pick(auditor_only, 404),
         page="9999")
    call("audit export", client, "GET", "/api/v1/audit/events/export.csv", expect=auditor_only[role])
    call("audit export, dataset actions", client, "GET", "/api/v1/audit/events/export.csv",
         expect=auditor_only[role], action="dataset.*")
    call("audit export, bad outcome", client, "GET", "/api/v1/audit/events/export.csv",
         expect=pick(auditor_only, 400), outcome="bogus")
    call("audit export, POST", client, "POST", "/api/v1/audit/events/export.csv", expect=pick(auditor_only, 405))
    call("audit export, JSON Lines", client, "GET", "/api/v1/audit/events/export.jsonl", expect=auditor_only[role])
    call("audit export, JSON Lines, bad outcome", client, "GET", "/api/v1/audit/events/export.jsonl",
         expect=pick(auditor_only, 400), outcome="bogus")
    call("audit chain check", client, "GET", "/api/v1/audit/verify/", expect=auditor_only[role])
    # public pages
    call("OpenAPI document", client, "GET", "/api/v1/schema/", expect=200)
    call("OpenAPI document as JSON", client, "GET", "/api/v1/schema/", expect=200, format="json")
    call("Swagger UI", client, "GET", "/api/docs/", expect=200)
    call("health", client, "GET", "/healthz", expect=200)
    exercise_generators(rec, role, client, world)
    exercise_verification(rec, role, client, world)
    call("unknown API path", client, "GET", "/api/v1/no-such-endpoint/", expect=404)


def exercise_generators(rec: Recorder, role: str, client, world: dict) -> None:
    """Training runs and synthetic releases of the canary cohort, successes and refusals, as one role."""
    custodian_only = by_role(401, 403, 403, 403, 200)
    readers = by_role(401, 403, 200, 403, 200)  # releases: custodians (all) and verified researchers (published)
    draft_readers = by_role(401, 403, 404, 403, 200)
    run, published, draft = world["run"], world["release"], world["draft"]

    def pick(statuses: dict[str, int], when_allowed: int) -> int:
        return when_allowed if statuses[role] < 400 else statuses[role]

    call = rec.call
    runs = f"/api/v1/datasets/{SLUG}/runs/"
    call("list the canary's runs", client, "GET", runs, expect=custodian_only[role])
    call("list runs of an unknown dataset", client, "GET", "/api/v1/datasets/no-such-cohort/runs/",
         expect=pick(custodian_only, 404))
    for label, body in (("unknown model", {"model": "gpt", "epochs": 1}),
                        ("no epochs", {"model": "copula", "epochs": 0}),
                        ("unknown hyperparameter", {"model": "copula", "epochs": 1, "hyperparameters": {"depth": 3}}),
                        ("unknown field", {"model": "copula", "epochs": 1, "colour": "blue"})):
        call(f"start a run, {label}", client, "POST", runs, body, fmt="json", expect=pick(custodian_only, 400))
    # Queued only: the test's transaction never commits, so the eager task never starts it.
    started = call("start a run", client, "POST", runs, {"model": "copula", "epochs": 1, "device": "cpu"}, fmt="json",
                   expect=pick(custodian_only, 202))
    queued = started.json()["id"] if started.status_code == 202 else run
    call("cancel a queued run", client, "POST", f"/api/v1/runs/{queued}/cancel/", expect=pick(custodian_only, 202))
    call("cancel a finished run", client, "POST", f"/api/v1/runs/{run}/cancel/", expect=pick(custodian_only, 409))
    call("read the trained run", client, "GET", f"/api/v1/runs/{run}/", expect=custodian_only[role])
    call("read an unknown run", client, "GET", "/api/v1/runs/987654/", expect=pick(custodian_only, 404))
    # releases
    releases = f"/api/v1/runs/{run}/releases/"
    made = call("make a release", client, "POST", releases, {"rows": 10, "seed": ROLES.index(role)}, fmt="json",
                expect=pick(custodian_only, 201))
    call("make a conditional release", client, "POST", releases, {"rows": 10, "conditions": {"arm": "b"}}, fmt="json",
         expect=pick(custodian_only, 201))
    for label, body in (("no rows", {"rows": 0}),
                        ("unknown category", {"rows": 10, "conditions": {"arm": "c"}}),
                        ("a numeric column", {"rows": 10, "conditions": {"bmi": 25}}),
                        ("the identifier column", {"rows": 10, "conditions": {"pid": "p01"}}),
                        ("proportions not adding up to 1", {"rows": 10, "conditions": {"arm": {"a": 0.9, "b": 0.9}}}),
                        ("unknown field", {"rows": 10, "colour": "blue"})):
        call(f"make a release, {label}", client, "POST", releases, body, fmt="json", expect=pick(custodian_only, 400))
    call("make a release from an unknown run", client, "POST", "/api/v1/runs/987654/releases/", {"rows": 10},
         fmt="json", expect=pick(custodian_only, 404))
    call("make a release from a cancelled run", client, "POST", f"/api/v1/runs/{queued}/releases/", {"rows": 10},
         fmt="json", expect=pick(custodian_only, 409))
    call("list releases", client, "GET", "/api/v1/releases/", expect=readers[role])
    call("list releases, page 2", client, "GET", "/api/v1/releases/", expect=pick(readers, 404), page="2")
    call("read the published release", client, "GET", f"/api/v1/releases/{published}/", expect=readers[role])
    call("read the draft release", client, "GET", f"/api/v1/releases/{draft}/", expect=draft_readers[role])
    call("read an unknown release", client, "GET", "/api/v1/releases/987654/", expect=pick(readers, 404))
    mine = made.json()["id"] if made.status_code == 201 else draft
    # its report is still pending (the commit never comes): publication waits for it
    call("publish a release", client, "POST", f"/api/v1/releases/{mine}/publish/", expect=pick(custodian_only, 409))
    call("publish the published release", client, "POST", f"/api/v1/releases/{published}/publish/",
         expect=pick(custodian_only, 409))
    call("publish an unknown release", client, "POST", "/api/v1/releases/987654/publish/",
         expect=pick(custodian_only, 404))
    for kind in ("csv", "parquet"):
        call(f"download the published release ({kind})", client, "GET", f"/api/v1/releases/{published}/data.{kind}",
             expect=readers[role])
        call(f"download the draft release ({kind})", client, "GET", f"/api/v1/releases/{draft}/data.{kind}",
             expect=draft_readers[role])
        call(f"download an unknown release ({kind})", client, "GET", f"/api/v1/releases/987654/data.{kind}",
             expect=pick(readers, 404))
    call("download with POST", client, "POST", f"/api/v1/releases/{published}/data.csv", expect=pick(readers, 405))
    # validation reports: custodians see all of one, researchers the public part of a published release's
    report = f"/api/v1/releases/{published}/report/"
    call("read the published release's report", client, "GET", report, expect=readers[role])
    call("read the published release's report as HTML", client, "GET", report, expect=readers[role], format="html")
    call("read the published release's report as JSON", client, "GET", report, expect=readers[role], format="json")
    if readers[role] < 400:  # (for the others the format is refused before the caller: see test_reports.py)
        call("read the published release's report as XML", client, "GET", report, expect=400, format="xml")
    call("read the draft's pending report", client, "GET", f"/api/v1/releases/{draft}/report/",
         expect=pick(draft_readers, 409))
    call("read an unknown release's report", client, "GET", "/api/v1/releases/987654/report/",
         expect=pick(readers, 404))
    # the release this role just made (the custodian's) has its report still pending: the commit never comes
    call("read a pending report", client, "GET", f"/api/v1/releases/{mine}/report/",
         expect=by_role(401, 403, 404, 403, 409)[role])
    call("ask for a pending report again", client, "POST", f"/api/v1/releases/{mine}/report/",
         expect=pick(custodian_only, 409))
    call("ask for an unknown release's report", client, "POST", "/api/v1/releases/987654/report/",
         expect=pick(custodian_only, 404))
    call("publish a release with a short override", client, "POST", f"/api/v1/releases/{mine}/publish/",
         {"override": {"justification": "because"}}, fmt="json", expect=pick(custodian_only, 400))
    # publication gates
    gates = f"/api/v1/datasets/{SLUG}/gates/"
    call("read the canary's gates", client, "GET", gates, expect=custodian_only[role])
    call("set the canary's gates", client, "PUT", gates, {"mia_auc_max": 0.58}, fmt="json", expect=custodian_only[role])
    for label, body in (("unknown gate", {"colour": 1}), ("not a number", {"ims_max": "none"}),
                        ("out of range", {"mia_auc_max": 0.2}), ("empty", {})):
        call(f"set the canary's gates, {label}", client, "PUT", gates, body, fmt="json",
             expect=pick(custodian_only, 400))
    call("read an unknown dataset's gates", client, "GET", "/api/v1/datasets/no-such-cohort/gates/",
         expect=pick(custodian_only, 404))
    # model-selection sweeps
    sweeps = f"/api/v1/datasets/{SLUG}/sweeps/"
    call("list the canary's sweeps", client, "GET", sweeps, expect=custodian_only[role])
    call("start a sweep", client, "POST", sweeps, {"models": ["copula"], "seeds": [0], "samples": 1, "epochs": 1},
         fmt="json", expect=pick(custodian_only, 202))  # queued only: the commit never comes
    for label, body in (("unknown model", {"models": ["gpt"], "epochs": 1}),
                        ("no samples", {"models": ["copula"], "samples": 0, "epochs": 1}),
                        ("unknown field", {"models": ["copula"], "epochs": 1, "colour": "blue"})):
        call(f"start a sweep, {label}", client, "POST", sweeps, body, fmt="json", expect=pick(custodian_only, 400))
    call("read the canary's sweep", client, "GET", f"/api/v1/sweeps/{world['sweep']}/", expect=custodian_only[role])
    call("read an unknown sweep", client, "GET", "/api/v1/sweeps/987654/", expect=pick(custodian_only, 404))
    # a published release keeps the report it was published on: asking for it again is refused
    call("ask for the published release's report again", client, "POST", report, expect=pick(custodian_only, 409))


def exercise_verification(rec: Recorder, role: str, client, world: dict) -> None:
    """Verifications of the published canary release (its ε-DP answers computed on the real rows, the marker
    row included), budgets, policies and allocations, successes and refusals, as one role. The roles run in
    ROLES order: the researcher verifies before the custodian changes the policy and the allocation."""
    researchers = by_role(401, 403, 201, 403, 403)
    custodian_only = by_role(401, 403, 403, 403, 200)

    def pick(statuses: dict[str, int], when_allowed: int) -> int:
        return when_allowed if statuses[role] < 400 else statuses[role]

    call = rec.call
    verifications = "/api/v1/verifications/"
    # the mean of bmi, the column that holds the numeric marker (never named in the hypothesis itself)
    mean_bmi = {"release": world["release"], "kind": "mean", "params": {"column": "bmi"},
                "where": [{"column": "arm", "op": "in", "value": ["a", "b"]}],
                "claim": {"direction": "greater", "value": 25}, "epsilon": 0.5}
    asked = call("verify the mean bmi on the canary release", client, "POST", verifications, mean_bmi, fmt="json",
                 expect=researchers[role])
    if asked.status_code == 201:
        body = asked.json()
        assert (body["status"], body["reused"], body["epsilon_charged"], body["dataset"]) == (
            "answered", False, "0.5", SLUG)
        assert body["budget"] == {"dataset": SLUG, "allocation": "2", "spent": "0.5", "left": "1.5"}
        world["verification"] = body["id"]
        again = call("verify the mean bmi again (reused)", client, "POST", verifications, mean_bmi, fmt="json",
                     expect=200).json()
        assert (again["status"], again["reused"], again["reused_from"], again["epsilon_charged"]) == (
            "reused", True, body["id"], "0")
        assert again["answer"] == body["answer"] and again["budget"]["spent"] == "0.5"
        call("verify the proportion in arm a", client, "POST", verifications,
             {"release": world["release"], "kind": "proportion", "params": {"column": "arm", "value": "a"},
              "where": [], "claim": {"direction": "greater", "value": 0.5}, "epsilon": 0.25}, fmt="json", expect=201)
    for label, body in (
            ("an unknown release", {**mean_bmi, "release": 987654}),
            ("the draft release", {**mean_bmi, "release": world["draft"]}),
            ("ε above the maximum", {**mean_bmi, "epsilon": 5}),
            ("an unknown kind", {**mean_bmi, "kind": "mode"}),
            ("the dropped identifier column", {**mean_bmi, "params": {"column": "pid"}}),
            ("an unknown field", {**mean_bmi, "colour": "blue"}),
            ("not an object", [mean_bmi])):
        call(f"verify, {label}", client, "POST", verifications, body, fmt="json", expect=pick(researchers, 400))
    call("verify, not JSON", client, "POST", verifications, b"{oops", content_type="application/json",
         expect=pick(researchers, 400))
    readers = by_role(401, 403, 200, 403, 403)
    # the free preview: simulated on the synthetic release only; the same refusals as a verification
    previews = f"{verifications}preview/"
    previewed = call("preview the mean bmi on the canary release", client, "POST", previews, mean_bmi, fmt="json",
                     expect=readers[role])
    if previewed.status_code == 200:
        body = previewed.json()
        assert (body["dataset"], body["kind"], body["epsilon"], body["draws"]) == (SLUG, "mean", "0.5", 40)
    for label, body in (("ε above the maximum", {**mean_bmi, "epsilon": 5}), ("an unknown kind", {**mean_bmi,
                                                                                                   "kind": "mode"}),
                        ("not an object", [mean_bmi])):
        call(f"preview, {label}", client, "POST", previews, body, fmt="json", expect=pick(readers, 400))
    call("list own verifications", client, "GET", verifications, expect=readers[role])
    mine = world.get("verification", 987654)  # not made yet when the roles before the researcher call
    call("read own verification", client, "GET", f"{verifications}{mine}/", expect=readers[role])
    call("read an unknown verification", client, "GET", f"{verifications}987654/", expect=pick(readers, 404))
    call("delete own verification", client, "DELETE", f"{verifications}{mine}/", expect=pick(readers, 405))
    call("read own ε budget", client, "GET", "/api/v1/budget/", expect=readers[role])
    # the custodian's side: the policy and the researcher's allocation
    policy = f"/api/v1/datasets/{SLUG}/budget-policy/"
    call("read the canary's budget policy", client, "GET", policy, expect=custodian_only[role])
    call("set the canary's budget policy", client, "PUT", policy, {"daily_limit": 20, "min_subgroup": 10},
         fmt="json", expect=custodian_only[role])
    for label, body, status in (("unknown field", {"colour": "blue"}, 400), ("empty", {}, 400),
                                ("not a number", {"total_cap": "lots"}, 400),
                                ("a cap below the ε spent", {"total_cap": "0.1"}, 409)):
        call(f"set the canary's budget policy, {label}", client, "PUT", policy, body, fmt="json",
             expect=pick(custodian_only, status))
    call("read an unknown dataset's budget policy", client, "GET", "/api/v1/datasets/no-such-cohort/budget-policy/",
         expect=pick(custodian_only, 404))
    allocation = f"/api/v1/datasets/{SLUG}/allocations/{world['users']['researcher'].pk}/"
    call("set the researcher's ε allocation", client, "PUT", allocation, {"epsilon": "3"}, fmt="json",
         expect=custodian_only[role])
    for label, path, body, status in (
            ("below the ε spent", allocation, {"epsilon": "0.1"}, 409),
            ("not a number", allocation, {"epsilon": "lots"}, 400),
            ("an unknown field", allocation, {"epsilon": "3", "colour": "blue"}, 400),
            ("for an auditor", f"/api/v1/datasets/{SLUG}/allocations/{world['users']['auditor'].pk}/",
             {"epsilon": "1"}, 409),
            ("for an unknown user", f"/api/v1/datasets/{SLUG}/allocations/987654/", {"epsilon": "1"}, 404),
            ("on an unknown dataset", "/api/v1/datasets/no-such-cohort/allocations/987654/", {"epsilon": "1"}, 404)):
        call(f"set an ε allocation, {label}", client, "PUT", path, body, fmt="json",
             expect=pick(custodian_only, status))


def walk_audit_pages(rec: Recorder, role: str, client, status: int) -> None:
    """The whole audit log, page by page, as this role sees it."""
    response = rec.call("audit events, page 1", client, "GET", "/api/v1/audit/events/", expect=status, page_size="50")
    page = 1
    while status == 200 and response.json()["next"]:
        page += 1
        response = rec.call(f"audit events, page {page}", client, "GET", "/api/v1/audit/events/", expect=200,
                            page_size="50", page=str(page))


def admin_change_pages(model) -> list[int]:
    """Every object's change page; for the (long) audit log, every upload event and one event of each kind.

    The audit table as a whole is checked field by field in
    ``test_it_keeps_the_canary_markers_out_of_the_audit_log``; rendering hundreds of list reads too only costs time.
    """
    if model is not AuditEvent:
        return list(model.objects.values_list("pk", flat=True))
    kinds: dict[tuple[str, str], int] = {}
    about_datasets = []
    for pk, action, outcome in AuditEvent.objects.values_list("pk", "action", "outcome"):
        kinds.setdefault((action, outcome), pk)
        if action == "dataset.upload" and outcome in ("success", "refused"):  # the custodian's uploads
            about_datasets.append(pk)
    return sorted(set(about_datasets) | set(kinds.values()))


def exercise_admin(rec: Recorder, users: dict[str, User]) -> None:
    """Every admin page a custodian can open; the login page and the refusals for the others."""
    for role in ROLES:
        client = Client()
        if role != "anonymous":
            client.force_login(users[role])
        status = 200 if role == "custodian" else 302
        rec.call("admin index", client, "GET", "/admin/", expect=status)
        rec.call("admin dataset list", client, "GET", "/admin/clearinghouse/dataset/", expect=status)
    rec.call("admin login page", Client(), "GET", "/admin/login/", expect=200)
    rec.call("admin login, wrong password", Client(), "POST", "/admin/login/",
             {"username": "cora", "password": "wrong password!"}, expect=200)
    rec.call("admin login, a researcher", Client(), "POST", "/admin/login/",
             {"username": "rhea", "password": PASSWORD}, expect=200)

    admin = Client()
    admin.force_login(users["custodian"])
    pending, _ = make_user("quinn", ["researcher"], verified=False)
    rec.call("admin action: verify", admin, "POST", "/admin/accounts/user/",
             {"action": "verify", "_selected_action": [pending.pk]}, expect=302)
    spare = token_issue_for(user=users["researcher"], name="admin-revokes")[0]
    rec.call("admin action: revoke", admin, "POST", "/admin/accounts/apitoken/",
             {"action": "revoke", "_selected_action": [spare.pk]}, expect=302)
    rec.call("admin index after the actions", admin, "GET", "/admin/", expect=200)
    rec.call("admin app: clearinghouse", admin, "GET", "/admin/clearinghouse/", expect=200)
    rec.call("admin app: accounts", admin, "GET", "/admin/accounts/", expect=200)
    models = [(Dataset, "clearinghouse", "dataset"), (AuditEvent, "clearinghouse", "auditevent"),
              (User, "accounts", "user"), (ApiToken, "accounts", "apitoken")]
    for model, app, name in models:
        base = f"/admin/{app}/{name}/"
        rec.call(f"admin {name} list", admin, "GET", base, expect=200)
        rec.call(f"admin {name} list, all", admin, "GET", base, expect=200, all="")
        rec.call(f"admin {name} search", admin, "GET", base, expect=200, q="a")
        rec.call(f"admin {name} add", admin, "GET", f"{base}add/", expect=403)
        for pk in admin_change_pages(model):
            rec.call(f"admin {name} {pk}", admin, "GET", f"{base}{pk}/change/", expect=200)
        rec.call(f"admin {name} history", admin, "GET", f"{base}{model.objects.first().pk}/history/", expect=200)
        rec.call(f"admin {name} delete", admin, "GET", f"{base}{model.objects.first().pk}/delete/", expect=403)
    rec.call("admin audit list, denied only", admin, "GET", "/admin/clearinghouse/auditevent/", expect=200,
             outcome__exact="denied")
    rec.call("admin unknown page", admin, "GET", "/admin/clearinghouse/dataset/987654/change/", expect=302)
    rec.call("admin logout", admin, "POST", "/admin/logout/", {}, expect=200)


def exercise_portal(rec: Recorder, users: dict[str, User], world: dict) -> None:
    """The researcher's portal pages (a session signed in as each role), with the canary dataset, its published
    release and draft, and the researcher's verification of the mean bmi: the successes as the researcher (and the
    custodian), the refusals for the others, and the verify form's free preview and refused hypotheses."""
    readers = by_role(302, 403, 200, 403, 200)  # releases: custodians (all) and verified researchers (published)
    draft_readers = by_role(302, 403, 404, 403, 200)
    researchers = by_role(302, 403, 200, 403, 403)
    verified = by_role(302, 403, 200, 200, 200)
    release, draft, mine = world["release"], world["draft"], world["verification"]
    pages = [
        ("portal home", "/home/", by_role(302, 200, 200, 200, 200)),
        ("portal datasets", "/datasets/", verified),
        ("portal canary dataset", f"/datasets/{SLUG}/", verified),
        ("portal unknown dataset", "/datasets/no-such-cohort/", by_role(302, 403, 404, 404, 404)),
        ("portal published release", f"/releases/{release}/", readers),
        ("portal draft release", f"/releases/{draft}/", draft_readers),
        ("portal published release's report", f"/releases/{release}/report/", readers),
        ("portal draft's pending report", f"/releases/{draft}/report/", by_role(302, 403, 404, 403, 409)),
        ("portal download (csv)", f"/releases/{release}/data.csv", readers),
        ("portal download (parquet)", f"/releases/{release}/data.parquet", readers),
        ("portal download the draft (csv)", f"/releases/{draft}/data.csv", draft_readers),
        ("portal verify form", f"/releases/{release}/verify/", researchers),
        ("portal verify form of the draft", f"/releases/{draft}/verify/", by_role(302, 403, 404, 403, 403)),
        ("portal own verifications", "/verifications/", researchers),
        ("portal own verification", f"/verifications/{mine}/", researchers),
        ("portal unknown verification", "/verifications/987654/", by_role(302, 403, 404, 403, 403)),
        ("portal ε budget", "/budget/", researchers),
    ]
    # the mean of bmi, the column that holds the numeric marker, as the verify form posts it
    mean_bmi = {"kind": "mean", "column": "bmi", "where_column_0": "arm", "where_op_0": "in", "where_value_0": "a,b",
                "claim_direction": "greater", "claim_value": "25", "epsilon": "0.5"}
    for role in ROLES:
        client = Client()
        if role != "anonymous":
            client.force_login(users[role])
        for label, path, statuses in pages:
            rec.call(f"{label} as {role}", client, "GET", path, expect=statuses[role])
        verify = f"/releases/{release}/verify/"
        rec.call(f"portal preview the mean bmi as {role}", client, "POST", verify, {**mean_bmi, "action": "preview"},
                 expect=researchers[role])
        allowed = researchers[role] == 200
        for label, change in (("ε above the maximum", {"epsilon": "5"}), ("the dropped identifier", {"column": "pid"}),
                              ("an unknown category", {"where_value_0": "a,c"}), ("no claim", {"claim_value": ""})):
            rec.call(f"portal verify, {label}, as {role}", client, "POST", verify,
                     {**mean_bmi, **change, "action": "verify"}, expect=400 if allowed else researchers[role])


def train_and_release(rec: Recorder, custodian_client, capture_on_commit) -> dict[str, int]:
    """A custodian trains a generator on the canary cohort through the API (the eager task runs when the
    request's transaction commits) and makes a published release and a draft (a rebalanced one)."""
    with capture_on_commit(execute=True):
        started = rec.call("train a generator on the canary cohort", custodian_client, "POST",
                           f"/api/v1/datasets/{SLUG}/runs/", {"model": "copula", "epochs": 1, "seed": 1, "device": "cpu"},
                           fmt="json", expect=202)
    run = started.json()["id"]
    # Training seed 1 keeps the marker row (the third) in the 80 % the generator learns from.
    assert CANARY_CSV.decode().splitlines()[3] == MARKER_ROW and 2 not in GeneratorRun.objects.get(pk=run).holdout_rows
    trained = rec.call("read the canary's trained run", custodian_client, "GET", f"/api/v1/runs/{run}/", expect=200)
    assert trained.json()["status"] == "succeeded", trained.json()["error"]
    with capture_on_commit(execute=True):  # its validation report is computed when the release commits
        release = rec.call("make the canary release", custodian_client, "POST", f"/api/v1/runs/{run}/releases/",
                           {"rows": 60, "seed": 1}, fmt="json", expect=201).json()["id"]
    report = rec.call("read the canary release's report", custodian_client, "GET", f"/api/v1/releases/{release}/report/",
                      expect=200).json()
    # Twelve rows leave a holdout too small for the privacy comparisons: those gates are not measured, so they fail,
    # and the custodian publishes with a written override.
    assert [g["gate"] for g in report["gates"] if not g["passed"]] == ["leakage_max", "dcr_margin", "mia_auc_max",
                                                                       "fidelity_min"]
    rec.call("publish the canary release, gates failing", custodian_client, "POST",
             f"/api/v1/releases/{release}/publish/", expect=409)
    rec.call("publish the canary release", custodian_client, "POST", f"/api/v1/releases/{release}/publish/",
             {"override": {"justification": "A canary cohort of twelve rows: too small to measure privacy."}},
             fmt="json", expect=200)
    # the draft's report stays pending, and the sweep queued: each report costs seconds, and the workload runs once
    # per test (sweeps are run to their end in tests/generators/test_sweeps.py)
    draft = rec.call("make a rebalanced draft release", custodian_client, "POST", f"/api/v1/runs/{run}/releases/",
                     {"rows": 20, "seed": 2, "conditions": {"arm": {"a": 0.5, "b": 0.5}}}, fmt="json",
                     expect=201).json()["id"]
    sweep = rec.call("sweep the canary cohort", custodian_client, "POST", f"/api/v1/datasets/{SLUG}/sweeps/",
                     {"models": ["copula"], "seeds": [1], "samples": 1, "epochs": 1, "rows": 20}, fmt="json",
                     expect=202).json()["id"]
    return {"run": run, "release": release, "draft": draft, "sweep": sweep}


@dataclass
class Exercised:
    rec: Recorder
    dataset: Dataset
    logs: str


@pytest.fixture
def exercised(clients, custodian, researcher, unverified, auditor, caplog, django_capture_on_commit_callbacks) -> Exercised:
    caplog.set_level("DEBUG")
    rec = Recorder()
    dataset = import_canary(rec, clients["custodian"])
    generated = train_and_release(rec, clients["custodian"], django_capture_on_commit_callbacks)
    users = {"unverified": unverified[0], "researcher": researcher[0], "auditor": auditor[0], "custodian": custodian[0]}
    pending, _ = make_user("pat", ["researcher"], verified=False)
    not_yours = {name: token_issue_for(user=users[name], name="not yours")[0].pk for name in ("auditor", "custodian")}
    world = {"users": users, "pending": pending.pk, "custodian_id": custodian[0].pk, **generated}
    for role in ROLES:
        world["other_token"] = not_yours["custodian" if role == "auditor" else "auditor"]
        exercise_api(rec, role, clients[role], world)
    exercise_admin(rec, users)
    exercise_portal(rec, users, world)
    return Exercised(rec=rec, dataset=dataset, logs=caplog.text)


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_it_never_returns_a_canary_marker_in_any_response_to_any_role(exercised):
    seen = exercised.rec.seen
    leaks = [
        (s.label, s.method, s.path, s.status, where, needles)
        for s in seen
        for where, blob in (("body", s.body), ("headers", s.headers))
        if (needles := find_in_synthetic_rows(blob, s.path)
            if where == "body" and s.status == 200 and is_synthetic_rows(s.path) else find_needles(blob))
    ]
    assert leaks == []
    # the synthetic rows did come back (to the researcher and the custodian), so the check above saw them
    downloads = [s for s in seen if s.label.startswith("download the published release") and s.status == 200]
    assert len(downloads) == 4
    assert all(len(pd.read_csv(io.BytesIO(s.body))) == 60 for s in downloads if s.path.endswith(".csv"))
    assert all(len(pd.read_parquet(io.BytesIO(s.body))) == 60 for s in downloads if s.path.endswith(".parquet"))
    # the finished validation report did come back too, whole to the custodian and in part to the researcher
    reports = [s for s in seen if s.label.startswith("read the published release's report") and s.status == 200]
    assert len(reports) == 6  # JSON, HTML and JSON again, to each of the two
    assert sum(b"real_details" in s.body for s in reports) == 2 and sum(b"<img" in s.body for s in reports) == 2
    # the researcher's portal pages came back whole too: eleven pages and the verify form's preview
    portal = [s for s in seen if s.label.startswith("portal ") and s.label.endswith(" as researcher") and s.status == 200]
    assert len(portal) == 12
    assert sum(s.path.endswith(("/data.csv", "/data.parquet")) for s in portal) == 2
    assert all(b"real_details" not in s.body for s in portal)
    assert find_needles(exercised.logs.encode()) == []  # nor in anything logged meanwhile
    # the workload reached both sides of every door
    statuses = {s.status for s in seen}
    assert {200, 201, 302, 400, 401, 403, 404, 405, 409, 413, 415} <= statuses
    assert len(seen) > 400
    assert any(s.label == "admin dataset list" and s.status == 200 and SLUG.encode() in s.body for s in seen)
    assert any(s.label == "audit export" and s.status == 200 and b"dataset.upload" in s.body for s in seen)


@pytest.mark.django_db
def test_it_reports_failing_cells_by_row_column_and_reason_only(exercised):
    refusals = {s.label: json.loads(s.body)["error"] for s in exercised.rec.seen
                if s.label.startswith("upload, failing row") and s.status == 400}
    assert len(refusals) == 6
    assert refusals["upload, failing row: age out of bounds beside both markers"]["details"]["failures"] == [
        {"row": 2, "column": "age", "reason": "above the schema's maximum 100"}]
    below = [i for i, line in enumerate(CANARY_CSV.decode().splitlines()[1:], start=1) if float(line.split(",")[1]) < 30]
    assert len(below) == 10
    assert refusals["upload, failing row: the numeric marker below the minimum"]["details"]["failures"] == [
        {"row": row, "column": "bmi", "reason": "below the schema's minimum 30"} for row in below]
    assert refusals["upload, failing row: the string marker in a numeric column"]["details"]["failures"] == [
        {"row": 1, "column": "bmi", "reason": "not a number"}]


@pytest.mark.django_db
def test_it_calls_every_route_in_the_canary_workload(exercised):
    """A new endpoint must join the workload (and so the canary) to pass."""
    api = next(p for p in get_resolver().url_patterns if str(p.pattern) == "api/v1/")
    wanted = {p.name for p in api.url_patterns} | {"swagger-ui", "healthz"}
    called = {resolve(s.path).url_name for s in exercised.rec.seen if not s.path.startswith("/api/v1/no-such")}
    assert wanted <= called, wanted - called
    portal_pages = {f"portal:{p.name}" for p in researcher_pages.urlpatterns}
    called_pages = {resolve(s.path).view_name for s in exercised.rec.seen if not s.path.startswith(("/api/", "/admin/"))}
    assert portal_pages <= called_pages, portal_pages - called_pages
    admin_views = {resolve(s.path).url_name for s in exercised.rec.seen if s.path.startswith("/admin/")}
    for name in ("dataset", "auditevent", "user", "apitoken"):
        app = "accounts" if name in ("user", "apitoken") else "clearinghouse"
        assert {f"{app}_{name}_changelist", f"{app}_{name}_change", f"{app}_{name}_history"} <= admin_views


@pytest.mark.django_db
def test_it_keeps_the_canary_markers_out_of_the_audit_log(exercised):
    rows = [json.dumps(model_to_dict(event) | {"created_at": event.created_at.isoformat()}, sort_keys=True, default=str)
            for event in AuditEvent.objects.order_by("seq")]
    assert len(rows) > 300
    assert any('"dataset.upload"' in row and '"refused"' in row for row in rows)
    assert [(i, found) for i, row in enumerate(rows) if (found := find_needles(row.encode()))] == []
    datasets = [json.dumps(model_to_dict(d), default=str) for d in Dataset.objects.all()]
    assert [found for row in datasets if (found := find_needles(row.encode()))] == []
    # runs (progress, losses, errors) and releases (conditions, datasheets) hold no real value either
    # the trained run and the custodian's cancelled one; the published and draft releases and the custodian's two
    assert (GeneratorRun.objects.count(), Release.objects.count()) == (2, 4)
    generated = [json.dumps(model_to_dict(o), default=str) for o in [*GeneratorRun.objects.all(), *Release.objects.all()]]
    assert [found for row in generated if (found := find_needles(row.encode()))] == []
    # verifications (hypotheses and their ε-DP answers on the real rows) and the budget tables neither:
    # the researcher's two charged ones and the reused one
    verifications = list(Verification.objects.order_by("id"))
    assert [(v.kind, v.status) for v in verifications] == [("mean", "answered"), ("mean", "reused"),
                                                            ("proportion", "answered")]
    budgets = [*verifications, *Allocation.objects.all(), *BudgetPolicy.objects.all(), *LedgerEntry.objects.all()]
    assert [found for o in budgets if (found := find_needles(json.dumps(model_to_dict(o), default=str).encode()))] == []
    spent = Allocation.objects.get(user__username="rhea", dataset__slug=SLUG)
    assert (spent.epsilon_micro, spent.spent_micro) == (3_000_000, 750_000)  # the custodian's 3; 0.5 + 0.25


@pytest.mark.django_db
def test_it_stores_the_canary_only_encrypted_yet_readable_through_custody(exercised):
    dataset = exercised.dataset
    stored = Path(settings.CUSTODY_DIR) / dataset.storage_name
    raw = stored.read_bytes()
    assert len(raw) == dataset.stored_bytes
    assert find_needles(raw) == []
    assert struct.pack("<d", NUMBER) not in raw and struct.pack(">d", NUMBER) not in raw
    # no other file under DATA_DIR (custody, upload spool, releases and their datasheets) holds the markers
    # in the clear; synthetic rows are checked for the identifier marker only (see find_in_synthetic_rows)
    releases = Path(settings.RELEASES_DIR)
    checked_rows = 0
    for path in Path(settings.DATA_DIR).rglob("*"):
        if not path.is_file() or path.suffix == ".sqlite3":
            continue
        if path.is_relative_to(releases) and is_synthetic_rows(str(path)):
            assert find_in_synthetic_rows(path.read_bytes(), path.name) == [], path
            checked_rows += 1
        else:  # trained generators (MODELS_DIR) included: they are encrypted at rest like custody
            assert find_needles(path.read_bytes()) == [], path
    assert checked_rows >= 2 * 3  # CSV and Parquet of the canary's releases at least
    # only the canary import was kept: every refused upload stored nothing
    assert list(Dataset.objects.values_list("slug", flat=True)) == [SLUG]
    assert sorted(p.name for p in Path(settings.CUSTODY_DIR).glob("*.fernet")
                  if p.name in set(Dataset.objects.values_list("storage_name", flat=True))) == [dataset.storage_name]

    frame = custody_read(dataset.storage_name)
    assert list(frame.columns) == ["bmi", "age", "arm", "time", "cens"]  # the identifier was dropped at import
    assert frame["bmi"].tolist().count(NUMBER) == 1
    assert len(frame) == 12
    assert MARKER not in frame.astype(str).to_csv()


@pytest.mark.django_db
def test_it_keeps_real_values_out_of_a_trained_generator_on_disk(custodian, django_capture_on_commit_callbacks):
    from clearinghouse.services.datasets import dataset_create
    from generators.services import checkpoint_path, run_create

    dataset = dataset_create(slug=SLUG, name="Canary cohort", schema=SCHEMA, data=CANARY_CSV, by=custodian[0])
    with django_capture_on_commit_callbacks(execute=True):
        run = run_create(dataset=dataset, model="copula", epochs=1, seed=1, device="cpu", by=custodian[0])
    run.refresh_from_db()
    assert run.status == "succeeded" and 2 not in run.holdout_rows  # the marker row was trained on
    files = [p for p in checkpoint_path(run).rglob("*") if p.is_file()]
    assert files
    assert [(p.name, found) for p in files if (found := find_needles(p.read_bytes()))] == []


# --------------------------------------------------------------------------------------------
# Numeric cells that once crashed the import with a 500 (a non-whole, huge or infinite number in an
# integer or event column): refused by row, column and reason, and never echoed, whatever happens
# --------------------------------------------------------------------------------------------

BAD_NUMERIC_CELLS = [
    pytest.param(f"{MARKER},25.0,{NUMBER_TEXTS[0]},a,700,1", "age", "not a whole number", id="fraction-in-integer"),
    pytest.param(f"{MARKER},25.0,1e20,a,700,1", "age", "above the schema's maximum 100", id="huge-integer"),
    pytest.param(f"{MARKER},25.0,inf,a,700,1", "age", "not a finite number", id="infinite-integer"),
    pytest.param(f"{MARKER},{NUMBER_TEXTS[0]},50,a,700,0.5", "cens", "an event must be 0 (censored) or 1 (event)",
                 id="fraction-as-event"),
    pytest.param(f"{MARKER},{NUMBER_TEXTS[0]},50,a,700,inf", "cens", "not a finite number", id="infinite-event"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("row", "column", "reason"), BAD_NUMERIC_CELLS)
def test_it_never_echoes_the_markers_whatever_a_bad_numeric_cell_does_to_the_import(custodian, caplog, row, column,
                                                                                   reason):
    from rest_framework.test import APIClient

    caplog.set_level("DEBUG")
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {custodian[1]}")
    response = client.post("/api/v1/datasets/", upload("crash", cohort_csv(ROUND_ROWS[0], row)), format="multipart")
    assert response.status_code in (400, 500)
    headers = "\n".join(f"{k}: {v}" for k, v in response.items())
    assert find_needles(response.content) == find_needles(headers.encode()) == []
    assert find_needles(caplog.text.encode()) == []
    if response.status_code == 500:
        assert "Internal Server Error: /api/v1/datasets/" in caplog.text  # the log was captured, traceback and all
    assert "error" in response.json()
    assert not Dataset.objects.exists()
    events = [json.dumps(model_to_dict(e), default=str) for e in AuditEvent.objects.all()]
    assert [found for row in events if (found := find_needles(row.encode()))] == []


@pytest.mark.django_db
@pytest.mark.parametrize(("row", "column", "reason"), BAD_NUMERIC_CELLS)
def test_it_refuses_a_bad_numeric_cell_in_an_integer_or_event_column_by_row_column_and_reason(clients, row, column,
                                                                                              reason):
    response = clients["custodian"].post("/api/v1/datasets/", upload("crash", cohort_csv(ROUND_ROWS[0], row)),
                                         format="multipart")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "rows_failed_validation"
    assert error["details"]["failures"] == [{"row": 2, "column": column, "reason": reason}]
    assert find_needles(response.content) == []
    event = AuditEvent.objects.order_by("-seq").first()
    assert (event.action, event.outcome, event.details["code"]) == ("dataset.upload", "refused", "rows_failed_validation")
