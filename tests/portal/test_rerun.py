"""Clinicians re-run the failed scans of a batch from its page: a new attempt for each failed
scan, results already stored are kept, nothing is doubled, and the action is audited."""

import os

import pytest

from tests.classifier.helpers import make_batch, run_job_here

pytestmark = pytest.mark.django_db


def post(client, url):
    """POST as the page's form would, with the CSRF token the site gave this client."""
    client.get("/")
    return client.post(url, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def run(job):
    run_job_here(job)


def test_failed_scans_are_re_run_from_the_batch_page(
    clinic_a, alice, mallory, vgg16_model, client_for, django_capture_on_commit_callbacks
):
    from django.urls import reverse

    from classifier.models import Prediction
    from portal.audit.models import AuditEvent

    batch, [job] = make_batch(clinic_a, alice, 4)
    lost = batch.scans.get(position=2)
    os.rename(lost.file.path, lost.file.path + ".away")  # e.g. a storage outage
    run(job)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("partial", 3, 1)
    kept = {p.scan_id: p.pk for p in Prediction.objects.filter(error="")}

    page = client_for(alice).get(reverse("cases:batch", args=[batch.pk]))
    html = page.content.decode()
    assert "1 scan could not be analysed" in html and "The stored file is missing." in html
    assert "Re-run the failed scans" in html

    url = reverse("cases:batch_rerun", args=[batch.pk])
    assert post(client_for(mallory), url).status_code == 404  # another clinic's batch
    os.rename(lost.file.path + ".away", lost.file.path)  # the storage is back
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = post(client_for(alice), url)
    assert response.status_code == 302 and len(sent) == 1
    job.refresh_from_db()
    assert (job.status, job.round, job.failed) == ("queued", 2, 0)
    event = AuditEvent.objects.get(action=AuditEvent.Action.JOB_RERUN)
    assert event.actor == alice and event.clinic == clinic_a and event.object_id
    assert event.extra["scans"] == 1

    run(job)
    job.refresh_from_db()
    assert (job.status, job.done, job.failed) == ("succeeded", 4, 0)
    results = Prediction.objects.filter(scan__batch=batch, error="")
    assert results.count() == 4 and results.values("scan").distinct().count() == 4
    assert {p.scan_id: p.pk for p in results.exclude(scan=lost)} == kept  # not redone
    # The failed attempt stays on record beside the new result.
    assert Prediction.objects.filter(scan=lost).exclude(error="").count() == 1
    page = client_for(alice).get(reverse("cases:batch", args=[batch.pk])).content.decode()
    assert "could not be analysed" not in page and "Re-run the failed scans" not in page


def test_nothing_to_re_run_changes_nothing(clinic_a, alice, vgg16_model, client_for):
    from django.urls import reverse

    batch, [job] = make_batch(clinic_a, alice, 2)
    run(job)
    client = client_for(alice)
    response = post(client, reverse("cases:batch_rerun", args=[batch.pk]))
    assert "Nothing to re-run" in client.get(response.url).content.decode()
    job.refresh_from_db()
    assert (job.status, job.round) == ("succeeded", 1)
