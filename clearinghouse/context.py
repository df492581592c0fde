"""Per-request context (request id, client address) for audit events.

Set by :class:`clearinghouse.middleware.RequestContextMiddleware`; Celery tasks and
management commands run with a fresh id of their own.
"""

from __future__ import annotations

import contextvars
import uuid
from dataclasses import dataclass

__all__ = ["RequestContext", "bound", "current", "reset", "use"]


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    client_ip: str | None
    channel: str  # "api", "admin", "portal", "command", "task"


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("request_context", default=None)


def current() -> RequestContext:
    ctx = _current.get()
    return ctx if ctx is not None else RequestContext(request_id=uuid.uuid4().hex, client_ip=None, channel="command")


def use(ctx: RequestContext) -> contextvars.Token:
    return _current.set(ctx)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


class bound:
    """``with context.bound(channel="command"):`` one request id for a command or task run."""

    def __init__(self, *, channel: str, request_id: str | None = None, client_ip: str | None = None):
        self.ctx = RequestContext(request_id=request_id or uuid.uuid4().hex, client_ip=client_ip, channel=channel)
        self.token: contextvars.Token | None = None

    def __enter__(self) -> RequestContext:
        self.token = use(self.ctx)
        return self.ctx

    def __exit__(self, *exc) -> None:
        reset(self.token)
