"""Users with roles, researcher verification, and hashed API tokens."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone

from clearinghouse.models import AppendOnlyModel


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


# --------------------------------------------------------------------------- privacy budgets
#: ε is stored as a whole number of millionths (``*_micro``): exact on every database, so sums of
#: charges never drift and a conditional UPDATE compares exact integers (SQLite has no exact decimal).
EPSILON_PLACES = 6
MICRO = 10**EPSILON_PLACES


def to_micro(epsilon: Decimal) -> int:
    return int(epsilon.scaleb(EPSILON_PLACES))


def from_micro(micro: int) -> Decimal:
    return Decimal(int(micro)).scaleb(-EPSILON_PLACES)


def _micro_property(name: str) -> property:
    return property(lambda self: from_micro(getattr(self, f"{name}_micro")), doc=f"{name} as an exact Decimal")


class BudgetPolicy(models.Model):
    """A dataset's verification policy, set by a custodian: the total ε all researchers together
    may spend, each researcher's default allocation, the most one query may ask for, the smallest
    noisy subgroup an answer is given for, and an optional daily limit on hypotheses."""

    dataset = models.OneToOneField("clearinghouse.Dataset", on_delete=models.PROTECT, related_name="budget_policy")
    total_cap_micro = models.BigIntegerField(help_text="ε (millionths) all researchers together may spend.")
    total_spent_micro = models.BigIntegerField(default=0)
    default_allocation_micro = models.BigIntegerField(help_text="Each researcher's ε (millionths) unless set.")
    max_epsilon_micro = models.BigIntegerField(help_text="The most ε (millionths) one hypothesis may ask for.")
    min_subgroup = models.PositiveIntegerField(help_text="Answers on a smaller noisy subgroup are withheld.")
    daily_limit = models.PositiveIntegerField(null=True, blank=True,
                                              help_text="Most charged hypotheses per researcher per day (UTC).")
    updated_at = models.DateTimeField(auto_now=True)

    total_cap = _micro_property("total_cap")
    total_spent = _micro_property("total_spent")
    default_allocation = _micro_property("default_allocation")
    max_epsilon_per_query = _micro_property("max_epsilon")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(total_spent_micro__lte=models.F("total_cap_micro")),
                                   name="budget_policy_total_within_cap"),
            models.CheckConstraint(condition=models.Q(total_spent_micro__gte=0), name="budget_policy_spent_not_negative"),
        ]

    def __str__(self) -> str:
        return f"budget policy of {self.dataset_id}"


class Allocation(models.Model):
    """One researcher's ε on one dataset, and what of it is spent. Changed only by
    ``accounts.budgets`` (conditional UPDATEs), each change with a ledger entry."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="allocations")
    dataset = models.ForeignKey("clearinghouse.Dataset", on_delete=models.PROTECT, related_name="allocations")
    epsilon_micro = models.BigIntegerField()
    spent_micro = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    epsilon = _micro_property("epsilon")
    spent = _micro_property("spent")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "dataset"], name="allocation_one_per_user_dataset"),
            models.CheckConstraint(condition=models.Q(spent_micro__lte=models.F("epsilon_micro")),
                                   name="allocation_spent_within"),
            models.CheckConstraint(condition=models.Q(spent_micro__gte=0), name="allocation_spent_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.dataset_id}: {self.spent}/{self.epsilon}"


class LedgerEntry(AppendOnlyModel):
    """Append-only: every allocation, charge and refund of ε. For any researcher and dataset, the
    last allocation entry is the allocation, and charges minus refunds equal ``Allocation.spent``."""

    class Kind(models.TextChoices):
        ALLOCATION = "allocation"
        CHARGE = "charge"
        REFUND = "refund"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    dataset = models.ForeignKey("clearinghouse.Dataset", on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    epsilon_micro = models.BigIntegerField(help_text="The allocation set, or the ε charged or refunded (positive).")
    spent_after_micro = models.BigIntegerField()
    allocation_after_micro = models.BigIntegerField()
    verification = models.ForeignKey("verification.Verification", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="ledger")
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    epsilon = _micro_property("epsilon")
    spent_after = _micro_property("spent_after")
    allocation_after = _micro_property("allocation_after")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["user", "dataset"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.epsilon} ({self.user_id} on {self.dataset_id})"
