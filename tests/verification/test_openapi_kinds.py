"""The OpenAPI document types the verification API exactly: the hypothesis body is a discriminated
union of one component per kind (params = the kind's own params_schema), with one request-only
example per kind; every ε figure is a decimal string documented with its unit; and real responses of
every verification and budget endpoint match their components (every property documented, nothing
undocumented, the types right)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal

import jsonschema
import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from clearinghouse.schema import Schema
from tests.conftest import GBSG2_SCHEMA
from tests.verification.conftest import BUDGET, VERIFY, ask, hypothesis
from verification.core import KINDS, parse_hypothesis
from verification.openapi import EPSILON_UNIT, kind_component_name, openapi_schema

PREVIEW = "/api/v1/verifications/preview/"
POSTS = (VERIFY, PREVIEW)


@pytest.fixture(scope="module")
def document() -> dict:
    generated = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(generated)
    return json.loads(json.dumps(generated))  # plain JSON types, as a client reads it


def test_the_document_is_the_same_each_time_it_is_generated(document):
    """drf-spectacular's enum hook rewrites components in place: a second document (the next GET of
    /schema/) must not inherit the first one's rewriting (a dangling OpEnum, say)."""
    again = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(again)
    assert json.loads(json.dumps(again)) == document
    assert "OpEnum" in document["components"]["schemas"]


def ref_name(schema: dict) -> str:
    return schema["$ref"].rsplit("/", 1)[1]


def resolve(document: dict, schema: dict) -> dict:
    """Follow a $ref (or drf-spectacular's ``allOf: [$ref]`` around a described enum)."""
    while "$ref" in schema or len(schema.get("allOf", ())) == 1:
        schema = document["components"]["schemas"][ref_name(schema.get("allOf", [schema])[0])]
    return schema


def json_schema(document: dict, schema, *, strict: bool = False):
    """An OpenAPI 3.0 schema as a JSON Schema, $refs inlined. ``strict`` (for responses): every object
    with properties must have exactly those (all required, no other key)."""
    if isinstance(schema, list):
        return [json_schema(document, item, strict=strict) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "$ref" in schema:
        return json_schema(document, resolve(document, schema), strict=strict)
    out = {}
    for key, value in schema.items():
        if key in ("properties", "mapping"):
            out[key] = {name: json_schema(document, s, strict=strict) for name, s in value.items()}
        elif key in ("discriminator", "example", "nullable", "readOnly", "writeOnly"):
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            out[key] = schema["minimum" if key == "exclusiveMinimum" else "maximum"]
        elif key in ("minimum", "maximum") and schema.get("exclusiveM" + key[1:]) is True:
            continue
        else:
            out[key] = json_schema(document, value, strict=strict)
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        elif "enum" in out:
            out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    if strict and "properties" in schema:
        out["required"] = list(schema["properties"])
        out.setdefault("additionalProperties", False)
    return out


def assert_matches(document: dict, body, schema: dict) -> None:
    jsonschema.Draft202012Validator(json_schema(document, schema, strict=True)).validate(body)


def response_schema(document: dict, path: str, method: str, status: int) -> dict:
    return document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]


# --------------------------------------------------------------------------- the hypothesis body
def test_the_hypothesis_body_is_a_discriminated_union_of_one_component_per_kind(document):
    schemas = document["components"]["schemas"]
    for path in POSTS:
        body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        union = resolve(document, body["schema"])
        mapping = union["discriminator"]["mapping"]
        assert union["discriminator"]["propertyName"] == "kind"
        assert list(mapping) == list(KINDS)
        assert [ref_name(item) for item in union["oneOf"]] == [kind_component_name(k) for k in KINDS]
        for name, kind in KINDS.items():
            component = schemas[kind_component_name(name)]
            assert mapping[name] == f"#/components/schemas/{kind_component_name(name)}"
            assert kind.description in component["description"]
            properties = component["properties"]
            assert set(properties) == {"release", "dataset", "kind", "params", "where", "claim", "epsilon"}
            assert component["additionalProperties"] is False
            assert resolve(document, properties["kind"])["enum"] == [name]
            expected = openapi_schema(kind.params_schema)
            params = {k: v for k, v in properties["params"].items() if k not in ("description", "nullable", "default")}
            assert params == {k: v for k, v in expected.items() if k != "description"}, name
            assert ("params" in component["required"]) == bool(kind.params_schema.get("required")), name
            assert {"release", "kind", "claim", "epsilon"} <= set(component["required"])
            assert properties["release"]["type"] == "integer" and properties["dataset"]["type"] == "string"
            assert resolve(document, properties["where"]["items"]) == schemas["Filter"]
            assert resolve(document, properties["claim"]) == schemas["Claim"]
    assert schemas["Filter"]["required"] == ["column", "op", "value"]
    assert resolve(document, schemas["Filter"]["properties"]["op"])["enum"] == ["==", "!=", "<", "<=", ">", ">=", "in"]
    assert resolve(document, schemas["Claim"]["properties"]["direction"])["enum"] == ["greater", "less", "not_equal"]


def test_one_request_only_example_per_kind_that_its_component_and_the_parser_accept(document):
    schema = Schema.from_dict(GBSG2_SCHEMA)
    for path in POSTS:
        operation = document["paths"][path]["post"]
        body = operation["requestBody"]["content"]["application/json"]
        examples = body["examples"]
        assert [e["value"]["kind"] for e in examples.values()] == list(KINDS)
        for example in examples.values():
            value = example["value"]
            component = document["components"]["schemas"][kind_component_name(value["kind"])]
            jsonschema.Draft202012Validator(json_schema(document, component)).validate(value)
            assert value["params"] == KINDS[value["kind"]].example_params and value["epsilon"] == "0.5"
            parse_hypothesis({k: v for k, v in value.items() if k != "release"}, schema, max_epsilon=1.0)
        for response in operation["responses"].values():  # Swagger no longer shows the request as a response
            for content in response.get("content", {}).values():
                assert "examples" not in content and "example" not in content


def test_a_body_the_union_refuses_is_refused_by_the_server_too(document, gbsg2, clients):
    """Each of these violates its kind's component and gets a 400 with the parser's code."""
    dataset, release = gbsg2
    cases = [
        (hypothesis(release, "quantile", {"column": "tsize", "q": 1.5}), "bad_param"),
        (hypothesis(release, "logrank", {"group": {"column": "horTh", "a": "yes"}}), "empty_group"),
        (hypothesis(release, "mean", {"column": "age", "colour": "red"}), "unknown_param"),
        (hypothesis(release, "mean", epsilon="5e-1"), "bad_epsilon"),
        (hypothesis(release, "mean", where=[{"column": "age", "op": "~", "value": 1}]), "unknown_op"),
        (hypothesis(release, "mean", colour="red"), "malformed"),
    ]
    for body, code in cases:
        component = document["components"]["schemas"][kind_component_name(body["kind"])]
        assert not jsonschema.Draft202012Validator(json_schema(document, component)).is_valid(body), body
        response = ask(clients["researcher"], body)
        assert response.status_code == 400 and response.json()["error"]["code"] == code, response.content


def test_every_epsilon_figure_is_a_decimal_string_with_its_unit(document):
    found = []

    def visit(name: str, schema: dict) -> None:
        for prop, value in (schema.get("properties") or {}).items():
            value = resolve(document, value) if "$ref" in value else value
            if "epsilon" in prop or prop in ("allocation", "spent", "left", "dataset_left", "total_cap",
                                             "total_spent", "default_allocation", "budget_left"):
                figure = value["additionalProperties"] if prop == "epsilon_split" else value
                assert (figure["type"], figure["format"]) == ("string", "decimal"), (name, prop)
                assert EPSILON_UNIT in figure["description"], (name, prop)
                found.append((name, prop))
            if value.get("type") == "array" and "properties" in resolve(document, value["items"]):
                visit(f"{name}.{prop}[]", resolve(document, value["items"]))

    for name, schema in document["components"]["schemas"].items():
        visit(name, schema)
    expected = {("AnswerOutput", "epsilon"), ("AnswerOutput", "epsilon_split"), ("VerificationOutput", "epsilon_charged"),
                ("BudgetLeftOutput", "left"), ("BudgetRowOutput", "dataset_left"), ("BudgetPolicyOutput", "total_cap"),
                ("BudgetPolicyInputRequest", "max_epsilon_per_query"), ("AllocationInputRequest", "epsilon"),
                ("AllocationOutput", "spent"), ("VerificationPreviewOutput", "suggested_epsilon"),
                ("VerificationPreviewOutput", "budget_left"), ("PreviewSearched", "epsilon"),
                ("NormalizedHypothesis", "epsilon"), ("HazardRatioHypothesis", "epsilon")}
    assert expected <= set(found), expected - set(found)
    budget_paths = [p for p in document["paths"] if "budget" in p or "allocations" in p or "verifications" in p]
    for path in budget_paths:
        for operation in document["paths"][path].values():
            for response in operation.get("responses", {}).values():
                for content in response.get("content", {}).values():
                    assert content["schema"] != {"type": "object", "additionalProperties": {}}, path


# --------------------------------------------------------------------------- real responses
def test_real_responses_match_their_components_exactly(document, gbsg2, researcher, custodian, clients):
    dataset, release = gbsg2
    researcher_client, custodian_client = clients["researcher"], clients["custodian"]

    # ε as a decimal string is charged exactly; the same ε as a number is the same hypothesis (reused)
    first = ask(researcher_client, hypothesis(release, "count", {}, claim={"direction": "greater", "value": 1},
                                              epsilon="0.25"))
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["epsilon_charged"], body["hypothesis"]["epsilon"], body["answer"]["epsilon"]) == ("0.25",) * 3
    assert body["answer"]["epsilon_split"] == {"count": "0.25"}
    assert body["budget"] == {"dataset": "gbsg2", "allocation": "2", "spent": "0.25", "left": "1.75"}
    assert_matches(document, body, response_schema(document, VERIFY, "post", 201))
    again = ask(researcher_client, hypothesis(release, "count", {}, claim={"direction": "less", "value": 1},
                                              epsilon=0.25))
    assert again.status_code == 200 and again.json()["reused"] is True and again.json()["epsilon_charged"] == "0"
    assert again.json()["reused_from"] == body["id"]
    assert_matches(document, again.json(), response_schema(document, VERIFY, "post", 200))

    detail = researcher_client.get(f"{VERIFY}{body['id']}/")
    assert detail.status_code == 200
    assert_matches(document, detail.json(), response_schema(document, f"{VERIFY}{{verification_id}}/", "get", 200))
    listed = researcher_client.get(VERIFY).json()
    assert [row["id"] for row in listed["results"]] == [again.json()["id"], body["id"]]
    for row in listed["results"]:
        assert_matches(document, row, {"$ref": "#/components/schemas/VerificationOutput"})

    preview = researcher_client.post(PREVIEW, hypothesis(release, "count", {}, epsilon="0.5"), format="json")
    assert preview.status_code == 200, preview.content
    figures = preview.json()
    assert (figures["epsilon"], figures["max_epsilon"], figures["budget_left"]) == ("0.5", "1", "1.75")
    assert all(Decimal(row["epsilon"]) > 0 for row in figures["searched"])
    assert_matches(document, figures, response_schema(document, PREVIEW, "post", 200))

    budget = researcher_client.get(BUDGET).json()
    assert budget == {"budgets": [{"dataset": "gbsg2", "allocation": "2", "spent": "0.25", "left": "1.75",
                                   "dataset_left": "19.75", "max_epsilon_per_query": "1"}]}
    assert_matches(document, budget, response_schema(document, BUDGET, "get", 200))

    policy_path = "/api/v1/datasets/{slug}/budget-policy/"
    policy = custodian_client.get(f"/api/v1/datasets/{dataset.slug}/budget-policy/")
    assert policy.json()["daily_limit"] is None and policy.json()["total_spent"] == "0.25"
    assert_matches(document, policy.json(), response_schema(document, policy_path, "get", 200))
    changes = {"daily_limit": 20, "total_cap": "50", "default_allocation": 0.75}
    request_schema = document["paths"][policy_path]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert not jsonschema.Draft202012Validator(json_schema(document, request_schema)).is_valid({})
    put = custodian_client.put(f"/api/v1/datasets/{dataset.slug}/budget-policy/", changes, format="json")
    assert put.status_code == 200, put.content
    assert (put.json()["daily_limit"], put.json()["total_cap"], put.json()["default_allocation"]) == (20, "50", "0.75")
    assert_matches(document, put.json(), response_schema(document, policy_path, "put", 200))

    allocation_path = "/api/v1/datasets/{slug}/allocations/{user_id}/"
    allocation = custodian_client.put(f"/api/v1/datasets/{dataset.slug}/allocations/{researcher[0].pk}/",
                                      {"epsilon": "3.5"}, format="json")
    assert allocation.status_code == 200, allocation.content
    assert allocation.json() == {"dataset": "gbsg2", "user": researcher[0].pk, "username": "rhea",
                                 "allocation": "3.5", "spent": "0.25"}
    assert_matches(document, allocation.json(), response_schema(document, allocation_path, "put", 200))
    body_schema = document["paths"][allocation_path]["put"]["requestBody"]["content"]["application/json"]["schema"]
    assert jsonschema.Draft202012Validator(json_schema(document, body_schema)).is_valid({"epsilon": "3.5"})
    assert not jsonschema.Draft202012Validator(json_schema(document, body_schema)).is_valid({"epsilon": "3.5",
                                                                                             "x": 1})


def test_an_undocumented_or_mistyped_key_fails_the_comparison(document):
    """The comparison above can fail: a key too many, a key missing, an ε as a number."""
    good = {"dataset": "gbsg2", "allocation": "2", "spent": "0", "left": "2"}
    schema = {"$ref": "#/components/schemas/BudgetLeftOutput"}
    assert_matches(document, good, schema)
    for bad in ({**good, "extra": 1}, {k: v for k, v in good.items() if k != "left"}, {**good, "left": 2}):
        with pytest.raises(jsonschema.ValidationError):
            assert_matches(document, copy.deepcopy(bad), schema)
