"""One hypothesis kind as one object: :class:`Kind` bundles what the engine needs about a kind.

* ``parse_params(params, schema) -> dict``: checks and normalizes the kind's ``params`` against the
  schema (raising :class:`~verification.core.hypothesis.HypothesisError`), defaults filled in;
* ``compute(request) -> Answer``: the ε-DP computation on the real rows (after ``where``);
* ``exact(frame, schema, hypothesis) -> float | None``: the same statistic without noise, for the
  synthetic release's ``synthetic_estimate``;
* ``description``: plain text on the params and the estimate (for the docs and the API schema);
* ``example_params``: a valid ``params`` for the GBSG2 schema (``clearinghouse/fixtures/gbsg2.schema.json``);
* ``params_schema``: the ``params`` object as a JSON Schema (draft 2020-12) fragment, written from the
  pieces in :mod:`.hypothesis` (``params_schema``, ``level_schema``, …) that describe exactly what
  ``parse_params`` accepts (required keys, unknown keys refused, defaults); what only the dataset's
  schema decides (a column exists, a value is a category) is left to the parser and said in the
  descriptions. The API's OpenAPI document is built from it (``verification/openapi.py``);
* ``needs_survival`` and ``ratio``: what the hypothesis parser checks before the params (a survival
  pair in the schema; a positive claimed value).

:data:`REGISTRY` maps a kind's name to its :class:`Kind`; :func:`verification.core.kinds.register`
fills it (each kind module registers its kinds once, at import). This module imports nothing of
the engine, so :mod:`.hypothesis` can look parsers up here without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["REGISTRY", "Kind"]

# The signatures are spelled out above; the aliases name no engine type, so that this module
# imports nothing of the engine (not even for annotations) and no circle forms through it.
ParamsParser = Callable[[dict, Any], dict]  # (params, Schema) -> params
KindFunction = Callable[[Any], Any]  # Request -> Answer
ExactFunction = Callable[[Any, Any, Any], "float | None"]  # (DataFrame, Schema, Hypothesis) -> float | None


@dataclass(frozen=True)
class Kind:
    """A hypothesis kind: its params parser, DP computation, exact statistic and description."""

    name: str
    parse_params: ParamsParser
    compute: KindFunction
    exact: ExactFunction
    description: str
    example_params: dict[str, Any] = field(default_factory=dict)
    #: ``params`` as a JSON Schema fragment (see the module docstring); the default takes no params.
    params_schema: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {},
                                                                   "additionalProperties": False})
    #: The kind reads the schema's survival pair (a schema without one is refused: ``no_survival``).
    needs_survival: bool = False
    #: The estimate is a ratio (a claimed value must be positive).
    ratio: bool = False
    #: ``compute`` and ``exact`` read only how many rows passed ``where`` (``len`` of the frame), never a
    #: value: the engine then hands them a frame of that many rows and no columns (index 0..n-1) instead
    #: of copying the filtered rows (``count``: at a million rows the copy was most of the answer's time).
    rows_only: bool = False


#: name -> :class:`Kind`, in registration order (the order of the hypothesis format's names).
REGISTRY: dict[str, Kind] = {}
