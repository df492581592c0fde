"""The one application error type. Services raise it; the API layer
(:mod:`clearinghouse.api.errors`) maps it to the single error body
``{"error": {"code", "message", "details"}}`` with its status."""

from __future__ import annotations

from typing import Any

__all__ = ["ApplicationError"]


class ApplicationError(Exception):
    """A refusal the caller can act on. ``code`` is stable; ``message`` is for people."""

    def __init__(self, message: str, *, code: str = "invalid", status_code: int = 400, details: Any = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.details = details
        self.headers = headers or {}  # e.g. WWW-Authenticate on a 401, Retry-After on a 429
