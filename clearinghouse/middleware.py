"""Give every request an id (echoed in ``X-Request-ID``) and a client address for the audit log."""

from __future__ import annotations

import ipaddress
import re
import uuid

from django.conf import settings

from clearinghouse import context

#: A client's ``X-Request-ID`` is kept only if it is 8 to 64 characters of [A-Za-z0-9._-] starting with a
#: letter or digit; any other is replaced by a generated one (uuid4 hex). The first character matters: ``-A1.A1.A1``
#: is in the safe alphabet but a spreadsheet reads a leading ``-`` (or ``+ = @``) as a formula, and the id is stored
#: in the audit log and exported (issue 14, finding 2).
_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{7,63}")


def client_ip(meta) -> str | None:
    """REMOTE_ADDR, or the address the trusted proxies saw (``TRUSTED_PROXY_COUNT``)."""
    candidate = meta.get("REMOTE_ADDR")
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies and forwarded:
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        if len(hops) >= proxies:
            candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate)) if candidate else None
    except ValueError:
        return None


def _channel(path: str) -> str:
    """``admin`` (the admin site), ``api`` (the API, the OpenAPI pages, health) or ``portal`` (the pages)."""
    if path.startswith("/admin/"):
        return "admin"
    if path.startswith("/api/") or path == "/healthz":
        return "api"
    return "portal"


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get("X-Request-ID", "")
        request_id = supplied if _REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        channel = _channel(request.path)
        token = context.use(context.RequestContext(request_id=request_id, client_ip=client_ip(request.META), channel=channel))
        request.request_id = request_id
        try:
            response = self.get_response(request)
        finally:
            context.reset(token)
        response["X-Request-ID"] = request_id
        return response
