"""The OpenAPI document is the contract: schemathesis drives every operation, as every role, against
the WSGI application in this process (no live server), and each answer must be what the schema says.

Seeded world: the full GBSG2 cohort as a dataset, one published copula release of it (report
marked passing) and one answered verification on it, a token per role; path parameters are
either generated or these objects' ids. Examples per operation and role are fixed and derandomized, so a
run is the same every time. Checks: no 5xx, every status declared, every body and content type as
declared. ``make fuzz-contract`` runs this with ``CONTRACT_EXAMPLES`` raised and prints the summary
(``make fuzz`` drives a live server over HTTP: bench/fuzz.py).
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
import yaml
from django.db import connection

from tests.conftest import make_user
from tests.verification.conftest import publish_gbsg2

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "10"))
#: `make fuzz-contract`: negative cases too (data the schema excludes), and the checks that need them.
FUZZ = bool(os.environ.get("CONTRACT_FUZZ"))
ROLES = ("anonymous", "unverified", "researcher", "auditor", "custodian")
#: Run last: they can revoke the tokens and retire the objects the other operations read.
LAST = ("POST /api/v1/auth/tokens/{token_id}/revoke/",)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def _skip_on_postgresql():
    if connection.vendor == "postgresql":
        pytest.skip("the contract run is the same on both databases: it runs once per `make test`, on SQLite")


@pytest.fixture
def world(custodian, researcher, unverified, auditor, monkeypatch):
    from rest_framework.throttling import AnonRateThrottle

    from verification.services import verification_submit

    # Anonymous requests are throttled before their 401 (one address for the whole run): raise the
    # rate so that every operation's 401 is checked, not only the first ones' (429 is declared anyway).
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", {**AnonRateThrottle.THROTTLE_RATES, "anon": "100000/min"})

    _skip_on_postgresql()  # before building the world
    dataset, release = publish_gbsg2(custodian[0])
    asked = verification_submit(user=researcher[0], raw=_example("hazard_ratio", release.pk))
    tokens = {"anonymous": None, "unverified": unverified[1], "researcher": researcher[1],
              "auditor": auditor[1], "custodian": custodian[1]}
    known = {"slug": dataset.slug, "release_id": release.pk, "run_id": release.run_id,
             "user_id": researcher[0].pk, "token_id": 1, "sweep_id": 1, "verification_id": asked.pk}
    return tokens, known


def _example(kind: str, release: int) -> dict:
    from verification.openapi import hypothesis_examples

    return next(e.value for e in hypothesis_examples(release) if e.name == kind)


def contract_run(tokens: dict, known: dict, examples: int, fuzz: bool = False) -> dict:
    """Every operation × role, ``examples`` cases each; returns the counts and the first failures."""
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings, strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                                   response_schema_conformance, status_code_conformance)

    from clearinghouse.wsgi import application

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    modes = [GenerationMode.POSITIVE]
    if fuzz:
        # negative_data_rejection is left out: it counts a path id sent as the string "1" (a URL has no
        # other kind) and an empty ?page= (page 1) as accepted invalid data.
        checks += [response_headers_conformance]
        modes.append(GenerationMode.NEGATIVE)
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: (f"{op.method.upper()} {op.path}" in LAST, op.path, op.method))
    failures: Counter = Counter()
    statuses: Counter = Counter()
    examples_of: dict[str, str] = {}
    requests = 0

    for operation in operations:
        label = f"{operation.method.upper()} {operation.path}"
        for role, mode in ((role, mode) for mode in modes for role in ROLES):
            headers = {"Authorization": f"Bearer {tokens[role]}"} if tokens[role] else {}

            @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode), use_known=st.booleans())
            def exercise(case, use_known):
                nonlocal requests
                if use_known and case.path_parameters:
                    case.path_parameters = {k: known.get(k, v) for k, v in case.path_parameters.items()}
                response = case.call(headers=headers)
                requests += 1
                statuses[(label, response.status_code)] += 1
                try:
                    case.validate_response(response, checks=checks, headers=headers)
                except (AssertionError, BaseExceptionGroup) as exc:  # one or more failed checks
                    for failure in getattr(exc, "exceptions", [exc]):
                        kind = type(failure).__name__
                        failures[kind] += 1
                        key = f"{kind} {label} {response.status_code}"
                        examples_of.setdefault(key, f"{role} ({mode.value}): {str(failure)[:600]}\n"
                                                    f"    {case.as_curl_command()[:600]}")

            exercise()
    return {"requests": requests, "failures": failures, "examples": examples_of, "statuses": statuses,
            "operations": len(operations)}


def summary(result: dict) -> str:
    lines = [f"{result['requests']} requests, {result['operations']} operations × {len(ROLES)} roles",
             f"failures by kind: {dict(result['failures']) or 'none'}"]
    lines += [f"  {key}\n    {text}" for key, text in sorted(result["examples"].items())]
    return "\n".join(lines)


def test_every_answer_is_what_the_openapi_document_says(world):
    tokens, known = world
    result = contract_run(tokens, known, EXAMPLES, fuzz=FUZZ)
    if os.environ.get("CONTRACT_SUMMARY"):
        print("\n" + summary(result))
        by_status = Counter(status for (_label, status) in result["statuses"].elements())
        print("statuses:", dict(sorted(by_status.items())))
    failures = result["failures"]
    counts = {"server errors": failures["ServerError"], "undocumented statuses": failures["UndefinedStatusCode"],
              "response-schema violations": failures["JsonSchemaError"] + failures["MalformedJson"],
              "content-type violations": (failures["UndefinedContentType"] + failures["MissingContentType"]
                                          + failures["MalformedMediaType"])}
    assert counts == dict.fromkeys(counts, 0), summary(result)
    assert not failures, summary(result)  # and nothing else either
    assert result["requests"] >= result["operations"] * len(ROLES)
    seen = {status for (_label, status) in result["statuses"]}
    assert {200, 401, 403, 404}.issubset(seen), seen  # it reached past the doors, not only to them


def test_the_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    document = yaml.safe_load(target.read_text())
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"] == {"$ref": "#/components/schemas/ErrorDetail"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("tags") and operation.get("summary"), (method, path)
            assert ":func:" not in operation.get("description", "") and "audited here" not in operation.get(
                "description", ""), (method, path)
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["content"]["application/json"]["schema"] == {
                        "$ref": "#/components/schemas/Error"}, (method, path, status)
                    assert "Codes: `" in response["description"], (method, path, status)
    lists = {path for path, ops in document["paths"].items()
             if "get" in ops and "Paginated" in str(ops["get"]["responses"]["200"])}
    assert {"/api/v1/accounts/", "/api/v1/auth/tokens/", "/api/v1/datasets/", "/api/v1/releases/",
            "/api/v1/verifications/", "/api/v1/audit/events/", "/api/v1/datasets/{slug}/runs/",
            "/api/v1/datasets/{slug}/sweeps/"} <= lists
    token = document["paths"]["/api/v1/auth/tokens/{token_id}/revoke/"]["post"]["responses"]
    assert "WWW-Authenticate" in token["401"]["headers"] and "`already_revoked`" in token["409"]["description"]
    for component in document["components"]["schemas"].values():
        assert "Every API view names" not in component.get("description", "")
        assert "refuses fields it does not declare" not in component.get("description", "")


def test_what_schemathesis_found_stays_fixed(clients):
    # an error to the CSV export was rendered as text/csv
    refused = clients["anonymous"].get("/api/v1/audit/events/export.csv?format=csv")
    assert refused.status_code == 401 and refused["Content-Type"].startswith("application/json")
    assert refused.json()["error"]["code"] == "not_authenticated" and refused["WWW-Authenticate"].startswith("Bearer")
    # ?format= naming no renderer answered 404, as if the path did not exist; now a 400 after the doors
    wrong = clients["auditor"].get("/api/v1/audit/events/export.csv?format=xml")
    assert wrong.status_code == 400 and wrong.json()["error"] == {
        "code": "invalid_format", "message": "format must be one of json, csv, not 'xml'.", "details": None}
    assert clients["auditor"].get("/api/v1/audit/verify/?format=yaml").json()["error"]["code"] == "invalid_format"
    assert clients["anonymous"].get("/api/v1/audit/verify/?format=yaml").status_code == 401
    assert clients["auditor"].get("/api/v1/audit/verify/?format=json").status_code == 200
