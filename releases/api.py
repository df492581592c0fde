"""Releases API: custodians make and publish synthetic releases, set the publication gates and run
sweeps; verified researchers list and download the published ones. Downloads are streamed and audited."""

from __future__ import annotations

from django.utils.encoding import force_bytes
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from accounts.permissions import IsCustodian, IsCustodianOrVerifiedResearcher
from clearinghouse import selectors as core_selectors
from clearinghouse.errors import ApplicationError
from clearinghouse.api.pagination import Pagination
from clearinghouse.api.serializers import StrictInputSerializer
from clearinghouse.api.views import ApiView
from generators.core.evaluation.gates import DEFAULT_GATES, GATES, parse_gates
from generators.models import GeneratorRun
from generators.services import trains_by_epochs
from releases import selectors
from releases.models import Release, Sweep
from releases.reports import (dataset_set_gates, public_override, report_html, report_rerun, report_status,
                              report_view)
from releases.services import release_create, release_publish
from releases.storage import DATA_FILES
from releases.sweeps import DEFAULT_MODELS, sweep_create


class ReleaseOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug", read_only=True)
    run = serializers.IntegerField(source="run_id", read_only=True)
    published = serializers.BooleanField(read_only=True)
    files = serializers.SerializerMethodField()
    report = serializers.SerializerMethodField(help_text="The validation report's status and headline scores.")
    gate_override = serializers.SerializerMethodField(help_text="Set when published over failed gates.")

    class Meta:
        model = Release
        fields = ["id", "dataset", "run", "rows", "seed", "conditions", "published", "published_at",
                  "created_at", "datasheet", "files", "report", "gate_override"]

    def _audience(self) -> str:
        user = getattr(self.context.get("request"), "user", None)
        return "custodian" if getattr(user, "is_custodian", False) else "public"  # no request: the safe side

    def get_report(self, release: Release) -> dict | None:
        return report_status(release, audience=self._audience())

    def get_gate_override(self, release: Release) -> dict | None:
        if self._audience() == "custodian":
            return release.gate_override
        return public_override(release.gate_override)

    def get_files(self, release: Release) -> dict:
        return {
            kind: {"url": f"/api/v1/releases/{release.pk}/{name}", "bytes": getattr(release, f"{kind}_bytes"),
                   "sha256": getattr(release, f"{kind}_sha256")}
            for kind, name in DATA_FILES.items()
        }


def _visible(user):
    """Custodians see every release; researchers only published ones (others answer 404)."""
    releases = selectors.release_list()
    return releases if user.is_custodian else releases.filter(published_at__isnull=False)


class RunReleasesApi(ApiView):
    """A custodian samples a release from a succeeded run: plain, augmented (more rows than the
    real cohort), conditional (``{"horTh": "yes"}``) or rebalanced (``{"horTh": {"yes": 0.5, "no": 0.5}}``)."""

    permission_classes = [IsCustodian]
    error_codes = {400: ["invalid_rows", "invalid_seed", "invalid_conditions"], 409: ["run_not_succeeded", "checkpoint_missing"],
                   507: ["storage_full"]}
    audit_action = "release.create"
    audit_object_type = "run"

    class InputSerializer(StrictInputSerializer):
        rows = serializers.IntegerField(help_text="1 to RELEASE_MAX_ROWS")
        seed = serializers.IntegerField(required=False, default=0)
        conditions = serializers.JSONField(required=False, default=None, allow_null=True, help_text=(
            'a category {"horTh": "yes"}, a list {"tgrade": ["II", "III"]} or proportions '
            '{"horTh": {"yes": 0.5, "no": 0.5}}'))

    @extend_schema(request=InputSerializer, responses={201: ReleaseOutputSerializer}, operation_id="releases_create")
    def post(self, request, run_id: int):
        run = get_object_or_404(GeneratorRun.objects.select_related("dataset"), pk=run_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = release_create(run=run, by=request.user, **data.validated_data)
        return Response(ReleaseOutputSerializer(release, context={"request": request}).data,
                        status=status.HTTP_201_CREATED)


class ReleaseListApi(ApiView):
    permission_classes = [IsCustodianOrVerifiedResearcher]
    pagination_class = Pagination
    audit_action = "release.list"
    audit_object_type = "release"

    @extend_schema(responses=ReleaseOutputSerializer(many=True))
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(_visible(request.user), request, view=self)
        return paginator.get_paginated_response(
            ReleaseOutputSerializer(page, many=True, context={"request": request}).data)


class ReleaseDetailApi(ApiView):
    permission_classes = [IsCustodianOrVerifiedResearcher]
    audit_action = "release.read"
    audit_object_type = "release"

    @extend_schema(responses=ReleaseOutputSerializer)
    def get(self, request, release_id: int):
        release = get_object_or_404(_visible(request.user), pk=release_id)
        return Response(ReleaseOutputSerializer(release, context={"request": request}).data)


class ReleasePublishApi(ApiView):
    """Publish a release whose validation report passes every gate of its dataset. When a gate
    fails the answer is 409 listing each failed gate with its value, unless the custodian gives
    ``{"override": {"justification": "..."}}``, which is audited and shown on the release."""

    permission_classes = [IsCustodian]
    error_codes = {400: ["invalid_override", "override_not_needed"],
                   409: ["already_published", "gates_failed", "report_not_ready", "report_missing", "report_failed"]}
    audit_action = "release.publish"
    audit_object_type = "release"

    class InputSerializer(StrictInputSerializer):
        override = serializers.JSONField(required=False, default=None, allow_null=True,
                                         help_text='{"justification": "why the failed gates are acceptable"}')

    @extend_schema(request=InputSerializer, responses=ReleaseOutputSerializer)
    def post(self, request, release_id: int):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = release_publish(release=get_object_or_404(Release, pk=release_id), by=request.user,
                                  override=data.validated_data["override"])
        return Response(ReleaseOutputSerializer(release, context={"request": request}).data)


class HtmlPageRenderer(BaseRenderer):
    """A finished, self-contained HTML page (the report's), passed through as it is."""

    media_type = "text/html"
    format = "html"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return force_bytes(data)


class ReleaseReportApi(ApiView):
    """The release's validation report. Custodians get all of it; verified researchers (published
    releases only) get the public part: scores and synthetic-side plots, no statistic of the real
    rows. ``?format=html`` gives the page with plots. 409 while the report is being computed.
    A custodian may POST to compute it again (after a failure)."""

    permission_classes = [IsCustodianOrVerifiedResearcher]
    error_codes = {"GET": {409: ["report_not_ready", "report_missing", "report_failed"]},
                   "POST": {409: ["already_published", "report_not_ready"]}}
    audit_object_type = "release"
    renderer_classes = [JSONRenderer, HtmlPageRenderer]

    @property
    def audit_action(self) -> str:
        return "report.request" if self.request.method == "POST" else "report.read"
    def get_permissions(self):
        return [IsCustodian()] if self.request.method == "POST" else super().get_permissions()

    def audit_read_details(self) -> dict:
        return {"audience": self._audience(), "format": self.request.accepted_renderer.format}

    def _audience(self) -> str:
        return "custodian" if self.request.user.is_custodian else "public"

    @extend_schema(responses={(200, "application/json"): OpenApiTypes.OBJECT,
                              (200, "text/html"): OpenApiResponse(OpenApiTypes.STR)})
    def get(self, request, release_id: int):
        release = get_object_or_404(_visible(request.user).select_related("dataset"), pk=release_id)
        if request.accepted_renderer.format == "html":
            return Response(report_html(release, audience=self._audience()), content_type="text/html; charset=utf-8")
        return Response(report_view(release, audience=self._audience()))

    @extend_schema(request=None, responses={202: OpenApiTypes.OBJECT},
                   operation_id="releases_report_rerun")
    def post(self, request, release_id: int):
        release = get_object_or_404(Release.objects.select_related("dataset"), pk=release_id)
        report_rerun(release=release, by=request.user)
        return Response(report_status(release), status=status.HTTP_202_ACCEPTED)


class ReleaseDownloadApi(ApiView):
    """The synthetic rows, streamed from disk; each download is an audit event."""

    permission_classes = [IsCustodianOrVerifiedResearcher]
    forces_renderer = True  # never 406: errors are JSON whatever the Accept header says
    error_codes = {410: ["release_file_missing"]}
    audit_action = "release.download"
    audit_object_type = "release"
    renderer_classes = [JSONRenderer]  # errors are JSON, whatever the Accept header asks for
    kind = "csv"

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    def audit_read_details(self) -> dict:
        return {"format": self.kind}

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.BINARY),
                              (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY)})
    def get(self, request, release_id: int):
        release = get_object_or_404(_visible(request.user), pk=release_id)
        return selectors.release_download(release, self.kind)


class DatasetGatesApi(ApiView):
    """The dataset's publication-gate thresholds (custodians). PUT sets some of them; the others
    keep the papers' defaults. A release whose report fails a gate is not published without a
    written override."""

    permission_classes = [IsCustodian]
    error_codes = {"PUT": {400: ["invalid_gates"]}}
    audit_object_type = "dataset"

    @property
    def audit_action(self) -> str:
        return "dataset.gates.set" if self.request.method == "PUT" else "dataset.gates.read"

    @staticmethod
    def _body(dataset) -> dict:
        return {"dataset": dataset.slug, "gates": parse_gates(dataset.gates), "defaults": DEFAULT_GATES,
                "descriptions": {gate.name: gate.description for gate in GATES}}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        return Response(self._body(get_object_or_404(core_selectors.dataset_list(), slug=slug)))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   examples=[OpenApiExample("stricter membership inference", value={"mia_auc_max": 0.55})])
    def put(self, request, slug: str):
        dataset = get_object_or_404(core_selectors.dataset_list(), slug=slug)
        if not isinstance(request.data, dict) or not request.data:
            raise ApplicationError("Send an object of gate thresholds, e.g. {\"mia_auc_max\": 0.55}.",
                                   code="invalid_gates")
        return Response(self._body(dataset_set_gates(dataset=dataset, gates=dict(request.data), by=request.user)))


class SweepOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    models = serializers.ListField(source="model_names", child=serializers.CharField(), read_only=True)
    progress = serializers.SerializerMethodField()
    proposed_release = serializers.IntegerField(source="proposed_release_id", read_only=True, allow_null=True)
    epochs = serializers.SerializerMethodField(help_text="Epochs per training; null when no model of the sweep "
                                                         "trains by epochs (copula only)")

    class Meta:
        model = Sweep
        fields = ["id", "dataset", "models", "seeds", "samples", "epochs", "rows", "status", "progress",
                  "proposed_release", "candidates", "error", "created_by", "created_at", "started_at", "finished_at"]

    def get_epochs(self, sweep: Sweep) -> int | None:
        return sweep.epochs if any(trains_by_epochs(m) for m in sweep.model_names) else None

    @extend_schema(responses=None)
    def get_progress(self, sweep: Sweep) -> dict:
        return {"steps_done": sweep.steps_done, "steps_total": sweep.steps_total, "stage": sweep.stage,
                "fraction": round(sweep.steps_done / sweep.steps_total, 4) if sweep.steps_total else 0.0}


class DatasetSweepsApi(ApiView):
    """GET: a dataset's sweeps. POST: start one (202): every model × seed is trained, sampled
    ``samples`` times, reported on, and the best release passing the gates is proposed. Without
    ``models`` every model is compared: the documented way to choose a model; the proposed release's
    datasheet records the choice (``selection``)."""

    permission_classes = [IsCustodian]
    pagination_class = Pagination
    error_codes = {"POST": {400: ["invalid_models", "unknown_model", "invalid_seeds", "invalid_samples", "invalid_epochs",
                                  "invalid_rows", "sweep_too_large"]}}
    audit_object_type = "dataset"

    @property
    def audit_action(self) -> str:
        return "sweep.create" if self.request.method == "POST" else "sweep.list"

    class InputSerializer(StrictInputSerializer):
        models = serializers.ListField(
            child=serializers.CharField(), required=False, default=None,
            help_text=f"the models to compare, e.g. [\"copula\", \"ctgan\"]; default: every model "
                      f"({', '.join(DEFAULT_MODELS)}), the automatic model choice. The proposed release's datasheet "
                      "says it was chosen automatically (its selection: the sweep, the models and seeds compared, "
                      "each candidate's composite score, quality and failed gates)")
        seeds = serializers.ListField(child=serializers.IntegerField(), required=False, default=[0, 1, 2, 3, 4],
                                      help_text="training seeds (default 0–4, as the AML paper)")
        samples = serializers.IntegerField(required=False, default=3, help_text="releases per run (default 3)")
        epochs = serializers.IntegerField(required=False, default=None, allow_null=True,
                                          help_text="1 to GENERATOR_MAX_EPOCHS; required when a model trains by "
                                                    "epochs (ctgan, flow), not for the copula")
        rows = serializers.IntegerField(required=False, default=None, allow_null=True,
                                        help_text="rows per release (default: the cohort's size)")

    @extend_schema(responses=SweepOutputSerializer(many=True))
    def get(self, request, slug: str):
        get_object_or_404(core_selectors.dataset_list(), slug=slug)
        paginator = Pagination()
        page = paginator.paginate_queryset(Sweep.objects.filter(dataset__slug=slug).select_related(
            "dataset", "created_by"), request, view=self)
        return paginator.get_paginated_response(SweepOutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={202: SweepOutputSerializer}, operation_id="sweeps_create")
    def post(self, request, slug: str):
        dataset = get_object_or_404(core_selectors.dataset_list(), slug=slug)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sweep = sweep_create(dataset=dataset, by=request.user, **data.validated_data)
        sweep.refresh_from_db()  # without a broker the sweep has already finished here
        return Response(SweepOutputSerializer(sweep).data, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/api/v1/sweeps/{sweep.pk}/"})


class SweepDetailApi(ApiView):
    """A sweep's progress, its candidates (ranked) and the proposed release."""

    permission_classes = [IsCustodian]
    audit_action = "sweep.read"
    audit_object_type = "sweep"

    @extend_schema(responses=SweepOutputSerializer)
    def get(self, request, sweep_id: int):
        sweep = get_object_or_404(Sweep.objects.select_related("dataset", "created_by"), pk=sweep_id)
        return Response(SweepOutputSerializer(sweep).data)
