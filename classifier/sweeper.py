"""The beat task's rules for work that stopped moving (see classifier/prediction_run.py).

- A **running chunk** whose heartbeat is older than ``JOB_HEARTBEAT_TIMEOUT_SECONDS`` lost its
  worker: it is sent again at once (its in-flight scans become suspects when it resumes), or,
  when the worker died too often with nothing in flight, its job is failed with a message.
- A **queued chunk or job** whose message was sent more than ``JOB_RESEND_SECONDS`` ago while
  the inference queue is empty lost its message (e.g. the broker restarted): it is sent again.
  Work waiting behind other work is left alone until ``JOB_STALL_MINUTES``; a second message is
  harmless (the first to claim the work wins, the other skips it).
- A **running job** whose chunks are all done but which was not finished (its last worker died
  in between) is finished.
- A **running training run** whose heartbeat stopped lost its worker; training does not resume,
  so the run is failed with a message (the admin starts a new one).
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from classifier.models import ChunkStatus, JobStatus, PredictionChunk, PredictionJob, TrainingRun

log = logging.getLogger(__name__)


def sweep() -> int:
    now = timezone.now()
    dead = now - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)
    lost = now - timedelta(seconds=settings.JOB_RESEND_SECONDS)
    stalled = now - timedelta(minutes=settings.JOB_STALL_MINUTES)
    swept = 0
    live = {"job__status": JobStatus.RUNNING, "round": F("job__round")}  # a chunk of an earlier round is not the job's
    for chunk_id in PredictionChunk.objects.filter(
        Q(heartbeat_at__lt=dead) | Q(heartbeat_at__isnull=True), status=ChunkStatus.RUNNING, **live
    ).values_list("pk", flat=True):
        swept += _resend_dead_chunk(chunk_id, dead)
    waiting_chunks = list(
        PredictionChunk.objects.filter(status=ChunkStatus.QUEUED, sent_at__lt=lost, **live).values_list("pk", flat=True)
    )
    waiting_jobs = list(
        PredictionJob.objects.filter(status=JobStatus.QUEUED, progress_at__lt=lost).values_list("pk", flat=True)
    )
    if waiting_chunks or waiting_jobs:
        cutoff = lost if inference_queue_is_empty() else stalled
        swept += sum(_resend_lost_chunk(pk, cutoff) for pk in waiting_chunks)
        swept += sum(_resend_lost_job(pk, cutoff) for pk in waiting_jobs)
    swept += _finish_orphans()
    swept += _fail_lost_training(dead)
    return swept


def _resend_dead_chunk(chunk_id: int, dead: datetime) -> int:
    from classifier.prediction_run import count_interruption, send_chunk

    with transaction.atomic():
        chunk = PredictionChunk.objects.select_for_update(skip_locked=True).filter(
            Q(heartbeat_at__lt=dead) | Q(heartbeat_at__isnull=True), pk=chunk_id, status=ChunkStatus.RUNNING
        ).first()
        if chunk is None:
            return 0
        how = f"its worker stopped responding; last task {chunk.worker_task_id or '-'}"
        if not chunk.in_flight and not count_interruption(chunk, how):
            return 1
        log.warning("chunk %s of job %s: %s; sending it again", chunk.pk, chunk.job_id, how)
        chunk.status, chunk.sent_at = ChunkStatus.QUEUED, timezone.now()
        chunk.save(update_fields=["status", "sent_at"])
        send_chunk(chunk)
        return 1


def _resend_lost_chunk(chunk_id: int, cutoff: datetime) -> int:
    from classifier.prediction_run import send_chunk

    with transaction.atomic():
        chunk = PredictionChunk.objects.select_for_update(skip_locked=True).filter(
            pk=chunk_id, status=ChunkStatus.QUEUED, sent_at__lt=cutoff
        ).first()
        if chunk is None:
            return 0
        log.warning("chunk %s of job %s waited in the queue; sending it again", chunk.pk, chunk.job_id)
        chunk.sent_at = timezone.now()
        chunk.save(update_fields=["sent_at"])
        send_chunk(chunk)
        return 1


def _resend_lost_job(job_id: int, cutoff: datetime) -> int:
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


def _finish_orphans() -> int:
    from classifier.prediction_run import maybe_finish

    unfinished = PredictionChunk.objects.filter(job=OuterRef("pk"), round=OuterRef("round")).exclude(
        status=ChunkStatus.DONE
    )
    quiet = timezone.now() - timedelta(seconds=settings.JOB_HEARTBEAT_TIMEOUT_SECONDS)
    orphans = PredictionJob.objects.filter(status=JobStatus.RUNNING, progress_at__lt=quiet).exclude(
        Exists(unfinished)
    )
    finished = 0
    for job_id in orphans.values_list("pk", flat=True):
        if maybe_finish(job_id).is_finished:
            finished += 1
    return finished


def _fail_lost_training(dead: datetime) -> int:
    from classifier.training import fail_lost_run

    failed = 0
    lost = TrainingRun.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat_at__lt=dead) | Q(heartbeat_at__isnull=True, progress_at__lt=dead)
    )
    for run_id in lost.values_list("pk", flat=True):
        with transaction.atomic():
            run = TrainingRun.objects.select_for_update(skip_locked=True).filter(
                Q(heartbeat_at__lt=dead) | Q(heartbeat_at__isnull=True, progress_at__lt=dead),
                pk=run_id, status=JobStatus.RUNNING,
            ).first()
            if run is not None:
                log.warning("training run %s lost its worker; failing it", run.pk)
                fail_lost_run(run, f"No heartbeat since {run.heartbeat_at or run.progress_at:%H:%M:%S} "
                              f"(task {run.worker_task_id or '-'}).")
                failed += 1
    return failed


def inference_queue_is_empty() -> bool:
    """True when the broker says the inference queue holds no message; False if unsure."""
    from celery import current_app

    try:
        with current_app.connection_for_read() as conn:
            channel: Any = conn.default_channel  # the transport's own channel: it declares queues
            _, count, _ = channel.queue_declare(queue="inference")
        return count == 0
    except Exception:
        log.warning("could not read the inference queue's length", exc_info=True)
        return False
