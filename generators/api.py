"""Training runs and sweeps API (custodians): start a run (202), follow its progress, cancel it;
start a model-selection sweep and read its ranking."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.permissions import IsCustodian
from clearinghouse import selectors as core_selectors
from clearinghouse.api.pagination import Pagination
from clearinghouse.api.serializers import StrictInputSerializer
from clearinghouse.api.views import ApiView
from generators import selectors
from generators.models import GeneratorRun
from generators.services import run_cancel, run_create, run_epoch_progress, trains_by_epochs


class RunProgressSerializer(serializers.Serializer):
    epoch = serializers.IntegerField(allow_null=True, help_text="Epochs done; null for a model without epochs.")
    epochs = serializers.IntegerField(allow_null=True, help_text="Epochs asked for; null for a model without epochs.")
    fraction = serializers.FloatField(help_text="0 to 1; a model without epochs goes from 0 to 1 when it succeeds.")
    losses = serializers.DictField(child=serializers.FloatField(), help_text="The last report's losses.")
    elapsed_seconds = serializers.FloatField(allow_null=True)
    eta_seconds = serializers.FloatField(allow_null=True)
    last_report_at = serializers.DateTimeField(allow_null=True)


class RunOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    epochs = serializers.SerializerMethodField(help_text="null for a model that does not train by epochs (copula)")
    progress = serializers.SerializerMethodField()
    n_holdout = serializers.SerializerMethodField()

    class Meta:
        model = GeneratorRun
        fields = ["id", "dataset", "model", "hyperparameters", "epochs", "seed", "device_requested", "device",
                  "queue", "status", "cancel_requested", "progress", "error", "n_train", "n_holdout",
                  "created_by", "created_at", "started_at", "finished_at"]

    def get_epochs(self, run: GeneratorRun) -> int | None:
        return run_epoch_progress(run)["epochs"]

    @extend_schema_field(RunProgressSerializer)
    def get_progress(self, run: GeneratorRun) -> dict:
        elapsed, eta = run.elapsed_seconds, run.eta_seconds
        if not trains_by_epochs(run.model):
            eta = 0.0 if run.finished else None
        return {
            **run_epoch_progress(run),
            "losses": run.losses,
            "elapsed_seconds": round(elapsed, 1) if elapsed is not None else None,
            "eta_seconds": round(eta, 1) if eta is not None else None,
            "last_report_at": run.heartbeat_at,
        }

    def get_n_holdout(self, run: GeneratorRun) -> int | None:
        if run.n_train is None:
            return None
        return run.dataset.n_rows - run.n_train


class DatasetRunsApi(ApiView):
    """GET: a dataset's training runs. POST: start one; it is queued when the request commits (202)."""

    permission_classes = [IsCustodian]
    pagination_class = Pagination
    error_codes = {"POST": {400: ["unknown_model", "invalid_epochs", "invalid_seed", "invalid_device",
                                  "invalid_hyperparameters", "cuda_unavailable"]}}
    audit_object_type = "dataset"

    @property
    def audit_action(self) -> str:
        return "run.create" if self.request.method == "POST" else "run.list"

    class InputSerializer(StrictInputSerializer):
        model = serializers.CharField(help_text="ctgan, flow or copula")
        epochs = serializers.IntegerField(required=False, allow_null=True, default=None, help_text=(
            "1 to GENERATOR_MAX_EPOCHS; required for ctgan and flow. The copula is fitted in one pass: "
            "leave it out (a value is accepted and ignored)."))
        seed = serializers.IntegerField(required=False, default=0, help_text="0 to 2**32 - 1")
        device = serializers.CharField(required=False, default="auto", help_text="auto, cpu or cuda")
        hyperparameters = serializers.DictField(required=False, default=dict)

    def audit_context(self) -> dict:
        data = self.request.data
        return {"model": str(data.get("model", ""))[:32]} if self.request.method == "POST" and hasattr(data, "get") else {}

    @extend_schema(responses=RunOutputSerializer(many=True))
    def get(self, request, slug: str):
        get_object_or_404(core_selectors.dataset_list(), slug=slug)
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.run_list(dataset_slug=slug), request, view=self)
        return paginator.get_paginated_response(RunOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={202: RunOutputSerializer}, operation_id="runs_create")
    def post(self, request, slug: str):
        dataset = get_object_or_404(core_selectors.dataset_list(), slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = run_create(dataset=dataset, by=request.user, **data.validated_data)
        run.refresh_from_db()  # without a broker the run has already finished here
        return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/v1/runs/{run.pk}/"})


class RunDetailApi(ApiView):
    """A run's status and progress: epoch of total, last losses, elapsed, ETA, error."""

    permission_classes = [IsCustodian]
    audit_action = "run.read"
    audit_object_type = "run"

    @extend_schema(responses=RunOutputSerializer)
    def get(self, request, run_id: int):
        return Response(RunOutputSerializer(get_object_or_404(selectors.run_list(), pk=run_id)).data)


class RunCancelApi(ApiView):
    """Cancel a queued run (at once) or a running one (at its next progress report). 409 once finished."""

    permission_classes = [IsCustodian]
    error_codes = {409: ["run_finished"]}
    audit_action = "run.cancel"
    audit_object_type = "run"

    @extend_schema(request=None, responses={202: RunOutputSerializer})
    def post(self, request, run_id: int):
        run = run_cancel(run=get_object_or_404(GeneratorRun, pk=run_id), by=request.user)
        return Response(RunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)
