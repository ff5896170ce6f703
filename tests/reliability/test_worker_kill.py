"""A worker SIGKILLed in the middle of a job leaves nothing half-written; once a new worker
starts, its beat sweeper sees that the job's heartbeat stopped, re-queues it, and the job
completes within two minutes with exactly one prediction per scan and model.

The settings are the defaults' logic at a shorter scale (defaults: beat every 10 s, dead
after 60 s, sweep every 60 s; here 1 s, 6 s, 6 s)."""

import time
from datetime import timedelta

import pytest

from tests.classifier.helpers import make_batch, wait_for_jobs

pytestmark = pytest.mark.worker

SCANS = 48


def restart(worker, *, beat=False, **env):
    worker.kill()  # idle here, or dead already: nothing to shut down warmly
    worker.env = {**worker.base_env, **{k: str(v) for k, v in env.items()}}
    worker.start(beat=beat)


@pytest.fixture
def worker(session_worker):
    """The session worker, for the test to restart with settings of its own; killed afterwards
    and marked dirty, so that the next test asking for ``celery_worker`` gets it started again
    with the session's settings (not restarted here, since the next test may not need it)."""
    session_worker.dirty = True
    yield session_worker
    session_worker.kill()
    session_worker.env = dict(session_worker.base_env)


def test_worker_killed_mid_job_then_new_worker_finishes_it(
    transactional_db, worker, clinic_a, alice, registered_models, settings
):
    from django.utils import timezone

    from classifier.models import JobStatus, Prediction, PredictionChunk, PredictionJob
    from portal.cases.models import Case, Scan

    short = {"JOB_HEARTBEAT_SECONDS": 1, "JOB_HEARTBEAT_TIMEOUT_SECONDS": 6, "JOB_RESEND_SECONDS": 6}
    # Small inference batches and larger images, so the job is slow enough to kill mid-way.
    restart(worker, INFERENCE_BATCH_SIZE=1, **short)
    # A chunk whose worker already died twice with nothing in flight: the sweeper must fail its job.
    spare_batch, _ = make_batch(clinic_a, alice, 1, ref="P-SPARE", architectures=())
    last_try = PredictionJob.objects.create(
        batch=spare_batch, model_version=registered_models["vgg16"], total=1,
    )
    last_try.set_status(JobStatus.RUNNING)
    PredictionChunk.objects.create(
        job=last_try, round=1, index=0, scan_ids=[str(spare_batch.scans.get().pk)], status="running",
        worker_task_id="dead", attempt=2, interruptions=settings.JOB_MAX_ATTEMPTS - 1,
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )

    batch, jobs = make_batch(clinic_a, alice, SCANS, architectures=("vgg16", "resnet50"), size=(320, 320))
    first = jobs[0]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        first.refresh_from_db()
        if first.done >= 3:
            break
        time.sleep(0.02)
    worker.kill()
    first.refresh_from_db()
    assert first.status == "running", f"job was {first.status} when the worker died"
    assert 0 < first.done < SCANS, f"the kill was not mid-job: {first.done}/{SCANS}"
    done_at_kill = Prediction.objects.filter(job=first).count()
    assert done_at_kill == first.done  # every stored result is a whole, counted batch

    restart(worker, beat=True, INFERENCE_BATCH_SIZE=4, SWEEP_INTERVAL_SECONDS=6, **short)
    started = time.monotonic()
    finished = wait_for_jobs(jobs + [last_try], timeout=300, worker=worker)
    recovery = time.monotonic() - started
    assert recovery < 120, f"the killed job took {recovery:.0f} s to finish after a worker started"
    by_pk = {job.pk: job for job in finished}
    first, second = by_pk[jobs[0].pk], by_pk[jobs[1].pk]
    assert first.status == "succeeded", first.status
    killed = first.chunks.get(index=0)
    # Resumed once. The kill lands inside a model call (its scan then retried alone) or, rarely,
    # between two of them (then counted as an interruption no scan is blamed for).
    assert killed.attempt == 2 and len(killed.suspects) + killed.interruptions == 1
    assert second.status == "succeeded"
    for job in (first, second):
        assert (job.done, job.failed, job.total) == (SCANS, 0, SCANS)
    accepted = Scan.objects.filter(batch=batch, status="accepted")
    for version in registered_models.values():
        per_scan = Prediction.objects.filter(scan__in=accepted, model_version=version)
        assert per_scan.count() == SCANS
        assert per_scan.values("scan").distinct().count() == SCANS
    # Results stored before the kill were kept, not redone.
    assert Prediction.objects.filter(job=first).count() == SCANS

    failed = by_pk[last_try.pk]
    assert failed.status == "failed"
    assert failed.user_error == f"The analysis was interrupted {settings.JOB_MAX_ATTEMPTS} times and was stopped."
    assert Case.objects.count() == 2
