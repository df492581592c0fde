"""Datasets API: metadata, schema and size. Never rows."""

from __future__ import annotations

import json

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.permissions import IsCustodian, IsVerifiedUser
from clearinghouse import selectors
from clearinghouse.api import parsers
from clearinghouse.api.pagination import Pagination
from clearinghouse.api.serializers import StrictInputSerializer
from clearinghouse.api.views import ApiView
from clearinghouse.models import Dataset
from clearinghouse.services.datasets import dataset_create

MAX_SCHEMA_BYTES = 1024 * 1024


class DatasetOutputSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Dataset
        fields = ["slug", "name", "description", "schema", "n_rows", "n_columns", "dropped_columns",
                  "stored_bytes", "created_by", "created_at"]


@extend_schema_field({"type": "string", "description": "the schema as JSON text, or as a JSON file part"})
class JsonDocumentField(serializers.Field):
    """A JSON document sent as a form field or as an uploaded file part."""

    def to_internal_value(self, data):
        if hasattr(data, "read"):
            if data.size > MAX_SCHEMA_BYTES:
                raise serializers.ValidationError(f"Larger than {MAX_SCHEMA_BYTES} bytes.")
            data = data.read()
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise serializers.ValidationError("Not UTF-8 text.") from None
        if not isinstance(data, str):
            raise serializers.ValidationError("Expected a JSON document.")
        try:
            return parsers.loads(data)
        except parsers.JsonTooDeep as exc:  # as the body parser answers it: the document is malformed
            raise ParseError(f"schema: {exc}") from None
        except json.JSONDecodeError as exc:
            raise serializers.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno}).") from None

    def to_representation(self, value):
        return value


class DatasetListCreateApi(ApiView):
    """GET: any verified user lists datasets. POST: a custodian uploads a CSV (multipart ``file``) and ``schema``."""

    parser_classes = [MultiPartParser]
    pagination_class = Pagination
    error_codes = {"POST": {400: ["invalid_slug", "invalid_schema", "wrong_encoding", "empty_file", "malformed_csv",
                                  "bad_header", "rows_failed_validation"],
                            409: ["duplicate_slug"]}}

    @property
    def audit_action(self) -> str:
        return "dataset.upload" if self.request.method == "POST" else "dataset.list"

    class InputSerializer(StrictInputSerializer):
        slug = serializers.CharField(max_length=64)
        name = serializers.CharField(max_length=200)
        description = serializers.CharField(required=False, allow_blank=True, default="")
        schema = JsonDocumentField()
        file = serializers.FileField(allow_empty_file=True)

    def get_permissions(self):
        return [IsCustodian()] if self.request.method == "POST" else [IsVerifiedUser()]

    def audit_context(self) -> dict:
        data = self.request.data
        return {"slug": str(data.get("slug", ""))[:64]} if self.request.method == "POST" and hasattr(data, "get") else {}

    @property
    def audit_object(self) -> tuple[str, str]:
        return "dataset", ""

    @extend_schema(responses=DatasetOutputSerializer(many=True))
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.dataset_list(), request, view=self)
        return paginator.get_paginated_response(DatasetOutputSerializer(page, many=True).data)

    @extend_schema(request={"multipart/form-data": InputSerializer}, responses={201: DatasetOutputSerializer},
                   operation_id="datasets_upload")
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        dataset = dataset_create(
            slug=data.validated_data["slug"],
            name=data.validated_data["name"],
            description=data.validated_data["description"],
            schema=data.validated_data["schema"],
            data=upload,  # read in chunks by the service, never whole
            by=request.user,
        )
        return Response(DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(ApiView):
    """Any verified user: one dataset's metadata and public schema."""

    permission_classes = [IsVerifiedUser]
    audit_action = "dataset.read"
    audit_object_type = "dataset"

    @extend_schema(responses=DatasetOutputSerializer)
    def get(self, request, slug: str):
        return Response(DatasetOutputSerializer(get_object_or_404(selectors.dataset_list(), slug=slug)).data)
