"""JSON from clients, with a nesting limit checked before any object is built.

Python's ``json`` recurses once per nested array or object: a body of 100 000 ``[`` is a
``RecursionError`` deep inside the parser, which no handler translated (a 500, unaudited). No
document this API takes nests deeper than a handful of levels (a hypothesis is four), so
:data:`MAX_JSON_DEPTH` is generous. :func:`check_depth` is one linear pass over the text: string
literals are skipped (a ``[`` inside a string is not nesting), brackets are counted, and the first
one past the limit refuses the document, whatever its length.

Every place where client text becomes JSON goes through :func:`loads`: the API's body parser
(``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``), the upload's ``schema`` field, and the portal's forms.
"""

from __future__ import annotations

import json
import re
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json as drf_json

__all__ = ["MAX_JSON_DEPTH", "JsonTooDeep", "LimitedJSONParser", "check_depth", "loads"]

#: The deepest nesting of arrays and objects any client document may have.
MAX_JSON_DEPTH = 64

# A string literal (escapes included; an unterminated one runs to the end), or one bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*(?:"|$)|[\[\]{}]', re.DOTALL)


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than :data:`MAX_JSON_DEPTH`."""

    def __init__(self, limit: int, position: int):
        self.limit, self.position = limit, position
        super().__init__(f"JSON nested deeper than {limit} levels (arrays and objects; at character {position}).")


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JsonTooDeep` when ``text`` nests deeper than ``limit``; linear in its length."""
    if "[" not in text and "{" not in text:
        return
    depth = 0
    for match in _TOKEN.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > limit:
                raise JsonTooDeep(limit, match.start())
        elif char in "]}":
            depth = max(depth - 1, 0)  # unbalanced: json itself refuses it


def loads(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` for client text: :class:`JsonTooDeep` (a ``ValueError``) past ``limit``, before parsing."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    check_depth(text, limit)
    return json.loads(text)


class LimitedJSONParser(JSONParser):
    """DRF's JSON parser with the nesting limit: 400 ``malformed_request`` naming the depth."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = get_encoding(parser_context or {})
        try:
            text = stream.read().decode(encoding) if stream is not None else ""
            check_depth(text)
            return drf_json.loads(text, parse_constant=drf_json.strict_constant if self.strict else None)
        except ValueError as exc:  # UnicodeDecodeError, JsonTooDeep and JSONDecodeError are ValueErrors
            raise ParseError(f"JSON parse error - {exc}") from None
