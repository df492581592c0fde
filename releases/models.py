"""Synthetic releases, their validation reports, and the sweeps that propose one.

The tables kept the names they had when these models lived in ``clearinghouse`` and
``generators`` (migrations moved the models' state only; no row moved).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Release(models.Model):
    """A synthetic cohort sampled from a trained generator: ``data.csv``, ``data.parquet`` and
    ``datasheet.json`` in ``RELEASES_DIR/<storage_name>/``. Researchers see it once published."""

    run = models.ForeignKey("generators.GeneratorRun", on_delete=models.PROTECT, related_name="releases")
    dataset = models.ForeignKey("clearinghouse.Dataset", on_delete=models.PROTECT, related_name="releases")
    rows = models.PositiveIntegerField()
    seed = models.PositiveBigIntegerField()
    conditions = models.JSONField(null=True, blank=True, help_text="As asked, e.g. {\"horTh\": \"yes\"}.")
    datasheet = models.JSONField(help_text="Provenance and known limits (also written as datasheet.json).")
    storage_name = models.CharField(max_length=100, unique=True, editable=False)
    csv_bytes = models.PositiveBigIntegerField()
    csv_sha256 = models.CharField(max_length=64)
    parquet_bytes = models.PositiveBigIntegerField()
    parquet_sha256 = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
                                     null=True, blank=True)
    gate_override = models.JSONField(null=True, blank=True, help_text=(
        "Set when a custodian published despite failed gates: the written justification, the failed "
        "gates with their values, who and when."))

    class Meta:
        db_table = "clearinghouse_release"  # the table kept its name when the model moved here
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"release {self.pk} of {self.dataset_id}"

    @property
    def published(self) -> bool:
        return self.published_at is not None


class ReleaseReport(models.Model):
    """A release's validation report (fidelity, survival, privacy, utility), computed by a task
    after the release is made. ``content`` and ``html`` are the custodian's view (they hold
    statistics of the real rows, never rows); ``public`` and ``public_html`` are what verified
    researchers see: scores and synthetic-side plots only."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    release = models.OneToOneField(Release, on_delete=models.CASCADE, related_name="report")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    stage = models.CharField(max_length=32, blank=True, help_text="The part being computed, e.g. 'privacy'.")
    parts_done = models.PositiveSmallIntegerField(default=0)
    parts_total = models.PositiveSmallIntegerField(default=0)
    target = models.CharField(max_length=200, blank=True, help_text="The utility classification column.")
    content = models.JSONField(default=dict, blank=True)
    public = models.JSONField(default=dict, blank=True)
    html = models.TextField(blank=True)
    public_html = models.TextField(blank=True)
    error = models.TextField(blank=True)
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "clearinghouse_releasereport"

    def __str__(self) -> str:
        return f"report of release {self.release_id} ({self.status})"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


class Sweep(models.Model):
    """Model selection: train every model × seed, sample each run several times, report on every
    release, and rank those that pass the dataset's gates (the AML paper: 5 seeds × 3 samples,
    keep the best). The best is proposed as a draft release; a custodian still publishes it."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    dataset = models.ForeignKey("clearinghouse.Dataset", on_delete=models.PROTECT, related_name="sweeps")
    model_names = models.JSONField(help_text="Model names, e.g. [\"copula\", \"ctgan\"].")
    seeds = models.JSONField(help_text="Training seeds.")
    samples = models.PositiveSmallIntegerField(help_text="Releases sampled per trained run.")
    epochs = models.PositiveIntegerField()
    rows = models.PositiveIntegerField(help_text="Rows per release.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=200, blank=True)
    steps_done = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    candidates = models.JSONField(default=list, help_text="One entry per release: gates, composite, headline.")
    proposed_release = models.ForeignKey(Release, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="+")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "generators_sweep"  # the table kept its name when the model moved here
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"sweep {self.pk} on {self.dataset_id}"

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)
