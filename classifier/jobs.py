"""Creating and queueing prediction jobs. Views call these; tasks do the work."""

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from classifier.models import JobStatus, ModelVersion, PredictionJob


class NoActiveModel(Exception):
    pass


def create_prediction_jobs(batch: Any, architectures: Iterable[str]) -> list[PredictionJob]:
    """One job per chosen architecture, on its active version; queued after commit."""
    jobs = []
    total = batch.scans_for_prediction().count()
    for architecture in architectures:
        version = ModelVersion.active(architecture)
        if version is None:
            raise NoActiveModel(f"No active {architecture} model is registered.")
        jobs.append(PredictionJob.objects.create(batch=batch, model_version=version, total=total))
    for job in jobs:
        enqueue(job)
    return jobs


def enqueue(job: PredictionJob) -> None:
    """Send the job's id to the queue once the surrounding transaction has committed."""
    from classifier.tasks import run_prediction_job

    def send() -> None:
        run_prediction_job.delay(job.pk)

    # robust: a broker outage must not turn a committed upload into an error page; the
    # sweeper sends a queued job again when it has waited past the stall timeout.
    transaction.on_commit(send, robust=True)


RERUNNABLE = (JobStatus.FAILED, JobStatus.PARTIAL, JobStatus.CANCELLED)


def rerun(job: PredictionJob) -> None:
    """Start a new round of a locked, finished job: every scan without a result is tried
    again (failed ones included). Results already stored are kept, never redone."""
    if job.status not in RERUNNABLE:
        raise ValueError(f"a {job.status} job cannot be re-run")
    job.round += 1
    job.attempt += 1
    job.failed = 0
    job.save(update_fields=["round", "attempt", "failed"])
    job.set_status(JobStatus.QUEUED, user_error="", admin_error="", admin_traceback="")
    enqueue(job)


def rerun_failed(batch: Any) -> list[PredictionJob]:
    """Re-run the failed scans of every finished job of ``batch`` that has some; the jobs."""
    jobs = []
    with transaction.atomic():
        for job in PredictionJob.objects.select_for_update().filter(
            batch=batch, status__in=(JobStatus.FAILED, JobStatus.PARTIAL)
        ):
            rerun(job)
            jobs.append(job)
    return jobs
