"""JSON from clients, with a nesting limit checked before any object is built.

Python's ``json`` recurses once per nested array or object: a body of 100 000 ``[`` is a
``RecursionError`` deep inside the parser, which no handler translated (a 500, unaudited). No
document this API takes nests deeper than a handful of levels (a hypothesis is four), so
:data:`MAX_JSON_DEPTH` is generous. :func:`check_depth` reads the text once, linearly, before
``json`` does: string literals are skipped (a ``[`` inside a string is not nesting) and the brackets
are counted.

Every place where client text becomes JSON goes through :func:`loads`: the API's body parser
(``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``), the upload's ``schema`` field, and the portal's forms.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils import json as drf_json

__all__ = ["MAX_JSON_DEPTH", "JsonTooDeep", "LimitedJSONParser", "check_depth", "loads"]

#: The deepest nesting of arrays and objects any client document may have.
MAX_JSON_DEPTH = 64

# A string literal (escapes included; an unterminated one runs to the end); anything but a bracket.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*(?:"|$)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class JsonTooDeep(ValueError):
    """The document nests arrays/objects deeper than :data:`MAX_JSON_DEPTH`."""

    def __init__(self, limit: int):
        self.limit = limit
        super().__init__(f"JSON nested deeper than {limit} levels of arrays and objects.")


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise :class:`JsonTooDeep` when ``text`` nests deeper than ``limit``.

    Linear, and in C loops only: strings are cut out, everything but brackets is dropped, and the
    deepest running sum of +1 per opening and -1 per closing bracket is the depth. A closing bracket too
    many only lowers the sum; ``json`` refuses such text at that bracket, before it reads further."""
    if "[" not in text and "{" not in text:
        return
    outside = _STRING.sub("", text) if '"' in text else text
    brackets = _NOT_BRACKET.sub("", outside)
    if len(brackets) > limit and max(accumulate(map(_STEP.__getitem__, brackets))) > limit:
        raise JsonTooDeep(limit)


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
