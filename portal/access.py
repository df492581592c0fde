"""Who may open a portal page, and the audit row every page writes.

A page names its roles with the API's own permission classes (:mod:`accounts.permissions`), so a page
and the endpoint it stands beside admit the same people. Like :class:`clearinghouse.api.views.ApiView`:

* a successful read (GET) is recorded here under the page's ``audit_action`` (channel ``portal``);
* a write is recorded by its service, inside the write's transaction;
* a refusal (not signed in, wrong role, a missing object, a form the service refused) is recorded
  with outcome ``denied`` (401/403) or ``refused`` (other 4xx), and nothing else is stored or charged.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views import View
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from accounts import permissions
from clearinghouse.errors import ApplicationError
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_record

__all__ = ["PortalView", "SignedIn", "audit_page_refusal", "error_page", "throttle_refusal", "ROLE_LABELS", "roles_of"]


class SignedIn(permissions._Role):
    """Any active, signed-in account (the home page, password change)."""

    message = "Sign in first."

    def allowed(self, user) -> bool:
        return True


ROLE_LABELS = {"custodian": "Custodian", "auditor": "Auditor", "researcher": "Researcher"}


def roles_of(user) -> list[str]:
    """The role names of ``user`` in a fixed order, for the navigation and the home page."""
    if not getattr(user, "is_authenticated", False):
        return []
    return [role for role, flag in (("custodian", user.is_custodian), ("auditor", user.is_auditor),
                                    ("researcher", user.is_researcher)) if flag]


def audit_page_refusal(request: HttpRequest, view: Any, *, status_code: int, code: str, message: str) -> None:
    object_type, object_id = getattr(view, "audit_object", ("", ""))
    audit_record(
        action=getattr(view, "audit_action", "") or f"portal.{type(view).__name__}",
        outcome=(AuditEvent.Outcome.DENIED if status_code in (401, 403) else
                 AuditEvent.Outcome.FAILED if status_code >= 500 else AuditEvent.Outcome.REFUSED),
        actor=request.user,
        object_type=object_type,
        object_id=object_id,
        details={"status": status_code, "code": code, "message": message[:500], "method": request.method,
                 "path": request.path[:300]},
    )


def throttle_refusal(request: HttpRequest, view: Any, throttle_classes) -> HttpResponse | None:
    """The API's rate limits (``REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']``, the same cache buckets as the
    API's, keyed by client address for strangers and by user for accounts): a 429 page when one is
    exceeded, audited; else ``None``."""
    for throttle_class in throttle_classes:
        throttle = throttle_class()
        if not throttle.allow_request(request, view):
            wait = max(1, round(throttle.wait() or 1))
            message = f"Too many requests; try again in {wait} seconds."
            audit_page_refusal(request, view, status_code=429, code="throttled", message=message)
            response = error_page(request, 429, message)
            response["Retry-After"] = str(wait)
            return response
    return None


class PortalView(View):
    """The base of every portal page.

    ``permission_classes`` names who may open it (API permission classes); ``audit_action`` and
    ``audit_object_type`` name its audit row. Subclasses write ``get``/``post`` as plain Django views.
    Raising :class:`ApplicationError` (a service's refusal) or :class:`Http404` from them renders the
    house error page with that status, audited as a refusal.
    """

    permission_classes: tuple[type, ...] = ()
    throttle_classes: tuple[type, ...] = (UserRateThrottle,)
    audit_action: str = ""
    audit_object_type: str = ""

    @property
    def audit_object(self) -> tuple[str, str]:
        kwargs = getattr(self, "kwargs", None) or {}
        return self.audit_object_type, next((str(v) for v in kwargs.values()), "")

    def audit_read_details(self) -> dict[str, Any]:
        return {"query": dict(self.request.GET.items())} if self.request.GET else {}

    @classmethod
    def allows(cls, user) -> bool:
        """Whether ``user`` may open this page (the navigation shows only what the user may open)."""
        return bool(user and user.is_authenticated and user.is_active
                    and all(permission().allowed(user) for permission in cls.permission_classes))

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        assert self.permission_classes, f"{type(self).__name__} names no permission_classes"
        user = request.user
        if not (user.is_authenticated and user.is_active):
            audit_page_refusal(request, self, status_code=401, code="not_authenticated", message="Sign in first.")
            return redirect_to_login(request.get_full_path(), login_url="portal:login")
        for permission in self.permission_classes:
            if not permission().allowed(user):
                audit_page_refusal(request, self, status_code=403, code="permission_denied", message=permission.message)
                return error_page(request, 403, permission.message)
        refusal = throttle_refusal(request, self, self.throttle_classes)
        if refusal is not None:
            return refusal
        try:
            response = super().dispatch(request, *args, **kwargs)
        except Http404 as exc:
            message = str(exc) or "Not found."
            audit_page_refusal(request, self, status_code=404, code="not_found", message=message)
            return error_page(request, 404, message)
        except ApplicationError as exc:
            audit_page_refusal(request, self, status_code=exc.status_code, code=exc.code, message=exc.message)
            return error_page(request, exc.status_code, exc.message)
        if request.method == "GET" and response.status_code < 400 and self.audit_action:
            object_type, object_id = self.audit_object
            audit_record(action=self.audit_action, actor=user, object_type=object_type, object_id=object_id,
                         details=self.audit_read_details())
        return response


TITLES = {400: "Bad request", 401: "Sign in first", 403: "Not allowed", 404: "Not found",
          405: "Not allowed", 409: "Conflict", 413: "Too large", 429: "Too many requests",
          500: "Something went wrong", 503: "Database unavailable", 507: "Storage full"}


def error_page(request: HttpRequest, status_code: int, message: str) -> HttpResponse:
    """The house error page (no stack trace, no real value: ``message`` is a service's public text)."""
    template = f"portal/errors/{status_code}.html" if status_code in (403, 404, 500) else "portal/errors/error.html"
    return render(request, template, {"status": status_code, "title": TITLES.get(status_code, "Refused"),
                                      "message": message}, status=status_code)
