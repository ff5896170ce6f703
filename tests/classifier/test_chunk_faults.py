"""A chunk's task under faults that are not a scan's (found by a review of the worker code):
the task's soft time limit, an error after the chunk was closed or handed back by the
sweeper, a worker still on a round that was cancelled and run again, a dropped database
connection. None may blame a scan or fail a job whose work is done. The task runs in this
process (``apply``); tests/classifier/test_prediction_task.py runs it in a real worker."""

import shutil
from datetime import timedelta

import pytest

from tests.classifier.helpers import make_batch, plan_here

pytestmark = pytest.mark.django_db


def run_chunk(chunk, task_id):
    from classifier.tasks import run_prediction_chunk

    return run_prediction_chunk.apply(args=[chunk.pk], task_id=task_id)


@pytest.mark.parametrize("fire_on", [1, 2], ids=["in the batch call", "in the one-by-one fallback"])
def test_the_soft_time_limit_stops_the_task_and_blames_no_scan(clinic_a, alice, vgg16_model, settings, monkeypatch,
                                                              fire_on):
    """It is an Exception subclass: the batch isolation took it for a failing batch (then the
    task ran on to the hard limit) or for the scan in hand ("could not be analysed")."""
    from celery.exceptions import SoftTimeLimitExceeded

    from classifier.models import Prediction
    from classifier.prediction_run import USER_TIMED_OUT
    from ml.engine import LoadedModel

    settings.INFERENCE_BATCH_SIZE = 4
    _, [job] = make_batch(clinic_a, alice, 8)
    real, calls = LoadedModel.predict_bytes, []

    def predict_bytes(self, payloads, batch_size=32, interrupts=()):
        calls.append(len(payloads))
        if len(calls) == fire_on:
            raise SoftTimeLimitExceeded()
        if len(calls) < fire_on:
            raise RuntimeError("this batch fails")
        return real(self, payloads, batch_size=batch_size, interrupts=interrupts)

    monkeypatch.setattr(LoadedModel, "predict_bytes", predict_bytes)
    [chunk] = plan_here(job)
    run_chunk(chunk, "t")
    job.refresh_from_db()
    assert (job.status, job.user_error) == ("failed", USER_TIMED_OUT)
    assert not Prediction.objects.exclude(error="").exists()  # no scan carries the time limit


def test_the_engine_lets_an_interrupt_through_while_preparing_an_image(vgg16_model, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded

    from classifier.engine import load_model
    from tests.fixtures.images import make_image_bytes

    model = load_model(vgg16_model)

    def prepare(data):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(model, "_prepare", prepare)
    image = make_image_bytes(size=(64, 64), seed=1)
    assert "could not process image" in model.predict_bytes([image])[0].error  # otherwise one image fails
    with pytest.raises(SoftTimeLimitExceeded):
        model.predict_bytes([image], interrupts=(SoftTimeLimitExceeded,))


def test_an_error_while_finishing_does_not_fail_a_job_whose_scans_are_all_done(clinic_a, alice, vgg16_model,
                                                                               monkeypatch):
    from django.db import OperationalError
    from django.utils import timezone

    from classifier import prediction_run
    from classifier.models import PredictionJob
    from classifier.sweeper import sweep

    _, [job] = make_batch(clinic_a, alice, 2)
    [chunk] = plan_here(job)
    real, failures = prediction_run.maybe_finish, []

    def flaky(job_id):
        if not failures:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return real(job_id)

    monkeypatch.setattr(prediction_run, "maybe_finish", flaky)
    run_chunk(chunk, "A")
    job.refresh_from_db()
    assert job.status == "running" and job.done == 2  # not "failed"
    PredictionJob.objects.filter(pk=job.pk).update(progress_at=timezone.now() - timedelta(hours=1))
    sweep()  # finishes a running job whose chunks are all done, once it has been quiet a while
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("succeeded", 2, 0)


def test_an_error_after_the_sweeper_handed_the_chunk_back_does_not_fail_the_job(clinic_a, alice, vgg16_model,
                                                                               monkeypatch):
    from django.utils import timezone

    from classifier import tasks
    from classifier.models import PredictionChunk
    from classifier.sweeper import sweep

    _, [job] = make_batch(clinic_a, alice, 2)
    [chunk] = plan_here(job)

    def load(version):  # the heartbeat went stale (a long pause) and the sweeper ran meanwhile
        PredictionChunk.objects.filter(pk=chunk.pk).update(heartbeat_at=timezone.now() - timedelta(hours=1))
        sweep()
        raise ConnectionError("transient")

    monkeypatch.setattr(tasks, "load_model", load)
    run_chunk(chunk, "A")
    job.refresh_from_db()
    chunk.refresh_from_db()
    assert job.status == "running" and chunk.status == "queued"  # sent again, for another message
    monkeypatch.undo()
    run_chunk(chunk, "B")
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 2)


def test_a_worker_on_a_cancelled_round_stops_and_cannot_skew_the_new_rounds_counts(clinic_a, alice, vgg16_model):
    from classifier.engine import load_model
    from classifier.jobs import rerun
    from classifier.models import JobStatus, PredictionJob
    from classifier.prediction_run import _save, claim, plan, predict_isolated, still_ours

    batch, [job] = make_batch(clinic_a, alice, 3)
    scans = list(batch.scans_for_prediction().order_by("position"))
    [old] = plan_here(job)
    old = claim(old.pk, "old")
    path = scans[1].file.path
    shutil.move(path, path + ".away")  # round 1: scan 2 cannot be read
    _save(old, [scans[1]], predict_isolated(load_model(vgg16_model), [scans[1]]))
    shutil.move(path + ".away", path)
    cancelled = PredictionJob.objects.get(pk=job.pk)
    cancelled.set_status(JobStatus.CANCELLED)
    rerun(cancelled)  # an admin runs it again: round 2, while "old" is mid-chunk
    plan(job.pk, "plan2")
    assert not still_ours(old, "old")  # the old worker stops at its next batch
    run_chunk(job.chunks.get(round=2), "new")
    job.refresh_from_db()
    assert (job.status, job.done, job.failed, job.percent) == ("succeeded", 3, 0, 100)
    _save(old, [scans[0]], predict_isolated(load_model(vgg16_model), [scans[0]]))  # its batch in hand
    job.refresh_from_db()
    assert (job.status, job.done, job.failed, job.percent) == ("succeeded", 3, 0, 100)


def test_an_error_in_a_cancelled_rounds_chunk_neither_fails_nor_retries_the_new_round(clinic_a, alice,
                                                                                     vgg16_model):
    from classifier.jobs import rerun
    from classifier.models import JobStatus, PredictionJob
    from classifier.prediction_run import USER_RETRIES_EXHAUSTED, claim, fail, plan, prepare_retry

    _, [job] = make_batch(clinic_a, alice, 3)
    [old] = plan_here(job)
    claim(old.pk, "old")
    cancelled = PredictionJob.objects.get(pk=job.pk)
    cancelled.set_status(JobStatus.CANCELLED)
    rerun(cancelled)
    plan(job.pk, "plan2")
    error = ConnectionError("transient")
    assert not prepare_retry(old.pk, "old", error)
    fail(old.pk, "old", USER_RETRIES_EXHAUSTED, error)
    job.refresh_from_db()
    old.refresh_from_db()
    assert (job.status, job.retries, job.round, old.status) == ("running", 0, 2, "done")


@pytest.mark.django_db(transaction=True)
def test_a_dropped_database_connection_is_closed_before_the_retry_is_booked():
    """Reused, it failed the retry's bookkeeping with "connection already closed" and left the
    chunk to the sweeper as a dead worker's."""
    from django.db import InterfaceError, OperationalError, connection

    from classifier.tasks import _drop_broken_connection

    for error, closes in ((ValueError("not the database's"), False),
                          (OperationalError("server closed the connection unexpectedly"), True),
                          (InterfaceError("connection already closed"), True)):
        connection.ensure_connection()
        _drop_broken_connection(error)
        assert (connection.connection is None) == closes, error
