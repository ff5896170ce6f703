"""Grad-CAM heatmaps are drawn by the worker (never in a web process) and kept private."""

import time

import pytest
from django.urls import reverse

from tests.classifier.helpers import make_batch, wait_for_jobs

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


def test_failed_prediction_has_no_heatmap(transactional_db, client_for, clinic_a, alice, vgg16_model):
    from classifier.models import Prediction, PredictionJob

    batch, jobs = make_batch(clinic_a, alice, 1, ref="P-NOHEAT")
    scan = batch.scans.get()
    failed = Prediction.objects.create(
        scan=scan, model_version=vgg16_model, job=PredictionJob.objects.get(pk=jobs[0].pk),
        error="stored file is missing", threshold=0.5,
    )
    url = reverse("cases:heatmap", kwargs={"prediction_id": failed.public_id})
    assert client_for(alice).get(url).status_code == 404
