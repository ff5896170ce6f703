"""A scan that kills its worker process (as an out-of-memory kill would) harms no other scan:
the job resumes after each death, retries the scans that were in flight one at a time, sets
aside the one that killed the worker twice and predicts every other scan exactly once.
Then a clinician re-runs the failed scan from the batch page."""

import pytest

from tests.classifier.helpers import make_batch, wait_for_jobs
from tests.reliability.test_worker_kill import restart, worker  # noqa: F401  (fixture)

pytestmark = pytest.mark.worker

SCANS = 40


def test_a_scan_that_kills_the_worker_is_set_aside_and_every_other_scan_is_predicted_once(
    transactional_db, worker, clinic_a, alice, vgg16_model  # noqa: F811
):
    from classifier.models import Prediction
    from classifier.prediction_run import STOPPED_TWICE

    batch, _ = make_batch(clinic_a, alice, SCANS, architectures=())
    poison = batch.scans.get(position=6)
    # The worker's children die on that scan; model calls of 4 put three good scans beside it.
    restart(worker, INFERENCE_BATCH_SIZE=4, JOB_CHUNK_SIZE=20, JOB_TEST_CRASH_SHA256=poison.sha256)
    from django.db import transaction

    from classifier.jobs import create_prediction_jobs

    with transaction.atomic():
        [job] = create_prediction_jobs(batch, ["vgg16"])
    [job] = wait_for_jobs([job], timeout=300, worker=worker)

    assert (job.status, job.done, job.failed, job.total) == ("partial", SCANS - 1, 1, SCANS)
    assert job.user_error == f"1 of {SCANS} scans could not be analysed."
    chunk = job.chunks.get(index=0)  # the poison's chunk: started once, resumed after two deaths
    assert (chunk.attempt, chunk.interruptions, chunk.in_flight) == (3, 0, [])
    assert list(chunk.suspects.values()).count(1) == 3 and list(chunk.suspects.values()).count(2) == 1
    assert job.chunks.get(index=1).attempt == 1  # the other chunk never saw a death
    results = Prediction.objects.filter(scan__batch=batch, error="")
    assert results.count() == SCANS - 1
    assert results.values("scan").distinct().count() == SCANS - 1
    assert not results.filter(scan=poison).exists()
    assert Prediction.objects.get(scan=poison).error == STOPPED_TWICE
    assert "killing this worker process" in worker.log()


def test_a_child_over_its_memory_limit_is_killed_and_the_job_ends_with_a_plain_message(
    transactional_db, worker, clinic_a, alice, vgg16_model, settings  # noqa: F811
):
    """WORKER_MAX_MEMORY_MB kills the child, not the host. Here the limit is below what
    loading a model takes, so every start dies outside any scan and the job stops after
    JOB_MAX_ATTEMPTS such deaths instead of being redelivered forever."""
    from django.db import transaction

    from classifier.jobs import create_prediction_jobs

    batch, _ = make_batch(clinic_a, alice, 2, architectures=())
    restart(worker, WORKER_MAX_MEMORY_MB=250)  # an idle child is ~70 MB; TensorFlow and a model ~550
    with transaction.atomic():
        [job] = create_prediction_jobs(batch, ["vgg16"])
    [job] = wait_for_jobs([job], timeout=300, worker=worker)
    assert job.status == "failed"
    assert job.user_error == f"The analysis was interrupted {settings.JOB_MAX_ATTEMPTS} times and was stopped."
    assert job.chunks.get().interruptions == settings.JOB_MAX_ATTEMPTS
    assert "over WORKER_MAX_MEMORY_MB=250" in worker.log()
