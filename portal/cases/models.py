"""Patient cases, upload batches and the scans in them."""

import uuid
from typing import Any, Self

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from portal.accounts.models import Clinic, ClinicScopedQuerySet


class CaseQuerySet(ClinicScopedQuerySet["Case"]):
    clinic_path = "clinic"


class BatchQuerySet(ClinicScopedQuerySet["Batch"]):
    clinic_path = "case__clinic"


class ScanQuerySet(ClinicScopedQuerySet["Scan"]):
    clinic_path = "case__clinic"

    def accepted(self) -> Self:
        return self.filter(status=Scan.Status.ACCEPTED)


class Case(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="cases")
    patient_ref = models.CharField(
        "patient reference",
        max_length=64,
        help_text="A pseudonymous reference, unique within the clinic. Never a name.",
    )
    notes = models.TextField(blank=True, max_length=5000)  # the form and the API refuse more
    dicom_patient_hash = models.CharField(
        max_length=64, blank=True, editable=False,
        help_text="Keyed hash of the DICOM patient identity of this case's first DICOM upload "
        "(never the identity itself); later DICOM files of another patient are refused.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now, db_index=True)

    scan_count: int  # not stored: set by the case list for its page

    objects = CaseQuerySet.as_manager()

    class Meta:
        ordering = ["-last_activity_at"]
        constraints = [
            # Case-insensitive: "dup123" and "DUP123" are one patient. References are
            # normalised before they are saved (portal.cases.refs), so look-alikes made
            # of invisible characters or compatibility forms meet this constraint too.
            models.UniqueConstraint(
                "clinic", Lower("patient_ref"), name="patient_ref_unique_per_clinic_ci"
            )
        ]

    def __str__(self) -> str:
        return self.patient_ref

    def save(self, *args: Any, **kwargs: Any) -> None:
        from portal.cases.refs import normalize_patient_ref

        self.patient_ref = normalize_patient_ref(self.patient_ref)
        super().save(*args, **kwargs)

    def touch(self) -> None:
        Case.objects.filter(pk=self.pk).update(last_activity_at=timezone.now())


class Batch(models.Model):
    """One upload request: the files a user sent at once, accepted or not."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="batches")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    files_received = models.PositiveIntegerField(default=0)
    accepted_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    duplicate_count = models.PositiveIntegerField(default=0)

    objects = BatchQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["case", "-created_at"], name="batch_case_newest")]

    def __str__(self) -> str:
        return f"Batch of {self.files_received} for {self.case}"

    def scans_for_prediction(self) -> "ScanQuerySet":
        """The scans a prediction job on this batch covers: its accepted ones, in upload order."""
        return self.scans.accepted().order_by("position")


def scan_upload_path(scan: "Scan", filename: str) -> str:
    """scans/<clinic>/<case>/<sha256>.<ext>: never the user's file name."""
    extension = {"JPEG": "jpg", "PNG": "png", "DICOM": "dcm"}.get(scan.format, "bin")
    return f"scans/{scan.case.clinic_id}/{scan.case_id}/{scan.sha256}.{extension}"


class Scan(models.Model):
    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"
        DUPLICATE = "duplicate", "Duplicate"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="scans")
    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="scans")
    position = models.PositiveIntegerField(help_text="Order of the file in its upload.")
    original_name = models.CharField(max_length=255)
    status = models.CharField(max_length=12, choices=Status.choices)
    rejection_reason = models.CharField(max_length=300, blank=True)
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    file = models.FileField(upload_to=scan_upload_path, max_length=300, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    format = models.CharField(max_length=10, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    series_description = models.CharField(max_length=200, blank=True)
    plane = models.CharField(max_length=12, blank=True)
    slice_position = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects = ScanQuerySet.as_manager()

    class Meta:
        ordering = ["batch", "position"]
        indexes = [
            # The case page (newest first) and the review history (oldest first) page through these.
            models.Index(
                fields=["case", "status", "created_at", "position", "id"], name="scan_case_status_created"
            ),
            models.Index(fields=["batch", "position"], name="scan_batch_position"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["case", "sha256"],
                condition=models.Q(status="accepted"),
                name="one_accepted_scan_per_content_per_case",
            )
        ]

    def __str__(self) -> str:
        return self.original_name

    @property
    def is_dicom(self) -> bool:
        return self.format == "DICOM"

    @property
    def is_accepted(self) -> bool:
        return self.status == self.Status.ACCEPTED
