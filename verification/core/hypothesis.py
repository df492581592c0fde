"""Parse a researcher's hypothesis against the dataset schema, and give it a canonical form.

A hypothesis (``docs``: DESIGN.md, "Hypothesis kinds") is::

    {"release": id, "kind": ..., "params": {...},
     "where": [{"column", "op", "value"}, ...],
     "claim": {"direction": "greater" | "less" | "not_equal", "value": x},
     "epsilon": "0.5"}

:func:`parse_hypothesis` checks every part against the schema (a kind's ``params`` by its
registered :class:`~verification.core.kind.Kind`'s ``parse_params``, defined next to its
computation; the helpers they share, ``_column``, ``_level``, ``_group``, ``_adjust``, … are
here) and raises
:class:`HypothesisError` with a stable ``code`` and a message naming the problem. ``release`` is
checked by the Django side and ignored here.

:meth:`Hypothesis.canonical` is the **reuse key**: a JSON text with sorted keys, numbers
normalized (``50`` and ``50.0`` are the same), ``in`` lists sorted and de-duplicated (a one-value
``in`` is written as ``==``), filters sorted and de-duplicated, defaults filled in, symmetric
parameters ordered (``correlation`` x/y, ``odds_ratio`` a/b) and ε as a normalized decimal
string (ε is sent as an exact decimal string, ``"0.5"``, or as a JSON number read by its decimal
text: ``"0.5"``, ``"0.50"`` and ``0.5`` are the same hypothesis). It deliberately leaves out ``claim`` (and ``release``): the verdict is post-processing of a
stored CI, so a new claim on the same statistic must reuse the stored answer rather than buy a
fresh draw of noise (which would allow averaging the noise away).

Error codes (``HypothesisError.code``):

=========================  ====================================================================
``malformed``              not an object, a part of the wrong shape, an unknown top-level field
``unknown_kind``           kind missing or not one of :data:`KINDS`
``unknown_column``         a column that is not in the schema (identifiers are dropped at import)
``unknown_category``       a category the column does not declare (or not 0/1 for an event)
``wrong_column_type``      a numeric column where a category is needed, or the reverse
``bad_epsilon``            ε missing, neither a decimal string (``"0.5"``: digits, at most one point) nor a
                           number (booleans, ``"1e-3"``, ``" 1"``), non-finite, ≤ 0 or below the minimum
``epsilon_above_maximum``  ε above the per-query maximum
``bad_filter_value``       a filter value of the wrong type (or an empty/oversized ``in`` list)
``unknown_op``             a filter operator outside ``==, !=, <, <=, >, >=, in``
``empty_group``            a group definition with ``a == b`` or a missing ``a``/``b``
``no_survival``            a survival kind on a schema without a survival pair
``missing_param``          a required parameter is missing
``unknown_param``          a parameter the kind does not take
``bad_param``              a parameter of the wrong type or out of range (``q`` outside (0, 1), …)
``bad_claim``              claim missing, direction not greater/less/not_equal, value non-finite
``single_level``           the filters leave a compared column one level (an exposure, outcome or group
                           that cannot vary in the filtered rows: nothing to compare, refused before
                           any charge; decided from the schema and the filters, never from the data)
=========================  ====================================================================
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clearinghouse.schema import Column, Schema

from .kind import REGISTRY

__all__ = [
    "DIRECTIONS",
    "EPSILON_PATTERN",
    "KINDS",
    "OPS",
    "Claim",
    "Filter",
    "Hypothesis",
    "HypothesisError",
    "epsilon_text",
    "parse_hypothesis",
]

KINDS = (
    "count", "proportion", "mean", "quantile", "difference_in_means", "difference_in_proportions",
    "correlation", "odds_ratio", "logistic_odds_ratio", "hazard_ratio", "km_median", "survival_at",
    "logrank",
)
OPS = ("==", "!=", "<", "<=", ">", ">=", "in")
ORDER_OPS = ("<", "<=", ">", ">=")
DIRECTIONS = ("greater", "less", "not_equal")
TOP_LEVEL = ("release", "kind", "params", "where", "claim", "epsilon")
MAX_FILTERS = 32
MAX_IN_VALUES = 1000
MAX_ADJUST = 20
#: Model columns of a regression kind (exposure, numeric covariates, one per non-reference level of
#: a categorical covariate): the block fits hold n × p² numbers, so p is bounded.
MAX_DESIGN_COLUMNS = 50
#: Below this ε an answer is pure noise, and the quantile's exponential mechanism spans ~1/ε grid
#: points (memory and time grow without bound): refused rather than computed.
MIN_EPSILON = 0.001
CATEGORY_TYPES = ("categorical", "event")


class HypothesisError(ValueError):
    """A hypothesis that does not fit the schema or the format. ``code`` is stable (see the module
    docstring); ``message`` names the problem for the researcher."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Any  # normalized; a tuple for "in"

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"column": self.column, "op": self.op, "value": value}


@dataclass(frozen=True)
class Claim:
    direction: str
    value: float

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "value": _plain(self.value)}


@dataclass(frozen=True)
class Hypothesis:
    """A checked hypothesis. ``params`` are normalized with defaults filled in (see the module
    docstring for what is normalized); ``where`` is sorted and de-duplicated."""

    kind: str
    params: dict[str, Any]
    where: tuple[Filter, ...]
    claim: Claim
    epsilon: float
    epsilon_text: str = field(default="")

    def canonical_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "params": self.params,
            "where": [f.to_dict() for f in self.where],
            "epsilon": self.epsilon_text,
        }

    def canonical(self) -> str:
        """The reuse key: canonical JSON of kind, params, filters and ε (not the claim)."""
        return json.dumps(self.canonical_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)

    def to_dict(self) -> dict[str, Any]:
        """The normalized hypothesis including its claim."""
        out = self.canonical_dict()
        out["claim"] = self.claim.to_dict()
        return out


# --- small checks --------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # a JSON integer too large for a float
        return False


def _plain(value: float) -> int | float:
    """Normalize a number for the canonical form: whole numbers become ints (50.0 -> 50)."""
    value = float(value)
    if value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _decimal_text(value: float) -> str:
    text = format(Decimal(repr(float(value))).normalize(), "f")
    return text


def epsilon_text(value: Any) -> str | None:
    """ε as the API writes it, an exact decimal string: a Decimal or a decimal string as it is
    (normalized: ``"0.50"`` -> ``"0.5"``), a float by its shortest repr (0.1 -> ``"0.1"``); None stays None."""
    if value is None:
        return None
    if isinstance(value, (Decimal, str)):
        return format(Decimal(value).normalize(), "f")
    return _decimal_text(value)


def _object(raw: Any, path: str, code: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise HypothesisError(code, f"{path}: must be an object")
    return raw


def _keys(raw: dict[str, Any], path: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    extra = sorted(set(raw) - set(required) - set(optional), key=str)
    if extra:
        allowed = ", ".join(required + optional) or "none"
        raise HypothesisError("unknown_param", f"{path}: unknown parameter(s) {', '.join(map(repr, extra))} "
                                               f"(allowed: {allowed})")
    for key in required:
        if key not in raw:
            raise HypothesisError("missing_param", f"{path}.{key}: required")


def _column(schema: Schema, name: Any, path: str) -> Column:
    if not isinstance(name, str):
        raise HypothesisError("bad_param", f"{path}: must be a column name (a string)")
    if name not in schema or schema[name].type == "identifier":
        known = ", ".join(c.name for c in schema.kept)
        raise HypothesisError("unknown_column", f"{path}: unknown column {name!r} (columns: {known})")
    return schema[name]


def _need_category(column: Column, path: str) -> Column:
    if column.type not in CATEGORY_TYPES:
        raise HypothesisError("wrong_column_type", f"{path}: column {column.name!r} is {column.type}; "
                                                   "a categorical or event column is needed here")
    return column


def _need_numeric(column: Column, path: str) -> Column:
    if not column.is_numeric:
        raise HypothesisError("wrong_column_type", f"{path}: column {column.name!r} is {column.type}; "
                                                   "a numeric (continuous, integer or duration) column is needed here")
    return column


def _category(column: Column, value: Any, path: str, type_code: str) -> str | int:
    """A category of a categorical column (a string) or of an event column (0 or 1)."""
    if column.type == "event":
        if not _is_number(value) or not _finite(value) or not float(value).is_integer():
            raise HypothesisError(type_code, f"{path}: event column {column.name!r} takes 0 or 1, not {value!r}")
        if value not in (0, 1):
            raise HypothesisError("unknown_category", f"{path}: event column {column.name!r} takes 0 or 1, not {value!r}")
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # categories ["1", "2"] may be written as numbers
    if not isinstance(value, str):
        raise HypothesisError(type_code, f"{path}: column {column.name!r} is categorical; the value must be one of "
                                         f"its categories (a string), not {value!r}")
    if value not in column.categories:
        raise HypothesisError("unknown_category", f"{path}: {value!r} is not a category of {column.name!r} "
                                                  f"({', '.join(column.categories)})")
    return value


def _number(value: Any, path: str, code: str, what: str = "a finite number") -> float:
    if not _is_number(value) or not _finite(value):
        raise HypothesisError(code, f"{path}: must be {what}, not {value!r}")
    return float(value)


# --- filters ---------------------------------------------------------------------------------


def _filter_value(column: Column, op: str, value: Any, path: str) -> Any:
    if column.type in CATEGORY_TYPES:
        return _category(column, value, path, "bad_filter_value")
    number = _number(value, path, "bad_filter_value", f"a finite number for the {column.type} column {column.name!r}")
    if column.type == "integer" and op in ("==", "!=", "in") and not number.is_integer():
        raise HypothesisError("bad_filter_value", f"{path}: integer column {column.name!r} compared for equality "
                                                  f"with the non-whole number {value!r}")
    return _plain(number)


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _parse_filter(raw: Any, schema: Schema, path: str) -> Filter:
    if not isinstance(raw, dict) or set(raw) != {"column", "op", "value"}:
        raise HypothesisError("malformed", f"{path}: a filter is an object with exactly 'column', 'op' and 'value'")
    column = _column(schema, raw["column"], f"{path}.column")
    op = raw["op"]
    if not isinstance(op, str) or op not in OPS:
        raise HypothesisError("unknown_op", f"{path}.op: unknown operator {op!r} (one of {', '.join(OPS)})")
    if op in ORDER_OPS and column.type in CATEGORY_TYPES:
        raise HypothesisError("wrong_column_type", f"{path}.op: {op} needs a numeric column; {column.name!r} is "
                                                   f"{column.type} (use ==, != or in)")
    if op != "in":
        return Filter(column.name, op, _filter_value(column, op, raw["value"], f"{path}.value"))
    values = raw["value"]
    if not isinstance(values, list) or not values:
        raise HypothesisError("bad_filter_value", f"{path}.value: 'in' takes a non-empty list")
    if len(values) > MAX_IN_VALUES:
        raise HypothesisError("bad_filter_value", f"{path}.value: 'in' takes at most {MAX_IN_VALUES} values")
    parsed = {_filter_value(column, op, v, f"{path}.value[{i}]") for i, v in enumerate(values)}
    ordered = tuple(sorted(parsed, key=_sort_key))
    if len(ordered) == 1:
        return Filter(column.name, "==", ordered[0])
    return Filter(column.name, "in", ordered)


def _parse_where(raw: Any, schema: Schema) -> tuple[Filter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise HypothesisError("malformed", "where: must be a list of filters")
    if len(raw) > MAX_FILTERS:
        raise HypothesisError("malformed", f"where: at most {MAX_FILTERS} filters")
    filters = {_parse_filter(item, schema, f"where[{i}]") for i, item in enumerate(raw)}
    return tuple(sorted(filters, key=lambda f: (f.column, f.op, json.dumps(f.to_dict()["value"], sort_keys=True))))


# --- params helpers (each kind's parser lives next to its computation: its Kind's parse_params) ---


def _group(raw: Any, schema: Schema, path: str) -> dict[str, Any]:
    """``{column, a, b}``: two distinct categories of one categorical/event column."""
    raw = _object(raw, path, "bad_param")
    extra = sorted(set(raw) - {"column", "a", "b"}, key=str)
    if extra:
        raise HypothesisError("unknown_param", f"{path}: unknown parameter(s) {', '.join(map(repr, extra))} "
                                               "(allowed: column, a, b)")
    if "column" not in raw:
        raise HypothesisError("missing_param", f"{path}.column: required")
    column = _need_category(_column(schema, raw["column"], f"{path}.column"), f"{path}.column")
    for key in ("a", "b"):
        if key not in raw or raw[key] is None:
            raise HypothesisError("empty_group", f"{path}.{key}: required; a group compares category a with category b")
    a = _category(column, raw["a"], f"{path}.a", "bad_param")
    b = _category(column, raw["b"], f"{path}.b", "bad_param")
    if a == b:
        raise HypothesisError("empty_group", f"{path}: a and b are both {a!r}; the groups must differ")
    return {"column": column.name, "a": a, "b": b}


def _level(raw: Any, schema: Schema, path: str, *, numeric: bool = False, value_required: bool = False) -> dict[str, Any]:
    """``{column, value}``: a category of a categorical/event column (event defaults to 1 unless
    ``value_required``); with ``numeric``, a numeric column without a value is also accepted."""
    raw = _object(raw, path, "bad_param")
    _keys(raw, path, ("column",), ("value",))
    column = _column(schema, raw["column"], f"{path}.column")
    if numeric and column.is_numeric:
        if raw.get("value") is not None:
            raise HypothesisError("bad_param", f"{path}.value: {column.name!r} is numeric; leave out 'value' "
                                               "(the effect is per unit)")
        return {"column": column.name, "value": None}
    if not numeric:
        _need_category(column, f"{path}.column")
    if raw.get("value") is None:
        if column.type == "event" and not value_required:
            return {"column": column.name, "value": 1}
        raise HypothesisError("missing_param", f"{path}.value: required for the {column.type} column {column.name!r}")
    return {"column": column.name, "value": _category(column, raw["value"], f"{path}.value", "bad_param")}


def _adjust(raw: Any, schema: Schema, path: str, exclude: set[str]) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise HypothesisError("bad_param", f"{path}: must be a list of column names")
    if len(raw) > MAX_ADJUST:
        raise HypothesisError("bad_param", f"{path}: at most {MAX_ADJUST} covariates")
    names = []
    for i, name in enumerate(raw):
        column = _column(schema, name, f"{path}[{i}]")
        if column.name in exclude:
            raise HypothesisError("bad_param", f"{path}[{i}]: {column.name!r} cannot be a covariate here")
        names.append(column.name)
    if len(set(names)) != len(names):
        raise HypothesisError("bad_param", f"{path}: lists a column twice")
    width = 1 + sum(len(schema[n].categories) - 1 if schema[n].type == "categorical" else 1 for n in names)
    if width > MAX_DESIGN_COLUMNS:
        raise HypothesisError("bad_param", f"{path}: the model would have {width} columns (categories count one "
                                           f"each but the first); at most {MAX_DESIGN_COLUMNS}")
    return sorted(names)


def _survival_columns(schema: Schema) -> set[str]:
    return {schema.survival.duration, schema.survival.event}


# --- params schema fragments -----------------------------------------------------------------
# JSON Schema (draft 2020-12) for what the helpers above accept, so that each kind's
# ``params_schema`` is written from the same pieces as its parser. What only the dataset's schema
# can decide (that a column exists and has the right type, that a value is one of its categories)
# is in the descriptions; the parser checks it. The Django side turns these into OpenAPI 3.0.

COLUMN_DESCRIPTION = "a column of the dataset's schema (by name)"
CATEGORY_DESCRIPTION = ("a category of the column: one of its categories (a string; a whole number is read as "
                        "its text), or 0 or 1 for an event column")


def column_schema(description: str = "") -> dict[str, Any]:
    """A column name (checked against the dataset's schema by the parser)."""
    return {"type": "string", "minLength": 1,
            "description": f"{description} ({COLUMN_DESCRIPTION})" if description else COLUMN_DESCRIPTION}


def category_schema(description: str = "", *, nullable: bool = False) -> dict[str, Any]:
    """A category of a categorical column (a string) or of an event column (0 or 1)."""
    types = ["string", "integer", "null"] if nullable else ["string", "integer"]
    return {"type": types, "description": f"{description} ({CATEGORY_DESCRIPTION})" if description else
            CATEGORY_DESCRIPTION}


def params_schema(properties: dict[str, Any], required: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    """The ``params`` object of a kind (:func:`_keys`: unknown keys and missing required ones are refused)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    return schema


def level_schema(description: str, *, numeric: bool = False, value_required: bool = False,
                 nullable: bool = False) -> dict[str, Any]:
    """``{column, value}`` as :func:`_level` accepts it (``nullable``: the whole ref may be null)."""
    if value_required:
        value = category_schema("required")
    elif numeric:
        value = category_schema("the exposed category; required for a categorical column, 1 by default for an "
                                "event column, left out (or null) for a numeric column (the effect per unit)",
                                nullable=True)
    else:
        value = category_schema("required for a categorical column; 1 by default for an event column",
                                nullable=True)
    column = column_schema("a categorical, event or numeric column" if numeric else "a categorical or event column")
    return {"type": ["object", "null"] if nullable else "object", "description": description,
            "properties": {"column": column, "value": value},
            "required": ["column", "value"] if value_required else ["column"], "additionalProperties": False}


def group_schema(description: str) -> dict[str, Any]:
    """``{column, a, b}`` as :func:`_group` accepts it (a and b must differ)."""
    return {"type": "object", "description": description + " (a and b must differ)",
            "properties": {"column": column_schema("a categorical or event column"),
                           "a": category_schema("group a"), "b": category_schema("group b")},
            "required": ["column", "a", "b"], "additionalProperties": False}


def adjust_schema() -> dict[str, Any]:
    """``adjust_for`` as :func:`_adjust` accepts it."""
    return {"type": ["array", "null"], "items": column_schema(), "maxItems": MAX_ADJUST, "uniqueItems": True,
            "default": [],
            "description": (f"covariate columns to adjust for (at most {MAX_ADJUST}, each once; a categorical one "
                            f"counts one model column per category but the first, at most {MAX_DESIGN_COLUMNS} in "
                            "all)")}


# --- top level -----------------------------------------------------------------------------


#: ε as an exact decimal string: digits, optionally a point and more digits (no sign, exponent,
#: spaces, NaN or infinity). A JSON number is read by its decimal text (0.1 -> "0.1").
EPSILON_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
_EPSILON_TEXT = re.compile(EPSILON_PATTERN)
MAX_EPSILON_TEXT = 40


def _epsilon_value(raw: Any) -> Decimal:
    """ε as an exact Decimal: from a strict decimal string, or a JSON number's decimal text."""
    if isinstance(raw, str):
        if len(raw) > MAX_EPSILON_TEXT or not _EPSILON_TEXT.fullmatch(raw):
            raise HypothesisError("bad_epsilon", f"epsilon: {raw[:MAX_EPSILON_TEXT]!r} is not a decimal string "
                                                 "such as \"0.5\" (digits and at most one point; no sign, exponent "
                                                 "or spaces)")
        return Decimal(raw)
    if not _is_number(raw):
        raise HypothesisError("bad_epsilon", f"epsilon: must be a decimal string such as \"0.5\" or a number, not "
                                             f"{type(raw).__name__} {raw!r}")
    if not _finite(raw):
        raise HypothesisError("bad_epsilon", f"epsilon: must be finite, not {raw!r}")
    return Decimal(repr(float(raw)))


def _parse_epsilon(raw: Any, max_epsilon: float) -> tuple[float, str]:
    """ε as (float, normalized decimal text); the text is the reuse key's (``"0.5"`` and ``0.5`` agree)."""
    if raw is None:
        raise HypothesisError("bad_epsilon", "epsilon: required (a positive decimal string such as \"0.5\")")
    value = _epsilon_value(raw)
    text = format(value.normalize(), "f")
    if value <= 0:
        raise HypothesisError("bad_epsilon", f"epsilon: must be positive, not {text}")
    if value < Decimal(repr(MIN_EPSILON)):
        raise HypothesisError("bad_epsilon", f"epsilon: {text} is below the minimum {MIN_EPSILON} (an answer "
                                             "would be pure noise)")
    if value > Decimal(repr(float(max_epsilon))):
        raise HypothesisError("epsilon_above_maximum", f"epsilon: {text} is above the per-query maximum "
                                                       f"{_decimal_text(max_epsilon)}")
    return float(value), text


def _parse_claim(raw: Any, kind: str, *, ratio: bool) -> Claim:
    if raw is None:
        raise HypothesisError("bad_claim", "claim: required, {\"direction\": greater|less|not_equal, \"value\": x}")
    if not isinstance(raw, dict) or set(raw) != {"direction", "value"}:
        raise HypothesisError("bad_claim", "claim: must be an object with exactly 'direction' and 'value'")
    direction = raw["direction"]
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise HypothesisError("bad_claim", f"claim.direction: {direction!r} is not one of {', '.join(DIRECTIONS)}")
    value = raw["value"]
    if not _is_number(value) or not _finite(value):
        raise HypothesisError("bad_claim", f"claim.value: must be a finite number, not {value!r}")
    if ratio and value <= 0:
        raise HypothesisError("bad_claim", f"claim.value: {kind} is a ratio; the claimed value must be positive")
    return Claim(direction, float(value))


def _levels_left(column: Column, where: tuple[Filter, ...]) -> set[Any]:
    """The declared levels of a categorical or event column that pass every filter on it."""
    levels = set(column.categories) if column.type == "categorical" else {0, 1}
    for item in where:
        if item.column != column.name:
            continue
        if item.op == "==":
            levels &= {item.value}
        elif item.op == "!=":
            levels -= {item.value}
        elif item.op == "in":
            levels &= set(item.value)
    return levels


def _check_levels_left(params: dict[str, Any], where: tuple[Filter, ...], schema: Schema) -> None:
    """Refuse a comparison that the filters make impossible (public: schema and filters only)."""
    compared = []
    for role in ("exposure", "outcome"):
        level = params.get(role)
        if isinstance(level, dict) and level.get("value") is not None:
            compared.append((role, level["column"], [level["value"]], 2))
    group = params.get("group")
    if isinstance(group, dict) and "a" in group:
        compared.append(("group", group["column"], [group["a"], group["b"]], 2))
    for role, name, needed, at_least in compared:
        column = schema[name]
        if column.type not in ("categorical", "event"):
            continue
        left = _levels_left(column, where)
        if not set(needed) <= left or len(left) < at_least:
            raise HypothesisError("single_level", f"params.{role}: the filters leave {name!r} with "
                                                  f"{sorted(map(str, left)) or 'no level'}; a comparison needs "
                                                  f"{' and '.join(map(repr, needed))} and another level to differ")


def parse_hypothesis(raw: Any, schema: Schema, *, max_epsilon: float) -> Hypothesis:
    """Check ``raw`` against ``schema`` and return the normalized :class:`Hypothesis`.

    Raises :class:`HypothesisError` (see the module docstring for the codes).
    """
    if not _is_number(max_epsilon) or not _finite(max_epsilon) or max_epsilon <= 0:
        raise ValueError("max_epsilon must be a positive finite number")
    if not isinstance(raw, dict):
        raise HypothesisError("malformed", "the hypothesis must be a JSON object")
    extra = sorted(set(raw) - set(TOP_LEVEL), key=str)
    if extra:
        raise HypothesisError("malformed", f"unknown field(s) {', '.join(map(repr, extra))} "
                                           f"(allowed: {', '.join(TOP_LEVEL)})")
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise HypothesisError("unknown_kind", f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    epsilon, epsilon_text = _parse_epsilon(raw.get("epsilon"), float(max_epsilon))
    registered = REGISTRY.get(kind)
    if registered is None:
        raise NotImplementedError(f"kind {kind!r} is in the hypothesis format but no module has registered it")
    if registered.needs_survival and schema.survival is None:
        raise HypothesisError("no_survival", f"kind: {kind} needs a dataset with a survival pair "
                                             "(duration and event); this schema declares none")
    params = raw.get("params")
    params = {} if params is None else _object(params, "params", "malformed")
    parsed = registered.parse_params(params, schema)
    where = _parse_where(raw.get("where"), schema)
    _check_levels_left(parsed, where, schema)
    claim = _parse_claim(raw.get("claim"), kind, ratio=registered.ratio)
    return Hypothesis(kind=kind, params=parsed, where=where, claim=claim, epsilon=epsilon, epsilon_text=epsilon_text)
