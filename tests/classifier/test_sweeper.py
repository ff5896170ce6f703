"""The beat sweeper: a job whose worker stopped beating is re-queued at once; a queued job
whose message was lost is sent again; a live or merely waiting job is left alone."""

from datetime import timedelta

import pytest

from tests.classifier.helpers import make_batch

pytestmark = pytest.mark.django_db


def ago(seconds):
    from django.utils import timezone

    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def empty_inference_queue():
    from portal.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("inference")


def test_a_running_job_whose_heartbeat_stopped_is_requeued_without_waiting_for_the_stall_timeout(
    clinic_a, alice, vgg16_model, settings, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionJob
    from classifier.prediction_run import claim
    from classifier.sweeper import sweep

    batch, [job] = make_batch(clinic_a, alice, 1)
    claim(job.pk, "dead-worker")
    # Dead for just over the heartbeat timeout: far less than JOB_STALL_MINUTES (10).
    PredictionJob.objects.filter(pk=job.pk).update(
        heartbeat_at=ago(settings.JOB_HEARTBEAT_TIMEOUT_SECONDS + 1),
        in_flight=["00000000-0000-0000-0000-000000000001"],
    )
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep() == 1
    job.refresh_from_db()
    assert (job.status, job.attempt, job.interruptions, len(sent)) == ("queued", 2, 0, 1)
    assert job.get_status_display() == "Waiting for a worker"


def test_a_beating_job_is_left_alone(clinic_a, alice, vgg16_model):
    from classifier.prediction_run import claim
    from classifier.sweeper import sweep

    batch, [job] = make_batch(clinic_a, alice, 1)
    claim(job.pk, "alive")
    assert sweep() == 0


def test_worker_deaths_with_nothing_in_flight_fail_the_job_at_the_last_allowed_one(
    clinic_a, alice, vgg16_model, settings, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionJob
    from classifier.prediction_run import claim
    from classifier.sweeper import sweep

    settings.JOB_MAX_ATTEMPTS = 2
    batch, [job] = make_batch(clinic_a, alice, 1)
    for expected in ("queued", "failed"):
        claim(job.pk, f"task-{expected}")
        PredictionJob.objects.filter(pk=job.pk).update(heartbeat_at=ago(3600))
        with django_capture_on_commit_callbacks(execute=False):
            assert sweep() == 1
        job.refresh_from_db()
        assert job.status == expected
    assert job.user_error == "The analysis was interrupted 2 times and was stopped."
    assert "worker stopped responding" in job.admin_error


def test_a_job_that_beats_but_never_moves_is_requeued_after_the_stall_timeout(
    clinic_a, alice, vgg16_model, settings, django_capture_on_commit_callbacks
):
    from classifier.models import PredictionJob
    from classifier.prediction_run import claim
    from classifier.sweeper import sweep

    batch, [job] = make_batch(clinic_a, alice, 1)
    claim(job.pk, "hung")
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=ago(settings.JOB_STALL_MINUTES * 60 + 1))
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep() == 1
    job.refresh_from_db()
    assert (job.status, len(sent)) == ("queued", 1)
    assert (job.attempt, job.interruptions) == (2, 1)


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


def test_a_queued_job_behind_others_is_not_sent_again(
    clinic_a, alice, vgg16_model, settings, empty_inference_queue, django_capture_on_commit_callbacks
):
    from portal.celery import app

    from classifier.models import PredictionJob
    from classifier.sweeper import sweep

    batch, [job] = make_batch(clinic_a, alice, 1)
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=ago(settings.JOB_RESEND_SECONDS + 1))
    with app.connection_for_write() as conn:  # another job's message waits in the queue
        conn.default_channel.client.lpush("inference", b"{}")
    try:
        with django_capture_on_commit_callbacks(execute=False) as sent:
            assert sweep() == 0
        assert not sent
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge("inference")
