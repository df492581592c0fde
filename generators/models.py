"""Training runs. A run records what was trained, on which split, and how it went; the trained
generator itself lives in ``MODELS_DIR/<checkpoint_name>`` (it was fitted on real rows: private)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class GeneratorRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Device(models.TextChoices):
        AUTO = "auto"
        CPU = "cpu"
        CUDA = "cuda"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    dataset = models.ForeignKey("clearinghouse.Dataset", on_delete=models.PROTECT, related_name="runs")
    model = models.CharField(max_length=32)
    hyperparameters = models.JSONField(default=dict, help_text="As given (after checking); defaults fill the rest.")
    epochs = models.PositiveIntegerField()
    seed = models.PositiveBigIntegerField()
    device_requested = models.CharField(max_length=8, choices=Device.choices, default=Device.AUTO)
    device = models.CharField(max_length=64, blank=True, help_text="What the worker trained on, e.g. 'cuda (NVIDIA H100)'.")
    queue = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    # progress
    epoch = models.PositiveIntegerField(default=0)
    losses = models.JSONField(default=dict, help_text="The last epoch's losses.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress report from the worker.")
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    worker = models.CharField(max_length=200, blank=True)
    # the split: positions in the stored table (never values)
    n_train = models.PositiveIntegerField(null=True, blank=True)
    holdout_rows = models.JSONField(default=list, help_text="Row positions of the 20 % holdout (for the validation report).")
    checkpoint_name = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.model} on {self.dataset_id})"

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def elapsed_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.finished_at or self.heartbeat_at or self.started_at
        return max((end - self.started_at).total_seconds(), 0.0)

    @property
    def eta_seconds(self) -> float | None:
        """Time left at the pace so far (None until the first epoch is done, 0 once finished)."""
        if self.finished:
            return 0.0
        elapsed = self.elapsed_seconds
        if not elapsed or self.epoch == 0:
            return None
        return elapsed / self.epoch * (self.epochs - self.epoch)
