"""A prediction the model did not assess (its OOD gate: the image does not look like the brain
MRI slices it was trained on) shows "Not assessed: ..." instead of a label wherever results
show: batch page, case history, review queue and page, exports, API. Only reviewers see its
P(tumor); it stays in the review queue; every result says what P(tumor) is and links to the
model card. (Display from stored predictions; the worker stores what ml's ImagePrediction says.)"""

import csv
import io
from types import SimpleNamespace

import pytest
from django.urls import reverse

from classifier.models import NOT_ASSESSED_TEXT
from tests.portal.reviews_data import case_with_scans, csrf_token, model_version, predict

pytestmark = pytest.mark.django_db
WORDS = "the model's estimated probability of a tumor"


@pytest.fixture
def results(clinic_a, alice):
    version = model_version()
    case, batch, scans = case_with_scans(clinic_a, alice, 2)
    assessed, unassessed = predict(batch, scans, version, [0.012, 0.41])
    unassessed.assessed, unassessed.label, unassessed.ood_score = False, "", 9.1
    unassessed.save()
    return SimpleNamespace(version=version, case=case, batch=batch, assessed=assessed, unassessed=unassessed)


def text(response):
    assert response.status_code == 200
    return response.content.decode()


def test_batch_page_shows_not_assessed_instead_of_a_label(results, client_for, alice, bob):
    page = text(client_for(alice).get(reverse("cases:batch", kwargs={"batch_id": results.batch.pk})))
    assert page.count(NOT_ASSESSED_TEXT) == 1
    assert page.count("No tumor</span>") == 1  # only the assessed scan has a label
    assert f"P(tumor) = 0.012</span> <span class=\"p-words\">— {WORDS}" in page
    assert "P(tumor) = 0.410" not in page  # clinicians get no number for an unassessed image
    assert reverse("model_card", args=[results.version.pk]) in page

    reviewer_page = text(client_for(bob).get(reverse("cases:batch", kwargs={"batch_id": results.batch.pk})))
    assert "For reviewers: <span class=\"p-value\">P(tumor) = 0.410" in reviewer_page


def test_a_not_assessed_images_heatmap_goes_to_reviewers_only(results, client_for, alice, bob):
    """Like its probability: to a clinician a heatmap of a photograph or a CT slice would read as
    where the model looked for a tumor. The assessed scan's heatmap stays open to both."""
    batch_url = reverse("cases:batch", kwargs={"batch_id": results.batch.pk})
    unassessed_view = reverse("cases:heatmap_view", args=[results.unassessed.public_id])
    assessed_view = reverse("cases:heatmap_view", args=[results.assessed.public_id])
    clinician, reviewer = client_for(alice), client_for(bob)
    page = text(clinician.get(batch_url))
    assert assessed_view in page and unassessed_view not in page
    assert clinician.get(unassessed_view).status_code == 404
    assert clinician.get(reverse("cases:heatmap", args=[results.unassessed.public_id])).status_code == 404
    assert clinician.get(assessed_view).status_code == 200
    assert unassessed_view in text(reviewer.get(batch_url))
    assert reviewer.get(unassessed_view).status_code == 200


def test_case_histories_show_the_state(results, client_for, alice, bob):
    detail = text(client_for(alice).get(reverse("cases:detail", kwargs={"case_id": results.case.pk})))
    assert detail.count(NOT_ASSESSED_TEXT) == 1 and reverse("model_card", args=[results.version.pk]) in detail
    history = text(client_for(bob).get(reverse("reviews:case_history", args=[results.case.pk])))
    assert history.count(NOT_ASSESSED_TEXT) == 1 and "P(tumor) = 0.410" in history


def test_it_stays_in_the_review_queue_and_the_reviewer_gives_the_label(results, client_for, bob):
    from classifier.models import Review

    c = client_for(bob)
    queue = text(c.get(reverse("reviews:queue")))
    assert str(results.unassessed.public_id) in queue and NOT_ASSESSED_TEXT in queue
    url = reverse("reviews:review", args=[results.unassessed.public_id])
    page = text(c.get(url))
    assert NOT_ASSESSED_TEXT in page and "P(tumor) = 0.410" in page and "Give the label yourself" in page
    refused = c.post(url, {"csrfmiddlewaretoken": csrf_token(c.get(url)), "verdict": "confirmed", "label": ""})
    assert refused.status_code == 200 and "did not assess this image" in refused.content.decode()
    assert not Review.objects.exists()
    c.post(url, {"csrfmiddlewaretoken": csrf_token(c.get(url)), "verdict": "confirmed", "label": "tumor"})
    review = Review.objects.get()
    assert (review.verdict, review.label) == ("corrected", "tumor")


def test_agreement_leaves_out_reviews_of_unassessed_predictions(results, bob, carol, client_for):
    from classifier.models import Review

    for prediction, verdict, label in ((results.assessed, "confirmed", "no_tumor"),
                                       (results.unassessed, "corrected", "tumor")):
        Review.objects.create(prediction=prediction, scan=prediction.scan, reviewer=bob, verdict=verdict, label=label)
    page = text(client_for(carol).get(reverse("reviews:agreement")))
    assert '<td class="n">1</td>' in page and '<td class="confirmed">1</td>' in page


def _exported(client, case):
    response = client.get(reverse("reviews:export_case", args=[case.pk]))
    rows = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    return {row["prediction_id"]: row for row in rows}


def test_export_says_not_assessed_rather_than_an_empty_label(results, client_for, alice, bob):
    """And, as on the pages, only a reviewer's export carries the unassessed image's P(tumor)."""
    by_id = _exported(client_for(alice), results.case)
    gone = by_id[str(results.unassessed.public_id)]
    assert (gone["predicted_label"], gone["assessed"], gone["ood_score"]) == (NOT_ASSESSED_TEXT, "False", "9.1")
    assert gone["probability_tumor"] == ""
    assert by_id[str(results.assessed.public_id)]["predicted_label"] == "no_tumor"
    assert by_id[str(results.assessed.public_id)]["probability_tumor"] == "0.012"
    assert _exported(client_for(bob), results.case)[str(results.unassessed.public_id)]["probability_tumor"] == "0.41"


def test_the_api_gives_an_unassessed_images_probability_to_reviewers_only(results, alice, bob):
    from django.test import Client

    from portal.api.models import ApiToken

    def prediction_of(user, url):
        client = Client(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user, 'script')[1]}")
        response = client.get(url)
        assert response.status_code == 200
        body = response.json()
        rows = body["results"] if "results" in body else [body]
        return {row["id"]: row for row in rows}

    detail = f"/api/v1/predictions/{results.unassessed.public_id}/"
    listing = f"/api/v1/batches/{results.batch.pk}/predictions/"
    gone, kept = str(results.unassessed.public_id), str(results.assessed.public_id)
    for url in (detail, listing):
        clinician = prediction_of(alice, url)
        assert clinician[gone]["probability"] is None and clinician[gone]["label"] in ("", None)
        assert clinician[gone]["gate"]["assessed"] is False
        assert prediction_of(bob, url)[gone]["probability"] == 0.41
    assert prediction_of(alice, listing)[kept]["probability"] == 0.012
    assert prediction_of(bob, "/api/v1/reviews/queue/")[gone]["probability"] == 0.41


def test_the_worker_stores_the_gate_fields_of_each_result(clinic_a, alice):
    from classifier.models import JobStatus, Prediction, PredictionChunk, PredictionJob
    from classifier.prediction_run import _save
    from ml.engine import ImagePrediction

    version = model_version()
    _, batch, scans = case_with_scans(clinic_a, alice, 2)
    job = PredictionJob.objects.create(batch=batch, model_version=version, total=2, status=JobStatus.RUNNING)
    chunk = PredictionChunk.objects.create(job=job, round=1, index=0, scan_ids=[str(s.pk) for s in scans])
    gated = ImagePrediction(0.41, None, None, ood_score=9.1, assessed=False)
    _save(chunk, scans, [ImagePrediction(0.93, "tumor"), gated])
    first, second = (Prediction.objects.get(scan=s) for s in scans)
    assert (first.assessed, first.ood_score, first.label) == (True, None, "tumor")
    assert (second.assessed, second.ood_score, second.label, second.probability) == (False, 9.1, "", 0.41)
