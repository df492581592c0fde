"""The dataset schema: public column types, bounds and categories. Pure Python, no Django.

The schema is the custodian's public declaration. Generators clip to its bounds and
the DP engine clamps to them, so bounds are never read off the data at query time.
See docs/schema.md for the format.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Column", "ColumnType", "Schema", "SchemaError", "Survival"]

ColumnType = Literal["identifier", "continuous", "integer", "categorical", "duration", "event"]
NUMERIC_TYPES = ("continuous", "integer", "duration")
_TYPES = ("identifier", "continuous", "integer", "categorical", "duration", "event")
_COMMON_KEYS = {"name", "type", "nullable", "description"}
_KEYS_BY_TYPE = {
    "identifier": set(),
    "continuous": {"min", "max"},
    "integer": {"min", "max"},
    "duration": {"min", "max"},
    "categorical": {"categories"},
    "event": set(),
}
MAX_COLUMNS = 500
MAX_CATEGORIES = 1000

#: Text a spreadsheet would run as a formula when it opens a release's data.csv: a category or a column name
#: (the CSV's header) starting with = + - or @ (tab and CR are already refused as surrounding spaces).
#: A plain number such as "-1" or "+2.5" is a number to a spreadsheet, not a formula, and is allowed.
#: Refused at upload rather than escaped in the release, so that a value is the same in the CSV, the Parquet,
#: the datasheet and a verification's ``where`` (issue 14, finding 2; docs/privacy.md).
_FORMULA_LEADS = ("=", "+", "-", "@")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def _formula_like(text: str) -> bool:
    return text.startswith(_FORMULA_LEADS) and not _PLAIN_NUMBER.fullmatch(text)


class SchemaError(ValueError):
    """The schema is not valid. ``problems`` lists each one as ``path: reason``."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    description: str = ""

    @property
    def is_numeric(self) -> bool:
        return self.type in NUMERIC_TYPES

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.is_numeric:
            out["min"], out["max"] = _plain_number(self.min), _plain_number(self.max)
        if self.type == "categorical":
            out["categories"] = list(self.categories)
        if self.nullable:
            out["nullable"] = True
        if self.description:
            out["description"] = self.description
        return out


@dataclass(frozen=True)
class Survival:
    duration: str
    event: str


@dataclass(frozen=True)
class Schema:
    columns: tuple[Column, ...]
    survival: Survival | None = None
    _by_name: dict[str, Column] = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def __getitem__(self, name: str) -> Column:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @property
    def kept(self) -> tuple[Column, ...]:
        """The columns that are stored (identifiers are dropped at import)."""
        return tuple(c for c in self.columns if c.type != "identifier")

    @property
    def identifiers(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.type == "identifier")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"columns": [c.to_dict() for c in self.columns]}
        if self.survival:
            out["survival"] = {"duration": self.survival.duration, "event": self.survival.event}
        return out

    @classmethod
    def from_dict(cls, raw: Any) -> "Schema":
        """Parse and check a schema; raises :class:`SchemaError` listing every problem found."""
        problems: list[str] = []
        if not isinstance(raw, dict):
            raise SchemaError(["schema: must be a JSON object with 'columns' (and optionally 'survival')"])
        for key in sorted(set(raw) - {"columns", "survival"}):
            problems.append(f"{key}: unknown key (allowed: columns, survival)")
        raw_columns = raw.get("columns")
        if not isinstance(raw_columns, list) or not raw_columns:
            raise SchemaError(problems + ["columns: must be a non-empty list"])
        if len(raw_columns) > MAX_COLUMNS:
            raise SchemaError(problems + [f"columns: at most {MAX_COLUMNS} columns"])
        columns: list[Column] = []
        seen: set[str] = set()
        for index, item in enumerate(raw_columns):
            column = _parse_column(item, f"columns[{index}]", problems)
            if column is None:
                continue
            if column.name in seen:
                problems.append(f"columns[{index}].name: duplicate column name {column.name!r}")
                continue
            seen.add(column.name)
            columns.append(column)
        survival = None
        if "survival" in raw and raw["survival"] is not None:
            survival = _parse_survival(raw["survival"], {c.name: c for c in columns}, problems)
        if columns and not any(c.type != "identifier" for c in columns):
            problems.append("columns: every column is an identifier; nothing would be stored")
        if problems:
            raise SchemaError(problems)
        return cls(columns=tuple(columns), survival=survival)


def _plain_number(value: float | None) -> float | int | None:
    if value is not None and float(value).is_integer():
        return int(value)
    return value


def _number(value: Any, path: str, problems: list[str], *, integral: bool) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{path}: must be a number")
        return None
    try:
        finite = math.isfinite(value)
    except OverflowError:  # a JSON integer too large for a float (1000…0 with 400 digits)
        finite = False
    if not finite:
        problems.append(f"{path}: must be finite")
        return None
    if integral and not float(value).is_integer():
        problems.append(f"{path}: must be a whole number for an integer column")
        return None
    return float(value)


def _parse_column(item: Any, path: str, problems: list[str]) -> Column | None:
    if not isinstance(item, dict):
        problems.append(f"{path}: must be an object with 'name' and 'type'")
        return None
    name, ctype = item.get("name"), item.get("type")
    if not isinstance(name, str) or not name.strip() or len(name) > 64 or name != name.strip():
        problems.append(f"{path}.name: must be a non-empty string of at most 64 characters, without surrounding spaces")
        return None
    if _formula_like(name):
        problems.append(f"{path}.name: must not start with =, +, - or @ (a spreadsheet would run it as a formula)")
        return None
    if ctype not in _TYPES:
        problems.append(f"{path}.type: {ctype!r} is not one of {', '.join(_TYPES)}")
        return None
    allowed = _COMMON_KEYS | _KEYS_BY_TYPE[ctype]
    for key in sorted(set(item) - allowed):
        problems.append(f"{path}.{key}: not allowed for a {ctype} column (allowed: {', '.join(sorted(allowed))})")
    nullable = item.get("nullable", False)
    if not isinstance(nullable, bool):
        problems.append(f"{path}.nullable: must be true or false")
        nullable = False
    description = item.get("description", "")
    if not isinstance(description, str):
        problems.append(f"{path}.description: must be a string")
        description = ""
    lo = hi = None
    categories: tuple[str, ...] = ()
    if ctype in NUMERIC_TYPES:
        for key in ("min", "max"):
            if key not in item:
                problems.append(f"{path}.{key}: required for a {ctype} column (bounds are public and used for clamping)")
        lo = _number(item["min"], f"{path}.min", problems, integral=ctype == "integer") if "min" in item else None
        hi = _number(item["max"], f"{path}.max", problems, integral=ctype == "integer") if "max" in item else None
        if lo is not None and hi is not None and lo >= hi:
            problems.append(f"{path}: min ({_plain_number(lo)}) must be below max ({_plain_number(hi)})")
        if ctype == "duration" and lo is not None and lo < 0:
            problems.append(f"{path}.min: a duration cannot be negative")
    elif ctype == "categorical":
        raw_categories = item.get("categories")
        if not isinstance(raw_categories, list) or not raw_categories:
            problems.append(f"{path}.categories: required, a non-empty list of strings")
        else:
            parsed = []
            for position, value in enumerate(raw_categories):
                if isinstance(value, int) and not isinstance(value, bool):
                    value = str(value)  # ["1", "2"] written as [1, 2]
                if not isinstance(value, str) or not value.strip() or value != value.strip():
                    problems.append(f"{path}.categories[{position}]: must be a non-empty string without surrounding spaces")
                    continue
                if _formula_like(value):
                    problems.append(f"{path}.categories[{position}]: must not start with =, +, - or @ unless it is a "
                                    "plain number (a spreadsheet would run it as a formula)")
                    continue
                parsed.append(value)
            if len(set(parsed)) != len(parsed):
                problems.append(f"{path}.categories: has duplicates")
            if len(parsed) > MAX_CATEGORIES:
                problems.append(f"{path}.categories: at most {MAX_CATEGORIES} categories")
            categories = tuple(parsed)
    return Column(name=name, type=ctype, min=lo, max=hi, categories=categories, nullable=nullable,
                  description=description)


def _parse_survival(raw: Any, columns: dict[str, Column], problems: list[str]) -> Survival | None:
    if not isinstance(raw, dict) or set(raw) != {"duration", "event"}:
        problems.append("survival: must be an object with exactly 'duration' and 'event'")
        return None
    ok = True
    for key, wanted in (("duration", "duration"), ("event", "event")):
        name = raw[key]
        column = columns.get(name) if isinstance(name, str) else None
        if column is None:
            problems.append(f"survival.{key}: names unknown column {name!r}")
            ok = False
        elif column.type != wanted:
            problems.append(f"survival.{key}: column {name!r} has type {column.type}, not {wanted}")
            ok = False
        elif column.nullable:
            problems.append(f"survival.{key}: column {name!r} cannot be nullable")
            ok = False
    return Survival(duration=raw["duration"], event=raw["event"]) if ok else None
