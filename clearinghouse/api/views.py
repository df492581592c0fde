"""The base API view: reads are audited here; writes are audited by their service."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import JSONRenderer
from rest_framework.settings import api_settings
from rest_framework.views import APIView


class ApiView(APIView):
    """Every API view names an ``audit_action``.

    * a successful read (GET/HEAD) is recorded here, once the response is ready;
    * a successful write is recorded by its service, inside the write's transaction;
    * any error response is recorded by the exception handler, after rollback;
    * ``OPTIONS`` (DRF's metadata: the view's name, public description, renderers and parsers, after
      the same authentication and permission checks as its other methods) is recorded as
      ``api.options``, never as the view's own action: it reads nothing and changes nothing.
    """

    audit_action: str = ""
    #: (object_type, object_id) for the audit row; object_id defaults to the URL kwarg.
    audit_object_type: str = ""

    @property
    def audit_object(self) -> tuple[str, str]:
        kwargs = getattr(self, "kwargs", None) or {}
        return self.audit_object_type, next((str(v) for v in kwargs.values()), "")

    def audit_read_details(self) -> dict:
        return {"query": {k: v for k, v in self.request.query_params.items()}} if self.request.query_params else {}

    def perform_content_negotiation(self, request, force=False):
        # ``?format=`` naming no renderer of this view: DRF answers 404, as if the path did not exist.
        # Negotiation runs before authentication, so the refusal waits for initial(), after the
        # permission checks (an anonymous caller still gets 401): a 400 naming the formats.
        override = api_settings.URL_FORMAT_OVERRIDE
        wanted = request.query_params.get(override) if override else None
        if wanted is not None and wanted not in self.renderer_formats():
            self._unknown_format = wanted
            force = True
        return super().perform_content_negotiation(request, force=force)

    def get_view_description(self, html=False) -> str:
        """OPTIONS answers the description the OpenAPI publishes: never this base class's docstring."""
        from clearinghouse.api.schema import public_doc

        return public_doc(type(self))

    def renderer_formats(self) -> list[str]:
        return [renderer.format for renderer in self.get_renderers()]

    def perform_authentication(self, request):
        # Requests without a valid token are throttled by client address before the permission checks:
        # DRF checks throttles after permissions, so a flood of 401s was never throttled (issue 14, #3).
        try:
            super().perform_authentication(request)
        except exceptions.AuthenticationFailed:
            self.check_throttles(request)  # 429 before the 401 once the address is over its rate
            raise
        if not request.user.is_authenticated:
            self.check_throttles(request)

    def check_throttles(self, request):
        # Once per request: an unauthenticated one was checked before its permissions, above.
        if getattr(request, "_throttles_checked", False):
            return
        request._throttles_checked = True
        super().check_throttles(request)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        wanted = getattr(self, "_unknown_format", None)
        if wanted is not None:
            from clearinghouse.errors import ApplicationError

            raise ApplicationError(f"format must be one of {', '.join(self.renderer_formats())}, not {wanted!r}.",
                                   code="invalid_format")

    def finalize_response(self, request, response, *args, **kwargs):
        if response.status_code >= 400 and getattr(request, "accepted_renderer", None) is not None:
            # Errors are JSON whatever was negotiated (CSV export, HTML report).
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400:
            return response  # the exception handler audited the refusal
        from clearinghouse.services.audit import audit_record

        if request.method == "OPTIONS":
            audit_record(action="api.options", actor=request.user, details={"path": request.path[:300]})
        elif request.method in SAFE_METHODS and self.audit_action:
            object_type, object_id = self.audit_object
            audit_record(
                action=self.audit_action,
                actor=request.user,
                object_type=object_type,
                object_id=object_id,
                details=self.audit_read_details(),
            )
        return response
