"""The core domain: real datasets in custody and the audit log.

Neither model ever holds a real row: a :class:`Dataset` stores metadata and the
name of an encrypted file (see :mod:`clearinghouse.custody`); an
:class:`AuditEvent` stores who did what to which object.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

SLUG_VALIDATOR = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$",
    "Use 1–64 lower-case letters, digits and inner hyphens.",
    code="invalid_slug",
)


class Dataset(models.Model):
    """A real cohort held in custody. The rows live encrypted in ``CUSTODY_DIR/<storage_name>``."""

    slug = models.CharField(max_length=64, unique=True, validators=[SLUG_VALIDATOR])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    schema = models.JSONField(help_text="Public schema: column types, bounds and categories (no data).")
    n_rows = models.PositiveIntegerField()
    n_columns = models.PositiveIntegerField()
    dropped_columns = models.JSONField(default=list, help_text="Identifier columns dropped at import.")
    storage_name = models.CharField(max_length=100, unique=True, editable=False)
    stored_bytes = models.PositiveBigIntegerField(help_text="Size of the encrypted file.")
    source_sha256 = models.CharField(max_length=64, help_text="SHA-256 of the uploaded CSV, to recognise re-uploads.")
    gates = models.JSONField(default=dict, blank=True, help_text=(
        "Publication-gate thresholds set by a custodian; the papers' defaults fill the rest "
        "(see generators.core.evaluation.gates)."))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an append-only row."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be deleted.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be updated.")

    # Django's deletion Collector and QuerySet.update() go through these.
    def _raw_delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be deleted.")

    def _update(self, values):
        raise AppendOnlyError(f"{self.model.__name__} rows cannot be updated.")


class AppendOnlyModel(models.Model):
    """Rows are inserted once and never changed. PostgreSQL and SQLite triggers back this up."""

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows cannot be updated.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows cannot be deleted.")


class AuditEvent(AppendOnlyModel):
    """One access or change, hash-chained to the event before it.

    ``hash = SHA-256(prev_hash ‖ canonical JSON of the event's fields)``; the first
    event's ``prev_hash`` is 64 zeros. ``seq`` has no gaps, so a removed row shows up.
    """

    class Outcome(models.TextChoices):
        SUCCESS = "success"
        DENIED = "denied"    # 401 / 403
        REFUSED = "refused"  # other 4xx: bad input, conflicts
        FAILED = "failed"    # the server failed after accepting the request

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField(db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=128, blank=True)
    request_id = models.CharField(max_length=64)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    channel = models.CharField(max_length=16)
    details = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["object_type", "object_id"]), models.Index(fields=["actor", "created_at"])]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} {self.outcome}"


class RefusalTally(models.Model):
    """Repeats of one refusal within a window, counted outside the audit chain until they are flushed.

    The first refusal of a kind from a source is audited in full; identical ones that follow within
    ``AUDIT_REFUSAL_WINDOW_SECONDS`` only add one to ``repeats`` (an atomic UPDATE). When the window
    has closed (the beat task, the next identical refusal, or an auditor reading the log), the tally
    becomes one ``api.refusals_repeated`` event with the exact count and the row is deleted, in one
    transaction: every refusal is in the chain once, as itself or as part of a count.
    (:mod:`clearinghouse.services.refusals`.)
    """

    key = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the source and the refusal.")
    first_seq = models.PositiveBigIntegerField(help_text="The audit event that recorded the first one in full.")
    opened_at = models.DateTimeField(db_index=True)
    last_at = models.DateTimeField()
    repeats = models.PositiveIntegerField(default=0)
    summary = models.JSONField(help_text="What the repeats share: action, method, path, status, code, source.")

    def __str__(self) -> str:
        return f"{self.summary.get('code', '')} ×{self.repeats} after #{self.first_seq}"
