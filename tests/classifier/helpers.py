"""Build a clinic-A batch of stored scans and wait on jobs."""

import time

from tests.fixtures.images import make_image_bytes


def make_batch(clinic, user, n, *, ref="P-JOB", architectures=("vgg16",), size=(64, 64), bad=()):
    """A case with one batch of ``n`` accepted scans and its queued jobs (through the real
    upload path). ``bad``: positions whose stored file is then made undecodable."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from portal.cases.models import Case
    from portal.cases.uploads import ingest

    case = Case.objects.create(clinic=clinic, patient_ref=ref, created_by=user)
    files = [
        SimpleUploadedFile(f"scan-{i:03d}.jpg", make_image_bytes(size=size, seed=i), "image/jpeg")
        for i in range(1, n + 1)
    ]
    result = ingest(case, user, files, list(architectures))
    for scan in result.batch.scans.filter(position__in=bad):
        path = scan.file.path
        with open(path, "r+b") as handle:  # damage the stored file after intake
            handle.truncate(40)
    return result.batch, result.jobs


def wait_for_jobs(jobs, timeout=180, worker=None):
    from classifier.models import PredictionJob

    deadline = time.monotonic() + timeout
    ids = [job.pk for job in jobs]
    while time.monotonic() < deadline:
        current = list(PredictionJob.objects.filter(pk__in=ids))
        if all(job.is_finished for job in current):
            return current
        time.sleep(0.3)
    states = [(job.pk, job.status, job.done, job.failed, job.total) for job in PredictionJob.objects.filter(pk__in=ids)]
    log = worker.log() if worker else ""
    raise AssertionError(f"jobs did not finish in {timeout} s: {states}\n{log}")


def wait_until_idle(queue="inference", timeout=60):
    """Until the worker has consumed every message of ``queue`` and runs no task."""
    from portal.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with app.connection_for_read() as conn:
            # kombu's client adds CELERY_BROKER_KEY_PREFIX to the key itself.
            waiting = conn.default_channel.client.llen(queue)
        active = app.control.inspect(timeout=1.0).active() or {}
        if waiting == 0 and not any(active.values()):
            return
        time.sleep(0.3)
    raise AssertionError(f"the worker was still busy after {timeout} s")


def run_job_here(job, task_id="task-1"):
    """Run a job in this process as workers would: its planning task, then each of its
    queued chunks' tasks (the messages themselves are not sent inside a test transaction)."""
    from classifier.models import PredictionChunk
    from classifier.tasks import run_prediction_chunk, run_prediction_job

    run_prediction_job.apply(args=[job.pk], task_id=f"{task_id}-plan")
    for chunk in PredictionChunk.objects.filter(job=job, status="queued").order_by("round", "index"):
        run_prediction_chunk.apply(args=[chunk.pk], task_id=f"{task_id}-{chunk.index}")


def plan_here(job):
    """Plan a job in this process; its chunks, in order."""
    from classifier.models import PredictionChunk
    from classifier.prediction_run import plan

    plan(job.pk, "plan")
    return list(PredictionChunk.objects.filter(job=job).order_by("round", "index"))
