"""Running a prediction job: plan it into chunks, predict each chunk, finish the job.

A job's own task (``run_prediction_job``) *plans* a round: it cuts the scans that still need a
result into chunks of ``JOB_CHUNK_SIZE`` and sends one ``run_prediction_chunk`` task per chunk,
so any number of workers share one batch. The job finishes when the last chunk of its round is
done. The rules that keep one bad scan from harming the others hold per chunk:

- **Per-scan isolation.** Scans are predicted in inference batches; if a model call raises,
  that batch's scans are predicted one at a time, and a scan that raises on its own gets a
  failed attempt with its reason while the chunk goes on.
- **In-flight scans.** Before each inference batch its scan ids are written to the chunk
  (``in_flight``). If the process dies (out of memory, killed, a crash in native code), the
  chunk's next run finds them there and treats them as *suspects*: each is retried alone, and a
  scan that was in flight when a worker died twice is failed with "This image stopped the
  analysis twice" while every other scan gets its prediction.
- **Counted for what they are.** ``attempt`` counts starts; the job's ``retries`` counts
  exceptions retried by Celery (the last one fails the job with the exception kept for the
  admin); ``interruptions`` counts worker deaths that no scan can be blamed for (nothing was
  in flight) and is the only count capped, by ``JOB_MAX_ATTEMPTS``.
- **Rounds.** Failed scans can be re-run (``classifier.jobs.rerun``): the job plans a new
  round over every scan that has no result yet.
"""

import logging
import math
import os
import signal
import traceback
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from classifier import claims
from classifier.models import ChunkStatus, JobStatus, Prediction, PredictionChunk, PredictionJob
from classifier.signals import announce_batch_finished

if TYPE_CHECKING:
    from ml.engine import ImagePrediction, LoadedModel

log = logging.getLogger(__name__)

STOPPED_TWICE = "This image stopped the analysis twice and was set aside."
UNREADABLE = "The stored file is missing."
SCAN_FAILED = "This image could not be analysed ({kind})."
USER_RETRIES_EXHAUSTED = "The analysis could not be run; an administrator has the details."
USER_TIMED_OUT = "The analysis took too long and was stopped."


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, for the administrator."""
    return f"{type(exc).__name__}: {exc}"[:2000]


# --- Planning a round -------------------------------------------------------------------


def plan(job_id: int, task_id: str | None, worker: str = "") -> PredictionJob | None:
    """Start a queued job's round: cut its pending scans into chunks and send them.

    Returns the job, or None when the job is not queued (a duplicated message, a finished or
    cancelled job). A round with nothing left to do finishes at once.
    """
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            log.warning("prediction job %s does not exist", job_id)
            return None
        if job.status != JobStatus.QUEUED:
            log.info("prediction job %s is %s; nothing to plan", job_id, job.status)
            return None
        job.worker_task_id, job.worker = task_id or "", worker
        job.save(update_fields=["worker_task_id", "worker"])
        job.set_status(JobStatus.RUNNING)
        scan_ids = [str(pk) for pk in pending_scans(job).values_list("pk", flat=True)]
        size = settings.JOB_CHUNK_SIZE
        chunks = PredictionChunk.objects.bulk_create(
            PredictionChunk(job=job, round=job.round, index=i // size, scan_ids=scan_ids[i : i + size])
            for i in range(0, len(scan_ids), size)
        )
        for chunk in chunks:
            send_chunk(chunk)
    if not chunks:
        finish(job.pk)
    return job


def send_chunk(chunk: PredictionChunk) -> None:
    """Send the chunk's task once the surrounding transaction has committed."""
    from classifier.tasks import run_prediction_chunk

    transaction.on_commit(lambda: run_prediction_chunk.delay(chunk.pk), robust=True)


def pending_scans(job: PredictionJob) -> Any:
    """Accepted scans with no result from this model version and no failure this round."""
    return (
        job.batch.scans_for_prediction()
        .exclude(predictions__model_version=job.model_version, predictions__error="")
        .exclude(
            Q(predictions__model_version=job.model_version)
            & Q(predictions__round=job.round)
            & ~Q(predictions__error="")
        )
        .order_by("position", "pk")
    )


# --- Claiming a chunk -------------------------------------------------------------------


def claim(chunk_id: int, task_id: str | None, worker: str = "") -> PredictionChunk | None:
    """Lock the chunk and move it to running; None when it is not this message's to run.

    A running chunk is carried on only by the message that holds it: the same message
    delivered again after its worker died. A duplicated message skips it.
    """
    with transaction.atomic():
        chunk, how = claims.claim(PredictionChunk, chunk_id, task_id, select_related=["job"])
        if chunk is None:
            log.warning("prediction chunk %s does not exist", chunk_id)
            return None
        if chunk.job.status != JobStatus.RUNNING or chunk.round != chunk.job.round:
            _close(chunk)
            return None
        if how is None:
            log.info("chunk %s is %s (held by %s); skipping", chunk_id, chunk.status, chunk.worker_task_id)
            return None
        chunk.status = ChunkStatus.RUNNING
        chunk.attempt += 1
        chunk.worker, chunk.heartbeat_at = worker, timezone.now()
        chunk.save(update_fields=["status", "worker_task_id", "attempt", "worker", "heartbeat_at"])
        blamed = absorb_in_flight(chunk)  # scans in flight when a worker died become suspects
        if how == claims.REDELIVERED and not blamed:
            if not count_interruption(chunk, f"task {task_id} delivered again"):
                return None
        return chunk


def absorb_in_flight(chunk: PredictionChunk) -> bool:
    """Turn the scans that were in flight when a worker died into suspects. True if any."""
    if not chunk.in_flight:
        return False
    suspects = dict(chunk.suspects or {})
    for scan_id in chunk.in_flight:
        suspects[scan_id] = suspects.get(scan_id, 0) + 1
    log.warning("chunk %s: a worker died with scans %s in flight", chunk.pk, chunk.in_flight)
    chunk.suspects, chunk.in_flight = suspects, []
    chunk.save(update_fields=["suspects", "in_flight"])
    return True


def count_interruption(chunk: PredictionChunk, how: str) -> bool:
    """A worker died with nothing in flight. False (job failed) past the last allowed one."""
    chunk.interruptions += 1
    chunk.save(update_fields=["interruptions"])
    if chunk.interruptions < settings.JOB_MAX_ATTEMPTS:
        return True
    job = PredictionJob.objects.select_for_update().get(pk=chunk.job_id)
    if job.status == JobStatus.RUNNING:
        job.set_status(
            JobStatus.FAILED,
            user_error=f"The analysis was interrupted {chunk.interruptions} times and was stopped.",
            admin_error=f"The worker died {chunk.interruptions} times outside any scan ({how}); "
            f"the limit is JOB_MAX_ATTEMPTS={settings.JOB_MAX_ATTEMPTS}. Look at the worker's log "
            "for the cause (memory limit, crash in native code, host restart).",
        )
        transaction.on_commit(partial(announce_batch_finished, job.batch_id))
    _close(chunk)
    return False


def _close(chunk: PredictionChunk) -> None:
    if chunk.status != ChunkStatus.DONE:
        chunk.status, chunk.finished_at = ChunkStatus.DONE, timezone.now()
        chunk.save(update_fields=["status", "finished_at"])


# --- Predicting a chunk -----------------------------------------------------------------


def execute(chunk: PredictionChunk, task_id: str | None, model: "LoadedModel") -> None:
    """Predict the chunk's pending scans, close it, and finish the job if it was the last."""
    job = chunk.job
    pending = set(map(str, pending_scans(job).filter(pk__in=chunk.scan_ids).values_list("pk", flat=True)))
    scans = {str(scan.pk): scan for scan in job.batch.scans_for_prediction().filter(pk__in=pending)}
    todo = [scans[pk] for pk in chunk.scan_ids if pk in scans]
    suspects = dict(chunk.suspects or {})
    repeat_offenders = [scan for scan in todo if suspects.get(str(scan.pk), 0) >= 2]
    if repeat_offenders:
        _save(chunk, repeat_offenders, [_failure(STOPPED_TWICE)] * len(repeat_offenders))
    singles = [scan for scan in todo if suspects.get(str(scan.pk), 0) == 1]
    others = [scan for scan in todo if str(scan.pk) not in suspects]
    size = inference_batch_size(job)
    batches = [[scan] for scan in singles] + [others[i : i + size] for i in range(0, len(others), size)]
    for scans_now in batches:
        if not still_ours(chunk, task_id):
            log.info("chunk %s: its job stopped or another message holds it; stopping", chunk.pk)
            return
        _mark_in_flight(chunk, task_id, scans_now)
        _test_crash_hook(scans_now)
        _save(chunk, scans_now, predict_isolated(model, scans_now))
    with transaction.atomic():
        locked = PredictionChunk.objects.select_for_update().get(pk=chunk.pk)
        if locked.worker_task_id == (task_id or ""):
            _close(locked)
    maybe_finish(job.pk)


def inference_batch_size(job: PredictionJob) -> int:
    """INFERENCE_BATCH_SIZE, smaller for small jobs so progress moves in about ten steps."""
    return max(1, min(settings.INFERENCE_BATCH_SIZE, math.ceil(job.total / 10)))


def still_ours(chunk: PredictionChunk, task_id: str | None) -> bool:
    current = PredictionChunk.objects.filter(pk=chunk.pk).values_list(
        "status", "worker_task_id", "job__status"
    ).first()
    return current == (ChunkStatus.RUNNING, task_id or "", JobStatus.RUNNING)


def _mark_in_flight(chunk: PredictionChunk, task_id: str | None, scans: Sequence[Any]) -> None:
    PredictionChunk.objects.filter(pk=chunk.pk, worker_task_id=task_id or "").update(
        in_flight=[str(scan.pk) for scan in scans]
    )


def _test_crash_hook(scans: Sequence[Any]) -> None:
    """Test only: die like an out-of-memory kill on the scan whose SHA-256 is named."""
    marker = settings.JOB_TEST_CRASH_SHA256
    if marker and any(scan.sha256 == marker for scan in scans):
        log.error("JOB_TEST_CRASH_SHA256 matched; killing this worker process")
        os.kill(os.getpid(), signal.SIGKILL)


def _failure(reason: str) -> "ImagePrediction":
    from ml.engine import ImagePrediction

    return ImagePrediction(probability=None, label=None, error=reason)


def read_scan(scan: Any) -> bytes:
    with scan.file.open("rb") as handle:
        return handle.read()


def predict_isolated(model: "LoadedModel", scans: Sequence[Any]) -> "list[ImagePrediction]":
    """One result per scan, in order. A failing model call is retried scan by scan, so an
    exception costs only the scan that raised it."""
    payloads: list[bytes] = []
    readable: list[int] = []
    results: "list[ImagePrediction | None]" = [None] * len(scans)
    for index, scan in enumerate(scans):
        try:
            payloads.append(read_scan(scan))
            readable.append(index)
        except (OSError, ValueError) as exc:
            log.error("scan %s could not be read: %s", scan.pk, exc)
            results[index] = _failure(UNREADABLE)
    if not readable:
        return cast("list[ImagePrediction]", results)  # every scan was unreadable: each has its failure
    try:
        predicted = model.predict_bytes(payloads, batch_size=len(payloads))
    except Exception:
        log.exception("a batch of %s scans failed; predicting them one at a time", len(readable))
        predicted = [_predict_one(model, scans[i], payload) for i, payload in zip(readable, payloads, strict=True)]
    for index, result in zip(readable, predicted, strict=True):
        results[index] = result
    return cast("list[ImagePrediction]", results)  # each slot is now a result or a failure


def _predict_one(model: "LoadedModel", scan: Any, payload: bytes) -> "ImagePrediction":
    try:
        return model.predict_bytes([payload], batch_size=1)[0]
    except Exception as exc:
        log.exception("scan %s failed in the model", scan.pk)
        return _failure(SCAN_FAILED.format(kind=type(exc).__name__))


def _save(chunk: PredictionChunk, scans: Sequence[Any], results: "Sequence[ImagePrediction]") -> None:
    """Store one inference batch's results in one transaction; never doubled."""
    job = chunk.job
    version = job.model_version
    with transaction.atomic():
        for scan, result in zip(scans, results, strict=True):
            attempts = Prediction.objects.filter(scan=scan, model_version=version)
            if attempts.filter(error="").exists():
                continue  # a result exists (another run stored it first)
            if result.error or (result.probability is None and result.assessed):
                if not attempts.filter(round=job.round).exists():
                    Prediction.objects.create(
                        scan=scan, model_version=version, job=job, round=job.round,
                        probability=None, label="", threshold=version.threshold,
                        error=(result.error or "no result")[:300],
                    )
                continue
            Prediction.objects.get_or_create(  # the unique constraint settles a race
                scan=scan, model_version=version, error="",
                defaults={
                    "job": job, "round": job.round, "probability": result.probability,
                    "label": result.label or "", "threshold": version.threshold,
                    "ood_score": result.ood_score,
                    "assessed": result.assessed,
                    "not_assessed_reason": (result.reason or "")[:300],
                },
            )
        PredictionChunk.objects.filter(pk=chunk.pk).update(in_flight=[])
        refresh_counts(job)


# --- Counting and finishing -------------------------------------------------------------


def refresh_counts(job: PredictionJob) -> None:
    """done: scans with a result; failed: scans whose attempt failed this round."""
    scans = job.batch.scans_for_prediction()
    results = Prediction.objects.filter(model_version=job.model_version, scan__in=scans)
    done = results.filter(error="").count()
    failed = results.exclude(error="").filter(round=job.round).count()
    PredictionJob.objects.filter(pk=job.pk).update(
        done=done, failed=failed, progress_at=timezone.now()
    )
    job.done, job.failed = done, failed


def maybe_finish(job_id: int) -> PredictionJob:
    """Finish a running job once every chunk of its round is done."""
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING:
            return job
        if job.chunks.filter(round=job.round).exclude(status=ChunkStatus.DONE).exists():
            return job
    return finish(job_id)


def finish(job_id: int) -> PredictionJob:
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING:
            return job
        refresh_counts(job)
        if job.failed == 0:
            job.set_status(JobStatus.SUCCEEDED, user_error="")
        elif job.done == 0:
            job.set_status(JobStatus.FAILED, user_error="No scan of this batch could be analysed.")
        else:
            job.set_status(
                JobStatus.PARTIAL,
                user_error=f"{job.failed} of {job.total} scans could not be analysed.",
            )
        transaction.on_commit(partial(announce_batch_finished, job.batch_id))
        return job


def fail(chunk_id: int, task_id: str | None, user_error: str, exc: BaseException) -> None:
    """The job's final failure: a plain message for clinicians, the cause for the admin."""
    with transaction.atomic():
        chunk = PredictionChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.worker_task_id != (task_id or ""):
            return
        _close(chunk)
        job = PredictionJob.objects.select_for_update().get(pk=chunk.job_id)
        if job.status == JobStatus.RUNNING:
            job.set_status(
                JobStatus.FAILED,
                user_error=user_error,
                admin_error=describe(exc),
                admin_traceback="".join(traceback.format_exception(exc)),
            )
            transaction.on_commit(partial(announce_batch_finished, job.batch_id))


def prepare_retry(chunk_id: int, task_id: str | None, exc: BaseException) -> bool:
    """Before a Celery retry: count it, keep its cause, and hand the chunk back to the queue
    so that the retried message claims it again (it is not a redelivery)."""
    with transaction.atomic():
        chunk = PredictionChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.status != ChunkStatus.RUNNING or chunk.worker_task_id != (task_id or ""):
            return False
        chunk.status, chunk.in_flight, chunk.sent_at = ChunkStatus.QUEUED, [], timezone.now()
        chunk.save(update_fields=["status", "in_flight", "sent_at"])  # an exception: no scan to blame
        job = PredictionJob.objects.select_for_update().get(pk=chunk.job_id)
        job.retries += 1
        job.admin_error = f"Retry {job.retries} after {describe(exc)}"
        job.admin_traceback = "".join(traceback.format_exception(exc))
        job.save(update_fields=["retries", "admin_error", "admin_traceback"])
        return True
