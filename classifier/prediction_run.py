"""One run of a prediction job: claim it, predict its scans chunk by chunk, finish it.

The rules that keep one bad scan from harming the others:

- **Per-scan isolation.** A chunk is predicted in one call; if that call raises, the chunk's
  scans are predicted one at a time, and a scan that raises on its own gets a failed
  attempt with its reason while the job goes on.
- **In-flight scans.** Before a chunk is predicted its scan ids are written to the job
  (``in_flight``). If the process dies (out of memory, killed, a crash in native code),
  the next run of the job finds them there and treats them as *suspects*: each is retried
  alone, and a scan that was in flight when a worker died twice is failed with "This image
  stopped the analysis twice" while every other scan gets its prediction.
- **Counted for what they are.** ``attempt`` counts starts of the job; ``retries`` counts
  exceptions retried by Celery; ``interruptions`` counts worker deaths that no scan can be
  blamed for (nothing was in flight) and is the only one capped by ``JOB_MAX_ATTEMPTS``.
- **Rounds.** Failed scans can be re-run (``classifier.jobs.rerun_failed``): the job starts
  a new round and tries every scan that has no result yet.
"""

import logging
import os
import signal
import traceback

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from classifier.models import JobStatus, Prediction, PredictionJob

log = logging.getLogger(__name__)

STOPPED_TWICE = "This image stopped the analysis twice and was set aside."
UNREADABLE = "The stored file is missing."
SCAN_FAILED = "This image could not be analysed ({kind})."
USER_RETRIES_EXHAUSTED = "The analysis could not be run; an administrator has the details."
USER_TIMED_OUT = "The analysis took too long and was stopped."


def describe(exc):
    """``Type: message`` of an exception, for the administrator."""
    return f"{type(exc).__name__}: {exc}"[:2000]


def claim(job_id, task_id, worker=""):
    """Lock the job and move it to running; None when it is not this message's to run.

    A running job is carried on only by the message that holds it: the same message
    delivered again after its worker died. A duplicated message for a running job skips it.
    """
    task_id = task_id or ""
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            log.warning("prediction job %s does not exist", job_id)
            return None
        if job.status == JobStatus.QUEUED:
            job.worker_task_id = task_id
            job.worker = worker
            job.heartbeat_at = timezone.now()
            job.save(update_fields=["worker_task_id", "worker", "heartbeat_at"])
            job.set_status(JobStatus.RUNNING)
            _absorb_in_flight(job)
            return job
        if job.status == JobStatus.RUNNING and job.worker_task_id == task_id:
            # The message that holds the job, delivered again: its worker died mid-run.
            job.attempt += 1
            job.worker = worker
            job.heartbeat_at = timezone.now()
            job.save(update_fields=["attempt", "worker", "heartbeat_at"])
            if not _absorb_in_flight(job) and not _count_interruption(job, f"task {task_id} delivered again"):
                return None
            return job
        if job.status == JobStatus.RUNNING:
            log.info("prediction job %s is held by task %s; skipping", job_id, job.worker_task_id)
            return None
        log.info("prediction job %s is %s; nothing to do", job_id, job.status)
        return None


def _absorb_in_flight(job):
    """Turn the scans that were in flight when a worker died into suspects. True if any."""
    if not job.in_flight:
        return False
    suspects = dict(job.suspects or {})
    for scan_id in job.in_flight:
        suspects[str(scan_id)] = suspects.get(str(scan_id), 0) + 1
    log.warning("prediction job %s: a worker died with scans %s in flight", job.pk, job.in_flight)
    job.suspects, job.in_flight = suspects, []
    job.save(update_fields=["suspects", "in_flight"])
    return True


def _count_interruption(job, how):
    """A worker died with nothing in flight. False (job failed) past the last allowed one."""
    job.interruptions += 1
    job.save(update_fields=["interruptions"])
    if job.interruptions < settings.JOB_MAX_ATTEMPTS:
        return True
    job.set_status(
        JobStatus.FAILED,
        user_error=f"The analysis was interrupted {job.interruptions} times and was stopped.",
        admin_error=f"The worker died {job.interruptions} times outside any scan ({how}); "
        f"the limit is JOB_MAX_ATTEMPTS={settings.JOB_MAX_ATTEMPTS}. Look at the worker's log "
        "for the cause (memory limit, crash in native code, host restart).",
    )
    return False


def still_ours(job, task_id):
    job.refresh_from_db(fields=["status", "worker_task_id"])
    return job.status == JobStatus.RUNNING and job.worker_task_id == (task_id or "")


def pending_scans(job):
    """Accepted scans with no result from this model version and no failure this round."""
    return (
        job.batch.scans_for_prediction()
        .exclude(predictions__model_version=job.model_version, predictions__error="")
        .exclude(
            Q(predictions__model_version=job.model_version)
            & Q(predictions__round=job.round)
            & ~Q(predictions__error="")
        )
        .order_by("pk")
    )


def execute(job, task_id, model):
    """Predict every pending scan of a claimed job, then finish it. Stops if it loses the job."""
    suspects = dict(job.suspects or {})
    todo = list(pending_scans(job))
    repeat_offenders = [scan for scan in todo if suspects.get(str(scan.pk), 0) >= 2]
    if repeat_offenders:
        _save(job, task_id, repeat_offenders, [_failure(STOPPED_TWICE)] * len(repeat_offenders))
    singles = [scan for scan in todo if suspects.get(str(scan.pk), 0) == 1]
    others = [scan for scan in todo if str(scan.pk) not in suspects]
    size = settings.INFERENCE_BATCH_SIZE
    chunks = [[scan] for scan in singles] + [others[i : i + size] for i in range(0, len(others), size)]
    for chunk in chunks:
        if not still_ours(job, task_id):
            log.info("prediction job %s became %s; stopping", job.pk, job.status)
            return None
        _mark_in_flight(job, task_id, chunk)
        _test_crash_hook(chunk)
        _save(job, task_id, chunk, predict_isolated(model, chunk))
    return finish(job.pk)


def _mark_in_flight(job, task_id, scans):
    PredictionJob.objects.filter(pk=job.pk, worker_task_id=task_id or "").update(
        in_flight=[str(scan.pk) for scan in scans]
    )


def _test_crash_hook(scans):
    """Test only: die like an out-of-memory kill on the scan whose SHA-256 is named."""
    marker = settings.JOB_TEST_CRASH_SHA256
    if marker and any(scan.sha256 == marker for scan in scans):
        log.error("JOB_TEST_CRASH_SHA256 matched; killing this worker process")
        os.kill(os.getpid(), signal.SIGKILL)


def _failure(reason):
    from ml.engine import ImagePrediction

    return ImagePrediction(probability=None, label=None, error=reason)


def read_scan(scan):
    with scan.file.open("rb") as handle:
        return handle.read()


def predict_isolated(model, scans):
    """One result per scan, in order. A failing chunk is retried scan by scan, so an
    exception costs only the scan that raised it."""
    payloads, readable, results = [], [], [None] * len(scans)
    for index, scan in enumerate(scans):
        try:
            payloads.append(read_scan(scan))
            readable.append(index)
        except (OSError, ValueError) as exc:
            log.error("scan %s could not be read: %s", scan.pk, exc)
            results[index] = _failure(UNREADABLE)
    if not readable:
        return results
    try:
        predicted = model.predict_bytes(payloads, batch_size=len(payloads))
    except Exception:
        log.exception("a chunk of %s scans failed; predicting them one at a time", len(readable))
        predicted = [_predict_one(model, scans[i], payload) for i, payload in zip(readable, payloads, strict=True)]
    for index, result in zip(readable, predicted, strict=True):
        results[index] = result
    return results


def _predict_one(model, scan, payload):
    try:
        return model.predict_bytes([payload], batch_size=1)[0]
    except Exception as exc:
        log.exception("scan %s failed in the model", scan.pk)
        return _failure(SCAN_FAILED.format(kind=type(exc).__name__))


def _save(job, task_id, scans, results):
    """Store one chunk's results in one transaction; running it twice never doubles them."""
    version = job.model_version
    with transaction.atomic():
        for scan, result in zip(scans, results, strict=True):
            attempts = Prediction.objects.filter(scan=scan, model_version=version)
            if attempts.filter(error="").exists():
                continue  # a result exists (another run of this job stored it first)
            if result.error or result.probability is None:
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
                    "ood_score": getattr(result, "ood_score", None),
                    "assessed": getattr(result, "assessed", True),
                },
            )
        PredictionJob.objects.filter(pk=job.pk, worker_task_id=task_id or "").update(in_flight=[])
        refresh_counts(job)


def refresh_counts(job):
    """done: scans with a result; failed: scans whose attempt failed this round."""
    scans = job.batch.scans_for_prediction()
    results = Prediction.objects.filter(model_version=job.model_version, scan__in=scans)
    done = results.filter(error="").count()
    failed = results.exclude(error="").filter(round=job.round).count()
    PredictionJob.objects.filter(pk=job.pk).update(
        done=done, failed=failed, progress_at=timezone.now()
    )
    job.done, job.failed = done, failed


def finish(job_id):
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
        return job


def fail(job_id, task_id, user_error, exc):
    """The job's final failure: a plain message for clinicians, the cause for the admin."""
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().get(pk=job_id)
        if job.status == JobStatus.RUNNING and job.worker_task_id == (task_id or ""):
            job.set_status(
                JobStatus.FAILED,
                user_error=user_error,
                admin_error=describe(exc),
                admin_traceback="".join(traceback.format_exception(exc)),
            )


def prepare_retry(job_id, task_id, exc):
    """Before a Celery retry: count it, keep its cause, and hand the job back to the queue
    so that the retried message claims it again (it is not a redelivery)."""
    with transaction.atomic():
        job = PredictionJob.objects.select_for_update().get(pk=job_id)
        if job.status != JobStatus.RUNNING or job.worker_task_id != (task_id or ""):
            return False
        job.retries += 1
        job.in_flight = []  # an exception, not a crash: no scan is to blame
        job.save(update_fields=["retries", "in_flight"])
        job.set_status(
            JobStatus.QUEUED,
            admin_error=f"Retry {job.retries} after {describe(exc)}",
            admin_traceback="".join(traceback.format_exception(exc)),
        )
        return True
