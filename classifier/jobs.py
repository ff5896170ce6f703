"""Creating and queueing prediction jobs. Views call these; tasks do the work."""

from django.db import transaction

from classifier.models import JobStatus, ModelVersion, PredictionJob


class NoActiveModel(Exception):
    pass


def create_prediction_jobs(batch, architectures):
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


def enqueue(job):
    """Send the job's id to the queue once the surrounding transaction has committed."""
    from classifier.tasks import run_prediction_job

    def send():
        run_prediction_job.delay(job.pk)

    # robust: a broker outage must not turn a committed upload into an error page; the
    # sweeper sends a queued job again when it has waited past the stall timeout.
    transaction.on_commit(send, robust=True)


def requeue(job):
    """Send a locked job round again as a new attempt (the sweeper and the admin action)."""
    job.attempt += 1
    job.save(update_fields=["attempt"])
    job.set_status(JobStatus.QUEUED)
    enqueue(job)
