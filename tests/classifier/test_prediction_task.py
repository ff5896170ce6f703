"""The prediction task, run in this process: claim rules, results, errors, idempotence."""

import pytest

from tests.classifier.helpers import make_batch, plan_here, run_job_here

pytestmark = pytest.mark.django_db


def run(job, task_id="task-1"):
    run_job_here(job, task_id)


def run_chunk(chunk, task_id):
    from classifier.tasks import run_prediction_chunk

    run_prediction_chunk.apply(args=[chunk.pk], task_id=task_id)


def test_job_predicts_every_scan_once_and_succeeds(clinic_a, alice, vgg16_model, settings):
    from classifier.models import Prediction

    settings.INFERENCE_BATCH_SIZE = 3
    settings.JOB_CHUNK_SIZE = 4
    batch, [job] = make_batch(clinic_a, alice, 7)
    run(job)
    assert [len(c.scan_ids) for c in job.chunks.all()] == [4, 3]
    assert set(job.chunks.values_list("status", flat=True)) == {"done"}
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
    assert Prediction.objects.get(scan__position=3).error == "The stored file is missing."


def test_all_scans_failing_fails_the_job(clinic_a, alice, vgg16_model):
    batch, [job] = make_batch(clinic_a, alice, 2, bad=[1, 2])
    run(job)
    job.refresh_from_db()
    assert job.status == "failed" and job.user_error == "No scan of this batch could be analysed."


def test_a_running_chunk_held_by_another_message_is_skipped(clinic_a, alice, vgg16_model):
    from classifier.models import Prediction
    from classifier.prediction_run import claim

    batch, [job] = make_batch(clinic_a, alice, 2)
    [chunk] = plan_here(job)
    assert claim(chunk.pk, "first") is not None
    chunk.refresh_from_db()
    assert chunk.status == "running" and chunk.worker_task_id == "first"
    assert claim(chunk.pk, "duplicate") is None  # a duplicated message
    run_chunk(chunk, "duplicate")
    assert not Prediction.objects.exists()
    # The holder's own message, redelivered after its worker died, carries on.
    run_chunk(chunk, "first")
    job.refresh_from_db()
    assert job.status == "succeeded" and Prediction.objects.count() == 2


def test_a_resumed_chunk_only_predicts_what_is_missing(clinic_a, alice, vgg16_model):
    from classifier.engine import load_model
    from classifier.models import Prediction
    from classifier.prediction_run import _save, claim, predict_isolated

    batch, [job] = make_batch(clinic_a, alice, 5)
    [chunk] = plan_here(job)
    chunk = claim(chunk.pk, "first")
    scans = list(batch.scans_for_prediction().order_by("position")[:2])
    _save(chunk, scans, predict_isolated(load_model(vgg16_model), scans))  # then the worker "dies"
    before = {p.scan_id: p.pk for p in Prediction.objects.all()}
    run_chunk(chunk, "first")
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


def test_an_unloadable_model_is_retried_then_fails_with_its_cause_under_default_settings(
    clinic_a, alice, vgg16_model, monkeypatch
):
    """Celery's retries are counted as retries, not as redeliveries, and the final error keeps
    the exception for the admin (default max_retries; the retries run inline here)."""
    from classifier import tasks

    calls = []

    def broken(version):
        calls.append(version)
        raise FileNotFoundError("model.keras is gone")

    monkeypatch.setattr(tasks, "load_model", broken)
    batch, [job] = make_batch(clinic_a, alice, 1)
    run(job)
    job.refresh_from_db()
    assert len(calls) == tasks.run_prediction_job.max_retries + 1 == 4
    assert (job.status, job.retries) == ("failed", 3)
    assert job.chunks.get().interruptions == 0
    assert job.user_error == "The analysis could not be run; an administrator has the details."
    assert job.admin_error == "FileNotFoundError: model.keras is gone"
    assert "Traceback" in job.admin_traceback and "model.keras is gone" in job.admin_traceback
    assert "interrupted" not in job.user_error


def test_a_scan_that_raises_in_the_model_fails_alone(clinic_a, alice, vgg16_model, settings, monkeypatch):
    """An exception in the model call for one scan marks that scan failed with its reason;
    every other scan of its chunk and of the batch gets its prediction; the job is partial."""
    from classifier.models import Prediction
    from ml.engine import LoadedModel

    settings.INFERENCE_BATCH_SIZE = 4
    settings.JOB_CHUNK_SIZE = 6
    batch, [job] = make_batch(clinic_a, alice, 6)
    poison = batch.scans.get(position=3)
    with poison.file.open("rb") as handle:
        poison_bytes = handle.read()
    real = LoadedModel.predict_bytes

    def predict_bytes(self, payloads, batch_size=16, interrupts=()):
        if any(payload == poison_bytes for payload in payloads):
            raise RuntimeError("kernel failed on this input")
        return real(self, payloads, batch_size=batch_size, interrupts=interrupts)

    monkeypatch.setattr(LoadedModel, "predict_bytes", predict_bytes)
    run(job)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("partial", 5, 1)
    failed = Prediction.objects.get(scan=poison)
    assert failed.error == "This image could not be analysed (RuntimeError)."
    assert failed.probability is None and failed.label == ""
    assert Prediction.objects.filter(error="", job=job).count() == 5


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


def test_a_message_delivered_again_with_nothing_in_flight_counts_an_interruption(
    clinic_a, alice, vgg16_model, settings
):
    from classifier.prediction_run import claim

    settings.JOB_MAX_ATTEMPTS = 3
    batch, [job] = make_batch(clinic_a, alice, 1)
    [chunk] = plan_here(job)
    assert claim(chunk.pk, "m") is not None  # attempt 1
    assert claim(chunk.pk, "m") is not None  # redelivered after its worker died: attempt 2
    assert claim(chunk.pk, "m") is not None  # attempt 3
    assert claim(chunk.pk, "m") is None  # a third death that no scan can be blamed for: stopped
    job.refresh_from_db()
    chunk.refresh_from_db()
    assert (chunk.status, chunk.attempt, chunk.interruptions) == ("done", 4, 3)
    assert job.status == "failed"
    assert job.user_error == "The analysis was interrupted 3 times and was stopped."
    assert "JOB_MAX_ATTEMPTS=3" in job.admin_error


def test_scans_in_flight_when_a_worker_died_are_retried_alone_and_a_repeat_offender_is_set_aside(
    clinic_a, alice, vgg16_model, settings
):
    """The redelivered message blames only the scans in flight: a scan that was in flight at
    two deaths is failed, every other scan is predicted once."""
    from classifier.models import Prediction, PredictionChunk
    from classifier.prediction_run import STOPPED_TWICE, claim

    batch, [job] = make_batch(clinic_a, alice, 5)
    scans = list(batch.scans_for_prediction().order_by("position"))
    [chunk] = plan_here(job)
    claim(chunk.pk, "m")
    # The worker died with scans 1 and 2 in flight; then again with scan 2 alone.
    PredictionChunk.objects.filter(pk=chunk.pk).update(in_flight=[str(scans[0].pk), str(scans[1].pk)])
    claim(chunk.pk, "m")
    PredictionChunk.objects.filter(pk=chunk.pk).update(in_flight=[str(scans[1].pk)])
    run_chunk(chunk, "m")
    job.refresh_from_db()
    chunk.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("partial", 4, 1)
    assert (chunk.interruptions, chunk.in_flight) == (0, [])
    assert chunk.suspects == {str(scans[0].pk): 1, str(scans[1].pk): 2}
    assert Prediction.objects.get(scan=scans[1]).error == STOPPED_TWICE
    assert Prediction.objects.filter(error="").count() == 4


def test_two_workers_share_one_batch_and_every_scan_is_predicted_once(clinic_a, alice, vgg16_model, settings):
    """Chunks are taken by whichever worker comes; here two "workers" interleave their chunks."""
    from classifier.models import Prediction
    from classifier.prediction_run import claim

    settings.JOB_CHUNK_SIZE = 3
    batch, [job] = make_batch(clinic_a, alice, 8)
    chunks = plan_here(job)
    assert len(chunks) == 3
    for index, chunk in enumerate(reversed(chunks)):  # any order, any worker
        run_chunk(chunk, f"worker-{index % 2}")
        assert claim(chunk.pk, "late-duplicate") is None
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("succeeded", 8, 0)
    results = Prediction.objects.filter(scan__batch=batch)
    assert results.count() == 8 and results.values("scan").distinct().count() == 8
