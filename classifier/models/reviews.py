"""A reviewer's verdict on a scan's prediction. Several reviewers may review one scan.

It lives in the classifier because it is the classifier's ground truth: training reads the
latest review of each scan as its label (``classifier.training.reviewed_scans``). The
review workflow (queue, pages, forms, exports, agreement) is ``portal/reviews``."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from classifier.models.predictions import Label
from portal.accounts.models import ClinicScopedQuerySet


class ReviewQuerySet(ClinicScopedQuerySet["Review"]):
    clinic_path = "scan__case__clinic"


class Review(models.Model):
    class Verdict(models.TextChoices):
        CONFIRMED = "confirmed", "Confirmed"
        CORRECTED = "corrected", "Corrected"

    prediction = models.ForeignKey(
        "classifier.Prediction", on_delete=models.PROTECT, related_name="reviews"
    )
    scan = models.ForeignKey(
        "cases.Scan", on_delete=models.PROTECT, related_name="reviews"
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

    objects = ReviewQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["prediction", "reviewer"], name="one_review_per_reviewer")
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} {self.verdict} {self.label}"
