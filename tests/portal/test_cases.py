"""Case list, case creation, the case page's scans and prediction history, the batch page
and its progress endpoint."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def csrf_post(client, url, data, page_url):
    client.get(page_url)
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def test_case_list_search_newest_activity_first_and_paginated(client_for, alice, clinic_a):
    now = timezone.now()
    for i in range(30):
        make_case(clinic_a, alice, ref=f"P-{i:03d}", last_activity_at=now - timedelta(hours=i))
    client = client_for(alice)
    page = client.get(reverse("cases:list")).content.decode()
    refs = [line for line in page.split('">') if line.startswith("P-")]
    assert [ref[:5] for ref in refs][:3] == ["P-000", "P-001", "P-002"]
    assert "P-024" in page and "P-025" not in page and "Page 1 of 2" in page
    second = client.get(reverse("cases:list"), {"page": 2}).content.decode()
    assert "P-025" in second and "P-029" in second
    searched = csrf_post(client, reverse("cases:list"), {"q": "p-01"}, reverse("cases:list"))
    assert searched.status_code == 302
    found = client.get(searched["Location"]).content.decode()
    assert "P-010" in found and "P-019" in found and "P-020" not in found


def test_create_case(client_for, alice, clinic_a):
    from portal.audit.models import AuditEvent
    from portal.cases.models import Case

    client = client_for(alice)
    response = csrf_post(
        client, reverse("cases:create"),
        {"patient_ref": " PX-7 ", "notes": "left temporal", "clinic": clinic_a.pk},
        reverse("cases:create"),
    )
    case = Case.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("cases:detail", kwargs={"case_id": case.pk})
    assert (case.patient_ref, case.clinic, case.created_by) == ("PX-7", clinic_a, alice)
    assert AuditEvent.objects.filter(action="case_create", object_id=str(case.pk)).exists()
    too_long = csrf_post(client, reverse("cases:create"),
                         {"patient_ref": "PX-8", "notes": "x" * 5001, "clinic": clinic_a.pk}, reverse("cases:create"))
    assert too_long.status_code == 200 and "at most 5000 characters" in too_long.content.decode()


def test_patient_ref_is_unique_within_a_clinic_only(client_for, alice, mallory, clinic_a, clinic_b):
    from portal.cases.models import Case

    make_case(clinic_a, alice, ref="PX-7")
    client = client_for(alice)
    response = csrf_post(
        client, reverse("cases:create"), {"patient_ref": "px-7", "clinic": clinic_a.pk}, reverse("cases:create")
    )
    assert response.status_code == 200
    assert "already exists in this clinic" in response.content.decode()
    other = client_for(mallory)
    response = csrf_post(
        other, reverse("cases:create"), {"patient_ref": "PX-7", "clinic": clinic_b.pk}, reverse("cases:create")
    )
    assert response.status_code == 302
    assert Case.objects.filter(patient_ref__iexact="px-7").count() == 2


def test_cannot_create_a_case_in_another_clinic(client_for, mallory, clinic_a, clinic_b):
    from portal.cases.models import Case

    response = csrf_post(
        client_for(mallory), reverse("cases:create"),
        {"patient_ref": "X", "clinic": clinic_a.pk}, reverse("cases:create"),
    )
    assert response.status_code == 200  # not a valid choice
    assert not Case.objects.exists()


def test_user_without_clinic_cannot_create_cases(client_for, db):
    from django.contrib.auth import get_user_model

    loner = get_user_model().objects.create_user("loner", "l@example.org", "x")
    assert client_for(loner).get(reverse("cases:create")).status_code == 403


def test_case_page_shows_thumbnails_and_history_newest_first_with_reviews(
    client_for, alice, bob, clinic_a, vgg16_model
):
    from classifier.models import Prediction, PredictionJob, Review
    from portal.audit.models import AuditEvent
    from portal.cases.models import Scan

    case = make_case(clinic_a, alice)
    client = client_for(alice)
    upload(client, case, [jpeg("old.jpg", seed=1), jpeg("new.jpg", seed=2)])
    job = PredictionJob.objects.get()
    old, new = Scan.objects.get(original_name="old.jpg"), Scan.objects.get(original_name="new.jpg")
    earlier = Prediction.objects.create(
        scan=old, model_version=vgg16_model, job=job, probability=0.91, label="tumor", threshold=0.5,
        created_at=timezone.now() - timedelta(minutes=5),
    )
    Prediction.objects.create(
        scan=new, model_version=vgg16_model, job=job, probability=0.12, label="no_tumor", threshold=0.5
    )
    Review.objects.create(prediction=earlier, scan=old, reviewer=bob, verdict="corrected", label="no_tumor")
    page = client.get(reverse("cases:detail", kwargs={"case_id": case.pk})).content.decode()
    history = page[page.index('id="history"'):]
    assert history.index("new.jpg") < history.index("old.jpg")
    assert "VGG16 test-1" in history and "0.910" in history and "0.120" in history
    assert "Corrected: No tumor" in history and "bob" in history and "not reviewed" in history
    for scan in (old, new):
        assert reverse("cases:scan_thumbnail", kwargs={"scan_id": scan.pk}) in page
    assert AuditEvent.objects.filter(action="case_view", object_id=str(case.pk)).exists()


def test_batch_progress_endpoint_per_model(client_for, alice, clinic_a, registered_models):
    from classifier.models import JobStatus, PredictionJob
    from portal.cases.models import Batch

    case = make_case(clinic_a, alice)
    client = client_for(alice)
    upload(client, case, [jpeg(f"{i}.jpg", seed=i) for i in range(4)], models=["vgg16", "resnet50"])
    batch = Batch.objects.get()
    vgg = PredictionJob.objects.get(model_version__architecture="vgg16")
    vgg.set_status(JobStatus.RUNNING)
    PredictionJob.objects.filter(pk=vgg.pk).update(done=2, failed=1)
    url = reverse("cases:batch_progress", kwargs={"batch_id": batch.pk})
    response = client.get(url)
    assert response["Cache-Control"].startswith("max-age=0")
    data = response.json()
    assert data["finished"] is False
    jobs = {job["architecture"]: job for job in data["jobs"]}
    assert (jobs["vgg16"]["status"], jobs["vgg16"]["done"], jobs["vgg16"]["failed"], jobs["vgg16"]["total"],
            jobs["vgg16"]["percent"]) == ("running", 2, 1, 4, 75)
    assert (jobs["resnet50"]["status"], jobs["resnet50"]["percent"], jobs["resnet50"]["model"]) == (
        "queued", 0, "ResNet50 test-1")
    job_url = reverse("cases:job", kwargs={"job_id": vgg.public_id})
    assert client.get(job_url).json()["percent"] == 75
    # Without JavaScript the page shows the same state at load.
    page = client.get(reverse("cases:batch", kwargs={"batch_id": batch.pk})).content.decode()
    assert 'data-finished="false"' in page and 'max="100" value="75"' in page and "js/batch.js" in page
