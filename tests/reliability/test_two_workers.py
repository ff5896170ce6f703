"""One batch, two worker processes: they share its chunks, every scan is predicted exactly once,
and when one of them is SIGKILLed mid-batch the other finishes the batch within the recovery
bound (the settings mirror the defaults' logic at a shorter scale, as in test_worker_kill)."""

import time

import pytest

from tests.classifier.helpers import make_batch, wait_for_jobs
from tests.fixtures.worker import WorkerProcess
from tests.reliability.test_worker_kill import restart, worker  # noqa: F401  (fixture)

pytestmark = pytest.mark.worker

SCANS = 64
SHORT = {"JOB_HEARTBEAT_SECONDS": 1, "JOB_HEARTBEAT_TIMEOUT_SECONDS": 6, "JOB_RESEND_SECONDS": 6,
         "SWEEP_INTERVAL_SECONDS": 6, "JOB_CHUNK_SIZE": 8, "INFERENCE_BATCH_SIZE": 2}


def wait_for_workers(count, timeout=120):
    from portal.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0, limit=count) or []) >= count:
            return
    raise AssertionError(f"{count} workers did not answer in {timeout} s")


def test_two_workers_share_a_batch_and_one_finishes_it_when_the_other_is_killed(
    transactional_db, worker, clinic_a, alice, vgg16_model  # noqa: F811
):
    from django.db import transaction

    from classifier.jobs import create_prediction_jobs
    from classifier.models import Prediction, PredictionChunk

    batch, _ = make_batch(clinic_a, alice, SCANS, architectures=(), size=(160, 160))
    restart(worker, **SHORT)  # the session worker: it will be killed
    survivor = WorkerProcess({**worker.env, **{k: str(v) for k, v in SHORT.items()}})
    survivor.start(beat=True, wait=False)
    try:
        wait_for_workers(2)
        with transaction.atomic():
            [job] = create_prediction_jobs(batch, ["vgg16"])
        # Wait until the doomed worker holds a chunk and has stored something of it.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            held = PredictionChunk.objects.filter(
                job=job, status="running", worker__startswith=worker.name
            ).first()
            if held and Prediction.objects.filter(scan_id__in=held.scan_ids).exists():
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the first worker never got a chunk:\n{worker.log()}")
        worker.kill()
        killed_at = time.monotonic()
        [job] = wait_for_jobs([job], timeout=300, worker=survivor)
        recovery = time.monotonic() - killed_at
    finally:
        survivor.kill()
    assert job.status == "succeeded", (job.status, job.user_error)
    assert recovery < 120, f"the batch took {recovery:.0f} s to finish after the kill"
    results = Prediction.objects.filter(scan__batch=batch)
    assert results.count() == SCANS and results.values("scan").distinct().count() == SCANS
    assert held.worker.startswith(worker.name)  # the killed worker held a chunk mid-batch...
    resumed = job.chunks.get(pk=held.pk)
    assert resumed.attempt == 2 and resumed.worker.startswith(survivor.name)  # ...the survivor resumed it
