"""The verification API's OpenAPI pieces that a serializer cannot say by itself.

* The hypothesis body of ``POST verifications/`` and ``verifications/preview/``: a discriminated
  union on ``kind`` (``oneOf`` + ``discriminator``), one component per kind (``HazardRatioHypothesis``,
  …) whose ``params`` is the kind's own ``params_schema`` (JSON Schema, defined once next to the kind
  in :mod:`verification.core`), turned into OpenAPI 3.0 here; shared ``Filter`` and ``Claim``
  components; ε as an exact decimal string.
* One request example per kind, from the kind's ``example_params`` (GBSG2 names), request-only.
* :class:`RawSchemaSerializer`: a serializer whose OpenAPI component is a schema written by hand
  (``additionalProperties: false``, ``minProperties``, ``$ref`` to the components above), applied by
  :class:`RawSchemaExtension` (drf-spectacular finds it when this module is imported: verification/api.py
  imports it).

Nothing here runs when a request is answered, except :func:`decimal_text` (``epsilon_text`` of the core).
"""

from __future__ import annotations

import copy
from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from verification.core import KINDS
from verification.core.hypothesis import (
    DIRECTIONS,
    EPSILON_PATTERN,
    MAX_EPSILON_TEXT,
    MAX_FILTERS,
    MAX_IN_VALUES,
    OPS,
    epsilon_text,
)

#: An ε figure as the API writes it (re-exported for the serializers).
decimal_text = epsilon_text

__all__ = [
    "EPSILON_UNIT", "HypothesisBodySerializer", "RawSchemaExtension", "RawSchemaSerializer", "decimal_text",
    "epsilon_schema", "hypothesis_examples", "openapi_schema",
]

#: What every ε figure's description says (docs: common.md §1 of issue 13).
EPSILON_UNIT = "ε (the pure-DP privacy-loss parameter, dimensionless), as an exact decimal string"


def epsilon_schema(what: str, *, request: bool = False, nullable: bool = False) -> dict[str, Any]:
    """An ε figure in OpenAPI: a decimal string, described with its unit."""
    schema: dict[str, Any] = {"type": "string", "format": "decimal", "description": f"{what}: {EPSILON_UNIT}.",
                              "example": "0.5"}
    if request:
        schema["pattern"], schema["maxLength"] = EPSILON_PATTERN, MAX_EPSILON_TEXT
        schema["description"] += (" Digits and at most one point (\"0.5\", \"2\"); no sign, exponent or spaces. A "
                                  "JSON number is also accepted and read by its decimal text (0.1 is \"0.1\").")
    if nullable:
        schema["nullable"] = True
    return schema


# --------------------------------------------------------------------------- JSON Schema -> OpenAPI 3.0
def openapi_schema(fragment: Any) -> Any:
    """A JSON Schema (draft 2020-12) fragment as an OpenAPI 3.0 Schema Object: a ``type`` list with
    ``"null"`` becomes ``nullable``, several types become ``anyOf``, a numeric ``exclusiveMinimum`` /
    ``exclusiveMaximum`` becomes ``minimum``/``maximum`` with the boolean flag."""
    if isinstance(fragment, list):
        return [openapi_schema(item) for item in fragment]
    if not isinstance(fragment, dict):
        return fragment
    out: dict[str, Any] = {}
    for key, value in fragment.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            else:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "exclusiveMinimum":
            out["minimum"], out["exclusiveMinimum"] = value, True
        elif key == "exclusiveMaximum":
            out["maximum"], out["exclusiveMaximum"] = value, True
        elif key == "properties":
            out[key] = {name: openapi_schema(schema) for name, schema in value.items()}
        elif key in ("items", "anyOf", "oneOf", "allOf", "not", "additionalProperties"):
            out[key] = openapi_schema(value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- components
def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def kind_component_name(kind: str) -> str:
    return f"{_camel(kind)}Hypothesis"


SCALAR = [{"type": "string"}, {"type": "number"}]

FILTER = {
    "type": "object",
    "description": "A filter on the rows (public: it costs nothing). Filters combine with AND; a missing value "
                   "fails every comparison, != included.",
    "properties": {
        "column": {"type": "string", "description": "a column of the dataset's schema (by name)"},
        "op": {"type": "string", "enum": list(OPS),
               "description": "<, <=, > and >= need a numeric column; in takes a non-empty list"},
        "value": {"anyOf": [*SCALAR, {"type": "array", "items": {"anyOf": SCALAR}, "minItems": 1,
                                      "maxItems": MAX_IN_VALUES}],
                  "description": "a number for a numeric column; a category (a string; 0 or 1 for an event column) "
                                 f"for a categorical one; for in: a list of those (at most {MAX_IN_VALUES})"},
    },
    "required": ["column", "op", "value"],
    "additionalProperties": False,
}

CLAIM = {
    "type": "object",
    "description": "The finding's claim about the estimate. It decides the verdict only: a new claim on the same "
                   "statistic reuses the stored answer at no charge.",
    "properties": {
        "direction": {"type": "string", "enum": list(DIRECTIONS),
                      "description": "greater: supported when the whole CI lies above value; less: below; "
                                     "not_equal: when the CI excludes value (never contradicted)"},
        "value": {"type": "number", "description": "a finite number (a ratio kind: positive, 1 = no effect)"},
    },
    "required": ["direction", "value"],
    "additionalProperties": False,
}


def _register(auto_schema, name: str, schema: dict[str, Any]) -> dict[str, str]:
    # A copy: drf-spectacular's enum hook rewrites component schemas in place, and the next document
    # (another request for /schema/) must start from the module's own dicts, not the rewritten ones.
    component = ResolvedComponent(name=name, type=ResolvedComponent.SCHEMA, schema=copy.deepcopy(schema),
                                  object=name)
    auto_schema.registry.register_on_missing(component)
    return component.ref


def filter_ref(auto_schema) -> dict[str, str]:
    return _register(auto_schema, "Filter", FILTER)


def claim_ref(auto_schema) -> dict[str, str]:
    return _register(auto_schema, "Claim", CLAIM)


def _kind_description(kind) -> str:
    notes = []
    if kind.needs_survival:
        notes.append("Needs a dataset with a survival pair (else 400 no_survival).")
    if kind.ratio:
        notes.append("A ratio: the claimed value must be positive.")
    return " ".join([f"Kind `{kind.name}`. {kind.description}", *notes])


def kind_schema(auto_schema, name: str) -> dict[str, Any]:
    """The body of one kind's hypothesis."""
    kind = KINDS[name]
    params = openapi_schema(kind.params_schema)
    takes_nothing = not kind.params_schema.get("required")
    if takes_nothing:
        params = {**params, "nullable": True, "default": {}}
    params["description"] = f"The {name} kind's params" + (f": {params['description']}." if params.get("description")
                                                           else " (the hypothesis's description says what they mean).")
    required = ["release", "kind", "claim", "epsilon"] + ([] if takes_nothing else ["params"])
    return {
        "type": "object",
        "description": _kind_description(kind),
        "properties": {
            "release": {"type": "integer", "description": "The id of the published release the hypothesis was "
                                                          "found on (its dataset is the one verified)."},
            "dataset": {"type": "string", "description": "Optional: the release's dataset slug; refused "
                                                         "(release_dataset_mismatch) if it is another dataset's."},
            "kind": {"type": "string", "enum": [name]},
            "params": params,
            "where": {"type": "array", "items": filter_ref(auto_schema), "maxItems": MAX_FILTERS, "nullable": True,
                      "default": [], "description": f"Filters on the rows (at most {MAX_FILTERS}), combined with AND."},
            "claim": claim_ref(auto_schema),
            "epsilon": epsilon_schema("What the answer costs, charged to your allocation (at least 0.001, at most "
                                      "the dataset's per-query maximum, at most six decimal places)", request=True),
        },
        "required": required,
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------- serializers for annotation
class RawSchemaSerializer(serializers.Serializer):
    """A serializer whose OpenAPI component is :meth:`openapi` (subclasses set ``component_name``)."""

    component_name = ""

    @classmethod
    def openapi(cls, auto_schema, direction: str) -> dict[str, Any]:
        raise NotImplementedError


class RawSchemaExtension(OpenApiSerializerExtension):
    target_class = RawSchemaSerializer
    match_subclasses = True

    def get_name(self, auto_schema, direction):
        return self.target.component_name or None

    def map_serializer(self, auto_schema, direction):
        return copy.deepcopy(self.target.openapi(auto_schema, direction))


class HypothesisBodySerializer(RawSchemaSerializer):
    """Annotation only: the hypothesis body, one component per kind, discriminated by ``kind``."""

    component_name = "Hypothesis"

    @classmethod
    def openapi(cls, auto_schema, direction: str) -> dict[str, Any]:
        refs = {name: _register(auto_schema, kind_component_name(name), kind_schema(auto_schema, name))
                for name in KINDS}
        return {"oneOf": list(refs.values()),
                "discriminator": {"propertyName": "kind", "mapping": {n: r["$ref"] for n, r in refs.items()}},
                "description": "A hypothesis found on a published release: one of the kinds below, chosen by "
                               "`kind` (docs/kinds.md lists them)."}


class NormalizedHypothesisSerializer(RawSchemaSerializer):
    """The normalized hypothesis as stored and returned (passed through as it is)."""

    component_name = "NormalizedHypothesis"

    def to_representation(self, instance):
        return instance

    @classmethod
    def openapi(cls, auto_schema, direction: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": "The hypothesis as checked and normalized (defaults filled in, filters sorted, ε as "
                           "normalized text): the canonical form, claim included.",
            "properties": {
                "kind": {"type": "string", "description": "one of the kinds (docs/kinds.md)"},
                "params": {"type": "object", "additionalProperties": {},
                           "description": "the kind's params, normalized (defaults filled in)"},
                "where": {"type": "array", "items": filter_ref(auto_schema)},
                "claim": claim_ref(auto_schema),
                "epsilon": epsilon_schema("The ε asked for"),
            },
            "required": ["kind", "params", "where", "claim", "epsilon"],
        }


EXAMPLE_CLAIMS = {
    "count": {"direction": "greater", "value": 300}, "proportion": {"direction": "less", "value": 0.5},
    "mean": {"direction": "greater", "value": 50}, "quantile": {"direction": "greater", "value": 20},
    "correlation": {"direction": "not_equal", "value": 0}, "km_median": {"direction": "greater", "value": 1000},
    "survival_at": {"direction": "greater", "value": 0.5},
}
EXAMPLE_WHERE = {"count": [{"column": "age", "op": ">=", "value": 50}],
                 "mean": [{"column": "menostat", "op": "==", "value": "Post"}]}


def hypothesis_examples(release: int = 1) -> list[OpenApiExample]:
    """One request-only example per kind, from its ``example_params`` (GBSG2 names)."""
    examples = []
    for name, kind in KINDS.items():
        claim = EXAMPLE_CLAIMS.get(name, {"direction": "less", "value": 1} if kind.ratio
                                   else {"direction": "not_equal", "value": 0})
        value = {"release": release, "kind": name, "params": kind.example_params,
                 "where": EXAMPLE_WHERE.get(name, []), "claim": claim, "epsilon": "0.5"}
        examples.append(OpenApiExample(name, value=value, request_only=True, summary=f"{name} (GBSG2)",
                                       description=kind.description))
    return examples

