"""Accounts API: tokens, registration, verification, the caller's own profile."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle

from accounts import selectors, services
from accounts.models import ApiToken, Role, User
from accounts.permissions import IsCustodian
from clearinghouse.api.pagination import Pagination
from clearinghouse.api.serializers import StrictInputSerializer
from clearinghouse.api.views import ApiView


def _audited_username(data) -> dict:
    """The attempted username for a refusal's audit row, made storable: PostgreSQL's jsonb
    refuses U+0000 and lone surrogates, and a refusal must never turn into a 500."""
    if not hasattr(data, "get"):
        return {}
    username = str(data.get("username", ""))[:150]
    username = username.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return {"username": username}


class UserOutputSerializer(serializers.ModelSerializer):
    roles = serializers.ListField(child=serializers.CharField(), read_only=True)
    verified = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "affiliation", "roles", "verified",
                  "verified_at", "is_active", "date_joined"]

    def get_verified(self, user: User) -> bool:
        return user.verified_at is not None


class TokenOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "hint", "created_at", "expires_at", "revoked_at", "last_used_at"]


class TokenIssueApi(ApiView):
    """Exchange a username and password for an API token (shown once)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    error_codes = {400: ["invalid_ttl"], 401: ["invalid_credentials"], 429: ["throttled"]}
    throttle_classes = [AnonRateThrottle]
    audit_action = "auth.token.issue"

    class InputSerializer(StrictInputSerializer):
        username = serializers.CharField(max_length=150)
        password = serializers.CharField(max_length=256, trim_whitespace=False)
        name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
        expires_in_days = serializers.IntegerField(min_value=1, max_value=365, required=False)

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        token_type = serializers.CharField()
        id = serializers.IntegerField()
        hint = serializers.CharField()
        expires_at = serializers.DateTimeField()
        user = UserOutputSerializer()

    def audit_context(self) -> dict:
        return _audited_username(self.request.data)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer}, auth=[])
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = services.token_issue(
            username=data.validated_data["username"],
            password=data.validated_data["password"],
            name=data.validated_data["name"],
            ttl_days=data.validated_data.get("expires_in_days"),
        )
        body = {"token": raw, "token_type": "Bearer", "id": token.pk, "hint": token.hint,
                "expires_at": token.expires_at, "user": token.user}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_201_CREATED)


class TokenListApi(ApiView):
    """Your own tokens (never the secret itself)."""

    permission_classes = [IsAuthenticated]
    pagination_class = Pagination
    audit_action = "auth.token.list"

    @extend_schema(responses=TokenOutputSerializer(many=True))
    def get(self, request):
        paginator = Pagination()
        page = paginator.paginate_queryset(selectors.token_list(user=request.user), request, view=self)
        return paginator.get_paginated_response(TokenOutputSerializer(page, many=True).data)


class TokenRevokeApi(ApiView):
    """Revoke one of your own tokens (the current one logs you out)."""

    permission_classes = [IsAuthenticated]
    error_codes = {409: ["already_revoked"]}
    audit_action = "auth.token.revoke"
    audit_object_type = "token"

    @extend_schema(request=None, responses=TokenOutputSerializer)
    def post(self, request, token_id: int):
        token = get_object_or_404(selectors.token_list(user=request.user), pk=token_id)
        token = services.token_revoke(token=token, by=request.user)
        return Response(TokenOutputSerializer(token).data)


class RegisterApi(ApiView):
    """Register as a researcher. The account stays unverified until a custodian verifies it.

    The answer is the same (202) whether or not the username was free, so that registration does not tell
    who has an account: when it was taken, nothing is created or changed. A custodian sees the new account
    among the pending registrations; once verified, a token from `POST auth/token/` with the password
    chosen here proves the account is yours (an invalid-credentials answer means the name was taken).
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]
    error_codes = {400: ["weak_password"]}
    throttle_classes = [AnonRateThrottle]
    audit_action = "accounts.register"

    class InputSerializer(StrictInputSerializer):
        username = serializers.RegexField(r"^[\w.@+-]{3,150}$", max_length=150)
        password = serializers.CharField(max_length=256, trim_whitespace=False)
        email = serializers.EmailField()
        first_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
        last_name = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
        affiliation = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    class OutputSerializer(serializers.Serializer):
        username = serializers.CharField(help_text="The name as stored (NFKC-normalized).")
        status = serializers.ChoiceField(choices=["received"])
        message = serializers.CharField()

    def audit_context(self) -> dict:
        return _audited_username(self.request.data)

    @extend_schema(request=InputSerializer, responses={202: OutputSerializer}, auth=[])
    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.researcher_register(**data.validated_data)  # None when the name was taken: answered alike
        username = User.normalize_username(data.validated_data["username"])
        body = {"username": username, "status": "received", "message": (
            f"If the username {username!r} was free, an unverified researcher account was created with it; a "
            "custodian verifies it before it can be used. If it was taken, nothing was created or changed.")}
        return Response(self.OutputSerializer(body).data, status=status.HTTP_202_ACCEPTED)


class MeApi(ApiView):
    """Your own account and roles."""

    permission_classes = [IsAuthenticated]
    audit_action = "accounts.me"

    @extend_schema(responses=UserOutputSerializer)
    def get(self, request):
        return Response(UserOutputSerializer(request.user).data)


class UserListApi(ApiView):
    """Custodians: list accounts, e.g. ``?role=researcher&verified=false`` for pending registrations."""

    permission_classes = [IsCustodian]
    pagination_class = Pagination
    error_codes = {400: ["invalid"]}
    audit_action = "accounts.list"

    class FilterSerializer(StrictInputSerializer):
        role = serializers.ChoiceField(choices=Role.values, required=False)
        verified = serializers.BooleanField(required=False, allow_null=True, default=None)
        page = serializers.IntegerField(required=False, min_value=1)
        page_size = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(
        parameters=[OpenApiParameter("role", enum=Role.values), OpenApiParameter("verified", bool)],
        responses=UserOutputSerializer(many=True),
    )
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        qs = selectors.user_list(role=filters.validated_data.get("role"), verified=filters.validated_data.get("verified"))
        paginator = Pagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(UserOutputSerializer(page, many=True).data)


class VerifyApi(ApiView):
    """Custodians: verify a registered researcher."""

    permission_classes = [IsCustodian]
    error_codes = {409: ["not_a_researcher", "already_verified", "user_disabled"]}
    audit_action = "accounts.verify"
    audit_object_type = "user"

    @extend_schema(request=None, responses=UserOutputSerializer)
    def post(self, request, user_id: int):
        user = get_object_or_404(User, pk=user_id)
        user = services.researcher_verify(user=user, by=request.user)
        return Response(UserOutputSerializer(user).data)
