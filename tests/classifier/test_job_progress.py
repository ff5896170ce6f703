"""What the batch page shows while a job runs: progress that moves in small steps for small
batches, and the time left at the pace so far."""

from datetime import timedelta

import pytest

from tests.classifier.helpers import make_batch

pytestmark = pytest.mark.django_db


def test_small_jobs_move_in_about_ten_steps(clinic_a, alice, vgg16_model, settings):
    from classifier.prediction_run import inference_batch_size

    settings.INFERENCE_BATCH_SIZE = 16
    batch, [job] = make_batch(clinic_a, alice, 1)
    for total, size in ((1, 1), (9, 1), (20, 2), (100, 10), (300, 16)):
        job.total = total
        assert inference_batch_size(job) == size, total


def test_time_left_follows_the_pace_so_far(clinic_a, alice, vgg16_model):
    from django.utils import timezone

    batch, [job] = make_batch(clinic_a, alice, 1)
    assert job.seconds_left is None and job.time_left_display == ""  # queued: unknown
    job.status, job.total, job.done, job.failed = "running", 30, 8, 2
    job.started_at = timezone.now() - timedelta(seconds=100)
    assert job.seconds_left == 200
    assert job.time_left_display == "about 3 min left"
    job.done = 28
    assert job.time_left_display == "less than a minute left"


def test_a_running_job_whose_chunks_all_wait_says_waiting_for_a_worker(clinic_a, alice, vgg16_model):
    from classifier.prediction_run import claim
    from tests.classifier.helpers import plan_here

    batch, [job] = make_batch(clinic_a, alice, 2)
    assert job.state_display == "Waiting for a worker"
    [chunk] = plan_here(job)
    job.refresh_from_db()
    assert (job.status, job.state_display) == ("running", "Waiting for a worker")
    claim(chunk.pk, "worker-1")
    assert job.state_display == "Running"
