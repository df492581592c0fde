"""Error pages: JSON under /api/ (the API's one error body), the house pages everywhere else.

No page shows a stack trace: DEBUG is off in production, and these handlers print only a public message.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse

from clearinghouse.api import errors as api_errors
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_record
from portal.access import error_page

__all__ = ["handler400", "handler403", "handler404", "handler500", "csrf_failure"]


def _api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def handler400(request: HttpRequest, exception=None) -> HttpResponse:
    if _api(request):
        return api_errors.handler400(request, exception)
    return error_page(request, 400, "The request was malformed.")


def handler403(request: HttpRequest, exception=None) -> HttpResponse:
    if _api(request):
        return api_errors.handler403(request, exception)
    return error_page(request, 403, "You do not have permission to open this page.")


def handler404(request: HttpRequest, exception=None) -> HttpResponse:
    if _api(request):
        return api_errors.handler404(request, exception)
    return error_page(request, 404, "There is no page at this address.")


def handler500(request: HttpRequest) -> HttpResponse:
    if _api(request):
        return api_errors.handler500(request)
    return error_page(request, 500, "Something went wrong on our side; it has been logged.")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form posted without a valid CSRF token (an old tab, a forged request): a 403 page, audited."""
    user = getattr(request, "user", None)
    audit_record(action="portal.csrf", outcome=AuditEvent.Outcome.DENIED, actor=user,
                 details={"status": 403, "code": "csrf_failed", "reason": reason[:200], "method": request.method,
                          "path": request.path[:300]})
    if _api(request):
        from django.http import JsonResponse

        return JsonResponse(api_errors.error_body("csrf_failed", "CSRF check failed."), status=403)
    return error_page(request, 403, "This form had expired or did not come from this site. "
                                    "Go back, reload the page and send it again.")
