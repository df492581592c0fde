"""Verifications: a researcher's hypothesis, its charge and its differentially private answer.

The answer is computed on the real rows but is itself ε-DP, so it may be shown to the
researcher who asked, to anyone who asks the same canonical hypothesis later (reuse), and to
auditors. No real row and no non-private statistic of the real rows is stored here.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from accounts.models import _micro_property


class Verification(models.Model):
    class Status(models.TextChoices):
        COMPUTING = "computing"  # charged; the answer is being computed
        ANSWERED = "answered"
        FAILED = "failed"  # the computation failed; the charge was refunded
        REUSED = "reused"  # answered from an earlier identical hypothesis at no charge

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="verifications")
    dataset = models.ForeignKey("clearinghouse.Dataset", on_delete=models.PROTECT, related_name="verifications")
    release = models.ForeignKey("releases.Release", on_delete=models.PROTECT, related_name="verifications")
    kind = models.CharField(max_length=40)
    hypothesis = models.JSONField(help_text="The normalized hypothesis, claim included.")
    canonical_key = models.CharField(max_length=64, db_index=True,
                                     help_text="SHA-256 of the canonical kind, params, filters and ε (not the claim).")
    epsilon_micro = models.BigIntegerField(help_text="ε charged, in millionths (0 for a reused answer).")
    status = models.CharField(max_length=16, choices=Status.choices, db_index=True)
    #: The one row per (dataset, canonical hypothesis) that owns the computed answer.
    primary = models.BooleanField(default=False)
    answer = models.JSONField(null=True, blank=True)
    reused_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="reuses")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    epsilon = _micro_property("epsilon")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Two identical hypotheses can never both be charged and answered with fresh noise.
            models.UniqueConstraint(fields=["dataset", "canonical_key"], condition=models.Q(primary=True),
                                    name="verification_one_answer_per_hypothesis"),
        ]

    def __str__(self) -> str:
        return f"verification {self.pk} ({self.kind}, {self.status})"
