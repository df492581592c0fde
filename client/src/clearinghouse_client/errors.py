"""The client's one exception type."""

from __future__ import annotations

from typing import Any


class ClearinghouseError(Exception):
    """Every refusal and failure the client meets.

    ``status`` is the HTTP status (``None`` when no answer came: a connection error or a timeout);
    ``code``, ``message`` and ``details`` come from the API's error body
    ``{"error": {"code", "message", "details"}}``, or from a fallback when the body is not that.
    Client-side codes: ``connection_error``, ``timeout``, ``checksum_mismatch``, ``run_failed``,
    ``run_cancelled``, ``run_timeout``, ``no_base_url``, ``unknown_format``.
    """

    def __init__(self, status: int | None, code: str, message: str, details: Any = None):
        super().__init__(f"{status if status is not None else 'no answer'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"ClearinghouseError(status={self.status!r}, code={self.code!r}, message={self.message!r})"


def error_from_response(status: int, body: bytes, reason: str = "") -> ClearinghouseError:
    """The API's error body as a :class:`ClearinghouseError`; a sane fallback for anything else."""
    import json

    try:
        error = json.loads(body)["error"]
        code, message = error["code"], error["message"]
        if not isinstance(code, str) or not isinstance(message, str):
            raise TypeError
        return ClearinghouseError(status, code, message, error.get("details"))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        text = body[:300].decode("utf-8", "replace").strip()
        message = f"HTTP {status} {reason}".strip() + (f": {text}" if text else "")
        return ClearinghouseError(status, f"http_{status}", message, None)
