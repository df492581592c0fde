"""The Django admin, for custodians only, and read-only on real-data metadata and the audit log.

Changes go through the audited services (admin actions call them); the admin never
edits a dataset, a token or an audit event directly, and never shows a real row.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from accounts.models import ApiToken, User
from clearinghouse.errors import ApplicationError
from clearinghouse.models import AuditEvent, Dataset


class CustodianLoginForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user):
        if not (user.is_active and user.is_custodian):
            # The password was right, so neither user_logged_in nor user_login_failed fires: audit here.
            from clearinghouse.models import AuditEvent
            from clearinghouse.services.audit import audit_record

            audit_record(action="auth.admin_login", outcome=AuditEvent.Outcome.DENIED, object_type="user",
                         object_id=user.pk, details={"username": user.get_username(), "reason": "not a custodian"})
            raise ValidationError("Only custodians may use the admin site.", code="invalid_login")


class CustodianAdminSite(admin.AdminSite):
    site_header = "Clearing-house custody"
    site_title = "Clearing-house"
    login_form = CustodianLoginForm

    def has_permission(self, request) -> bool:
        user = request.user
        return bool(user.is_active and user.is_authenticated and getattr(user, "is_custodian", False))


custodian_admin_site = CustodianAdminSite(name="admin")


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_view_permission(self, request, obj=None) -> bool:
        return custodian_admin_site.has_permission(request)

    def has_module_permission(self, request) -> bool:
        return custodian_admin_site.has_permission(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Dataset, site=custodian_admin_site)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ["slug", "name", "n_rows", "n_columns", "created_by", "created_at"]
    search_fields = ["slug", "name"]
    exclude = ["storage_name"]


@admin.register(AuditEvent, site=custodian_admin_site)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "created_at", "actor_username", "action", "outcome", "object_type", "object_id"]
    list_filter = ["outcome", "channel"]
    search_fields = ["action", "actor_username", "object_id", "request_id"]


@admin.register(ApiToken, site=custodian_admin_site)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["hint", "user", "name", "created_at", "expires_at", "revoked_at", "last_used_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        from accounts.services import token_revoke

        for token in queryset:
            try:
                token_revoke(token=token, by=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{token}: {exc.message}", messages.WARNING)


@admin.register(User, site=custodian_admin_site)
class UserAdmin(ReadOnlyAdmin):
    list_display = ["username", "email", "is_custodian", "is_researcher", "is_auditor", "verified_at", "is_active"]
    list_filter = ["is_custodian", "is_researcher", "is_auditor", "is_active"]
    search_fields = ["username", "email", "affiliation"]
    exclude = ["password", "user_permissions", "groups"]
    actions = ["verify"]

    @admin.action(description="Verify the selected researchers")
    def verify(self, request, queryset):
        from accounts.services import researcher_verify

        for user in queryset:
            try:
                researcher_verify(user=user, by=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{user}: {exc.message}", messages.WARNING)
