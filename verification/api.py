"""Verification API (verified researchers): submit a hypothesis, read your own history, and your
ε budget. Custodians set each dataset's policy and each researcher's allocation."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.budgets import allocation_set, budget_summary, policy_for, policy_set
from accounts.models import User
from accounts.permissions import IsCustodian, IsVerifiedResearcher
from clearinghouse import selectors as core_selectors
from clearinghouse.errors import ApplicationError
from clearinghouse.api.pagination import Pagination
from clearinghouse.api.views import ApiView
from verification.core.answer import VERDICTS
from verification.models import Verification
from verification.openapi import (
    EPSILON_UNIT,
    HypothesisBodySerializer,
    NormalizedHypothesisSerializer,
    RawSchemaSerializer,
    decimal_text,
    epsilon_schema,
    hypothesis_examples,
)
from verification.services import budget_left, verification_preview, verification_submit


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.5"})
class EpsilonField(serializers.Field):
    """An ε figure on the wire: an exact decimal string ("0.5", "2"), whatever it is held as."""

    def __init__(self, what: str, **kwargs):
        kwargs.setdefault("read_only", True)
        super().__init__(help_text=f"{what}: {EPSILON_UNIT}.", **kwargs)

    def to_representation(self, value):
        return decimal_text(value)


class AnswerOutputSerializer(serializers.Serializer):
    """The ε-DP answer, computed on the real rows: an estimate, its CI, the verdict on the claim and
    the same statistic on the release. Its ε figures are exact decimal strings."""

    kind = serializers.CharField()
    estimate = serializers.FloatField(allow_null=True, help_text="The DP estimate; null when withheld (or not "
                                                                 "estimable: reason says why).")
    ci_low = serializers.FloatField(allow_null=True, help_text="Lower CI bound; null: unbounded below.")
    ci_high = serializers.FloatField(allow_null=True, help_text="Upper CI bound; null: unbounded above.")
    confidence = serializers.FloatField(help_text="The CI's confidence level (0.95).")
    noisy_n = serializers.IntegerField(help_text="The noisy number of rows the answer used.")
    method = serializers.CharField(help_text="The mechanism, in words.")
    epsilon = EpsilonField("What the answer cost")
    epsilon_split = serializers.DictField(
        child=EpsilonField("The ε of the part"), read_only=True,
        help_text="Each part of the computation and the ε it used; parts over disjoint rows compose in parallel "
                  "(details.composition says how), so the parts need not add up to epsilon.")
    withheld = serializers.BooleanField(help_text="True when a noisy subgroup was below the dataset's minimum: no "
                                                  "estimate, ε still spent.")
    informative = serializers.BooleanField(help_text="False when the estimate says nothing (on a clamp bound, or "
                                                     "the noise swamps the sampling error), or when the data cannot "
                                                     "answer the hypothesis (no events in a group, a constant "
                                                     "exposure: details.non_answer names the cause; decided from "
                                                     "noisy outputs only, ε still charged): the verdict is then "
                                                     "inconclusive.")
    reason = serializers.CharField(allow_blank=True, help_text="Why withheld or uninformative, in plain words; "
                                                               "empty otherwise.")
    synthetic_estimate = serializers.FloatField(allow_null=True, help_text="The same statistic on the release, "
                                                                           "without noise (it is synthetic).")
    verdict = serializers.ChoiceField(choices=VERDICTS, allow_null=True,
                                      help_text="The CI against the claim; null exactly when withheld.")
    details = serializers.DictField(help_text="Kind-specific figures (noise and sampling SDs, settings, "
                                              "composition).")


class VerificationStatusSchema(RawSchemaSerializer):
    """Annotation only: a verification's status, one component (the list and the POST answer share it)."""

    component_name = "VerificationStatus"

    @classmethod
    def openapi(cls, auto_schema, direction):
        return {"type": "string", "enum": list(Verification.Status.values),
                "description": "computing: charged, the answer is being computed; answered; failed: the computation "
                               "failed and the ε was refunded; reused: answered from an identical earlier "
                               "hypothesis at no charge."}


@extend_schema_field(VerificationStatusSchema)
class VerificationStatusField(serializers.CharField):
    pass


class VerificationOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.slug", read_only=True)
    release = serializers.IntegerField(source="release_id", read_only=True)
    hypothesis = NormalizedHypothesisSerializer(read_only=True)
    status = VerificationStatusField(read_only=True)
    reused = serializers.SerializerMethodField()
    reused_from = serializers.IntegerField(source="reused_from_id", read_only=True, allow_null=True)
    epsilon_charged = EpsilonField("Charged to your allocation for this verification (0 for a reused answer)",
                                   source="epsilon")
    answer = AnswerOutputSerializer(read_only=True, allow_null=True,
                                    help_text="The answer; null while it is computed or when the computation "
                                              "failed (refunded).")

    class Meta:
        model = Verification
        fields = ["id", "dataset", "release", "kind", "hypothesis", "status", "reused", "reused_from",
                  "epsilon_charged", "answer", "created_at", "answered_at"]

    def get_reused(self, verification: Verification) -> bool:
        return verification.status == Verification.Status.REUSED


class BudgetLeftOutputSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    allocation = EpsilonField("Your allocation on the dataset")
    spent = EpsilonField("What you have spent on it")
    left = EpsilonField("What you have left: the smaller of your allocation minus spent and the dataset's total "
                        "left")


class VerificationSubmitOutputSerializer(VerificationOutputSerializer):
    """A verification as POST answers it: with your budget on the dataset after it."""

    budget = serializers.SerializerMethodField()

    class Meta(VerificationOutputSerializer.Meta):
        fields = [*VerificationOutputSerializer.Meta.fields, "budget"]

    @extend_schema_field(BudgetLeftOutputSerializer)
    def get_budget(self, verification: Verification) -> dict:
        return BudgetLeftOutputSerializer(self.context["budget"]).data


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
                            429: ["daily_limit_reached"], 500: ["computation_failed"],
                            503: ["database_unavailable"]}}
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

    @extend_schema(request=HypothesisBodySerializer, responses={201: VerificationSubmitOutputSerializer,
                                                                200: VerificationSubmitOutputSerializer},
                   examples=hypothesis_examples())
    def post(self, request):
        verification = verification_submit(user=request.user, raw=request.data)
        context = {"budget": budget_left(request.user, verification.dataset)}
        body = VerificationSubmitOutputSerializer(verification, context=context).data
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
    epsilon = EpsilonField("An ε the search simulated")
    p_decisive = serializers.FloatField()


class VerificationPreviewOutputSerializer(serializers.Serializer):
    """What the hypothesis's answer would likely look like, simulated on the published synthetic
    release (never on the real rows): nothing is charged. Its ε figures are exact decimal strings."""

    dataset = serializers.CharField()
    release = serializers.IntegerField()
    kind = serializers.CharField()
    hypothesis = NormalizedHypothesisSerializer(help_text="The normalized hypothesis, as a verification would store "
                                                          "it.")
    epsilon = EpsilonField("The ε asked for (nothing is charged)")
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
    max_epsilon = EpsilonField("The most this hypothesis could ask for now: your remaining allocation or the "
                               "per-query maximum, whichever is smaller")
    budget_left = EpsilonField("What you have left on the dataset (as left in GET budget/)")
    suggested_epsilon = EpsilonField("The smallest ε tried, up to max_epsilon, with P(decisive) ≥ target; null when "
                                     "none", allow_null=True)
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

    @extend_schema(request=HypothesisBodySerializer, responses={200: VerificationPreviewOutputSerializer},
                   examples=hypothesis_examples())
    def post(self, request):
        return Response(VerificationPreviewOutputSerializer(verification_preview(user=request.user,
                                                                                 raw=request.data)).data)


class BudgetRowOutputSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    allocation = EpsilonField("Your allocation on the dataset (the policy's default until a custodian sets it)")
    spent = EpsilonField("What you have spent on it")
    left = EpsilonField("What you have left: the smaller of your allocation minus spent and dataset_left")
    dataset_left = EpsilonField("What the dataset's total cap has left, over all researchers")
    max_epsilon_per_query = EpsilonField("The most one hypothesis may ask for")


class BudgetOutputSerializer(serializers.Serializer):
    budgets = BudgetRowOutputSerializer(many=True, help_text="One row per dataset, by slug.")


class BudgetPolicyOutputSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    total_cap = EpsilonField("The most all researchers together may spend on the dataset")
    total_spent = EpsilonField("What they have spent")
    default_allocation = EpsilonField("A researcher's allocation until a custodian sets theirs")
    max_epsilon_per_query = EpsilonField("The most one hypothesis may ask for")
    min_subgroup = serializers.IntegerField(help_text="Answers whose noisy subgroup is smaller are withheld.")
    daily_limit = serializers.IntegerField(allow_null=True, help_text="Charged hypotheses per researcher per day "
                                                                      "(UTC); null: no limit.")


def _policy_epsilon(what: str) -> dict:
    schema = epsilon_schema(what)
    schema["description"] += " A JSON number is also accepted; at most six decimal places, at most 1000."
    return schema


class BudgetPolicyInputSerializer(RawSchemaSerializer):
    """Annotation only: PUT budget-policy/'s body (policy_set checks it)."""

    component_name = "BudgetPolicyInput"

    @classmethod
    def openapi(cls, auto_schema, direction):
        whole = {"type": "integer", "minimum": 1, "maximum": 10**9}
        return {
            "type": "object",
            "description": "One or more of the policy's fields; the others stay as they are.",
            "properties": {
                "total_cap": _policy_epsilon("The dataset's total cap (not below what is spent: 409)"),
                "default_allocation": _policy_epsilon("A researcher's allocation until a custodian sets theirs"),
                "max_epsilon_per_query": _policy_epsilon("The most one hypothesis may ask for (above 0)"),
                "min_subgroup": {**whole, "description": "the smallest noisy subgroup answered"},
                "daily_limit": {**whole, "nullable": True, "description": "charged hypotheses per researcher per "
                                                                          "day; null: no limit"},
            },
            "minProperties": 1,
            "additionalProperties": False,
        }


class AllocationInputSerializer(RawSchemaSerializer):
    """Annotation only: PUT allocations/{user_id}/'s body."""

    component_name = "AllocationInput"

    @classmethod
    def openapi(cls, auto_schema, direction):
        return {"type": "object",
                "properties": {"epsilon": _policy_epsilon("The researcher's allocation (not below what they have "
                                                          "spent: 409)")},
                "required": ["epsilon"], "additionalProperties": False}


class AllocationOutputSerializer(serializers.Serializer):
    dataset = serializers.CharField()
    user = serializers.IntegerField()
    username = serializers.CharField()
    allocation = EpsilonField("The researcher's allocation on the dataset")
    spent = EpsilonField("What they have spent on it")


class BudgetApi(ApiView):
    """Your ε per dataset: allocation, spent, left (and what the dataset has left in total)."""

    permission_classes = [IsVerifiedResearcher]
    audit_action = "budget.read"
    audit_object_type = "budget"

    @extend_schema(responses=BudgetOutputSerializer)
    def get(self, request):
        return Response(BudgetOutputSerializer({"budgets": budget_summary(request.user)}).data)


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

        return BudgetPolicyOutputSerializer({"dataset": policy.dataset.slug, **_policy_dict(policy)}).data

    @extend_schema(responses=BudgetPolicyOutputSerializer)
    def get(self, request, slug: str):
        return Response(self._body(policy_for(get_object_or_404(core_selectors.dataset_list(), slug=slug))))

    @extend_schema(request=BudgetPolicyInputSerializer, responses=BudgetPolicyOutputSerializer,
                   examples=[OpenApiExample("a daily limit", value={"daily_limit": 20, "total_cap": "50"},
                                            request_only=True)])
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

    @extend_schema(request=AllocationInputSerializer, responses=AllocationOutputSerializer,
                   examples=[OpenApiExample("three and a half", value={"epsilon": "3.5"}, request_only=True)])
    def put(self, request, slug: str, user_id: int):
        dataset = get_object_or_404(core_selectors.dataset_list(), slug=slug)
        user = get_object_or_404(User, pk=user_id)
        if not isinstance(request.data, dict) or set(request.data) != {"epsilon"}:
            raise ApplicationError("Send {\"epsilon\": <allocation>}.", code="invalid_epsilon")
        allocation = allocation_set(user=user, dataset=dataset, epsilon=request.data["epsilon"], by=request.user)
        return Response(AllocationOutputSerializer({"dataset": dataset.slug, "user": user.pk,
                                                    "username": user.username, "allocation": allocation.epsilon,
                                                    "spent": allocation.spent}).data)
