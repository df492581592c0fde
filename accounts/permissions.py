"""Role permissions. Every view names its own; see the role table in docs/api.md."""

from rest_framework.permissions import BasePermission


class _Role(BasePermission):
    message = "You do not have permission to perform this action."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and self.allowed(user))

    def allowed(self, user) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError


class IsCustodian(_Role):
    message = "Only custodians may do this."

    def allowed(self, user) -> bool:
        return user.is_custodian


class IsAuditor(_Role):
    message = "Only auditors may do this."

    def allowed(self, user) -> bool:
        return user.is_auditor


class IsVerifiedResearcher(_Role):
    message = "Only verified researchers may do this; a custodian must verify your account first."

    def allowed(self, user) -> bool:
        return user.is_verified_researcher


class IsVerifiedUser(_Role):
    """Custodians, auditors and verified researchers (public metadata)."""

    message = "Your account is not verified yet; a custodian must verify it first."

    def allowed(self, user) -> bool:
        return user.is_verified_user


class IsCustodianOrVerifiedResearcher(_Role):
    """Synthetic releases: custodians (all of them) and verified researchers (published ones)."""

    message = "Only custodians and verified researchers may do this."

    def allowed(self, user) -> bool:
        return user.is_custodian or user.is_verified_researcher
