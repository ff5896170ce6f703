"""Celery tasks. They take ids, lock their row first and are safe to run twice."""

import logging
import os
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from classifier import prediction_run as run
from classifier.engine import load_model
from classifier.heartbeat import heartbeat
from classifier.models import Prediction, PredictionChunk

log = logging.getLogger(__name__)


def _worker_name(task: Any) -> str:
    return f"{task.request.hostname or '-'} pid {os.getpid()}"


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_prediction_job(self: Any, job_id: int) -> None:
    """Plan a queued job's round into chunks; see classifier/prediction_run.py."""
    run.plan(job_id, self.request.id, worker=_worker_name(self))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=3)
def run_prediction_chunk(self: Any, chunk_id: int) -> None:
    """Predict one chunk of a job; any worker may take any chunk."""
    task_id = self.request.id
    chunk = run.claim(chunk_id, task_id, worker=_worker_name(self))
    if chunk is None:
        return
    try:
        with heartbeat(PredictionChunk, chunk.pk, task_id):
            run.execute(chunk, task_id, load_model(chunk.job.model_version))
    except SoftTimeLimitExceeded as exc:
        run.fail(chunk_id, task_id, run.USER_TIMED_OUT, exc)
    except Exception as exc:
        _drop_broken_connection(exc)
        if self.request.retries < self.max_retries and run.prepare_retry(chunk_id, task_id, exc):
            log.exception("prediction chunk %s failed; retry %s", chunk_id, self.request.retries + 1)
            countdown = settings.JOB_RETRY_SECONDS * 2**self.request.retries
            raise self.retry(exc=exc, countdown=countdown) from exc
        log.exception("prediction chunk %s failed for good", chunk_id)
        run.fail(chunk_id, task_id, run.USER_RETRIES_EXHAUSTED, exc)


def _drop_broken_connection(exc: BaseException) -> None:
    """After the database dropped the task's connection, the retry's bookkeeping would run on
    that dead connection and fail ("connection already closed"), leaving the chunk to the
    sweeper as if the worker had died. Close it, so that the next query reconnects."""
    from django.db import connection
    from django.db.utils import Error  # OperationalError, InterfaceError, ...

    if isinstance(exc, Error) and not connection.in_atomic_block:
        connection.close()


@shared_task
def sweep_stalled_jobs() -> int:
    """Re-queue jobs whose worker died and re-send jobs whose message was lost."""
    from classifier.sweeper import sweep

    return sweep()


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def run_training(self: Any, run_id: int) -> str | None:
    """Train a new (inactive) model version from reviewed scans; see classifier/training.py."""
    from classifier.training import execute

    run = execute(run_id, self.request.id, worker=_worker_name(self))
    return run.status if run is not None else None


# Not re-delivered when its worker dies: a drawing that kills the worker (out of memory)
# must not loop. The prediction stays "queued" and the next page view after
# classifier.heatmaps.REQUEST_STALE_AFTER asks again.
@shared_task(acks_late=True, reject_on_worker_lost=False, max_retries=0)
def make_heatmap(prediction_id: str, storage_name: str) -> None:
    """Grad-CAM of one prediction, by the model version that made it, saved privately.

    Runs in the worker so that web processes never load TensorFlow or a model. A
    prediction never changes, so neither does its heatmap: a second call does nothing.
    The outcome is recorded on the prediction (ready, or failed with the reason)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from classifier.heatmaps import mark_failed, mark_ready

    prediction = Prediction.objects.select_related("scan", "model_version").filter(
        public_id=prediction_id
    ).first()
    if prediction is None or prediction.error:
        return
    if default_storage.exists(storage_name):
        mark_ready(prediction.pk)
        return
    try:
        with prediction.scan.file.open("rb") as handle:
            data = handle.read()
    except (OSError, ValueError):
        log.warning("heatmap of prediction %s: the scan file is missing", prediction_id)
        mark_failed(prediction.pk, "The scan image is no longer available.")
        return
    try:
        png = load_model(prediction.model_version).gradcam_png(data)
        if default_storage.get_available_name(storage_name) == storage_name:  # else drawn meanwhile
            try:
                default_storage.save(storage_name, ContentFile(png))
            except OSError:  # e.g. disk full: never leave a truncated heatmap to be served
                default_storage.delete(storage_name)
                raise
    except Exception:  # SoftTimeLimitExceeded included: record it, never leave it queued
        log.exception("heatmap of prediction %s could not be drawn", prediction_id)
        mark_failed(prediction.pk, "The heatmap could not be drawn.")
        return
    mark_ready(prediction.pk)
