"""The beat task's rules for jobs that stopped moving.

- A **running** job whose heartbeat is older than ``JOB_HEARTBEAT_TIMEOUT_SECONDS`` lost its
  worker: it is re-queued at once (its in-flight scans become suspects when it resumes), or
  failed when the worker died too often with nothing in flight. A job that still beats but
  has not moved for ``JOB_STALL_MINUTES`` is treated the same way (a hung worker).
- A **queued** job whose message was sent more than ``JOB_RESEND_SECONDS`` ago while its
  queue is empty lost its message (e.g. the broker restarted): it is sent again. A queued job
  that waits behind others is left alone until ``JOB_STALL_MINUTES``; a second message for
  a job is harmless (the first to claim it wins, the other skips it).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from classifier.models import JobStatus, PredictionJob

log = logging.getLogger(__name__)


def sweep():
    now = timezone.now()
    dead = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)
    stalled = now - timedelta(minutes=settings.JOB_STALL_MINUTES)
    lost = now - timedelta(seconds=settings.JOB_RESEND_SECONDS)
    swept = 0
    running = PredictionJob.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=dead) | Q(heartbeat_at__isnull=True, progress_at__lt=dead)
        | Q(progress_at__lt=stalled)
    )
    for job_id in running.values_list("pk", flat=True):
        swept += _requeue_dead(job_id, dead, stalled)
    queued = PredictionJob.objects.filter(status=JobStatus.QUEUED, progress_at__lt=lost)
    ids = list(queued.values_list("pk", flat=True))
    if ids:
        empty = inference_queue_is_empty()
        for job_id in ids:
            swept += _resend_lost(job_id, lost if empty else stalled)
    return swept


def _requeue_dead(job_id, dead, stalled):
    from classifier.jobs import enqueue

    with transaction.atomic():
        job = PredictionJob.objects.select_for_update(skip_locked=True).filter(
            pk=job_id, status=JobStatus.RUNNING
        ).first()
        if job is None:
            return 0
        beat = job.heartbeat_at or job.progress_at
        if beat >= dead and job.progress_at >= stalled:
            return 0  # it beat again since the query
        why = "its worker stopped responding" if beat < dead else "it made no progress"
        if not job.in_flight:
            from classifier.prediction_run import _count_interruption

            if not _count_interruption(job, f"{why}; last task {job.worker_task_id or '-'}"):
                return 1
        log.warning("prediction job %s: %s; re-queueing", job.pk, why)
        job.attempt += 1
        job.save(update_fields=["attempt"])
        job.set_status(JobStatus.QUEUED)
        enqueue(job)
        return 1


def _resend_lost(job_id, cutoff):
    from classifier.jobs import enqueue

    with transaction.atomic():
        job = PredictionJob.objects.select_for_update(skip_locked=True).filter(
            pk=job_id, status=JobStatus.QUEUED, progress_at__lt=cutoff
        ).first()
        if job is None:
            return 0
        log.warning("prediction job %s waited in the queue; sending it again", job.pk)
        PredictionJob.objects.filter(pk=job.pk).update(progress_at=timezone.now())
        enqueue(job)
        return 1


def inference_queue_is_empty():
    """True when the broker says the inference queue holds no message; False if unsure."""
    from celery import current_app

    try:
        with current_app.connection_for_read() as conn:
            _, count, _ = conn.default_channel.queue_declare(queue="inference")
        return count == 0
    except Exception:
        log.warning("could not read the inference queue's length", exc_info=True)
        return False
