"""Running a prediction job: plan it into chunks, predict each chunk, finish the job.

A job's own task (``run_prediction_job``) *plans* a round: it cuts the scans that still need a
result into chunks of ``JOB_CHUNK_SIZE`` (the last full one halved in rounds of four chunks or
more, ``cut``) and sends one ``run_prediction_chunk`` task per chunk, so any number of workers
share one batch. The job finishes when the last chunk of its round is done. The rules that
keep one bad scan from harming the others hold per chunk:

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

While the model runs on one inference batch, the next batch's scans are read from storage in
the process's storage pool (``ScanReader``, ``classifier.storage_io``): at most two batches'
bytes are held. Each batch's results are stored with one insert (``_save``).
"""

import logging
import math
import os
import signal
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from classifier import claims, storage_io
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


# Exceptions that stop a chunk's task rather than fail the scan in hand.
INTERRUPTS: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded,)


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
        chunks = PredictionChunk.objects.bulk_create(
            PredictionChunk(job=job, round=job.round, index=index, scan_ids=part)
            for index, part in enumerate(cut(scan_ids, settings.JOB_CHUNK_SIZE))
        )
        for chunk in chunks:
            send_chunk(chunk)
    if not chunks:
        finish(job.pk)
    return job


def cut(scan_ids: list[str], size: int) -> list[list[str]]:
    """A round's chunks, in the order workers take them: ``size`` scans each, except that in
    a round of four chunks or more the last full chunk is cut in two halves. The round then
    ends on small chunks, so that the workers finish it closer together: with chunks of one
    size, a worker can wait a whole chunk for the last one (e.g. 240 scans in 15 chunks of
    16: 128 scans for one of two workers, 112 for the other)."""
    parts = [scan_ids[i : i + size] for i in range(0, len(scan_ids), size)]
    if len(parts) >= 4 and size >= 2:
        last_full = max(i for i, part in enumerate(parts) if len(part) == size)
        half = (size + 1) // 2
        parts[last_full : last_full + 1] = [parts[last_full][:half], parts[last_full][half:]]
    return parts


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
    spent = {"reads": 0.0, "model": 0.0, "store": 0.0}  # seconds, for the debug log below
    with ScanReader(batches) as reader:
        for index, scans_now in enumerate(batches):
            if not still_ours(chunk, task_id):
                log.info("chunk %s: its job stopped or another message holds it; stopping", chunk.pk)
                return
            _mark_in_flight(chunk, task_id, scans_now)
            _test_crash_hook(scans_now)
            started = time.perf_counter()
            payloads = reader.take(index)
            read_at = time.perf_counter()
            results = predict_isolated(model, scans_now, payloads)
            predicted_at = time.perf_counter()
            _save(chunk, scans_now, results)
            spent["reads"] += read_at - started
            spent["model"] += predicted_at - read_at
            spent["store"] += time.perf_counter() - predicted_at
    log.debug(
        "chunk %s: %s scans in %s inference batches; waited %.2f s for reads, model %.2f s, storing %.2f s",
        chunk.pk, len(todo), len(batches), spent["reads"], spent["model"], spent["store"],
    )
    with transaction.atomic():
        locked = PredictionChunk.objects.select_for_update().get(pk=chunk.pk)
        if locked.worker_task_id == (task_id or ""):
            _close(locked)
    maybe_finish(job.pk)


def inference_batch_size(job: PredictionJob) -> int:
    """INFERENCE_BATCH_SIZE, smaller for small jobs so progress moves in about ten steps."""
    return max(1, min(settings.INFERENCE_BATCH_SIZE, math.ceil(job.total / 10)))


def still_ours(chunk: PredictionChunk, task_id: str | None) -> bool:
    """The chunk is running under this task, and its job is running the chunk's round (a job
    cancelled and run again is on a new round, whose own chunks carry the work)."""
    current = PredictionChunk.objects.filter(pk=chunk.pk).values_list(
        "status", "worker_task_id", "job__status", "job__round"
    ).first()
    return current == (ChunkStatus.RUNNING, task_id or "", JobStatus.RUNNING, chunk.round)


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
    return storage_io.read_bytes(scan.file)


class ScanReader:
    """The stored bytes of a chunk's inference batches, read in the storage pool: taking
    batch ``i`` waits for its reads and starts those of batch ``i + 1``, which run while the
    model works on batch ``i``. At most two batches' bytes are held."""

    def __init__(self, batches: Sequence[Sequence[Any]]) -> None:
        self.batches = batches
        self.reads: dict[int, list[Future[bytes]]] = {}

    def _start(self, index: int) -> None:
        if index < len(self.batches) and index not in self.reads:
            self.reads[index] = [storage_io.pool().submit(read_scan, scan) for scan in self.batches[index]]

    def take(self, index: int) -> list[bytes | BaseException]:
        """One entry per scan of batch ``index``: its bytes, or the exception reading raised."""
        self._start(index)
        reads = self.reads.pop(index)
        self._start(index + 1)
        return [read.exception() or read.result() for read in reads]

    def __enter__(self) -> "ScanReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        for reads in self.reads.values():  # a chunk that stopped early: drop what is ahead
            for read in reads:
                read.cancel()
        self.reads.clear()


def predict_isolated(
    model: "LoadedModel", scans: Sequence[Any], payloads: Sequence[bytes | BaseException] | None = None
) -> "list[ImagePrediction]":
    """One result per scan, in order. A failing model call is retried scan by scan, so an
    exception costs only the scan that raised it. ``payloads``: the scans' bytes or the
    exceptions reading them raised (``ScanReader.take``); read here when not given."""
    if payloads is None:
        read: list[bytes | BaseException] = []
        for scan in scans:
            try:
                read.append(read_scan(scan))
            except Exception as exc:  # judged below like a read-ahead failure
                read.append(exc)
        payloads = read
    readable: list[int] = []
    data: list[bytes] = []
    results: "list[ImagePrediction | None]" = [None] * len(scans)
    for index, (scan, payload) in enumerate(zip(scans, payloads, strict=True)):
        if isinstance(payload, bytes):
            readable.append(index)
            data.append(payload)
        elif isinstance(payload, (OSError, ValueError)):
            log.error("scan %s could not be read: %s", scan.pk, payload)
            results[index] = _failure(UNREADABLE)
        else:  # a storage error that is not this scan's (the server refused): the chunk retries
            raise payload
    if not readable:
        return cast("list[ImagePrediction]", results)  # every scan was unreadable: each has its failure
    try:
        predicted = model.predict_bytes(data, batch_size=len(data), interrupts=INTERRUPTS)
    except INTERRUPTS:
        raise  # the task's time limit: not this batch's fault (classifier.tasks handles it)
    except Exception:
        log.exception("a batch of %s scans failed; predicting them one at a time", len(readable))
        predicted = [_predict_one(model, scans[i], payload) for i, payload in zip(readable, data, strict=True)]
    for index, result in zip(readable, predicted, strict=True):
        results[index] = result
    return cast("list[ImagePrediction]", results)  # each slot is now a result or a failure


def _predict_one(model: "LoadedModel", scan: Any, payload: bytes) -> "ImagePrediction":
    try:
        return model.predict_bytes([payload], batch_size=1, interrupts=INTERRUPTS)[0]
    except INTERRUPTS:
        raise
    except Exception as exc:
        log.exception("scan %s failed in the model", scan.pk)
        return _failure(SCAN_FAILED.format(kind=type(exc).__name__))


def _save(chunk: PredictionChunk, scans: Sequence[Any], results: "Sequence[ImagePrediction]") -> None:
    """Store one inference batch's results in one transaction; never doubled.

    One insert for the batch: the two unique constraints (one result per scan and version;
    one failure per scan, version and round) make PostgreSQL skip a row that a concurrent or
    earlier run already stored (``ignore_conflicts``). A failure is recorded only for a scan
    that has no result yet."""
    job = chunk.job
    version = job.model_version
    with transaction.atomic():
        has_result = set(
            Prediction.objects.filter(scan__in=scans, model_version=version, error="").values_list("scan_id", flat=True)
        )
        rows = []
        for scan, result in zip(scans, results, strict=True):
            if scan.pk in has_result:
                continue  # a result exists (another run stored it first)
            common = {"scan": scan, "model_version": version, "job": job, "round": job.round,
                      "threshold": version.threshold}
            if result.error or (result.probability is None and result.assessed):
                rows.append(Prediction(**common, probability=None, label="", error=(result.error or "no result")[:300]))
            else:
                rows.append(Prediction(
                    **common, probability=result.probability, label=result.label or "", error="",
                    ood_score=result.ood_score, assessed=result.assessed,
                    not_assessed_reason=(result.reason or "")[:300],
                ))
        Prediction.objects.bulk_create(rows, ignore_conflicts=True)
        PredictionChunk.objects.filter(pk=chunk.pk).update(in_flight=[])
        refresh_counts(job)


# --- Counting and finishing -------------------------------------------------------------


def refresh_counts(job: PredictionJob) -> None:
    """done: scans with a result; failed: scans whose attempt failed in the job's current
    round (read now: a worker of an earlier round may still be storing). A finished job's
    counts stay those it finished with."""
    current = PredictionJob.objects.filter(pk=job.pk).values_list("round", "status").first()
    if current is None or current[1] != JobStatus.RUNNING:
        return
    scans = job.batch.scans_for_prediction()
    counts = Prediction.objects.filter(model_version=job.model_version, scan__in=scans).aggregate(
        done=Count("pk", filter=Q(error="")),
        failed=Count("pk", filter=~Q(error="") & Q(round=current[0])),
    )
    done, failed = counts["done"], counts["failed"]
    PredictionJob.objects.filter(pk=job.pk, status=JobStatus.RUNNING).update(
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
    """The job's final failure: a plain message for clinicians, the cause for the admin. Only
    while this task still runs the chunk: a chunk it already closed (the error came while
    finishing the job; the sweeper finishes it) or one the sweeper handed to another message
    is no reason to fail the job."""
    with transaction.atomic():
        chunk = PredictionChunk.objects.select_for_update().get(pk=chunk_id)
        if chunk.worker_task_id != (task_id or "") or chunk.status != ChunkStatus.RUNNING:
            log.warning("chunk %s: not failing its job for %s; the chunk is %s under %s", chunk_id,
                        describe(exc), chunk.status, chunk.worker_task_id or "-")
            return
        _close(chunk)
        job = PredictionJob.objects.select_for_update().get(pk=chunk.job_id)
        if job.status == JobStatus.RUNNING and job.round == chunk.round:  # not a later round's
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
        job = PredictionJob.objects.select_for_update().get(pk=chunk.job_id)
        if job.round != chunk.round:  # the job was run again meanwhile: this chunk's work is over
            _close(chunk)
            return False
        chunk.status, chunk.in_flight, chunk.sent_at = ChunkStatus.QUEUED, [], timezone.now()
        chunk.save(update_fields=["status", "in_flight", "sent_at"])  # an exception: no scan to blame
        job.retries += 1
        job.admin_error = f"Retry {job.retries} after {describe(exc)}"
        job.admin_traceback = "".join(traceback.format_exception(exc))
        job.save(update_fields=["retries", "admin_error", "admin_traceback"])
        return True
