"""Reading a real-data CSV against its schema, and drafting a schema. Pure pandas, no Django.

Refusal reports name the row, the column and the reason, never the cell's value:
a report must not echo real data back, not even to the uploader's screen.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from clearinghouse.schema import MAX_COLUMNS, Column, Schema

__all__ = ["CellFailure", "TableError", "infer_schema", "read_csv_checked", "MISSING_TOKENS"]

MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none"})

#: A header refusal names at most this many columns per list, each cut to ``_NAME_SHOWN`` characters,
#: so that a hostile header (10^5 columns, long names) gets a refusal of a few kB, not one as big as itself.
_NAMES_LISTED = 20
_NAME_SHOWN = 64


@dataclass(frozen=True)
class CellFailure:
    row: int  # 1-based data row (the header is not counted)
    column: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "reason": self.reason}


class TableError(ValueError):
    """The file was refused. ``failures`` lists the first failing cells, ``counts`` the totals per column."""

    def __init__(self, message: str, *, failures: list[CellFailure] | None = None,
                 counts: dict[str, int] | None = None, code: str = "invalid_csv"):
        super().__init__(message)
        self.message = message
        self.failures = failures or []
        self.counts = counts or {}
        self.code = code

    def details(self) -> dict[str, Any]:
        return {"failures": [f.to_dict() for f in self.failures], "failure_counts": self.counts}


def _nul_error(offset: int) -> TableError:
    # pandas' C parser ends a field at a NUL byte, silently truncating the value ("7\x000" reads as 7).
    return TableError(f"The file contains a NUL byte (at offset {offset}); it is not a text CSV.",
                      code="wrong_encoding")


def _encoding_error(offset: int) -> TableError:
    return TableError(
        f"The file is not UTF-8 text (undecodable byte at offset {offset}); save it as UTF-8 CSV.",
        code="wrong_encoding",
    )


#: Rows parsed and checked at a time by :func:`read_csv_checked` (module-level so that tests can lower it).
CHUNK_ROWS = 50_000
#: Bytes read from the source at a time.
READ_BYTES = 256 * 1024

#: What :func:`read_csv_checked` reads: bytes, a seekable binary file object (an uploaded file), or a path.
Source = bytes | bytearray | BinaryIO | os.PathLike


class _TextCursor(io.TextIOBase):
    """UTF-8 text of a seekable binary file, decoded block by block from its start, as the whole
    file was decoded before streaming: one leading byte order mark skipped, an undecodable byte or a NUL refused (with its
    byte offset in the file, or its character offset in the text), a multi-byte character split across two
    blocks joined. Several cursors may read the same file object: each seeks to its own position first.

    ``digest`` (e.g. ``hashlib.sha256()``) is fed every byte of the file once, in order, as it is read."""

    def __init__(self, file: BinaryIO, digest=None):
        super().__init__()
        self._file, self._digest = file, digest
        self._read = 0  # bytes read from the file
        self._offset = 0  # the file offset of self._pending's first byte
        self._pending = b""  # bytes read but not decoded yet (a split character, or a short start)
        self._chars = 0  # characters decoded so far (after the byte order mark)
        self._started = self._eof = False
        self._buffer = ""

    def readable(self) -> bool:
        return True

    def _block(self) -> str:
        """The next decoded block; "" only at the end of the file."""
        while not self._eof:
            self._file.seek(self._read)
            raw = self._file.read(READ_BYTES)
            self._read += len(raw)
            if self._digest is not None and raw:
                self._digest.update(raw)
            final = not raw
            data = self._pending + raw if self._pending else raw
            skip = 0
            if not self._started:
                if len(data) < len(codecs.BOM_UTF8) and not final:
                    self._pending = data
                    continue
                self._started = True
                skip = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
            try:
                text, used = codecs.utf_8_decode(data[skip:] if skip else data, "strict", final)
            except UnicodeDecodeError as exc:
                raise _encoding_error(self._offset + skip + exc.start) from None
            self._offset += skip + used
            self._pending = data[skip + used:]
            self._eof = final
            nul = text.find("\x00")
            if nul >= 0:
                raise _nul_error(self._chars + nul)
            self._chars += len(text)
            if text:
                return text
        return ""

    def read(self, size: int | None = -1) -> str:
        """At most ``size`` characters (fewer before the end is allowed, as for a raw stream); all if negative."""
        if size is None or size < 0:
            parts = [self._buffer, *iter(self._block, "")]
            self._buffer = ""
            return "".join(parts)
        if not self._buffer:
            self._buffer = self._block()
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def lines(self) -> Iterator[str]:
        """Lines split at "\\n" only, as ``io.StringIO(text)`` iterates them (for the csv module)."""
        tail = ""
        for block in iter(lambda: self.read(READ_BYTES), ""):
            parts = (tail + block).split("\n")
            tail = parts.pop()
            for part in parts:
                yield part + "\n"
        if tail:
            yield tail

    def drain(self) -> None:
        """Read (check, and feed the digest) whatever is left."""
        self._buffer = ""
        while self._block():
            pass


def _rows(cursor: _TextCursor) -> Iterator[list[str]]:
    """The csv module's records, blank lines left out (pandas skips them too)."""
    return (record for record in csv.reader(cursor.lines()) if record)


def _first_long_line(cursor: _TextCursor, n_fields: int) -> tuple[int, int]:
    """The line number and width of the first row with more fields than the header (for the error message)."""
    reader = csv.reader(cursor.lines())
    for row in reader:
        if len(row) > n_fields:
            return reader.line_num, len(row)
    return 2, n_fields + 1  # pragma: no cover - only called when pandas or csv saw such a row


def _read_header(open_cursor, schema: Schema | None) -> list[str]:
    """The header, checked (its width, and against ``schema`` if given) before pandas reads a single row,
    so that a hostile header costs one linear pass."""
    if not any(block.strip() for block in iter(open_cursor()._block, "")):
        raise TableError("The file is empty.", code="empty_file")
    try:
        header = next(csv.reader(open_cursor().lines()))
    except csv.Error as exc:
        raise TableError(f"The header line is not valid CSV: {exc}.", code="malformed_csv") from None
    header = [h.strip() for h in header]
    if len(header) > MAX_COLUMNS:
        raise TableError(f"The header has {len(header)} columns; a dataset has at most {MAX_COLUMNS}.",
                         code="bad_header")
    if schema is not None:
        _check_header(header, schema)
    return header


def _string_chunks(file: BinaryIO, schema: Schema | None = None, *,
                   digest=None) -> tuple[list[str], Iterator[pd.DataFrame]]:
    """The header, and the cells as strings in frames of at most ``CHUNK_ROWS`` rows (index: the global
    0-based data row). A short row's missing cells are NaN (pandas pads them with "", like an empty field).
    Structural problems (encoding, malformed CSV) raise :class:`TableError` when the chunk holding them is read."""
    header = _read_header(lambda: _TextCursor(file), schema)
    main = _TextCursor(file, digest)
    try:
        reader = pd.read_csv(main, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=False,
                             engine="c", chunksize=CHUNK_ROWS)
    except pd.errors.EmptyDataError:
        raise TableError("The file has no header line.", code="empty_file") from None
    except pd.errors.ParserError as exc:
        raise TableError(f"The file is not well-formed CSV: {str(exc).strip()}.", code="malformed_csv") from None

    def chunks() -> Iterator[pd.DataFrame]:
        # The csv module's record widths, read in step with pandas: pandas pads a short row with "" (like an
        # empty field), and does not check the width of the first row of a chunk after the first (it drops
        # the extra fields), so both are told from these widths.
        widths = (len(record) for record in _rows(_TextCursor(file)))
        next(widths, None)  # the header
        iterator = iter(reader)
        while True:
            try:
                frame = next(iterator)
            except StopIteration:
                break
            except pd.errors.ParserError as exc:
                # e.g. "Error tokenizing data. C error: Expected 6 fields in line 9, saw 7" (no cell values)
                raise TableError(f"The file is not well-formed CSV: {str(exc).strip()}.",
                                 code="malformed_csv") from None
            try:
                counts = np.fromiter(widths, dtype=np.int64, count=len(frame))
            except (ValueError, csv.Error):  # pragma: no cover - pandas and csv disagree on the row split
                raise TableError("The file is not well-formed CSV: its rows could not be told apart.",
                                 code="malformed_csv") from None
            if not isinstance(frame.index, pd.RangeIndex) or (counts > len(header)).any():
                # When the first data row has more fields than the header, pandas silently takes the first
                # column(s) as the index and shifts every value one column to the right; when a later
                # chunk's first row has, it silently drops the extra fields.
                line, width = _first_long_line(_TextCursor(file), len(header))
                raise TableError(f"The file is not well-formed CSV: Expected {len(header)} fields in line {line}, "
                                 f"saw {width}.", code="malformed_csv")
            frame.columns = header
            _mark_short_rows(counts, frame)
            yield frame
            del frame  # not held while the next chunk is read
        main.drain()

    return header, chunks()


def _mark_short_rows(widths: np.ndarray, frame: pd.DataFrame) -> None:
    """Set the cells a short row does not have to NaN."""
    if len(widths) != len(frame):  # pragma: no cover - pandas and csv disagree on the row split
        raise TableError("The file is not well-formed CSV: its rows could not be told apart.", code="malformed_csv")
    for position in range(frame.shape[1]):
        short = widths <= position
        if short.any():
            frame.iloc[short, position] = np.nan


def _read_strings(data: bytes, schema: Schema | None = None) -> tuple[list[str], pd.DataFrame]:
    """The header and every cell as strings, in one frame (for drafting a schema)."""
    header, chunks = _string_chunks(io.BytesIO(data), schema)
    frames = list(chunks)
    if not frames:  # pragma: no cover - pandas gives a header-only file one empty frame
        return header, pd.DataFrame(columns=header, dtype=object)
    return header, frames[0] if len(frames) == 1 else pd.concat(frames)


@contextlib.contextmanager
def _opened(source: Source) -> Iterator[BinaryIO]:
    """A seekable binary file object for ``source`` (bytes wrapped, a path opened and closed again)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield io.BytesIO(source)
    elif isinstance(source, os.PathLike):
        with open(source, "rb") as handle:
            yield handle
    else:
        position = source.tell()
        try:
            yield source
        finally:
            source.seek(position)


def _listed(names: list[str]) -> str:
    """At most ``_NAMES_LISTED`` names, each at most ``_NAME_SHOWN`` characters, and how many were left out."""
    shown = [n if len(n) <= _NAME_SHOWN else n[:_NAME_SHOWN] + "…" for n in names[:_NAMES_LISTED]]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" (and {more} more)" if more else "")


def _check_header(header: list[str], schema: Schema) -> None:
    """Linear in the header's width (one Counter, set lookups): never ``header.count`` per column."""
    counts = Counter(header)
    duplicates = sorted(h for h, n in counts.items() if n > 1)
    if duplicates:
        raise TableError(f"The header repeats column(s): {_listed(duplicates)}.", code="bad_header")
    expected = [c.name for c in schema.columns]
    expected_set = set(expected)
    missing = [name for name in expected if name not in counts]
    extra = [name for name in header if name not in expected_set]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {_listed(missing)}")
        if extra:
            parts.append(f"column(s) not in the schema {_listed(extra)}")
        raise TableError("The header does not match the schema: " + "; ".join(parts) + ".", code="bad_header")


def _fmt(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def _check_column(raw: pd.Series, column: Column) -> tuple[pd.Series, list[tuple[np.ndarray, str]]]:
    """Typed values and, for each reason, the positions of the failing cells.

    Each distinct cell string is stripped, classified and parsed once (``pd.factorize``), then mapped back
    to its rows: a column of few distinct values (categories, small whole numbers) costs one hash pass."""
    codes, uniques = pd.factorize(raw.to_numpy(dtype=object), use_na_sentinel=True)
    short = codes < 0  # pandas pads short rows with NaN (see _mark_short_rows)
    any_short = bool(short.any())

    def rows(per_value: np.ndarray, fill) -> np.ndarray:
        """A value per row from one per distinct string; ``fill`` for the cells a short row lacks."""
        return np.append(per_value, fill)[codes] if any_short else per_value[codes]

    text = pd.Series(uniques, dtype=object).str.strip()
    missing_values = text.str.lower().isin(MISSING_TOKENS).to_numpy()
    if column.type == "categorical":
        missing_values &= ~text.isin(column.categories).to_numpy()  # a declared category "NA" is a value, not a gap
    missing = rows(missing_values, False)
    failures: list[tuple[np.ndarray, str]] = []
    if any_short:
        failures.append((np.flatnonzero(short), "the row has fewer fields than the header"))
    if column.type == "identifier":  # dropped on import: only the row's shape matters
        return raw, failures
    if not column.nullable and missing.any():
        failures.append((np.flatnonzero(missing), "missing value in a column that is not nullable"))
    present = ~missing & ~short
    if column.type == "categorical":
        category_codes = pd.Categorical(text, categories=list(column.categories)).codes  # -1: not a category
        value_codes = rows(category_codes, -1)
        bad = present & (value_codes < 0)
        if bad.any():
            failures.append((np.flatnonzero(bad), f"not one of the declared categories ({', '.join(column.categories)})"))
        values = pd.Categorical.from_codes(value_codes, categories=list(column.categories))
        return pd.Series(values, index=raw.index), failures
    parsed = pd.to_numeric(text.where(~missing_values), errors="coerce").to_numpy()
    numbers = pd.Series(rows(parsed, np.nan), index=raw.index)  # NaN where missing or short
    not_number = present & numbers.isna().to_numpy()
    if not_number.any():
        failures.append((np.flatnonzero(not_number), "not a number"))
    finite = present & ~not_number
    not_finite = finite & ~np.isfinite(numbers.fillna(0.0).to_numpy())
    if not_finite.any():
        failures.append((np.flatnonzero(not_finite), "not a finite number"))
    finite &= ~not_finite
    if column.type == "event":
        bad = finite & ~numbers.isin([0, 1]).to_numpy()
        if bad.any():
            failures.append((np.flatnonzero(bad), "an event must be 0 (censored) or 1 (event)"))
        # Cast only the valid cells: 0.5 or 1e30 cannot become Int8 (the frame is discarded on failure anyway).
        return numbers.where(finite & ~bad).astype("Int8"), failures
    if column.type == "integer":
        bad = finite & (numbers != np.round(numbers)).to_numpy()
        if bad.any():
            failures.append((np.flatnonzero(bad), "not a whole number"))
        finite &= ~bad
    below = finite & (numbers < column.min).to_numpy()
    above = finite & (numbers > column.max).to_numpy()
    if below.any():
        failures.append((np.flatnonzero(below), f"below the schema's minimum {_fmt(column.min)}"))
    if above.any():
        failures.append((np.flatnonzero(above), f"above the schema's maximum {_fmt(column.max)}"))
    if column.type == "integer":
        # Only in-bounds whole numbers are cast: 70.5 or 1e30 cannot become Int64.
        return numbers.where(finite & ~below & ~above).astype("Int64"), failures
    return numbers.astype("float64"), failures


def read_csv_checked(data: Source, schema: Schema, *, max_failures: int = 20, digest=None) -> pd.DataFrame:
    """Parse ``data`` and check every row against ``schema``; all or nothing.

    ``data`` is bytes, a seekable binary file object (read from its start; its position is restored) or a
    path. It is parsed and checked ``CHUNK_ROWS`` rows at a time, so that only the typed columns of the
    whole file are held, never all its cells as strings. ``digest`` (e.g. ``hashlib.sha256()``) is fed
    every byte of the file once, in order.

    Returns a typed frame of the kept columns (identifiers dropped) in schema order:
    continuous and duration as float64, integer as Int64, categorical as pandas
    categoricals with the declared categories, event as Int8 0/1.
    Raises :class:`TableError` with the first ``max_failures`` failing cells (rows numbered over the
    whole file) and the failure counts per column over the whole file; a structural problem (encoding,
    malformed CSV) anywhere in the file is raised as such, whatever cells failed before it.
    """
    found: list[CellFailure] = []
    counts: dict[str, int] = {}
    listed: Counter = Counter()  # failures listed so far per (column, reason): at most max_failures each
    parts: dict[str, list[pd.Series]] = {c.name: [] for c in schema.kept}
    rows = 0
    with _opened(data) as file:
        _, chunks = _string_chunks(file, schema, digest=digest)
        for strings in chunks:
            start, rows = rows, rows + len(strings)
            for column in schema.columns:
                values, failures = _check_column(strings[column.name], column)
                for positions, reason in failures:
                    counts[column.name] = counts.get(column.name, 0) + len(positions)
                    room = max_failures - listed[column.name, reason]
                    if room > 0:
                        listed[column.name, reason] += min(room, len(positions))
                        found.extend(CellFailure(start + int(p) + 1, column.name, reason) for p in positions[:room])
                if column.type != "identifier" and not found:
                    parts[column.name].append(values)
            if found:
                parts.clear()  # refused whatever follows: keep checking, stop keeping values
            del strings
    if rows == 0:
        raise TableError("The file has a header but no data rows.", code="empty_file")
    if found:
        order = {c.name: i for i, c in enumerate(schema.columns)}
        found.sort(key=lambda f: (f.row, order[f.column]))
        total = sum(counts.values())
        raise TableError(
            f"{total} cell(s) in {len({f.row for f in found})}+ row(s) do not fit the schema; nothing was stored.",
            failures=found[:max_failures], counts=counts, code="rows_failed_validation",
        )
    typed: dict[str, pd.Series] = {}
    for name in list(parts):  # one column at a time, each chunk list freed once joined
        pieces = parts.pop(name)
        typed[name] = pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)
        del pieces
    if schema.survival is not None:
        duration = typed[schema.survival.duration]
        if (duration < 0).any():  # pragma: no cover - the schema forbids a negative minimum
            raise TableError("Survival durations must not be negative.", code="rows_failed_validation")
    frame = pd.DataFrame(typed, copy=False)  # copy=False: no consolidated copy of the numeric columns
    frame.index = pd.RangeIndex(rows)
    return frame


# --- drafting a schema --------------------------------------------------------------------

_DURATION_NAMES = {"time", "duration", "futime", "survival_time", "os_time", "pfs_time", "rfs", "week", "weeks", "days"}
_EVENT_NAMES = {"event", "status", "cens", "censor", "death", "dead", "died", "arrest", "fstat", "os_event"}


def _nice_step(span: float) -> float:
    if span <= 0:
        return 1.0
    return 10.0 ** math.floor(math.log10(span))


def _outward(lo: float, hi: float, *, integral: bool) -> tuple[float, float]:
    """Round bounds outward to a step of the span's order of magnitude, never onto the observed extremes.

    A bound is kept at 0 where the data are non-negative, since 0 is a natural, public floor.
    """
    step = _nice_step(hi - lo)
    if integral:
        step = max(step, 1.0)
    digits = max(0, -math.floor(math.log10(step)))  # step is a power of ten; snap away float noise

    def snap(value: float) -> float:
        return round(value, digits)

    new_lo = snap(math.floor(lo / step) * step)
    new_hi = snap(math.ceil(hi / step) * step)
    # Float division can land a multiple of the step on or just past an extreme (7.3 / 0.1 -> 7.300000000000001).
    if new_lo > lo or (new_lo == lo and lo != 0):
        new_lo = snap(new_lo - step)
    if new_hi <= hi:
        new_hi = snap(new_hi + step)
    if lo >= 0 and new_lo < 0:
        new_lo = 0.0
    return new_lo, new_hi


def infer_schema(data: bytes, *, max_categories: int = 30) -> dict[str, Any]:
    """A draft schema for the custodian to review (never used unreviewed).

    Numbers get bounds rounded outward; text with few distinct values becomes
    categorical; text that is mostly unique becomes an identifier; a 0/1 column with
    an event-like name and a non-negative column with a time-like name become the
    survival pair.
    """
    header, strings = _read_strings(data)
    if len(set(header)) != len(header):
        raise TableError("The header repeats column names.", code="bad_header")
    columns: list[dict[str, Any]] = []
    duration_name = event_name = None
    for name in header:
        text = strings[name].fillna("").str.strip()
        missing = text.str.lower().isin(MISSING_TOKENS)
        present = text[~missing]
        entry: dict[str, Any] = {"name": name}
        numbers = pd.to_numeric(present, errors="coerce")
        if len(present) and numbers.notna().all() and np.isfinite(numbers).all():
            integral = bool((numbers == np.round(numbers)).all())
            distinct = set(numbers.unique().tolist())
            if integral and distinct <= {0, 1} and name.lower() in _EVENT_NAMES and event_name is None:
                entry["type"], event_name = "event", name
            else:
                lo, hi = _outward(float(numbers.min()), float(numbers.max()), integral=integral)
                is_duration = name.lower() in _DURATION_NAMES and lo >= 0 and duration_name is None
                entry["type"] = "duration" if is_duration else ("integer" if integral else "continuous")
                if is_duration:
                    duration_name = name
                entry["min"] = int(lo) if float(lo).is_integer() else lo
                entry["max"] = int(hi) if float(hi).is_integer() else hi
        elif len(present) and present.nunique() <= max_categories and present.nunique() < max(2, len(present) // 2):
            entry["type"] = "categorical"
            entry["categories"] = sorted(present.unique().tolist())
        else:
            entry["type"] = "identifier"
        if missing.any() and entry["type"] != "identifier":
            entry["nullable"] = True
        columns.append(entry)
    draft: dict[str, Any] = {"columns": columns}
    nullable = {c["name"] for c in columns if c.get("nullable")}
    if duration_name and event_name and not {duration_name, event_name} & nullable:  # a survival pair is never nullable
        draft["survival"] = {"duration": duration_name, "event": event_name}
    return draft
