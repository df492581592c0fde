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
        "\"claim\": {\"direction\", \"value\"}, \"epsilon\": e}` (see [privacy.md](privacy.md) for the "
        "mechanisms). The examples are valid for the GBSG2 schema "
        "(`clearinghouse/fixtures/gbsg2.schema.json`).",
        "",
        "| kind | params and estimate | needs a survival pair | ratio | example params |",
        "|---|---|---|---|---|",
    ]
    for name, kind in KINDS.items():
        example = json.dumps(kind.example_params, sort_keys=True)
        lines.append(f"| `{name}` | {kind.description} | {'yes' if kind.needs_survival else 'no'} | "
                     f"{'yes' if kind.ratio else 'no'} | `{example}` |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
