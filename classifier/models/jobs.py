"""Background jobs: one abstract base owns the status machine, concrete jobs add inputs."""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from portal.accounts.models import ClinicScopedQuerySet


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partially failed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED = {JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED}

TRANSITIONS = {
    JobStatus.QUEUED: {JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED},
    # running -> queued: the sweeper re-queues a stalled job for another attempt.
    JobStatus.RUNNING: {
        JobStatus.QUEUED,
        JobStatus.SUCCEEDED,
        JobStatus.PARTIAL,
        JobStatus.FAILED,
        JobStatus.CANCELLED,
    },
    # An admin may re-queue a finished job that did not fully succeed.
    JobStatus.PARTIAL: {JobStatus.QUEUED},
    JobStatus.FAILED: {JobStatus.QUEUED},
    JobStatus.CANCELLED: {JobStatus.QUEUED},
    JobStatus.SUCCEEDED: set(),
}


class InvalidTransition(Exception):
    pass


class Job(models.Model):
    public_id = models.UUIDField(
        default=uuid.uuid4, unique=True, editable=False, help_text="The id used in URLs."
    )
    status = models.CharField(
        max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED, db_index=True
    )
    attempt = models.PositiveIntegerField(default=1)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(
        default=timezone.now, help_text="Last time the job moved; the sweeper reads it."
    )
    user_error = models.CharField(max_length=300, blank=True)
    admin_error = models.TextField(blank=True)
    worker_task_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The task message that holds the running job; a second message skips it.",
    )
    worker = models.CharField(
        max_length=255, blank=True, help_text="The worker process that runs (or last ran) the job."
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Written every few seconds while a worker runs the job; the sweeper re-queues "
        "a running job whose heartbeat stopped.",
    )
    retries = models.PositiveIntegerField(
        default=0, help_text="Times the task raised and was retried after a pause."
    )
    interruptions = models.PositiveIntegerField(
        default=0,
        help_text="Times a worker died while running the job with no scan in flight "
        "(the cause could not be pinned on an image).",
    )
    admin_traceback = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.is_finished else 0
        return round(100 * (self.done + self.failed) / self.total)

    @property
    def seconds_left(self) -> int | None:
        """Seconds to finish at the pace so far (None until the pace is known)."""
        processed = self.done + self.failed
        if self.status != JobStatus.RUNNING or not self.started_at or not processed:
            return None
        elapsed = (timezone.now() - self.started_at).total_seconds()
        return max(0, round(elapsed / processed * (self.total - processed)))

    @property
    def time_left_display(self) -> str:
        seconds = self.seconds_left
        if seconds is None:
            return ""
        if seconds < 60:
            return "less than a minute left"
        return f"about {round(seconds / 60)} min left"

    @property
    def is_waiting(self) -> bool:
        return self.status == JobStatus.QUEUED

    def set_status(self, new_status: str, *, user_error: str | None = None, admin_error: str | None = None,
                   admin_traceback: str | None = None) -> None:
        """The only place a job's status changes. Saves status, timestamps and errors."""
        new_status = JobStatus(new_status)
        if new_status not in TRANSITIONS[JobStatus(self.status)]:
            raise InvalidTransition(f"{self.status} -> {new_status}")
        now = timezone.now()
        fields = ["status", "progress_at"]
        self.status = new_status
        self.progress_at = now
        if new_status == JobStatus.RUNNING:
            self.started_at = now
            fields.append("started_at")
        if new_status == JobStatus.QUEUED:
            self.finished_at = None
            fields.append("finished_at")
        if new_status in FINISHED:
            self.finished_at = now
            fields.append("finished_at")
        if user_error is not None:
            self.user_error = user_error[:300]
            fields.append("user_error")
        if admin_error is not None:
            self.admin_error = admin_error
            fields.append("admin_error")
        if admin_traceback is not None:
            self.admin_traceback = admin_traceback
            fields.append("admin_traceback")
        if new_status in FINISHED or new_status == JobStatus.QUEUED:
            self.heartbeat_at = None
            fields.append("heartbeat_at")
        self.save(update_fields=fields)


class ChunkStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class PredictionJobQuerySet(ClinicScopedQuerySet["PredictionJob"]):
    clinic_path = "batch__case__clinic"


class PredictionJob(Job):
    """Predict every accepted scan of one batch with one model version."""

    batch = models.ForeignKey(
        "cases.Batch", on_delete=models.PROTECT, related_name="prediction_jobs"
    )
    model_version = models.ForeignKey(
        "classifier.ModelVersion", on_delete=models.PROTECT, related_name="jobs"
    )
    round = models.PositiveIntegerField(
        default=1,
        help_text="1 for the first run; each re-run of the failed scans starts a new round.",
    )

    objects = PredictionJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["batch", "model_version"], name="one_job_per_batch_and_model"
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_version} on {self.batch_id} ({self.status})"

    @property
    def is_waiting(self) -> bool:
        """Queued, or running with every open chunk still waiting for a worker."""
        if self.status == JobStatus.QUEUED:
            return True
        if self.status != JobStatus.RUNNING:
            return False
        chunks = self.chunks.filter(round=self.round)
        return not chunks.filter(status=ChunkStatus.RUNNING).exists() and chunks.filter(
            status=ChunkStatus.QUEUED
        ).exists()

    @property
    def state_display(self) -> str:
        return JobStatus.QUEUED.label if self.is_waiting else self.get_status_display()


class TrainingRun(Job):
    """Train a new model version from reviewed scans (not active until an admin says so)."""

    architecture = models.CharField(max_length=20)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    options = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True)
    stage = models.CharField(
        max_length=40, blank=True, help_text="The training stage ml reported last (ml.progress.ProgressEvent)."
    )
    fraction = models.FloatField(default=0.0, help_text="Share of the training done, 0..1, as ml reported it.")
    result_version = models.ForeignKey(
        "classifier.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Training {self.architecture} ({self.status})"


class PredictionChunk(models.Model):
    """A slice of one round of a prediction job: the unit any worker takes, so one batch is
    shared by many workers. See classifier/prediction_run.py for the rules."""

    job = models.ForeignKey(PredictionJob, on_delete=models.CASCADE, related_name="chunks")
    round = models.PositiveIntegerField()
    index = models.PositiveIntegerField()
    scan_ids = models.JSONField(default=list, help_text="The scans of this chunk (ids).")
    status = models.CharField(
        max_length=10, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED, db_index=True
    )
    worker_task_id = models.CharField(max_length=255, blank=True)
    worker = models.CharField(max_length=255, blank=True)
    attempt = models.PositiveIntegerField(default=0, help_text="Times a worker started it.")
    interruptions = models.PositiveIntegerField(
        default=0, help_text="Worker deaths with no scan in flight (capped by JOB_MAX_ATTEMPTS)."
    )
    in_flight = models.JSONField(
        default=list,
        blank=True,
        help_text="Scan ids being predicted right now. If the worker dies, these are the "
        "suspects: retried one at a time when the chunk resumes.",
    )
    suspects = models.JSONField(
        default=dict, blank=True, help_text="Scan id -> times it was in flight when a worker died."
    )
    sent_at = models.DateTimeField(default=timezone.now, help_text="When its task was last sent.")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["job", "round", "index"]
        constraints = [
            models.UniqueConstraint(fields=["job", "round", "index"], name="one_chunk_per_index")
        ]

    def __str__(self) -> str:
        return f"chunk {self.index} of round {self.round} of job {self.job_id} ({self.status})"
