"""The researcher's "verify a finding" form: built from a dataset's public schema.

The form only gathers what was typed into the shape of a hypothesis (docs/kinds.md); every check is
:func:`verification.services.verification_preview`'s and :func:`verification_submit`'s, so the page refuses
exactly what the API refuses, with the same codes and messages. :func:`field_for_error` places a service
message (``"params.group.a: required ..."``) at the field it names.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms

from clearinghouse.schema import Schema
from verification.core import KINDS
from verification.core.hypothesis import DIRECTIONS, OPS

__all__ = ["KIND_FIELDS", "KIND_LABELS", "VerifyForm", "WHERE_ROWS", "field_for_error"]

WHERE_ROWS = 3

KIND_LABELS = {
    "count": "Count of patients (in the filtered subgroup)",
    "proportion": "Proportion with a category",
    "mean": "Mean of a numeric column",
    "quantile": "Median or another quantile",
    "difference_in_means": "Difference of means between two groups",
    "difference_in_proportions": "Difference of proportions between two groups",
    "correlation": "Correlation of two numeric columns",
    "odds_ratio": "Odds ratio of a 2×2 table",
    "logistic_odds_ratio": "Odds ratio from a logistic regression (optionally adjusted)",
    "hazard_ratio": "Hazard ratio from a Cox model (optionally adjusted)",
    "km_median": "Median survival time (Kaplan-Meier)",
    "survival_at": "Survival probability at a time (Kaplan-Meier)",
    "logrank": "Log-rank comparison of two groups",
}

#: The parameter fields each kind reads (researcher.js shows only these; without JS all fields show).
KIND_FIELDS = {
    "count": [],
    "proportion": ["column", "value"],
    "mean": ["column"],
    "quantile": ["column", "q"],
    "difference_in_means": ["column", "group_column", "group_a", "group_b"],
    "difference_in_proportions": ["column", "value", "group_column", "group_a", "group_b"],
    "correlation": ["x", "y"],
    "odds_ratio": ["a_column", "a_value", "b_column", "b_value"],
    "logistic_odds_ratio": ["outcome_column", "outcome_value", "exposure_column", "exposure_value", "adjust_for"],
    "hazard_ratio": ["exposure_column", "exposure_value", "adjust_for"],
    "km_median": ["group_column", "group_value"],
    "survival_at": ["time", "group_column", "group_value"],
    "logrank": ["group_column", "group_a", "group_b"],
}
PARAM_FIELDS = ("column", "value", "q", "x", "y", "group_column", "group_a", "group_b", "group_value", "a_column",
                "a_value", "b_column", "b_value", "outcome_column", "outcome_value", "exposure_column",
                "exposure_value", "adjust_for", "time")
DIRECTION_LABELS = {"greater": "is greater than", "less": "is less than", "not_equal": "is different from"}
OP_LABELS = {"==": "is", "!=": "is not", "<": "<", "<=": "≤", ">": ">", ">=": "≥", "in": "is one of (comma-separated)"}


def _used_by(name: str) -> str:
    kinds = [kind for kind, names in KIND_FIELDS.items() if name in names]
    return "Used by: " + ", ".join(KIND_LABELS[k].lower() for k in kinds) + "."


def _number(text: str) -> Any:
    """A typed number for the hypothesis; text that is not a number is passed on for the service to refuse."""
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and abs(value) < 2**53 and "." not in text and "e" not in text.lower() \
        else value


class _Keeping:
    """A select that shows a posted value it does not offer (so a refused form re-shows what was sent)."""

    def get_context(self, name, value, attrs):
        values = value if isinstance(value, (list, tuple)) else [value]
        known: set[str] = set()
        for option, label in self.choices:
            if isinstance(label, (list, tuple)):
                known |= {str(v) for v, _ in label}
            else:
                known.add(str(option))
        extra = [(str(v), f"{v} (not in this schema)") for v in values if v not in (None, "") and str(v) not in known]
        if extra:
            self.choices = [*self.choices, *extra]
        return super().get_context(name, value, attrs)


class KeepingSelect(_Keeping, forms.Select):
    pass


class KeepingSelectMultiple(_Keeping, forms.SelectMultiple):
    pass


class VerifyForm(forms.Form):
    """Every field is optional text: the service decides what is missing or wrong."""

    def __init__(self, *args, schema: Schema, **kwargs):
        super().__init__(*args, **kwargs)
        self.schema = schema
        kept = schema.kept
        survival = {schema.survival.duration, schema.survival.event} if schema.survival else set()
        blank = [("", "—")]
        every = blank + [(c.name, f"{c.name} ({c.type})") for c in kept]
        numeric = blank + [(c.name, f"{c.name} ({c.type})") for c in kept if c.is_numeric]
        category_columns = [c for c in kept if c.type in ("categorical", "event")]
        groupable = blank + [(c.name, c.name) for c in category_columns if c.name not in survival]
        levels = blank + [(c.name, [(v, f"{c.name} = {label}") for v, label in self._levels(c)])
                          for c in category_columns]

        def select(choices, label, help_text="", **attrs):
            return forms.CharField(required=False, label=label, help_text=help_text,
                                   widget=KeepingSelect(choices=choices, attrs=attrs))

        def text(label, help_text="", **attrs):
            return forms.CharField(required=False, label=label, help_text=help_text,
                                   widget=forms.TextInput(attrs={"inputmode": "decimal", **attrs}))

        f = self.fields
        f["kind"] = select([(k, KIND_LABELS.get(k, k)) for k in KINDS], "What to estimate",
                           "Survival kinds need the dataset's survival pair." if not schema.survival else "",
                           **{"data-kind-select": ""})
        f["column"] = select(every, "Column", _used_by("column"))
        f["value"] = select(levels, "Category", _used_by("value"), **{"data-levels-of": "column"})
        f["q"] = text("Quantile q (0.5 = median)", _used_by("q"), placeholder="0.5")
        f["x"] = select(numeric, "First numeric column (x)", _used_by("x"))
        f["y"] = select(numeric, "Second numeric column (y)", _used_by("y"))
        f["group_column"] = select(groupable, "Group column", _used_by("group_column"))
        f["group_a"] = select(levels, "Group a", _used_by("group_a"), **{"data-levels-of": "group_column"})
        f["group_b"] = select(levels, "Group b (compared with a)", _used_by("group_b"),
                              **{"data-levels-of": "group_column"})
        f["group_value"] = select(levels, "Subgroup category", _used_by("group_value") + " Leave empty for everyone.",
                                  **{"data-levels-of": "group_column"})
        f["a_column"] = select(every, "First factor: column", _used_by("a_column"))
        f["a_value"] = select(levels, "First factor: category", _used_by("a_value"), **{"data-levels-of": "a_column"})
        f["b_column"] = select(every, "Second factor: column", _used_by("b_column"))
        f["b_value"] = select(levels, "Second factor: category", _used_by("b_value"), **{"data-levels-of": "b_column"})
        f["outcome_column"] = select(every, "Outcome: column", _used_by("outcome_column"))
        f["outcome_value"] = select(levels, "Outcome: category counted as 1", _used_by("outcome_value"),
                                    **{"data-levels-of": "outcome_column"})
        f["exposure_column"] = select(every, "Exposure: column", _used_by("exposure_column"))
        f["exposure_value"] = select(levels, "Exposure: category",
                                     _used_by("exposure_value") + " Leave empty for a numeric exposure (per unit).",
                                     **{"data-levels-of": "exposure_column"})
        f["adjust_for"] = forms.Field(required=False, label="Adjust for (covariates)",
                                      help_text=_used_by("adjust_for") + " Hold Ctrl or ⌘ to choose several.",
                                      widget=KeepingSelectMultiple(choices=[(c.name, c.name) for c in kept]))
        f["time"] = text("Time (in the duration's unit)", _used_by("time"))
        for i in range(WHERE_ROWS):
            f[f"where_column_{i}"] = select(every, f"Filter {i + 1}: column",
                                            "Optional: restrict the question to a subgroup." if i == 0 else "")
            f[f"where_op_{i}"] = select([(op, OP_LABELS[op]) for op in OPS], f"Filter {i + 1}: comparison")
            f[f"where_value_{i}"] = forms.CharField(required=False, label=f"Filter {i + 1}: value")
        f["claim_direction"] = select([(d, DIRECTION_LABELS[d]) for d in DIRECTIONS], "Claim: the estimate …")
        f["claim_value"] = text("Claim: value", "The value your finding claims the estimate is above, below or "
                                                "different from (a ratio: a positive number, 1 = no effect).")
        f["epsilon"] = text("ε to spend", "Privacy budget this answer costs (the preview is free).")

    @staticmethod
    def _levels(column) -> list[tuple[str, str]]:
        if column.type == "event":
            return [("0", "0 (no event)"), ("1", "1 (event)")]
        return [(c, c) for c in column.categories]

    # ------------------------------------------------------------------ to the hypothesis format
    def _category(self, column: str, text: str) -> Any:
        if column in self.schema and self.schema[column].type == "event" and re.fullmatch(r"-?\d+", text.strip()):
            return int(text)
        return text

    def _filter_value(self, column: str, text: str) -> Any:
        if column in self.schema and self.schema[column].is_numeric:
            return _number(text.strip())
        return self._category(column, text.strip())

    def _level(self, prefix: str) -> dict[str, Any] | None:
        column = self.cleaned_data.get(f"{prefix}_column", "")
        if not column:
            return None
        level: dict[str, Any] = {"column": column}
        value = self.cleaned_data.get(f"{prefix}_value", "")
        if value != "":
            level["value"] = self._category(column, value)
        return level

    def _pair(self) -> dict[str, Any] | None:
        d = self.cleaned_data
        if not d.get("group_column"):
            return None
        return {"column": d["group_column"],
                "a": self._category(d["group_column"], d["group_a"]) if d.get("group_a") else None,
                "b": self._category(d["group_column"], d["group_b"]) if d.get("group_b") else None}

    def params(self) -> dict[str, Any]:
        d = self.cleaned_data
        kind = d.get("kind", "")
        wanted = KIND_FIELDS.get(kind, [])
        params: dict[str, Any] = {}
        if "column" in wanted and d.get("column"):
            params["column"] = d["column"]
        if "value" in wanted and d.get("value"):
            params["value"] = self._category(d.get("column", ""), d["value"])
        for name in ("q", "time"):
            if name in wanted and d.get(name, "").strip():
                params[name] = _number(d[name].strip())
        for name in ("x", "y"):
            if name in wanted and d.get(name):
                params[name] = d[name]
        if "group_a" in wanted and (pair := self._pair()) is not None:
            params["group"] = pair
        if "group_value" in wanted and (level := self._level("group")) is not None:
            params["group"] = level
        for prefix in ("a", "b", "outcome", "exposure"):
            if f"{prefix}_column" in wanted and (level := self._level(prefix)) is not None:
                params[prefix] = level
        if "adjust_for" in wanted and d.get("adjust_for"):
            params["adjust_for"] = list(d["adjust_for"])
        return params

    def where(self) -> tuple[list[dict[str, Any]], list[int]]:
        """The filters given, and for each the form row it came from (to place a refusal)."""
        d = self.cleaned_data
        where, rows = [], []
        for i in range(WHERE_ROWS):
            column = d.get(f"where_column_{i}", "")
            if not column:
                continue
            op = d.get(f"where_op_{i}") or "=="
            text = d.get(f"where_value_{i}", "")
            value = ([self._filter_value(column, part) for part in text.split(",") if part.strip()] if op == "in"
                     else self._filter_value(column, text))
            where.append({"column": column, "op": op, "value": value})
            rows.append(i)
        return where, rows

    def hypothesis(self, release_id: int) -> dict[str, Any]:
        """The hypothesis as the API takes it (``POST /api/v1/verifications/``)."""
        d = self.cleaned_data
        where, self.where_rows = self.where()
        raw: dict[str, Any] = {"release": release_id, "kind": d.get("kind", ""), "params": self.params(),
                               "where": where}
        if d.get("claim_value", "").strip():
            raw["claim"] = {"direction": d.get("claim_direction") or "greater",
                            "value": _number(d["claim_value"].strip())}
        if d.get("epsilon", "").strip():
            raw["epsilon"] = _number(d["epsilon"].strip())
        return raw

    def add_service_error(self, code: str, message: str) -> str | None:
        """Show a service's refusal at the field it names (else above the form); returns the field."""
        name, text = field_for_error(code, message, getattr(self, "where_rows", []))
        if name is not None and name not in self.fields:
            name, text = None, message
        self.add_error(name, text)
        return name


_PATH = re.compile(r"^(?P<path>[A-Za-z_][\w.\[\]]*): (?P<text>.+)$", re.S)


def field_for_error(code: str, message: str, where_rows: list[int] | None = None) -> tuple[str | None, str]:
    """The form field a service message names (``None``: the whole form) and the message without its path."""
    if code in ("budget_exhausted", "epsilon_above_maximum", "bad_epsilon") and not message.startswith("epsilon:"):
        return "epsilon", message
    if code == "kind_not_available":
        return "kind", message
    match = _PATH.match(message)
    if match is None:
        return None, message
    path, text = match["path"], match["text"]
    if (filt := re.match(r"^where\[(\d+)\](?:\.(column|op|value))?", path)) is not None:
        index = int(filt[1])
        row = (where_rows or [])[index] if index < len(where_rows or []) else index
        return f"where_{filt[2] or 'column'}_{row}", text
    head, *rest = path.split(".")
    if head == "claim":
        return ("claim_direction" if rest[:1] == ["direction"] else "claim_value"), text
    if head in ("epsilon", "kind"):
        return head, text
    if head == "params" and rest:
        name = re.sub(r"\[\d+\]", "", rest[0])
        if name in ("column", "value", "q", "x", "y", "time", "adjust_for"):
            return name, text
        if name in ("group", "a", "b", "outcome", "exposure"):
            sub = re.sub(r"\[\d+\]", "", rest[1]) if len(rest) > 1 else "column"
            if name == "group" and sub == "value":
                return "group_value", text
            return f"{name}_{sub if sub in ('column', 'value', 'a', 'b') else 'column'}", text
    return None, message
