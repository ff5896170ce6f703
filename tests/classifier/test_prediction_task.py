"""The prediction task, run in this process: claim rules, results, errors, idempotence."""

import pytest

from tests.classifier.helpers import make_batch

pytestmark = pytest.mark.django_db


def run(job, task_id="task-1"):
    from classifier.tasks import run_prediction_job

    return run_prediction_job.apply(args=[job.pk], task_id=task_id)


def test_job_predicts_every_scan_once_and_succeeds(clinic_a, alice, vgg16_model, settings):
    from classifier.models import Prediction

    settings.INFERENCE_BATCH_SIZE = 3
    batch, [job] = make_batch(clinic_a, alice, 7)
    run(job)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed, job.total, job.percent) == ("succeeded", 7, 0, 7, 100)
    assert job.started_at <= job.finished_at
    predictions = Prediction.objects.filter(job=job)
    assert predictions.count() == 7
    for prediction in predictions:
        assert 0.0 <= prediction.probability <= 1.0
        assert prediction.label == ("tumor" if prediction.probability >= 0.5 else "no_tumor")
        assert prediction.model_version == vgg16_model and prediction.threshold == 0.5
    # A finished job refuses to run again: nothing doubles.
    run(job, task_id="task-2")
    assert Prediction.objects.count() == 7


def test_an_undecodable_stored_file_gets_its_own_error(clinic_a, alice, vgg16_model):
    from classifier.models import Prediction

    batch, [job] = make_batch(clinic_a, alice, 5, bad=[2])
    run(job)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("partial", 4, 1)
    assert job.user_error == "1 of 5 scans could not be analysed."
    bad = Prediction.objects.get(scan__position=2)
    assert bad.probability is None and bad.label == "" and "truncated or corrupt" in bad.error
    assert Prediction.objects.filter(error="").count() == 4


def test_a_missing_stored_file_gets_its_own_error(clinic_a, alice, vgg16_model):
    import os

    from classifier.models import Prediction

    batch, [job] = make_batch(clinic_a, alice, 3)
    os.remove(batch.scans.get(position=3).file.path)
    run(job)
    job.refresh_from_db()
    assert job.status == "partial"
    assert Prediction.objects.get(scan__position=3).error == "stored file is missing"


def test_all_scans_failing_fails_the_job(clinic_a, alice, vgg16_model):
    batch, [job] = make_batch(clinic_a, alice, 2, bad=[1, 2])
    run(job)
    job.refresh_from_db()
    assert job.status == "failed" and job.user_error == "No scan of this batch could be analysed."


def test_a_running_job_held_by_another_message_is_skipped(clinic_a, alice, vgg16_model):
    from classifier.models import Prediction
    from classifier.tasks import _claim

    batch, [job] = make_batch(clinic_a, alice, 2)
    assert _claim(job.pk, "first") is not None
    job.refresh_from_db()
    assert job.status == "running" and job.worker_task_id == "first"
    assert _claim(job.pk, "duplicate") is None  # a duplicated message
    run(job, task_id="duplicate")
    assert not Prediction.objects.exists()
    # The holder's own message, redelivered after its worker died, carries on.
    run(job, task_id="first")
    job.refresh_from_db()
    assert job.status == "succeeded" and Prediction.objects.count() == 2


def test_a_resumed_job_only_predicts_what_is_missing(clinic_a, alice, vgg16_model, settings):
    from classifier.models import Prediction
    from classifier.tasks import _claim, _predict, _save_batch
    from classifier.engine import load_model

    batch, [job] = make_batch(clinic_a, alice, 5)
    job = _claim(job.pk, "first")
    scans = list(batch.scans_for_prediction()[:2])
    _save_batch(job, scans, _predict(load_model(vgg16_model), scans))  # then the worker "dies"
    before = {p.scan_id: p.pk for p in Prediction.objects.all()}
    run(job, task_id="first")
    job.refresh_from_db()
    assert job.status == "succeeded" and Prediction.objects.count() == 5
    assert {p.scan_id: p.pk for p in Prediction.objects.filter(scan_id__in=before)} == before


def test_a_cancelled_job_stops(clinic_a, alice, vgg16_model):
    from classifier.models import JobStatus, Prediction

    batch, [job] = make_batch(clinic_a, alice, 2)
    job.set_status(JobStatus.CANCELLED)
    run(job)
    job.refresh_from_db()
    assert job.status == "cancelled" and not Prediction.objects.exists()


def test_an_unloadable_model_fails_the_job_with_both_messages(clinic_a, alice, vgg16_model, monkeypatch):
    from classifier import tasks

    def broken(version):
        raise FileNotFoundError("model.keras is gone")

    monkeypatch.setattr(tasks, "load_model", broken)
    monkeypatch.setattr(tasks.run_prediction_job, "max_retries", 0)
    batch, [job] = make_batch(clinic_a, alice, 1)
    run(job)
    job.refresh_from_db()
    assert job.status == "failed"
    assert job.user_error == "The analysis failed; an administrator has the details."
    assert "model.keras is gone" in job.admin_error


def test_status_changes_follow_the_state_machine(clinic_a, alice, vgg16_model):
    from classifier.models import JobStatus
    from classifier.models.jobs import InvalidTransition

    batch, [job] = make_batch(clinic_a, alice, 1)
    with pytest.raises(InvalidTransition):
        job.set_status(JobStatus.SUCCEEDED)  # queued cannot succeed without running
    job.set_status(JobStatus.RUNNING)
    job.set_status(JobStatus.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        job.set_status(JobStatus.QUEUED)


def test_sweeper_requeues_a_stalled_running_job_then_fails_it_at_the_last_attempt(
    clinic_a, alice, vgg16_model, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from classifier.models import PredictionJob
    from classifier.tasks import _claim, sweep_stalled_jobs

    settings.JOB_MAX_ATTEMPTS = 2
    batch, [job] = make_batch(clinic_a, alice, 1)
    _claim(job.pk, "dead-worker")
    stale = timezone.now() - timedelta(minutes=settings.JOB_STALL_MINUTES + 1)
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=stale)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep_stalled_jobs() == 1
    job.refresh_from_db()
    assert (job.status, job.attempt, len(sent)) == ("queued", 2, 1)
    # The new message claims it; it stalls again on the last attempt and is failed.
    _claim(job.pk, "second")
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=stale)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep_stalled_jobs() == 1
    job.refresh_from_db()
    assert job.status == "failed" and not sent
    assert job.user_error == "The analysis stalled 2 times and was stopped."
    assert "attempt 2 of 2" in job.admin_error


def test_sweeper_resends_a_long_queued_job_without_counting_an_attempt(
    clinic_a, alice, vgg16_model, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from classifier.models import PredictionJob
    from classifier.tasks import sweep_stalled_jobs

    batch, [job] = make_batch(clinic_a, alice, 1)
    stale = timezone.now() - timedelta(minutes=settings.JOB_STALL_MINUTES + 1)
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=stale)
    with django_capture_on_commit_callbacks(execute=False) as sent:
        assert sweep_stalled_jobs() == 1
        assert sweep_stalled_jobs() == 0  # not again until another stall period passes
    job.refresh_from_db()
    assert (job.status, job.attempt, len(sent)) == ("queued", 1, 1)


def test_sweeper_leaves_moving_jobs_alone(clinic_a, alice, vgg16_model):
    from classifier.tasks import _claim, sweep_stalled_jobs

    batch, [job] = make_batch(clinic_a, alice, 1)
    _claim(job.pk, "alive")
    assert sweep_stalled_jobs() == 0


def test_a_message_delivered_again_and_again_fails_the_job_at_the_last_attempt(
    clinic_a, alice, vgg16_model, settings
):
    from classifier.tasks import _claim

    settings.JOB_MAX_ATTEMPTS = 3
    batch, [job] = make_batch(clinic_a, alice, 1)
    assert _claim(job.pk, "m") is not None  # attempt 1
    assert _claim(job.pk, "m") is not None  # redelivered after its worker died: attempt 2
    assert _claim(job.pk, "m") is not None  # attempt 3
    assert _claim(job.pk, "m") is None  # and again: stopped
    job.refresh_from_db()
    assert (job.status, job.attempt) == ("failed", 3)
    assert job.user_error == "The analysis was interrupted 3 times and was stopped."
