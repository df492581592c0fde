"""Verification API (verified researchers): submit a hypothesis, read your own history, and your
ε budget. Custodians set each dataset's policy and each researcher's allocation."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.budgets import allocation_set, budget_summary, policy_for, policy_set
from accounts.models import User
from accounts.permissions import IsCustodian, IsVerifiedResearcher
from clearinghouse import selectors as core_selectors
from clearinghouse.errors import ApplicationError
from clearinghouse.api.pagination import Pagination
from clearinghouse.api.views import ApiView
from verification.models import Verification
from verification.services import budget_left, verification_preview, verification_submit


class VerificationOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug", read_only=True)
    release = serializers.IntegerField(source="release_id", read_only=True)
    reused = serializers.SerializerMethodField()
    reused_from = serializers.IntegerField(source="reused_from_id", read_only=True, allow_null=True)
    epsilon_charged = serializers.SerializerMethodField()

    class Meta:
        model = Verification
        fields = ["id", "dataset", "release", "kind", "hypothesis", "status", "reused", "reused_from",
                  "epsilon_charged", "answer", "created_at", "answered_at"]

    def get_reused(self, verification: Verification) -> bool:
        return verification.status == Verification.Status.REUSED

    def get_epsilon_charged(self, verification: Verification) -> str:
        return format(verification.epsilon.normalize(), "f")


HYPOTHESIS_EXAMPLE = {
    "release": 1, "kind": "hazard_ratio", "params": {"exposure": {"column": "horTh", "value": "yes"}},
    "where": [], "claim": {"direction": "less", "value": 1}, "epsilon": 0.5,
}


def _posted_hypothesis(request) -> dict:
    """The gist of a posted hypothesis for the audit row of a refused request."""
    data = request.data
    if request.method == "POST" and isinstance(data, dict):
        return {"kind": str(data.get("kind", ""))[:40], "release": str(data.get("release", ""))[:20],
                "epsilon": str(data.get("epsilon", ""))[:40]}
    return {}


class VerificationListCreateApi(ApiView):
    """POST: a hypothesis found on a published release → its ε-DP answer on the real rows, with
    a CI, a verdict and the same statistic on the release; charged to your budget unless an
    identical hypothesis was answered before (``reused``). GET: your own verifications."""

    permission_classes = [IsVerifiedResearcher]
    pagination_class = Pagination
    error_codes = {"POST": {400: ["malformed", "unknown_release", "invalid_release", "release_dataset_mismatch",
                                  "kind_not_available", "bad_epsilon"],
                            403: ["budget_exhausted"], 409: ["verification_in_progress"],
                            429: ["daily_limit_reached"], 500: ["computation_failed"]}}
    audit_object_type = "verification"

    @property
    def audit_action(self) -> str:
        return "verification.create" if self.request.method == "POST" else "verification.list"

    def audit_context(self) -> dict:
        return _posted_hypothesis(self.request)

    @extend_schema(responses=VerificationOutputSerializer(many=True))
    def get(self, request):
        paginator = Pagination()
        mine = Verification.objects.filter(user=request.user).select_related("dataset")
        page = paginator.paginate_queryset(mine, request, view=self)
        return paginator.get_paginated_response(VerificationOutputSerializer(page, many=True).data)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={201: VerificationOutputSerializer,
                                                           200: VerificationOutputSerializer},
                   examples=[OpenApiExample("hormonal therapy lowers the hazard", value=HYPOTHESIS_EXAMPLE)])
    def post(self, request):
        verification = verification_submit(user=request.user, raw=request.data)
        body = dict(VerificationOutputSerializer(verification).data)
        body["budget"] = budget_left(request.user, verification.dataset)
        reused = verification.status == Verification.Status.REUSED
        return Response(body, status=status.HTTP_200_OK if reused else status.HTTP_201_CREATED)


class VerificationDetailApi(ApiView):
    permission_classes = [IsVerifiedResearcher]
    audit_action = "verification.read"
    audit_object_type = "verification"

    @extend_schema(responses=VerificationOutputSerializer)
    def get(self, request, verification_id: int):
        verification = get_object_or_404(Verification.objects.filter(user=request.user).select_related("dataset"),
                                         pk=verification_id)
        return Response(VerificationOutputSerializer(verification).data)


class PreviewIntervalSerializer(serializers.Serializer):
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)


class PreviewSearchedSerializer(serializers.Serializer):
    epsilon = serializers.FloatField()
    p_decisive = serializers.FloatField()


class VerificationPreviewOutputSerializer(serializers.Serializer):
    """The figures of :func:`verification.core.preview.preview`, documented for the OpenAPI schema."""

    dataset = serializers.CharField()
    release = serializers.IntegerField()
    kind = serializers.CharField()
    hypothesis = serializers.JSONField(help_text="The normalized hypothesis, as a verification would store it.")
    epsilon = serializers.FloatField(help_text="The ε asked for (nothing is charged).")
    draws = serializers.IntegerField(help_text="Simulated answers at the asked ε.")
    p_decisive = serializers.FloatField(help_text="Share of the simulated answers whose verdict is supported or "
                                                  "contradicted (withheld and uninformative ones are not).")
    p_withheld = serializers.FloatField()
    p_uninformative = serializers.FloatField()
    expected_ci_width = serializers.FloatField(allow_null=True, help_text="Median CI width (ci_high − ci_low).")
    expected_ci_width_log = serializers.FloatField(allow_null=True,
                                                   help_text="Ratio kinds: median log(ci_high / ci_low); else null.")
    expected_ci = PreviewIntervalSerializer(help_text="Median CI bounds.")
    synthetic_estimate = serializers.FloatField(allow_null=True, help_text="The statistic on the release, no noise.")
    max_epsilon = serializers.FloatField(help_text="The most this hypothesis could ask for now: your remaining "
                                                   "allocation or the per-query maximum, whichever is smaller.")
    budget_left = serializers.CharField(help_text="ε you have left on the dataset (as in GET /budget/).")
    suggested_epsilon = serializers.FloatField(allow_null=True, help_text="The smallest ε tried, up to max_epsilon, "
                                                                          "with P(decisive) ≥ target; else null.")
    suggestion_reason = serializers.CharField()
    target = serializers.FloatField()
    searched = PreviewSearchedSerializer(many=True, help_text="Each ε the search tried and its P(decisive).")
    note = serializers.CharField()


class VerificationPreviewApi(ApiView):
    """POST the body of a verification: the figures its ε-DP answer would likely have, simulated on
    the published synthetic release (never on the real rows). Free: no ε is charged and nothing is
    stored but its audit row. Refused with the same 400s as a verification."""

    permission_classes = [IsVerifiedResearcher]
    error_codes = {400: ["malformed", "unknown_release", "invalid_release", "release_dataset_mismatch",
                         "kind_not_available", "bad_epsilon"], 500: ["preview_failed"]}
    audit_action = "verification.preview"
    audit_object_type = "verification"

    def audit_context(self) -> dict:
        return _posted_hypothesis(self.request)

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: VerificationPreviewOutputSerializer},
                   examples=[OpenApiExample("hormonal therapy lowers the hazard", value=HYPOTHESIS_EXAMPLE,
                                            request_only=True)])
    def post(self, request):
        return Response(VerificationPreviewOutputSerializer(verification_preview(user=request.user,
                                                                                 raw=request.data)).data)


class BudgetApi(ApiView):
    """Your ε per dataset: allocation, spent, left (and what the dataset has left in total)."""

    permission_classes = [IsVerifiedResearcher]
    audit_action = "budget.read"
    audit_object_type = "budget"

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response({"budgets": budget_summary(request.user)})


class DatasetBudgetPolicyApi(ApiView):
    """A dataset's verification policy (custodians): total cap, default allocation, most ε per
    hypothesis, smallest noisy subgroup, optional daily limit. PUT changes some of them."""

    permission_classes = [IsCustodian]
    error_codes = {"PUT": {400: ["invalid_policy", "invalid_total_cap", "invalid_default_allocation",
                                 "invalid_max_epsilon_per_query", "invalid_min_subgroup", "invalid_daily_limit"],
                           409: ["invalid_total_cap"]}}
    audit_object_type = "dataset"

    @property
    def audit_action(self) -> str:
        return "budget.policy.set" if self.request.method == "PUT" else "budget.policy.read"

    @staticmethod
    def _body(policy) -> dict:
        from accounts.budgets import _policy_dict

        return {"dataset": policy.dataset.slug, **_policy_dict(policy)}

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, slug: str):
        return Response(self._body(policy_for(get_object_or_404(core_selectors.dataset_list(), slug=slug))))

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT,
                   examples=[OpenApiExample("a daily limit", value={"daily_limit": 20, "total_cap": "50"})])
    def put(self, request, slug: str):
        dataset = get_object_or_404(core_selectors.dataset_list(), slug=slug)
        if not isinstance(request.data, dict):
            raise ApplicationError("Send an object of policy fields.", code="invalid_policy")
        return Response(self._body(policy_set(dataset=dataset, changes=dict(request.data), by=request.user)))


class AllocationApi(ApiView):
    """Set one researcher's ε allocation on a dataset (custodians): ``{"epsilon": "3.5"}``."""

    permission_classes = [IsCustodian]
    error_codes = {400: ["invalid_epsilon"], 409: ["not_a_researcher", "allocation_below_spent"]}
    audit_action = "budget.allocation.set"
    audit_object_type = "dataset"

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request, slug: str, user_id: int):
        dataset = get_object_or_404(core_selectors.dataset_list(), slug=slug)
        user = get_object_or_404(User, pk=user_id)
        if not isinstance(request.data, dict) or set(request.data) != {"epsilon"}:
            raise ApplicationError("Send {\"epsilon\": <allocation>}.", code="invalid_epsilon")
        allocation = allocation_set(user=user, dataset=dataset, epsilon=request.data["epsilon"], by=request.user)
        return Response({"dataset": dataset.slug, "user": user.pk, "username": user.username,
                         "allocation": format(allocation.epsilon.normalize(), "f"),
                         "spent": format(allocation.spent.normalize(), "f")})
