"""The hypothesis kinds as a reader sees them, written from each :class:`~.kind.Kind`'s own
description and example (``docs/kinds.md`` is this page; ``python -m verification.core.catalog``
prints it, and a test keeps the file current)."""

from __future__ import annotations

import json

from .kinds import KINDS

__all__ = ["markdown"]


def markdown() -> str:
    lines = [
        "# Hypothesis kinds",
        "",
        "<!-- written by `python -m verification.core.catalog` from the kinds' own descriptions; "
        "edit those, not this page -->",
        "",
        "A hypothesis is `{\"release\": id, \"kind\": ..., \"params\": {...}, \"where\": [...], "
        "\"claim\": {\"direction\", \"value\"}, \"epsilon\": \"0.5\"}` (see [privacy.md](privacy.md) for the "
        "mechanisms). The examples are valid for the GBSG2 schema "
        "(`clearinghouse/fixtures/gbsg2.schema.json`).",
        "",
        "`epsilon` is ε (the pure-DP privacy-loss parameter, dimensionless) as an exact decimal string: digits and "
        "at most one point (`\"0.5\"`, `\"2\"`; no sign, exponent or spaces; at least 0.001, at most the dataset's "
        "per-query maximum, at most six decimal places). A JSON number is accepted too and read by its decimal "
        "text, so `\"0.5\"`, `\"0.50\"` and `0.5` are the same hypothesis (one reuse key). Every ε in a response "
        "is such a string.",
        "",
        "| kind | params and estimate | needs a survival pair | ratio | example params |",
        "|---|---|---|---|---|",
    ]
    for name, kind in KINDS.items():
        example = json.dumps(kind.example_params, sort_keys=True)
        lines.append(f"| `{name}` | {kind.description} | {'yes' if kind.needs_survival else 'no'} | "
                     f"{'yes' if kind.ratio else 'no'} | `{example}` |")
    lines += [
        "",
        "## Params schemas",
        "",
        "Each kind's `params` as a JSON Schema (draft 2020-12) fragment, defined next to the kind "
        "(`Kind.params_schema`) and used for the OpenAPI body (`verification/openapi.py`). A column is any string "
        "here; the parser checks it against the dataset's schema (a column that exists, of the right type; a "
        "category it declares).",
    ]
    for name, kind in KINDS.items():
        lines += ["", f"### `{name}`", "", "```json", json.dumps(kind.params_schema, indent=2, ensure_ascii=False),
                  "```"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
