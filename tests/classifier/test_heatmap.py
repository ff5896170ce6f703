"""Grad-CAM heatmaps are drawn by the worker (never in a web process) and kept private."""

import time

import pytest
from django.urls import reverse

from tests.classifier.helpers import make_batch, wait_for_jobs
from tests.fixtures.worker import queues_not_consumed

pytestmark = pytest.mark.worker


def _get_when_ready(client, url, timeout=120):
    deadline = time.monotonic() + timeout
    first = client.get(url)
    response = first
    while response.status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.5)
        response = client.get(url)
    return first, response


def test_heatmap_is_drawn_by_the_worker_then_served_privately(
    transactional_db, celery_worker, client_for, clinic_a, alice, mallory, vgg16_model
):
    from classifier.models import Prediction

    batch, jobs = make_batch(clinic_a, alice, 2, ref="P-HEAT", size=(96, 72))
    wait_for_jobs(jobs, worker=celery_worker)
    prediction = Prediction.objects.filter(scan__batch=batch).first()
    url = reverse("cases:heatmap", kwargs={"prediction_id": prediction.public_id})
    assert client_for(mallory).get(url).status_code == 404

    first, ready = _get_when_ready(client_for(alice), url)
    assert first.status_code == 202 and b"Preparing the heatmap" in first.content
    assert ready.status_code == 200, celery_worker.log()
    assert ready["Content-Type"] == "image/png" and ready.content.startswith(b"\x89PNG")
    assert {"private", "no-store"} <= {part.strip() for part in ready["Cache-Control"].split(",")}
    again = client_for(alice).get(url)
    assert again.status_code == 200 and again.content == ready.content  # drawn once, kept


def _batch_and_job(clinic, user, model_version, ref):
    """A batch of one stored scan and a job row for it, but no message sent: the session's
    worker, if a test before this one started it, must not analyse the scan behind the test's
    back (its writes raced the test's own rows and the flush after the test)."""
    from classifier.models import PredictionJob

    batch, _ = make_batch(clinic, user, 1, ref=ref, size=(64, 64), architectures=())
    return batch, PredictionJob.objects.create(batch=batch, model_version=model_version, total=1)


def test_failed_prediction_has_no_heatmap(transactional_db, client_for, clinic_a, alice, vgg16_model):
    from classifier.models import Prediction

    batch, job = _batch_and_job(clinic_a, alice, vgg16_model, "P-NOHEAT")
    scan = batch.scans.get()
    failed = Prediction.objects.create(
        scan=scan, model_version=vgg16_model, job=job, error="stored file is missing", threshold=0.5,
    )
    url = reverse("cases:heatmap", kwargs={"prediction_id": failed.public_id})
    assert client_for(alice).get(url).status_code == 404


def _waiting(queue):
    from portal.celery import app

    with app.connection_for_read() as conn:  # kombu adds CELERY_BROKER_KEY_PREFIX itself
        return conn.default_channel.client.llen(queue)


@pytest.fixture
def heatmap_queue_not_consumed():
    """No worker reads the heatmap or inference queue during the test (a session worker may
    be running): messages stay countable on Redis."""
    with queues_not_consumed("heatmap", "inference"):
        yield


def _finished_prediction(clinic, user, model_version, ref, **fields):
    from classifier.models import Prediction

    batch, job = _batch_and_job(clinic, user, model_version, ref)
    return Prediction.objects.create(
        scan=batch.scans.get(), model_version=model_version, job=job,
        probability=0.8, label="tumor", threshold=0.5, **fields,
    )


def test_many_gets_of_a_pending_heatmap_queue_exactly_one_task(
    transactional_db, heatmap_queue_not_consumed, client_for, clinic_a, alice, vgg16_model
):
    """The page refreshes every 2 s and several people may have it open: 20 concurrent GETs
    and 10 more after them put one message on the heatmap queue, and none on inference."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection
    from django.test import Client

    prediction = _finished_prediction(clinic_a, alice, vgg16_model, "P-HEAT-ONCE")
    url = reverse("cases:heatmap", kwargs={"prediction_id": prediction.public_id})
    before_heatmap, before_inference = _waiting("heatmap"), _waiting("inference")

    def get(_):
        try:
            client = Client()
            client.force_login(alice)
            return client.get(url).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(get, range(20)))
    statuses += [client_for(alice).get(url).status_code for _ in range(10)]
    assert statuses == [202] * 30
    assert _waiting("heatmap") - before_heatmap == 1
    assert _waiting("inference") == before_inference
    from classifier.models import HeatmapState

    prediction.refresh_from_db()
    assert prediction.heatmap_state == HeatmapState.QUEUED


def test_a_queued_request_gone_stale_is_sent_once_more(
    transactional_db, heatmap_queue_not_consumed, client_for, clinic_a, alice, vgg16_model
):
    from datetime import timedelta

    from django.utils import timezone

    from classifier.heatmaps import REQUEST_STALE_AFTER
    from classifier.models import HeatmapState

    prediction = _finished_prediction(
        clinic_a, alice, vgg16_model, "P-HEAT-STALE", heatmap_state=HeatmapState.QUEUED,
        heatmap_requested_at=timezone.now() - REQUEST_STALE_AFTER - timedelta(seconds=1),
    )
    url = reverse("cases:heatmap", kwargs={"prediction_id": prediction.public_id})
    before = _waiting("heatmap")
    for _ in range(3):
        assert client_for(alice).get(url).status_code == 202
    assert _waiting("heatmap") - before == 1


def test_a_failed_drawing_is_shown_as_failed_and_retried_only_on_request(
    transactional_db, celery_worker, client_for, clinic_a, alice, vgg16_model
):
    """The stored file cannot be decoded any more (damaged after the prediction): the worker
    records the failure and the page says so instead of refreshing forever."""
    prediction = _finished_prediction(clinic_a, alice, vgg16_model, "P-HEAT-FAIL")
    with open(prediction.scan.file.path, "r+b") as handle:
        handle.truncate(40)
    client = client_for(alice)
    url = reverse("cases:heatmap", kwargs={"prediction_id": prediction.public_id})
    first, last = _get_when_ready(client, url, timeout=120)
    assert first.status_code == 202
    assert last.status_code == 200, celery_worker.log()
    assert b"could not be drawn" in last.content and b"http-equiv" not in last.content
    from classifier.models import HeatmapState

    prediction.refresh_from_db()
    assert prediction.heatmap_state == HeatmapState.FAILED and prediction.heatmap_error
    assert client.get(url).status_code == 200  # still failed: a GET does not queue it again
    prediction.refresh_from_db()
    assert prediction.heatmap_state == HeatmapState.FAILED
    failed_request_at = prediction.heatmap_requested_at

    retry = client.post(url, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert retry.status_code == 302
    prediction.refresh_from_db()
    assert prediction.heatmap_requested_at > failed_request_at  # asked again, once
