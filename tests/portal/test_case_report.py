"""The printable case report: a PDF with the patient reference, each scan's results with the
model card summary, reviewers' verdicts and notes and the disclaimer; members of the case's
clinic only (404 for others, as every object view), audited, never cached."""

import io

import pytest
from django.urls import reverse
from pypdf import PdfReader

from tests.portal.reviews_data import case_with_scans, model_version, predict

pytestmark = pytest.mark.django_db


def pdf_text(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(b"".join(response.streaming_content) if response.streaming else response.content))
    return " ".join(" ".join((page.extract_text() or "").split()) for page in reader.pages), reader


@pytest.fixture
def reviewed_case(clinic_a, alice, bob):
    from classifier.models import Review

    version = model_version()
    case, batch, scans = case_with_scans(clinic_a, alice, 2, patient_ref="MRN-77031")
    tumor, clear = predict(batch, scans, version, [0.91, 0.07])
    Review.objects.create(
        prediction=tumor, scan=tumor.scan, reviewer=bob, verdict="confirmed", label="tumor",
        note="Enhancing lesion left frontal",
    )
    return case, tumor, clear


def test_case_report_holds_patient_results_reviews_and_disclaimer(reviewed_case, client_for, alice):
    from portal.audit.models import AuditEvent

    case, tumor, clear = reviewed_case
    response = client_for(alice).get(reverse("cases:report", args=[case.pk]))
    text, reader = pdf_text(response)
    assert "MRN-77031" in text
    assert "scan-0.jpg" in text and "scan-1.jpg" in text
    assert "P(tumor) = 0.910" in text and "P(tumor) = 0.070" in text
    assert "Tumor" in text and "No tumor" in text
    assert "Enhancing lesion left frontal" in text and "bob" in text
    assert "VGG16 v1" in text and "ROC AUC" in text  # the model card summary
    assert "Decision support only" in text
    images = sum(len(page.images) for page in reader.pages)
    assert images == 2  # one thumbnail per scan
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="report_export")
    assert event.object_id == str(case.pk) and event.actor == alice and event.clinic == case.clinic


def test_case_report_is_404_for_another_clinic(reviewed_case, client_for, mallory):
    from portal.audit.models import AuditEvent

    case, _, _ = reviewed_case
    response = client_for(mallory).get(reverse("cases:report", args=[case.pk]))
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="report_export").exists()


def test_case_page_links_the_report_and_the_review_history(reviewed_case, client_for, alice):
    case, _, _ = reviewed_case
    html = client_for(alice).get(reverse("cases:detail", args=[case.pk])).content.decode()
    assert reverse("cases:report", args=[case.pk]) in html
    assert reverse("reviews:case_history", args=[case.pk]) in html
    assert reverse("reviews:export_case", args=[case.pk]) in html


def test_unanalysed_and_not_assessed_scans_say_so_in_the_report(clinic_a, alice, client_for):
    from classifier.models import NOT_ASSESSED_TEXT

    version = model_version()
    case, batch, scans = case_with_scans(clinic_a, alice, 2, patient_ref="MRN-2")
    [odd] = predict(batch, scans[:1], version, [0.4])
    odd.assessed, odd.label = False, ""
    odd.save()
    text, _ = pdf_text(client_for(alice).get(reverse("cases:report", args=[case.pk])))
    assert NOT_ASSESSED_TEXT in text and "P(tumor) = 0.400" not in text
    assert "Not analysed yet" in text
