"""The generated sections of docs/benchmarks.md: each benchmark owns the text between its markers."""

from __future__ import annotations

from pathlib import Path

DOCS_FILE = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(block: str, start: str, end: str, path: Path = DOCS_FILE) -> None:
    """Put ``block`` (which begins with ``start`` and ends with ``end``) in place of the text between
    those markers, or append it when the file has no such section yet."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
