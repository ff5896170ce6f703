"""CSV exports of prediction history with reviews: rows match the database, streamed."""

import csv
import io

import pytest
from django.urls import reverse

from tests.portal.reviews_data import case_with_scans, model_version, predict


def _rows(response):
    assert response.streaming is True
    body = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(body)))


def _expected(predictions):
    """The rows the export must hold, built straight from the models."""
    from classifier.models import Prediction

    def text(value):
        return "" if value is None else (value.isoformat() if hasattr(value, "isoformat") else str(value))

    rows = []
    for p in Prediction.objects.filter(pk__in=[p.pk for p in predictions]).order_by("created_at", "id"):
        base = [str(p.public_id), p.scan.case.clinic.slug, str(p.scan.case_id), p.scan.case.patient_ref,
                str(p.scan_id), p.scan.original_name, p.scan.sha256, p.model_version.architecture,
                p.model_version.version, text(p.probability), text(p.threshold), p.label, p.error,
                text(p.created_at)]
        gate = [str(p.assessed), text(p.ood_score)]
        reviews = list(p.reviews.order_by("created_at", "id"))
        if not reviews:
            rows.append(base + [""] * 6 + gate)
        for r in reviews:
            rows.append(base + [str(r.pk), r.reviewer.username, r.verdict, r.label, r.note, text(r.created_at)] + gate)
    return rows


@pytest.fixture
def history(clinic_a, clinic_b, alice, bob, carol, mallory):
    from classifier.models import Review

    vgg, resnet = model_version("vgg16", "v1"), model_version("resnet50", "r1")
    case, batch, scans = case_with_scans(clinic_a, alice, 3, patient_ref="A-100")
    preds = predict(batch, scans, vgg, [0.9, 0.2, None]) + predict(batch, scans[:1], resnet, [0.6])
    Review.objects.create(prediction=preds[0], scan=preds[0].scan, reviewer=bob, verdict="confirmed", label="tumor",
                          note="ok, fine")
    Review.objects.create(prediction=preds[0], scan=preds[0].scan, reviewer=carol, verdict="corrected",
                          label="no_tumor", note='says "no"\nline 2')
    Review.objects.create(prediction=preds[1], scan=preds[1].scan, reviewer=bob, verdict="corrected", label="tumor")
    case2, batch2, scans2 = case_with_scans(clinic_a, alice, 1, patient_ref="A-101")
    preds2 = predict(batch2, scans2, vgg, [0.7])
    _, batch_b, scans_b = case_with_scans(clinic_b, mallory, 1, patient_ref="B-1")
    preds_b = predict(batch_b, scans_b, vgg, [0.3])
    return {"case": case, "preds": preds, "case2": case2, "preds2": preds2, "preds_b": preds_b}


def test_case_export_rows_match_the_database(client_for, alice, history):
    from portal.audit.models import AuditEvent

    response = client_for(alice).get(reverse("reviews:export_case", args=[history["case"].pk]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="case-')
    rows = _rows(response)
    assert rows[0][:2] == ["prediction_id", "clinic"]
    assert rows[1:] == _expected(history["preds"])
    assert len(rows) == 1 + 5  # 4 predictions, one of them reviewed twice
    event = AuditEvent.objects.get(action="export")
    assert (event.actor, event.object_id, event.extra["scope"]) == (alice, str(history["case"].pk), "case")


def test_clinic_export_streams_in_chunks_and_holds_only_its_clinic(client_for, carol, history, monkeypatch):
    from django.db.models.query import QuerySet

    from portal.reviews import exports

    monkeypatch.setattr(exports, "CHUNK_SIZE", 2)  # several chunks from the server-side cursor
    calls = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        calls.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    clinic = history["case"].clinic
    response = client_for(carol).get(reverse("reviews:export_clinic", args=[clinic.pk]))
    assert response.status_code == 200
    assert calls == []  # nothing is read before the response is consumed
    rows = _rows(response)
    assert calls == [2]
    assert rows[1:] == _expected(history["preds"] + history["preds2"])
    assert all(row[1] == "clinic-a" for row in rows[1:])


def test_export_neutralises_spreadsheet_formulas(client_for, alice, clinic_a):
    case, batch, scans = case_with_scans(clinic_a, alice, 1, patient_ref="=HYPERLINK(1)")
    predict(batch, scans, model_version("vgg16", "v1"), [0.9])
    rows = _rows(client_for(alice).get(reverse("reviews:export_case", args=[case.pk])))
    assert rows[1][3] == "'=HYPERLINK(1)"


def test_exports_refuse_other_clinics_and_other_roles(client_for, bob, alice, mallory, history):
    clinic = history["case"].clinic
    clinic_url = reverse("reviews:export_clinic", args=[clinic.pk])
    case_url = reverse("reviews:export_case", args=[history["case"].pk])
    assert client_for(bob).get(clinic_url).status_code == 403
    assert client_for(alice).get(clinic_url).status_code == 403
    assert client_for(mallory).get(clinic_url).status_code == 404
    assert client_for(mallory).get(case_url).status_code == 404
