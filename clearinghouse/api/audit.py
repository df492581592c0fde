"""Audit API, for auditors: the log, its exports (CSV with formula cells escaped, JSON Lines with the exact values),
and the chain check."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from accounts.permissions import IsAuditor
from clearinghouse import selectors
from clearinghouse.api.pagination import Pagination
from clearinghouse.api.serializers import StrictInputSerializer
from clearinghouse.api.views import ApiView
from clearinghouse.models import AuditEvent
from clearinghouse.services.audit import audit_chain_verify
from clearinghouse.services.refusals import audit_refusals_flush

EXPORT_FIELDS = selectors.EXPORT_FIELDS


class AuditEventOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = ["id", *EXPORT_FIELDS]


class AuditFilterSerializer(StrictInputSerializer):
    user = serializers.CharField(required=False, max_length=150, help_text="actor's username")
    action = serializers.CharField(required=False, max_length=64, help_text="exact, or a prefix ending in '*'")
    outcome = serializers.ChoiceField(choices=AuditEvent.Outcome.values, required=False)
    object_type = serializers.CharField(required=False, max_length=64)
    object_id = serializers.CharField(required=False, max_length=128)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1)

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be after 'since'."]})
        return attrs


_FILTER_PARAMETERS = [
    OpenApiParameter("user", str), OpenApiParameter("action", str),
    OpenApiParameter("outcome", enum=AuditEvent.Outcome.values), OpenApiParameter("object_type", str),
    OpenApiParameter("object_id", str), OpenApiParameter("since", OpenApiTypes.DATETIME),
    OpenApiParameter("until", OpenApiTypes.DATETIME),
]


def _filtered(request):
    filters = AuditFilterSerializer(data=request.query_params)
    filters.is_valid(raise_exception=True)
    values = dict(filters.validated_data)
    values.pop("page", None), values.pop("page_size", None)
    values["username"] = values.pop("user", None)
    audit_refusals_flush(open_windows=True)  # counted repeats are in the log before it is read
    return selectors.audit_event_list(**values)


class AuditEventListApi(ApiView):
    """The audit log, oldest first, filtered by user, action, outcome, object and time range."""

    permission_classes = [IsAuditor]
    pagination_class = Pagination
    error_codes = {400: ["invalid"]}
    audit_action = "audit.events.list"

    @extend_schema(parameters=_FILTER_PARAMETERS, responses=AuditEventOutputSerializer(many=True))
    def get(self, request):
        qs = _filtered(request)
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(AuditEventOutputSerializer(page, many=True).data)


class _StreamedExportRenderer(BaseRenderer):
    """An export's media type for content negotiation; the rows are streamed by the view, so only error
    bodies ever reach ``render`` (as JSON)."""

    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


class CSVRenderer(_StreamedExportRenderer):
    media_type = "text/csv"
    format = "csv"


class JSONLinesRenderer(_StreamedExportRenderer):
    media_type = "application/jsonl"
    format = "jsonl"


class AuditExportApi(ApiView):
    """The filtered log as CSV, streamed (same filters as the list).

    A text cell starting with ``= + - @ '``, a tab or a carriage return gets a leading ``'`` so that a
    spreadsheet shows it as text (formulas can be planted in the log by anyone, e.g. in a refused URL);
    drop that one ``'`` to get the stored value back. ``export.jsonl`` has the exact values.
    """

    permission_classes = [IsAuditor]
    error_codes = {400: ["invalid"]}
    renderer_classes = [JSONRenderer, CSVRenderer]
    audit_action = "audit.events.export"

    @extend_schema(parameters=_FILTER_PARAMETERS, responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request):
        qs = _filtered(request)
        response = StreamingHttpResponse(selectors.audit_events_csv(qs.iterator(chunk_size=2000)), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-events.csv"'
        return response


class AuditExportJsonlApi(ApiView):
    """The filtered log as JSON Lines, streamed (same filters as the list): one object per event, oldest first,
    with the exact stored values, the ones the hash chain is over (``details`` as an object)."""

    permission_classes = [IsAuditor]
    error_codes = {400: ["invalid"]}
    renderer_classes = [JSONRenderer, JSONLinesRenderer]
    audit_action = "audit.events.export"

    def audit_read_details(self) -> dict:
        return {**super().audit_read_details(), "format": "jsonl"}

    @extend_schema(parameters=_FILTER_PARAMETERS, responses={(200, "application/jsonl"): OpenApiTypes.STR})
    def get(self, request):
        qs = _filtered(request)
        response = StreamingHttpResponse(selectors.audit_events_jsonl(qs.iterator(chunk_size=2000)),
                                         content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-events.jsonl"'
        return response


class AuditVerifyApi(ApiView):
    """Recompute the hash chain; report whether it holds and the first broken event."""

    permission_classes = [IsAuditor]
    audit_action = "audit.verify"

    class OutputSerializer(serializers.Serializer):
        valid = serializers.BooleanField()
        events_checked = serializers.IntegerField()
        head_seq = serializers.IntegerField(allow_null=True)
        head_hash = serializers.CharField(allow_null=True)
        first_broken = serializers.DictField(allow_null=True)

    def audit_read_details(self) -> dict:
        report = self._report
        return {"valid": report.valid, "events_checked": report.events_checked, "first_broken_seq": report.first_broken_seq}

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        audit_refusals_flush(open_windows=True)
        report = self._report = audit_chain_verify()
        broken = None
        if not report.valid:
            broken = {"seq": report.first_broken_seq, "id": report.first_broken_id, "reason": report.reason}
        body = {"valid": report.valid, "events_checked": report.events_checked, "head_seq": report.head_seq,
                "head_hash": report.head_hash, "first_broken": broken}
        return Response(self.OutputSerializer(body).data)
