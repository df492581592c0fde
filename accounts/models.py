"""Users with roles, researcher verification, and hashed API tokens."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    CUSTODIAN = "custodian"
    RESEARCHER = "researcher"
    AUDITOR = "auditor"


class User(AbstractUser):
    """A person. Roles are independent flags: a user may hold several.

    A researcher can download and verify only once a custodian has verified them
    (``verified_at``). Custodians and auditors are created by an operator
    (``add_user``) and need no separate verification.
    """

    is_custodian = models.BooleanField(default=False)
    is_researcher = models.BooleanField(default=False)
    is_auditor = models.BooleanField(default=False)
    affiliation = models.CharField(max_length=200, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    @property
    def roles(self) -> list[str]:
        flags = [(Role.CUSTODIAN, self.is_custodian), (Role.RESEARCHER, self.is_researcher), (Role.AUDITOR, self.is_auditor)]
        return [str(role) for role, held in flags if held]

    @property
    def is_verified_researcher(self) -> bool:
        return self.is_active and self.is_researcher and self.verified_at is not None

    @property
    def is_verified_user(self) -> bool:
        """May read public metadata: any custodian or auditor, or a verified researcher."""
        return self.is_active and (self.is_custodian or self.is_auditor or self.is_verified_researcher)


class ApiToken(models.Model):
    """A bearer token. Only its SHA-256 is stored; the token itself is shown once, at issue.

    Tokens are 256-bit random strings, so a fast hash is enough (nothing to brute-force).
    """

    PREFIX = "cht_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=16, help_text="The token's first characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.hint}… ({self.user})"

    @property
    def is_usable(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()
