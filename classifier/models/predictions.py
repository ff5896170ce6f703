"""A prediction is written once and never edited; reviews are separate records."""

import uuid

from django.db import models
from django.utils import timezone

from portal.accounts.models import ClinicScopedQuerySet


class Label(models.TextChoices):
    TUMOR = "tumor", "Tumor"
    NO_TUMOR = "no_tumor", "No tumor"


NOT_ASSESSED_TEXT = (
    "Not assessed: this image does not look like the brain MRI slices the model was trained on"
)


class HeatmapState(models.TextChoices):
    NONE = "none", "Not requested"
    QUEUED = "queued", "Queued"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class PredictionQuerySet(ClinicScopedQuerySet["Prediction"]):
    clinic_path = "scan__case__clinic"


class Prediction(models.Model):
    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, help_text="The id used in URLs."
    )
    scan = models.ForeignKey(
        "cases.Scan", on_delete=models.PROTECT, related_name="predictions"
    )
    model_version = models.ForeignKey(
        "classifier.ModelVersion", on_delete=models.PROTECT, related_name="predictions"
    )
    job = models.ForeignKey(
        "classifier.PredictionJob", on_delete=models.PROTECT, related_name="predictions"
    )
    probability = models.FloatField(null=True, blank=True, help_text="P(tumor)")
    label = models.CharField(max_length=10, choices=Label.choices, blank=True)
    threshold = models.FloatField()
    ood_score = models.FloatField(
        null=True, blank=True, help_text="How unlike the training images this one is (the model's OOD score)."
    )
    assessed = models.BooleanField(
        default=True,
        help_text="False when the image does not look like the brain MRI slices the model was "
        "trained on: no label, the probability is kept for reviewers.",
    )
    not_assessed_reason = models.CharField(
        max_length=300, blank=True,
        help_text="Why the image was not assessed when its shape or content ruled it out before the "
        "model (blank, too small, ...); empty when the OOD score decided.",
    )
    error = models.CharField(max_length=300, blank=True)
    round = models.PositiveIntegerField(
        default=1, help_text="The job's round that made it (failed scans can be re-run)."
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The Grad-CAM drawing of this prediction (the prediction itself is never edited); moved
    # by classifier/heatmaps.py with compare-and-set updates, so it is requested once.
    heatmap_state = models.CharField(
        max_length=8, choices=HeatmapState.choices, default=HeatmapState.NONE
    )
    heatmap_requested_at = models.DateTimeField(null=True, blank=True)
    heatmap_error = models.CharField(max_length=300, blank=True)

    objects = PredictionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One result per scan and model version, ever. A failed attempt is kept as a
            # record too (with its reason), at most once per round of the job: re-running
            # a failed scan adds a new attempt, never a second result.
            models.UniqueConstraint(
                fields=["scan", "model_version"],
                condition=models.Q(error=""),
                name="one_result_per_scan_and_model",
            ),
            models.UniqueConstraint(
                fields=["scan", "model_version", "round"],
                condition=~models.Q(error=""),
                name="one_failure_per_scan_model_and_round",
            ),
        ]

    def __str__(self) -> str:
        if self.error:
            return f"{self.model_version}: error ({self.error})"
        if not self.assessed:
            return f"{self.model_version}: not assessed (P(tumor) {self.probability:.3f})"
        return f"{self.model_version}: {self.get_label_display()} ({self.probability:.3f})"

    @property
    def confidence(self) -> float | None:
        """Distance from the undecided middle, 0 (coin toss) to 1 (certain)."""
        if self.probability is None:
            return None
        return abs(self.probability - 0.5) * 2
