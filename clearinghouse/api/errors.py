"""One application error type and one error body for the whole API.

Every error response is ``{"error": {"code", "message", "details"}}`` with the
right 4xx status, and every error response to an API view is written to the
audit log (outcome ``denied`` for 401/403, ``refused`` for other 4xx).
Services raise :class:`clearinghouse.errors.ApplicationError`; views never build error bodies themselves.

A lost database connection (Django's ``OperationalError`` / ``InterfaceError``: a terminated
backend, a restarted server) is answered 503 ``database_unavailable`` with ``Retry-After``, not a
500: what the request had not committed was rolled back by the server. Its refusal is audited on
a fresh connection; when even that fails, the log has it (and the answer is still the 503).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError, connection
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from clearinghouse.errors import ApplicationError

logger = logging.getLogger(__name__)

__all__ = ["ApplicationError", "exception_handler", "error_body"]


def error_body(code: str, message: str, details: Any = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details}}


def _first_message(detail: Any, path: str = "") -> str:
    """The first leaf message of a DRF error structure, prefixed by its field path."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key == "non_field_errors" else str(key)
            return _first_message(value, f"{path}.{name}" if path and name else (name or path))
    if isinstance(detail, list) and detail:
        first = detail[0]
        if isinstance(first, (dict, list)):
            return _first_message(first, f"{path}[0]" if path else path)
        return f"{path}: {first}" if path else str(first)
    return f"{path}: {detail}" if path else str(detail)


def _plain(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(k): _plain(v) for k, v in detail.items()}
    if isinstance(detail, list):
        return [_plain(v) for v in detail]
    return str(detail)


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
}


def _translate(exc: Exception) -> tuple[int, str, str, Any, dict]:
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        return exc.status_code, exc.code, exc.message, exc.details, {**headers, **exc.headers}
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable", exc_info=exc)
        return 503, "database_unavailable", ("The database could not be reached while answering this request; "
                                             "what it had not stored yet was rolled back. Try again in a moment."), \
            None, {"Retry-After": "5"}
    if isinstance(exc, Http404):
        return 404, "not_found", "Not found.", None, headers
    if isinstance(exc, DjangoPermissionDenied):
        return 403, "permission_denied", "You do not have permission to perform this action.", None, headers
    if isinstance(exc, RequestDataTooBig):
        return 413, "request_too_large", "The request body is larger than this server accepts.", None, headers
    if isinstance(exc, SuspiciousOperation):
        return 400, "bad_request", "The request was refused as malformed.", None, headers
    if isinstance(exc, exceptions.ValidationError):
        details = _plain(exc.detail)
        return 400, "invalid", _first_message(details) or "Invalid input.", details, headers
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
        code = code or (exc.get_codes() if isinstance(exc.get_codes(), str) else "error")
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None) is not None:
            headers["Retry-After"] = str(int(exc.wait))
        detail = exc.detail
        message = str(detail) if not isinstance(detail, (dict, list)) else _first_message(_plain(detail))
        return exc.status_code, code, message, None, headers
    raise exc


def exception_handler(exc: Exception, context: dict) -> Response | None:
    request = context.get("request")
    view = context.get("view")
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)) and view is not None:
        # DRF answers 403 when no authenticator offers a challenge; ours always does.
        exc.auth_header = view.get_authenticate_header(request)
    try:
        status_code, code, message, details, headers = _translate(exc)
    except Exception:
        return None  # not a client error: let Django log it and answer 500
    set_rollback()
    if request is not None and view is not None:
        _audit(request, view, status_code, code, message)
    response = Response(error_body(code, message, details), status=status_code, headers=headers)
    return response


def _audit(request, view, status_code: int, code: str, message: str) -> None:
    from clearinghouse.services.refusals import audit_refusal

    if code == "database_unavailable" and not connection.in_atomic_block:
        connection.close_if_unusable_or_obsolete()  # a broken connection is dropped; the audit reconnects
    try:
        audit_refusal(request=request, view=view, status_code=status_code, code=code, message=message)
    except (OperationalError, InterfaceError):
        if code != "database_unavailable":
            raise
        logger.error("the refusal %s %s (%s, %s) could not be audited: the database is unavailable",
                     request.method, request.path[:300], status_code, code)


def json_handler(status_code: int, code: str, message: str):
    def handler(request, exception=None):
        return JsonResponse(error_body(code, message), status=status_code)

    return handler


handler400 = json_handler(status.HTTP_400_BAD_REQUEST, "bad_request", "The request was malformed.")
handler403 = json_handler(status.HTTP_403_FORBIDDEN, "permission_denied", "You do not have permission to perform this action.")
handler404 = json_handler(status.HTTP_404_NOT_FOUND, "not_found", "Not found.")
handler500 = json_handler(status.HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "Internal error; it has been logged.")
