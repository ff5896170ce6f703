"""The beat sweeper: a chunk whose worker stopped beating is sent again at once; a queued job
or chunk whose message was lost is sent again; live or merely waiting work is left alone."""

from datetime import timedelta

import pytest

from tests.classifier.helpers import make_batch, plan_here
from tests.fixtures.worker import queues_not_consumed

pytestmark = pytest.mark.django_db


def ago(seconds):
    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def empty_inference_queue():
    """Nothing on the inference queue, and no worker reading it (the session's may be running,
    started by an earlier test): what the test puts there stays there."""
    from portal.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("inference")
    with queues_not_consumed("inference"):
        yield


def claimed_chunk(clinic_a, alice, task_id="worker-1"):
    from classifier.prediction_run import claim

    batch, [job] = make_batch(clinic_a, alice, 1)
    [chunk] = plan_here(job)
    return job, claim(chunk.pk, task_id)


def test_a_chunk_whose_heartbeat_stopped_is_sent_again_without_waiting_for_the_stall_timeout(
    clinic_a, alice, vgg16_model, settings, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionChunk
    from classifier.sweeper import sweep

    job, chunk = claimed_chunk(clinic_a, alice)
    # Dead for just over the heartbeat timeout: far less than JOB_STALL_MINUTES (10).
    PredictionChunk.objects.filter(pk=chunk.pk).update(
        heartbeat_at=ago(settings.JOB_HEARTBEAT_TIMEOUT_SECONDS + 1), in_flight=[str(chunk.scan_ids[0])]
    )
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep() == 1
    chunk.refresh_from_db()
    assert (chunk.status, chunk.interruptions, len(sent)) == ("queued", 0, 1)
    assert chunk.get_status_display() == "Waiting for a worker"


def test_a_beating_chunk_is_left_alone(clinic_a, alice, vgg16_model):
    from classifier.sweeper import sweep

    claimed_chunk(clinic_a, alice)
    assert sweep() == 0


def test_worker_deaths_with_nothing_in_flight_fail_the_job_at_the_last_allowed_one(
    clinic_a, alice, vgg16_model, settings, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionChunk
    from classifier.prediction_run import claim
    from classifier.sweeper import sweep

    settings.JOB_MAX_ATTEMPTS = 2
    job, chunk = claimed_chunk(clinic_a, alice, "task-1")
    for number, expected in ((1, "queued"), (2, "done")):
        if number == 2:
            claim(chunk.pk, "task-2")
        PredictionChunk.objects.filter(pk=chunk.pk).update(heartbeat_at=ago(3600))
        with django_capture_on_commit_callbacks(execute=False):
            assert sweep() == 1
        chunk.refresh_from_db()
        assert (chunk.status, chunk.interruptions) == (expected, number)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.user_error == "The analysis was interrupted 2 times and was stopped."
    assert "worker stopped responding" in job.admin_error


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(
    clinic_a, alice, vgg16_model, settings, empty_inference_queue, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionJob
    from classifier.sweeper import sweep

    batch, [job] = make_batch(clinic_a, alice, 1)  # its message is never sent (no commit)
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=ago(settings.JOB_RESEND_SECONDS + 1))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep() == 1
        assert sweep() == 0  # not again until another resend period passes
    job.refresh_from_db()
    assert (job.status, job.attempt, len(sent)) == ("queued", 1, 1)


def test_a_queued_chunk_whose_message_was_lost_is_sent_again(
    clinic_a, alice, vgg16_model, settings, empty_inference_queue, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionChunk
    from classifier.sweeper import sweep

    batch, [job] = make_batch(clinic_a, alice, 1)
    [chunk] = plan_here(job)
    PredictionChunk.objects.filter(pk=chunk.pk).update(sent_at=ago(settings.JOB_RESEND_SECONDS + 1))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep() == 1
    assert len(sent) == 1


def test_work_waiting_behind_other_work_is_not_sent_again(
    clinic_a, alice, vgg16_model, settings, empty_inference_queue, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionJob
    from classifier.sweeper import sweep
    from portal.celery import app

    batch, [job] = make_batch(clinic_a, alice, 1)
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=ago(settings.JOB_RESEND_SECONDS + 1))
    with app.connection_for_write() as conn:  # another job's message waits in the queue
        conn.default_channel.client.lpush("inference", b"{}")
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep() == 0
    assert not sent


def test_a_running_job_whose_chunks_are_all_done_is_finished(clinic_a, alice, vgg16_model, settings):
    from classifier.engine import load_model
    from classifier.models import PredictionChunk, PredictionJob
    from classifier.prediction_run import _save, claim, predict_isolated
    from classifier.sweeper import sweep

    batch, [job] = make_batch(clinic_a, alice, 2)
    [chunk] = plan_here(job)
    chunk = claim(chunk.pk, "last")
    scans = list(batch.scans_for_prediction())
    _save(chunk, scans, predict_isolated(load_model(vgg16_model), scans))
    # The last chunk's worker died between closing its chunk and finishing the job.
    PredictionChunk.objects.filter(pk=chunk.pk).update(status="done")
    assert sweep() == 0  # not before the job has been quiet for a heartbeat timeout
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=ago(settings.JOB_HEARTBEAT_TIMEOUT_SECONDS + 1))
    assert sweep() == 1
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 2)
