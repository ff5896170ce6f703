"""GET /metrics: Prometheus figures read from PostgreSQL and Redis at scrape time, behind a
bearer token."""

import uuid

import pytest
from django.urls import reverse
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.worker import own_broker_prefix
from tests.portal.helpers import jpeg, make_case, upload

TOKEN = "metrics-token-" + "x" * 40


def _samples(response):
    text = response.content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.django_db
def test_metrics_do_not_exist_without_a_token_setting(client, settings):
    settings.METRICS_TOKEN = None
    assert client.get(reverse("metrics")).status_code == 404


@pytest.mark.django_db
def test_metrics_refuse_a_missing_or_wrong_token(client, settings):
    settings.METRICS_TOKEN = TOKEN
    url = reverse("metrics")
    missing = client.get(url)
    assert missing.status_code == 401 and missing["WWW-Authenticate"].startswith("Bearer")
    assert client.get(url, headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    assert client.get(url, headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    assert b"neuroai_" not in missing.content


def test_metrics_report_the_queue_depth_and_jobs_of_a_queued_batch(
    transactional_db, client, client_for, settings, alice, clinic_a, registered_models
):
    settings.METRICS_TOKEN = TOKEN
    auth = {"Authorization": f"Bearer {TOKEN}"}
    # Queues of this test's own: no worker consumes them, so the batch stays queued.
    with own_broker_prefix(f"neuroai-test-metrics-{uuid.uuid4().hex[:8]}:"):
        before = _samples(client.get(reverse("metrics"), headers=auth))
        assert before[("neuroai_queue_messages", (("queue", "inference"),))] == 0
        case = make_case(clinic_a, alice)
        upload(client_for(alice), case, [jpeg("a.jpg", seed=1), jpeg("b.jpg", seed=2)], models=("vgg16", "resnet50"))
        response = client.get(reverse("metrics"), headers=auth)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/plain")
        samples = _samples(response)
    # One message per job: one job per chosen model.
    assert samples[("neuroai_queue_messages", (("queue", "inference"),))] == 2
    assert samples[("neuroai_jobs", (("state", "queued"),))] == 2
    assert samples[("neuroai_jobs", (("state", "running"),))] == 0
    assert samples[("neuroai_queue_oldest_job_age_seconds", ())] > 0
    assert samples[("neuroai_predictions_stored_total", ())] == 0
    assert samples[("neuroai_job_run_seconds_count", ())] == 0
    assert all(
        value == 0 for (name, labels), value in samples.items()
        if name == "neuroai_scrape_error" and labels != (("part", "workers"),)
    )


@pytest.mark.django_db
def test_metrics_count_stored_failed_and_unassessed_results_and_finished_job_latency(
    client, settings, alice, clinic_a, vgg16_model
):
    from datetime import timedelta

    from django.utils import timezone

    from classifier.models import Prediction, PredictionChunk, PredictionJob
    from tests.classifier.helpers import make_batch

    settings.METRICS_TOKEN = TOKEN
    batch, jobs = make_batch(clinic_a, alice, 3, ref="P-METRICS")
    job = PredictionJob.objects.get(pk=jobs[0].pk)
    now = timezone.now()
    PredictionJob.objects.filter(pk=job.pk).update(
        status="succeeded", started_at=now - timedelta(seconds=20), finished_at=now, done=2, failed=1
    )
    scans = list(batch.scans.order_by("position"))
    PredictionChunk.objects.filter(job=job).delete()
    PredictionChunk.objects.create(
        job=job, round=1, index=0, scan_ids=[str(s.pk) for s in scans], status="done",
        sent_at=now - timedelta(seconds=8), finished_at=now,
    )
    PredictionChunk.objects.create(job=job, round=1, index=1, status="queued", sent_at=now - timedelta(seconds=90))
    common = {"model_version": vgg16_model, "job": job, "threshold": 0.5}
    Prediction.objects.create(scan=scans[0], probability=0.9, label="tumor", **common)
    Prediction.objects.create(scan=scans[1], probability=0.2, label="", assessed=False, **common)
    Prediction.objects.create(scan=scans[2], error="This image could not be read.", **common)
    samples = _samples(client.get(reverse("metrics"), headers={"Authorization": f"Bearer {TOKEN}"}))
    assert samples[("neuroai_predictions_stored_total", ())] == 2
    assert samples[("neuroai_predictions_not_assessed_total", ())] == 1
    assert samples[("neuroai_prediction_failures_total", ())] == 1
    assert samples[("neuroai_jobs", (("state", "succeeded"),))] == 1
    assert samples[("neuroai_job_run_seconds_count", ())] == 1
    assert samples[("neuroai_job_run_seconds_bucket", (("le", "15.0"),))] == 0
    assert samples[("neuroai_job_run_seconds_bucket", (("le", "30.0"),))] == 1
    assert 19 <= samples[("neuroai_job_run_seconds_sum", ())] <= 21
    assert samples[("neuroai_images_per_second", ())] == pytest.approx(2 / 300)
    assert samples[("neuroai_chunks", (("state", "done"),))] == 1
    assert samples[("neuroai_chunks", (("state", "queued"),))] == 1
    assert samples[("neuroai_chunk_seconds_bucket", (("le", "5.0"),))] == 0
    assert samples[("neuroai_chunk_seconds_bucket", (("le", "10.0"),))] == 1
    assert samples[("neuroai_queue_oldest_chunk_age_seconds", ())] >= 90
