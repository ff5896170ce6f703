"""A reviewer's verdict on a scan's prediction. Several reviewers may review one scan."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from classifier.models.predictions import Label


class Review(models.Model):
    class Verdict(models.TextChoices):
        CONFIRMED = "confirmed", "Confirmed"
        CORRECTED = "corrected", "Corrected"

    prediction = models.ForeignKey(
        "classifier.Prediction", on_delete=models.PROTECT, related_name="reviews"
    )
    scan = models.ForeignKey(
        settings.CLASSIFIER_SCAN_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reviews"
    )
    verdict = models.CharField(max_length=10, choices=Verdict.choices)
    label = models.CharField(
        max_length=10, choices=Label.choices, help_text="The label the reviewer holds true."
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["prediction", "reviewer"], name="one_review_per_reviewer")
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} {self.verdict} {self.label}"
