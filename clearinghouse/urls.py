from django.contrib import admin
from django.db import connection
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from accounts import api as accounts_api
from clearinghouse.admin import custodian_admin_site
from clearinghouse.api import audit as audit_api
from clearinghouse.api import datasets as datasets_api
from generators import api as runs_api
from releases import api as releases_api
from verification import api as verification_api


def healthz(request):
    """Liveness and database reachability, for load balancers and compose healthchecks."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


api_v1 = [
    path("auth/token/", accounts_api.TokenIssueApi.as_view(), name="auth-token"),
    path("auth/tokens/", accounts_api.TokenListApi.as_view(), name="auth-tokens"),
    path("auth/tokens/<int:token_id>/revoke/", accounts_api.TokenRevokeApi.as_view(), name="auth-token-revoke"),
    path("accounts/", accounts_api.UserListApi.as_view(), name="accounts-list"),
    path("accounts/register/", accounts_api.RegisterApi.as_view(), name="accounts-register"),
    path("accounts/me/", accounts_api.MeApi.as_view(), name="accounts-me"),
    path("accounts/<int:user_id>/verify/", accounts_api.VerifyApi.as_view(), name="accounts-verify"),
    path("datasets/", datasets_api.DatasetListCreateApi.as_view(), name="datasets"),
    path("datasets/<str:slug>/", datasets_api.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<str:slug>/gates/", releases_api.DatasetGatesApi.as_view(), name="dataset-gates"),
    path("datasets/<str:slug>/runs/", runs_api.DatasetRunsApi.as_view(), name="dataset-runs"),
    path("datasets/<str:slug>/sweeps/", releases_api.DatasetSweepsApi.as_view(), name="dataset-sweeps"),
    path("sweeps/<int:sweep_id>/", releases_api.SweepDetailApi.as_view(), name="sweep-detail"),
    path("runs/<int:run_id>/", runs_api.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<int:run_id>/cancel/", runs_api.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<int:run_id>/releases/", releases_api.RunReleasesApi.as_view(), name="run-releases"),
    path("releases/", releases_api.ReleaseListApi.as_view(), name="releases"),
    path("releases/<int:release_id>/", releases_api.ReleaseDetailApi.as_view(), name="release-detail"),
    path("releases/<int:release_id>/publish/", releases_api.ReleasePublishApi.as_view(), name="release-publish"),
    path("releases/<int:release_id>/report/", releases_api.ReleaseReportApi.as_view(), name="release-report"),
    path("releases/<int:release_id>/data.csv", releases_api.ReleaseDownloadApi.as_view(kind="csv"),
         name="release-data-csv"),
    path("releases/<int:release_id>/data.parquet", releases_api.ReleaseDownloadApi.as_view(kind="parquet"),
         name="release-data-parquet"),
    path("verifications/", verification_api.VerificationListCreateApi.as_view(), name="verifications"),
    path("verifications/preview/", verification_api.VerificationPreviewApi.as_view(), name="verifications-preview"),
    path("verifications/<int:verification_id>/", verification_api.VerificationDetailApi.as_view(),
         name="verification-detail"),
    path("budget/", verification_api.BudgetApi.as_view(), name="budget"),
    path("datasets/<str:slug>/budget-policy/", verification_api.DatasetBudgetPolicyApi.as_view(),
         name="dataset-budget-policy"),
    path("datasets/<str:slug>/allocations/<int:user_id>/", verification_api.AllocationApi.as_view(),
         name="dataset-allocation"),
    path("audit/events/", audit_api.AuditEventListApi.as_view(), name="audit-events"),
    path("audit/events/export.csv", audit_api.AuditExportApi.as_view(), name="audit-export"),
    path("audit/events/export.jsonl", audit_api.AuditExportJsonlApi.as_view(), name="audit-export-jsonl"),
    path("audit/verify/", audit_api.AuditVerifyApi.as_view(), name="audit-verify"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny], authentication_classes=[]),
         name="schema"),
]

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include(api_v1)),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[AllowAny],
                                                     authentication_classes=[]), name="swagger-ui"),
    path("admin/", custodian_admin_site.urls),
    path("", include("portal.urls")),
]

# The API answers JSON under /api/; every other address gets the portal's house pages.
handler400 = "portal.errors.handler400"
handler403 = "portal.errors.handler403"
handler404 = "portal.errors.handler404"
handler500 = "portal.errors.handler500"
