"""OpenAPI generation details: component names for nested serializers, the bearer scheme, and the
contract every operation shares: its error responses, its tag, its summary.

Error responses are derived from the view, the way DRF answers them (see clearinghouse/api/errors.py):

* 401 when the view authenticates and does not allow anyone (with ``WWW-Authenticate``);
* 403 when a role is required (any permission class but ``AllowAny`` / ``IsAuthenticated``);
* 404 when the path has parameters, and on paginated lists (``?page=`` past the end);
* 400 when the operation reads a body or filters its query; 415 when it parses a body;
* 406 when the view negotiates its renderer from ``Accept``; 400 ``invalid_format`` everywhere
  (``?format=`` naming no renderer of the view);
* 413 on multipart uploads; 429 wherever a throttle applies (with ``Retry-After``).

A view adds what only its services know in a class attribute ``error_codes``: ``{status: [codes]}``,
or ``{"POST": {status: [codes]}}`` per method. Each error response lists its codes.
"""

from __future__ import annotations

import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as _AutoSchema
from drf_spectacular.plumbing import is_serializer
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAuthenticated

API_PREFIX = "/api/v1/"


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable; the response's description lists them.")
    message = serializers.CharField(help_text="For people; says what was wrong.")
    details = serializers.JSONField(allow_null=True, help_text="Per-field problems or the refusal's figures; "
                                                               "null when there are none.")


class ErrorSerializer(serializers.Serializer):
    """Every error response under /api/: one code, one message, optional details."""

    error = ErrorDetailSerializer()


STATUS_TEXT = {
    400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
    406: "Not acceptable", 409: "Conflict", 410: "Gone", 413: "Too large", 415: "Unsupported media type",
    429: "Too many requests", 500: "Server error", 503: "Service unavailable", 507: "Insufficient storage",
}

#: (method, path after /api/v1/) -> (tag, summary)
OPERATIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "auth/token/"): ("auth", "Exchange a username and password for a token"),
    ("GET", "auth/tokens/"): ("auth", "List your tokens"),
    ("POST", "auth/tokens/{token_id}/revoke/"): ("auth", "Revoke one of your tokens"),
    ("GET", "accounts/"): ("accounts", "List accounts"),
    ("POST", "accounts/register/"): ("accounts", "Register as a researcher"),
    ("GET", "accounts/me/"): ("accounts", "Your account"),
    ("POST", "accounts/{user_id}/verify/"): ("accounts", "Verify a researcher"),
    ("GET", "datasets/"): ("datasets", "List datasets"),
    ("POST", "datasets/"): ("datasets", "Upload a dataset"),
    ("GET", "datasets/{slug}/"): ("datasets", "A dataset's metadata and schema"),
    ("GET", "datasets/{slug}/gates/"): ("releases", "A dataset's publication gates"),
    ("PUT", "datasets/{slug}/gates/"): ("releases", "Set a dataset's publication gates"),
    ("GET", "datasets/{slug}/runs/"): ("runs", "List a dataset's training runs"),
    ("POST", "datasets/{slug}/runs/"): ("runs", "Start a training run"),
    ("GET", "datasets/{slug}/sweeps/"): ("sweeps", "List a dataset's sweeps"),
    ("POST", "datasets/{slug}/sweeps/"): ("sweeps", "Start a model-selection sweep"),
    ("GET", "sweeps/{sweep_id}/"): ("sweeps", "A sweep's progress and ranking"),
    ("GET", "runs/{run_id}/"): ("runs", "A run's status and progress"),
    ("POST", "runs/{run_id}/cancel/"): ("runs", "Cancel a run"),
    ("POST", "runs/{run_id}/releases/"): ("releases", "Sample a release from a run"),
    ("GET", "releases/"): ("releases", "List releases"),
    ("GET", "releases/{release_id}/"): ("releases", "A release and its datasheet"),
    ("POST", "releases/{release_id}/publish/"): ("releases", "Publish a release"),
    ("GET", "releases/{release_id}/report/"): ("reports", "A release's validation report"),
    ("POST", "releases/{release_id}/report/"): ("reports", "Compute a release's report again"),
    ("GET", "releases/{release_id}/data.csv"): ("releases", "Download a release as CSV"),
    ("GET", "releases/{release_id}/data.parquet"): ("releases", "Download a release as Parquet"),
    ("GET", "verifications/"): ("verifications", "List your verifications"),
    ("POST", "verifications/"): ("verifications", "Verify a hypothesis (charges ε)"),
    ("POST", "verifications/preview/"): ("verifications", "Preview a verification (free)"),
    ("GET", "verifications/{verification_id}/"): ("verifications", "One of your verifications"),
    ("GET", "budget/"): ("budget", "Your ε budgets"),
    ("GET", "datasets/{slug}/budget-policy/"): ("budget", "A dataset's verification policy"),
    ("PUT", "datasets/{slug}/budget-policy/"): ("budget", "Change a dataset's verification policy"),
    ("PUT", "datasets/{slug}/allocations/{user_id}/"): ("budget", "Set a researcher's ε allocation"),
    ("GET", "audit/events/"): ("audit", "List audit events"),
    ("GET", "audit/events/export.csv"): ("audit", "Export audit events as CSV"),
    ("GET", "audit/events/export.jsonl"): ("audit", "Export audit events as JSON Lines"),
    ("GET", "audit/verify/"): ("audit", "Check the audit hash chain"),
    ("GET", "schema/"): ("schema", "This OpenAPI document"),
}

_SPHINX_ROLE = re.compile(r":(func|class|mod|meth|attr|data|obj):`")


def public_doc(cls) -> str:
    """A class's own docstring, for publishing: never one inherited from a base class (the API view's
    and the strict serializer's describe internals), never one that points into the code."""
    doc = cls.__dict__.get("__doc__") or ""
    if not doc or _SPHINX_ROLE.search(doc):
        return ""
    import inspect

    return inspect.cleandoc(doc).replace("``", "`")


_METHOD_PART = re.compile(r"(?:^|\s)(GET|POST|PUT|PATCH|DELETE): ")


def _for_method(doc: str, method: str) -> str:
    """A view's docstring written ``GET: ... POST: ...`` gives each operation its own part."""
    parts = _METHOD_PART.split(doc)
    if len(parts) < 3:
        return doc
    found = dict(zip(parts[1::2], (part.strip() for part in parts[2::2])))
    return found.get(method, doc)


class AutoSchema(_AutoSchema):
    """Name a nested ``SomeApi.InputSerializer`` component ``SomeInput`` (views nest their serializers)."""

    def get_serializer_name(self, serializer, direction):
        cls = serializer if isinstance(serializer, type) else type(serializer)
        parts = cls.__qualname__.split(".")
        if len(parts) > 1:
            outer = parts[-2].removesuffix("Api")
            return outer + parts[-1].removesuffix("Serializer")
        return super().get_serializer_name(serializer, direction)

    # ------------------------------------------------------------------ descriptions, tags, summaries
    def _key(self) -> tuple[str, str]:
        return self.method.upper(), self.path.removeprefix(API_PREFIX)

    def get_tags(self) -> list[str]:
        known = OPERATIONS.get(self._key())
        return [known[0]] if known else super().get_tags()

    def get_summary(self) -> str | None:
        known = OPERATIONS.get(self._key())
        return known[1] if known else None

    def get_description(self) -> str:
        method = getattr(self.view, self.method.lower(), None)
        own = (getattr(method, "__doc__", None) or "") if method is not None else ""
        if own and not _SPHINX_ROLE.search(own):
            import inspect

            return inspect.cleandoc(own).replace("``", "`")
        return _for_method(public_doc(type(self.view)), self.method.upper())

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        cls = serializer if isinstance(serializer, type) else type(serializer)
        description = public_doc(cls)
        if description:
            schema["description"] = description
        else:
            schema.pop("description", None)
        return schema

    # ------------------------------------------------------------------ error responses
    def _declared(self) -> dict[int, list[str]]:
        declared = dict(getattr(self.view, "error_codes", None) or {})
        per_method = declared.pop(self.method.upper(), None) or {}
        declared = {k: v for k, v in declared.items() if isinstance(k, int)}
        for status_code, codes in per_method.items():
            declared[status_code] = [*declared.get(status_code, []), *codes]
        return declared

    def error_codes(self) -> dict[int, list[str]]:
        view = self.view
        errors: dict[int, list[str]] = {}

        def add(status_code: int, *codes: str) -> None:
            bucket = errors.setdefault(status_code, [])
            bucket.extend(c for c in codes if c not in bucket)

        permissions = view.get_permissions()
        open_to_all = all(isinstance(p, AllowAny) for p in permissions)
        if view.get_authenticators() and not open_to_all:
            add(401, "not_authenticated", "authentication_failed")
        if any(not isinstance(p, (AllowAny, IsAuthenticated)) for p in permissions):
            add(403, "permission_denied")
        if re.search(r"{\w+}", self.path):
            add(404, "not_found")
        is_list = self.method == "GET" and getattr(view, "pagination_class", None) is not None
        if is_list:
            add(404, "not_found")  # ?page= past the last page
        body = self.get_request_serializer() if self.method in ("POST", "PUT", "PATCH") else None
        has_body = body is not None
        if has_body:
            if is_serializer(body):  # a free-form object is checked by its service (codes declared by the view)
                add(400, "invalid")
            parsers = view.get_parsers()
            if any(not isinstance(p, (MultiPartParser, FormParser)) for p in parsers):
                add(400, "malformed_request")
            if any(isinstance(p, MultiPartParser) for p in parsers):
                add(400, "malformed_request", "bad_request")
                add(413, "upload_too_large")
            add(415, "unsupported_media_type")
        if getattr(view, "filter_serializer", False) or hasattr(type(view), "FilterSerializer"):
            add(400, "invalid")
        add(400, "invalid_format")  # ?format= naming no renderer of the view (ApiView.initial)
        if not getattr(view, "forces_renderer", False):
            add(406, "not_acceptable")
        if view.get_throttles():
            add(429, "throttled")
        for status_code, codes in self._declared().items():
            add(status_code, *codes)
        return dict(sorted(errors.items()))

    def _error_response(self, status_code: int, codes: list[str]) -> dict:
        ref = self.resolve_serializer(ErrorSerializer, "response").ref
        listed = ", ".join(f"`{code}`" for code in codes)
        response: dict = {
            "description": f"{STATUS_TEXT.get(status_code, 'Error')}. Codes: {listed}.",
            "content": {"application/json": {"schema": ref}},
        }
        if status_code == 401:
            response["headers"] = {"WWW-Authenticate": {
                "schema": {"type": "string"}, "description": "The authentication scheme to use (`Bearer`)."}}
        if status_code == 429:
            response["headers"] = {"Retry-After": {
                "schema": {"type": "string"}, "description": "Seconds to wait, when the server knows."}}
        return response

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        for status_code, codes in self.error_codes().items():
            responses.setdefault(str(status_code), self._error_response(status_code, codes))
        return responses


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A token from POST /api/v1/auth/token/."}
