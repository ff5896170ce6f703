"""Celery tasks. They take ids, lock their row first and are safe to run twice."""

import logging
import traceback
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from classifier.engine import load_model
from classifier.models import JobStatus, Prediction, PredictionJob

log = logging.getLogger(__name__)


def _claim(job_id, task_id):
    """Lock the job and move it to running; None when it is not ours to run.

    A running job is carried on only by the message that claimed it (redelivered after its
    worker died, or retried): a duplicated message for a running job skips it.
    """
    task_id = task_id or ""
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            log.warning("prediction job %s does not exist", job_id)
            return None
        if job.status == JobStatus.QUEUED:
            job.worker_task_id = task_id
            job.save(update_fields=["worker_task_id"])
            job.set_status(JobStatus.RUNNING)
            return job
        if job.status == JobStatus.RUNNING and job.worker_task_id == task_id:
            # The same message redelivered after its worker died (acks_late), or retried:
            # carry on where it stopped, as a new attempt. A job that keeps killing its
            # worker (e.g. out of memory) must not be redelivered forever.
            if job.attempt >= settings.JOB_MAX_ATTEMPTS:
                job.set_status(
                    JobStatus.FAILED,
                    user_error=f"The analysis was interrupted {job.attempt} times and was stopped.",
                    admin_error=f"Task {task_id} was delivered again after attempt {job.attempt} "
                    f"of {settings.JOB_MAX_ATTEMPTS} (worker lost or task retried).",
                )
                return None
            job.attempt += 1
            job.save(update_fields=["attempt"])
            return job
        if job.status == JobStatus.RUNNING:
            log.info("prediction job %s is held by task %s; skipping", job_id, job.worker_task_id)
            return None
        log.info("prediction job %s is %s; nothing to do", job_id, job.status)
        return None


def _read(scan):
    with scan.file.open("rb") as handle:
        return handle.read()


def _save_batch(job, scans, results):
    """Store one batch of results in its own transaction; a re-run never doubles them."""
    with transaction.atomic():
        for scan, result in zip(scans, results, strict=True):
            Prediction.objects.get_or_create(
                scan=scan,
                model_version=job.model_version,
                defaults={
                    "job": job,
                    "probability": result.probability,
                    "label": result.label or "",
                    "threshold": job.model_version.threshold,
                    "error": (result.error or "")[:300],
                },
            )
        _refresh_counts(job)


def _refresh_counts(job):
    predictions = Prediction.objects.filter(
        model_version=job.model_version, scan__in=job.batch.scans_for_prediction()
    )
    done = predictions.filter(error="").count()
    failed = predictions.exclude(error="").count()
    PredictionJob.objects.filter(pk=job.pk).update(
        done=done, failed=failed, progress_at=timezone.now()
    )
    job.done, job.failed = done, failed


def _finish(job_id):
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING:
            return job
        _refresh_counts(job)
        if job.failed == 0:
            job.set_status(JobStatus.SUCCEEDED)
        elif job.done == 0:
            job.set_status(
                JobStatus.FAILED, user_error="No scan of this batch could be analysed."
            )
        else:
            job.set_status(
                JobStatus.PARTIAL,
                user_error=f"{job.failed} of {job.total} scans could not be analysed.",
            )
        return job


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3)
def run_prediction_job(self, job_id):
    job = _claim(job_id, self.request.id)
    if job is None:
        return
    try:
        model = load_model(job.model_version)
        batch_size = settings.INFERENCE_BATCH_SIZE
        todo = list(
            job.batch.scans_for_prediction().exclude(
                predictions__model_version=job.model_version
            )
        )
        for start in range(0, len(todo), batch_size):
            job.refresh_from_db(fields=["status", "worker_task_id"])
            if job.status != JobStatus.RUNNING or job.worker_task_id != (self.request.id or ""):
                log.info("prediction job %s became %s; stopping", job_id, job.status)
                return
            scans = todo[start : start + batch_size]
            results = _predict(model, scans)
            _save_batch(job, scans, results)
        _finish(job_id)
    except SoftTimeLimitExceeded:
        _fail(job_id, "The analysis took too long and was stopped.", traceback.format_exc())
    except Exception as exc:
        if self.request.retries < self.max_retries:
            log.exception("prediction job %s failed; retrying", job_id)
            raise self.retry(exc=exc, countdown=5 * (self.request.retries + 1)) from exc
        _fail(job_id, "The analysis failed; an administrator has the details.", traceback.format_exc())


def _predict(model, scans):
    from ml.engine import ImagePrediction

    payloads, readable, results = [], [], [None] * len(scans)
    for index, scan in enumerate(scans):
        try:
            payloads.append(_read(scan))
            readable.append(index)
        except OSError as exc:
            log.error("scan %s could not be read: %s", scan.pk, exc)
            results[index] = ImagePrediction(probability=None, label=None, error="stored file is missing")
    for index, result in zip(readable, model.predict_bytes(payloads, batch_size=len(payloads) or 1), strict=True):
        results[index] = result
    return results


def _fail(job_id, user_error, admin_error):
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().get(pk=job_id)
        if job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
            job.set_status(JobStatus.FAILED, user_error=user_error, admin_error=admin_error)


@shared_task
def sweep_stalled_jobs():
    """Re-queue running jobs whose progress stopped moving; fail them after the last attempt.

    A queued job that waited past the timeout is sent again (its message may have been
    lost, e.g. the broker was down at upload time) without counting an attempt: waiting
    behind other jobs is not a failure. The message it did not use skips the job.
    """
    from classifier.jobs import enqueue, requeue

    cutoff = timezone.now() - timedelta(minutes=settings.JOB_STALL_MINUTES)
    swept = 0
    stalled_ids = list(
        PredictionJob.objects.filter(
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING], progress_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    for job_id in stalled_ids:
        with transaction.atomic():
            job = PredictionJob.objects.select_for_update(skip_locked=True).filter(
                pk=job_id, status__in=[JobStatus.QUEUED, JobStatus.RUNNING], progress_at__lt=cutoff
            ).first()
            if job is None:
                continue
            if job.status == JobStatus.QUEUED:
                log.warning("prediction job %s waited in the queue; sending it again", job.pk)
                PredictionJob.objects.filter(pk=job.pk).update(progress_at=timezone.now())
                enqueue(job)
            elif job.attempt >= settings.JOB_MAX_ATTEMPTS:
                log.error("prediction job %s stalled on its last attempt; failing it", job.pk)
                job.set_status(
                    JobStatus.FAILED,
                    user_error=f"The analysis stalled {job.attempt} times and was stopped.",
                    admin_error=f"No progress for {settings.JOB_STALL_MINUTES} minutes on "
                    f"attempt {job.attempt} of {settings.JOB_MAX_ATTEMPTS} "
                    f"(last task {job.worker_task_id or '-'}).",
                )
            else:
                log.warning("prediction job %s stalled on attempt %s; re-queueing", job.pk, job.attempt)
                requeue(job)
            swept += 1
    return swept


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_training(self, run_id):
    """Train a new (inactive) model version from reviewed scans; see classifier/training.py."""
    from classifier.training import execute

    run = execute(run_id, self.request.id)
    return run.status if run is not None else None


@shared_task(acks_late=True, reject_on_worker_lost=True, max_retries=0)
def make_heatmap(prediction_id, storage_name):
    """Grad-CAM of one prediction, by the model version that made it, saved privately.

    Runs in the worker so that web processes never load TensorFlow or a model. A
    prediction never changes, so neither does its heatmap: a second call does nothing.
    """
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    if default_storage.exists(storage_name):
        return
    prediction = Prediction.objects.select_related("scan", "model_version").filter(
        public_id=prediction_id
    ).first()
    if prediction is None or prediction.error:
        return
    with prediction.scan.file.open("rb") as handle:
        data = handle.read()
    png = load_model(prediction.model_version).gradcam_png(data)
    if not default_storage.exists(storage_name):
        default_storage.save(storage_name, ContentFile(png))
