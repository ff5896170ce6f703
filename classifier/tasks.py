"""Celery tasks. They take ids, lock their row first and are safe to run twice."""

import logging
import os

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from classifier import prediction_run as run
from classifier.engine import load_model
from classifier.heartbeat import heartbeat
from classifier.models import Prediction, PredictionJob

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3)
def run_prediction_job(self, job_id):
    """Predict a batch with one model version; see classifier/prediction_run.py for the rules."""
    task_id = self.request.id
    job = run.claim(job_id, task_id, worker=f"{self.request.hostname or '-'} pid {os.getpid()}")
    if job is None:
        return
    try:
        with heartbeat(PredictionJob, job.pk, task_id):
            run.execute(job, task_id, load_model(job.model_version))
    except SoftTimeLimitExceeded as exc:
        run.fail(job_id, task_id, run.USER_TIMED_OUT, exc)
    except Exception as exc:
        if self.request.retries < self.max_retries and run.prepare_retry(job_id, task_id, exc):
            log.exception("prediction job %s failed; retry %s", job_id, self.request.retries + 1)
            countdown = settings.JOB_RETRY_SECONDS * 2**self.request.retries
            raise self.retry(exc=exc, countdown=countdown) from exc
        log.exception("prediction job %s failed for good", job_id)
        run.fail(job_id, task_id, run.USER_RETRIES_EXHAUSTED, exc)


@shared_task
def sweep_stalled_jobs():
    """Re-queue jobs whose worker died and re-send jobs whose message was lost."""
    from classifier.sweeper import sweep

    return sweep()


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
