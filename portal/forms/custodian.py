"""The custodian's forms: they type and shape what was posted; the services decide what is allowed.

Each form's fields are named after the service argument (or the API's JSON field) they feed, so that a
service's ``invalid_<name>`` refusal lands on the field of that name (:func:`add_service_error`).
"""

from __future__ import annotations

from typing import Any

import yaml
from django import forms

from clearinghouse.api.parsers import MAX_JSON_DEPTH, JsonTooDeep
from clearinghouse.api.parsers import loads as json_loads
from clearinghouse.errors import ApplicationError
from generators.core.models import MODELS
from generators.models import GeneratorRun

__all__ = ["AllocationForm", "PolicyForm", "PublishForm", "ReleaseForm", "TrainForm", "UploadForm",
           "add_service_error"]

MAX_SCHEMA_BYTES = 1024 * 1024  # as the API's JsonDocumentField


def add_service_error(form: forms.Form, exc: ApplicationError, *, fields: dict[str, str] | None = None) -> None:
    """Put a service's refusal on the field it is about: ``fields`` maps error codes to field names, and a
    code ``invalid_<name>`` goes to the field ``<name>``; anything else is a form-wide error."""
    target = (fields or {}).get(exc.code)
    if target is None and exc.code.startswith("invalid_") and exc.code[len("invalid_"):] in form.fields:
        target = exc.code[len("invalid_"):]
    form.add_error(target, forms.ValidationError(exc.message, code=exc.code))


def parse_schema_text(text: str) -> Any:
    """A schema written as YAML or JSON (JSON is YAML); raises ValidationError with the parser's position."""
    if len(text.encode("utf-8")) > MAX_SCHEMA_BYTES:
        raise forms.ValidationError(f"The schema is larger than {MAX_SCHEMA_BYTES} bytes.", code="invalid_schema")
    try:
        _check_yaml_depth(text)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1} column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "unreadable"
        raise forms.ValidationError(f"The schema is not valid YAML or JSON: {problem}{where}.",
                                    code="invalid_schema") from None


def _check_yaml_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a document nested deeper than ``limit`` before it is composed: PyYAML's composer (like
    ``json``) recurses per level, so ``[[[…`` or ``- - - …`` would be a RecursionError. Its parser is not
    recursive: the events are counted in one pass."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > limit:
                mark = event.start_mark
                raise forms.ValidationError(
                    f"The schema is nested deeper than {limit} levels (line {mark.line + 1} column {mark.column + 1}).",
                    code="invalid_schema")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def draft_text(schema: dict) -> str:
    """A draft schema as YAML for the custodian to read and edit."""
    return yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


class UploadForm(forms.Form):
    """Step 1: a CSV (and a schema file, or nothing: a draft is inferred). Step 2: the same CSV chosen
    again (the browser keeps it; the server keeps nothing between the steps) with the reviewed schema."""

    slug = forms.SlugField(max_length=64, help_text="The dataset's address, e.g. <code>gbsg2</code>.")
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    file = forms.FileField(label="CSV file", allow_empty_file=True,
                           help_text="UTF-8 CSV with a header row. Identifier columns are dropped before storage.")
    schema_file = forms.FileField(label="Schema file (optional)", required=False,
                                  help_text="JSON or YAML. Leave empty, and leave the text below empty, to get a "
                                            "draft inferred from the CSV to review.")
    schema = forms.CharField(label="Schema (YAML or JSON)", required=False,
                             widget=forms.Textarea(attrs={"rows": 18, "spellcheck": "false", "class": "code"}),
                             help_text="Check each column's type, bounds and categories: the bounds are public.")

    def schema_document(self) -> Any | None:
        """The schema from the text area, else from the schema file; None when neither was given.
        Adds a field error and returns None when it cannot be read."""
        text = self.cleaned_data.get("schema") or ""
        source = "schema"
        if not text.strip() and self.cleaned_data.get("schema_file"):
            upload = self.cleaned_data["schema_file"]
            source = "schema_file"
            if upload.size > MAX_SCHEMA_BYTES:
                self.add_error(source, f"The schema file is larger than {MAX_SCHEMA_BYTES} bytes.")
                return None
            try:
                text = upload.read().decode("utf-8-sig")
            except UnicodeDecodeError:
                self.add_error(source, "The schema file is not UTF-8 text.")
                return None
        if not text.strip():
            return None
        try:
            return parse_schema_text(text)
        except forms.ValidationError as exc:
            self.add_error(source, exc)
            return None


DEVICES = {"auto": "Automatic (a GPU when the worker has one)", "cpu": "CPU", "cuda": "GPU (CUDA)"}


class TrainForm(forms.Form):
    model = forms.ChoiceField(choices=[(name, name) for name in sorted(MODELS)], initial="copula",
                              help_text="copula: seconds; ctgan and flow: neural networks, minutes to hours.")
    epochs = forms.IntegerField(min_value=1, initial=300, required=False,
                                help_text="ctgan and flow train by epochs; the copula has none (leave it empty).")
    seed = forms.IntegerField(min_value=0, initial=0)
    device = forms.ChoiceField(choices=[(value, DEVICES.get(value, label))
                                        for value, label in GeneratorRun.Device.choices],
                               initial=GeneratorRun.Device.AUTO)


class ReleaseForm(forms.Form):
    """The four kinds of release, as the ``conditions`` argument of ``release_create``."""

    KINDS = [("plain", "Plain: as many rows as you ask, like the cohort"),
             ("augmented", "Augmented: more rows than the real cohort"),
             ("conditional", "Conditional: only rows with one column at one value"),
             ("rebalanced", "Rebalanced: a column's levels in the shares you set")]

    rows = forms.IntegerField(min_value=1)
    seed = forms.IntegerField(min_value=0, initial=0)
    kind = forms.ChoiceField(choices=KINDS, initial="plain", widget=forms.RadioSelect)
    column = forms.ChoiceField(required=False, help_text="For a conditional or rebalanced release.")
    value = forms.CharField(required=False, max_length=200, help_text="Conditional: the level, e.g. <code>yes</code>.")
    shares = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Rebalanced: one <code>level: share</code> per line, e.g. "
                                       "<code>yes: 0.5</code> and <code>no: 0.5</code>.")

    def __init__(self, *args, schema: dict, cohort_rows: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.cohort_rows = cohort_rows
        self.levels: dict[str, list] = {}
        for column in schema.get("columns", []):
            if column.get("type") == "categorical":
                self.levels[column["name"]] = list(column.get("categories", []))
            elif column.get("type") == "event":
                self.levels[column["name"]] = [0, 1]
        self.fields["column"].choices = [("", "—")] + [(name, name) for name in self.levels]
        self.fields["rows"].initial = cohort_rows

    def _level(self, column: str, text: str) -> Any:
        """The posted text as the schema's level (an event's 0/1 as a number)."""
        for level in self.levels.get(column, []):
            if str(level) == text:
                return level
        return text  # unknown: the service names the problem

    def clean(self):
        data = super().clean()
        kind, column, rows = data.get("kind"), data.get("column") or "", data.get("rows")
        conditions: dict | None = None
        if kind == "augmented" and rows is not None and rows <= self.cohort_rows:
            self.add_error("rows", f"An augmented release has more rows than the real cohort ({self.cohort_rows}).")
        if kind in ("conditional", "rebalanced") and not column:
            self.add_error("column", "Choose the column to condition on.")
        if kind == "conditional" and column:
            value = (data.get("value") or "").strip()
            if not value:
                self.add_error("value", f"Give the level of {column} every row should have.")
            else:
                conditions = {column: self._level(column, value)}
        if kind == "rebalanced" and column:
            shares: dict[Any, float] = {}
            text = (data.get("shares") or "").strip()
            try:
                loaded = json_loads(text) if text.startswith("{") else None
            except JsonTooDeep as exc:
                self.add_error("shares", str(exc))
                return data
            except ValueError:  # not JSON: read as 'level: share' lines
                loaded = None
            if isinstance(loaded, dict):
                items = [(str(k), str(v)) for k, v in loaded.items()]
            else:
                items = []
                for line in text.replace(",", "\n").splitlines():
                    if line.strip():
                        level, sep, share = line.partition(":")
                        if not sep:
                            self.add_error("shares", f"Write each line as 'level: share', not {line.strip()!r}.")
                            return data
                        items.append((level.strip(), share.strip()))
            for level, share in items:
                try:
                    shares[self._level(column, level)] = float(share)
                except ValueError:
                    self.add_error("shares", f"The share of {level!r} must be a number, not {share!r}.")
                    return data
            if not shares:
                self.add_error("shares", "Give at least two levels with their shares.")
            else:
                conditions = {column: shares}
        data["conditions"] = conditions
        return data


class PublishForm(forms.Form):
    justification = forms.CharField(
        label="Written override (only when a gate fails)", required=False, max_length=4000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Why publishing is acceptable although a gate failed. It is kept on the release, shown to "
                  "researchers and written to the audit log.")

    def override(self) -> dict | None:
        text = (self.cleaned_data.get("justification") or "").strip()
        return {"justification": text} if text else None


class PolicyForm(forms.Form):
    """``policy_set``'s fields; ε as decimal text (the service checks places and bounds)."""

    total_cap = forms.CharField(label="Total ε for the dataset", max_length=40)
    default_allocation = forms.CharField(label="Default ε per researcher", max_length=40)
    max_epsilon_per_query = forms.CharField(label="Most ε per hypothesis", max_length=40)
    min_subgroup = forms.IntegerField(label="Smallest subgroup answered", min_value=1)
    daily_limit = forms.IntegerField(label="Verifications per researcher per day (optional)", min_value=1,
                                     required=False)

    def changes(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in self.fields}


class AllocationForm(forms.Form):
    researcher = forms.TypedChoiceField(coerce=int)
    epsilon = forms.CharField(label="ε allocation", max_length=40)

    def __init__(self, *args, researchers, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["researcher"].choices = [(u.pk, u.username) for u in researchers]
