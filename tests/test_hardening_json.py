"""Issue 14, findings 1 and 7 and registration enumeration.

1. Deeply nested JSON is refused (400 ``malformed_request`` naming the depth) at every entry point where
   client text becomes JSON, before any object is built: nothing stored, one ``refused`` audit row.
7. ``OPTIONS`` on every API URL, as every role: never a 500.
Registration answers the same way whether or not the username exists.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from clearinghouse.api.parsers import MAX_JSON_DEPTH, JsonTooDeep, check_depth, loads
from clearinghouse.models import AuditEvent, Dataset
from generators.models import GeneratorRun
from releases.models import Release
from tests.conftest import ROLES, client_for, make_user, upload_payload
from tests.generators.runs_fixtures import make_run
from verification.models import Verification

pytestmark = pytest.mark.django_db

DEEP = "[" * 100_000 + "]" * 100_000
STRONG = "quiet-lantern-orbit-47"


def _rows() -> tuple:
    return (User.objects.count(), Dataset.objects.count(), GeneratorRun.objects.count(), Release.objects.count(),
            Verification.objects.count())


def _last_seq() -> int:
    event = AuditEvent.objects.order_by("-seq").first()
    return event.seq if event else 0


# --- 1. nested JSON ----------------------------------------------------------------------------

def test_the_depth_check_counts_brackets_outside_strings_only():
    check_depth('{"a": "' + "[" * 1000 + '"}')  # brackets in a string are text
    check_depth('{"a": "\\"[[[[", "b": [1]}')   # an escaped quote does not end the string
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    with pytest.raises(JsonTooDeep, match=f"deeper than {MAX_JSON_DEPTH} levels"):
        loads("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1))


JSON_ENTRY_POINTS = [  # (role, method, path); {run} is a queued run of the dataset
    ("anonymous", "post", "/api/v1/auth/token/"),
    ("anonymous", "post", "/api/v1/accounts/register/"),
    ("researcher", "post", "/api/v1/verifications/"),
    ("researcher", "post", "/api/v1/verifications/preview/"),
    ("custodian", "put", "/api/v1/datasets/gbsg2-small/budget-policy/"),
    ("custodian", "put", "/api/v1/datasets/gbsg2-small/gates/"),
    ("custodian", "put", "/api/v1/datasets/gbsg2-small/allocations/{researcher}/"),
    ("custodian", "post", "/api/v1/datasets/gbsg2-small/runs/"),
    ("custodian", "post", "/api/v1/datasets/gbsg2-small/sweeps/"),
    ("custodian", "post", "/api/v1/runs/{run}/releases/"),
    ("custodian", "post", "/api/v1/releases/1/publish/"),
]


@pytest.mark.parametrize("role, method, path", JSON_ENTRY_POINTS)
def test_deeply_nested_json_is_a_400_at_every_json_entry_point(clients, dataset, custodian, researcher,
                                                              role, method, path):
    path = path.format(run=make_run(dataset, custodian[0]).pk, researcher=researcher[0].pk)
    before, seq = _rows(), _last_seq()
    response = getattr(clients[role], method)(path, DEEP, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "malformed_request"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in error["message"]
    assert _rows() == before
    events = list(AuditEvent.objects.filter(seq__gt=seq))
    assert [(e.outcome, e.details["code"], e.details["status"]) for e in events] == [
        ("refused", "malformed_request", 400)]


@pytest.mark.parametrize("as_file", [False, True])
def test_a_deeply_nested_upload_schema_is_a_400(clients, custodian, as_file):
    from django.core.files.uploadedfile import SimpleUploadedFile

    payload = upload_payload(slug="deep", schema=DEEP)
    if as_file:
        payload["schema"] = SimpleUploadedFile("schema.json", DEEP.encode(), content_type="application/json")
    seq = _last_seq()
    response = clients["custodian"].post("/api/v1/datasets/", payload, format="multipart")
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "malformed_request"
    assert f"deeper than {MAX_JSON_DEPTH} levels" in response.json()["error"]["message"]
    assert not Dataset.objects.exists()
    events = list(AuditEvent.objects.filter(seq__gt=seq))
    assert [(e.action, e.outcome, e.details["code"]) for e in events] == [
        ("dataset.upload", "refused", "malformed_request")]


def test_ordinary_nested_documents_are_still_accepted(clients):
    upload = clients["custodian"].post("/api/v1/datasets/", upload_payload(), format="multipart")  # schema: depth 3
    assert upload.status_code == 201, upload.json()
    gates = clients["custodian"].put("/api/v1/datasets/gbsg2-small/gates/", {"mia_auc_max": 0.55}, format="json")
    assert gates.status_code == 200, gates.json()
    assert Dataset.objects.get().gates["mia_auc_max"] == 0.55


@pytest.mark.parametrize("schema", [DEEP, "- " * 100_000 + "x"], ids=["json", "yaml-block"])
def test_a_deeply_nested_schema_in_the_portals_upload_form_is_refused_on_its_field(custodian, schema):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.conftest import DATA
    from tests.portal.conftest import session_client

    seq = _last_seq()
    response = session_client(custodian[0]).post("/custody/upload/", {
        "step": "upload", "slug": "deep", "name": "Deep", "schema": schema,
        "file": SimpleUploadedFile("cohort.csv", (DATA / "gbsg2_small.csv").read_bytes(), content_type="text/csv")})
    assert response.status_code == 400
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in " ".join(response.context["form"].errors["schema"])
    assert not Dataset.objects.exists()
    assert [(e.action, e.outcome) for e in AuditEvent.objects.filter(seq__gt=seq)] == [("dataset.upload", "refused")]


# --- 7. OPTIONS ---------------------------------------------------------------------------------

def _api_urls() -> list[str]:
    """Every /api/v1/ route, its parameters filled in (OPTIONS looks up no object)."""
    import re

    from clearinghouse.urls import api_v1

    fill = {"slug": "gbsg2-small"}
    urls = []
    for pattern in api_v1:
        route = str(pattern.pattern)
        urls.append("/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: fill.get(m.group(1), "1"), route))
    return urls


@pytest.mark.parametrize("role", ROLES)
def test_options_on_every_api_url_as_every_role_is_never_a_server_error(clients, dataset, role):
    answers = {}
    for url in _api_urls():
        seq = _last_seq()
        response = clients[role].options(url)
        answers[url] = response.status_code
        assert response.status_code < 500, (url, response.content[:300])
        if url == "/api/v1/schema/":  # drf-spectacular's public view, not an ApiView: nothing to audit
            continue
        events = list(AuditEvent.objects.filter(seq__gt=seq))
        if response.status_code >= 400:  # refused as any other method is: audited by the handler
            assert [(e.outcome, e.details["method"]) for e in events] == [
                ("denied" if response.status_code in (401, 403) else "refused", "OPTIONS")], url
        else:
            assert response.json()["name"], url
            assert [(e.action, e.details) for e in events] == [("api.options", {"path": url})], url
    assert answers["/api/v1/audit/verify/"] == (200 if role == "auditor" else 401 if role == "anonymous" else 403)
