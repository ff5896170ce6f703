"""Review queue, review page, case history and agreement figures."""

import pytest
from django.urls import reverse

from tests.portal.reviews_data import case_with_scans, csrf_token, model_version, predict


@pytest.fixture
def queue_data(clinic_a, alice):
    vgg = model_version("vgg16", "v1")
    resnet = model_version("resnet50", "r1")
    case, batch, scans = case_with_scans(clinic_a, alice, 4, patient_ref="A-001")
    vgg_preds = predict(batch, scans, vgg, [0.95, 0.56, 0.1, None])
    resnet_preds = predict(batch, scans[:2], resnet, [0.45, 0.8])
    return {"case": case, "scans": scans, "vgg": vgg, "resnet": resnet,
            "vgg_preds": vgg_preds, "resnet_preds": resnet_preds}


def _queue_ids(response):
    return [str(p.public_id) for p in response.context["page"].object_list]


def _post_review(client, prediction, **data):
    url = reverse("reviews:review", args=[prediction.public_id])
    token = csrf_token(client.get(url))
    return client.post(url, {"csrfmiddlewaretoken": token, "note": "", **data})


def test_queue_lists_unreviewed_predictions_lowest_confidence_first(client_for, bob, queue_data):
    v, r = queue_data["vgg_preds"], queue_data["resnet_preds"]
    response = client_for(bob).get(reverse("reviews:queue"))
    assert response.status_code == 200
    # |p - 0.5|: 0.05 (r 0.45), 0.06 (v 0.56), 0.3 (r 0.8), 0.4 (v 0.1), 0.45 (v 0.95);
    # the errored prediction is not reviewable.
    assert _queue_ids(response) == [str(p.public_id) for p in (r[0], v[1], r[1], v[2], v[0])]


def test_queue_filters(client_for, bob, queue_data):
    c = client_for(bob)
    v, r = queue_data["vgg_preds"], queue_data["resnet_preds"]
    by_model = c.get(reverse("reviews:queue"), {"model_version": queue_data["resnet"].pk})
    assert set(_queue_ids(by_model)) == {str(r[0].public_id), str(r[1].public_id)}
    by_label = c.get(reverse("reviews:queue"), {"label": "no_tumor"})
    assert set(_queue_ids(by_label)) == {str(r[0].public_id), str(v[2].public_id)}
    high = c.get(reverse("reviews:queue"), {"band": "high"})
    assert set(_queue_ids(high)) == {str(v[0].public_id), str(v[2].public_id)}
    low = c.get(reverse("reviews:queue"), {"band": "low"})
    assert set(_queue_ids(low)) == {str(v[1].public_id), str(r[0].public_id)}
    future = c.get(reverse("reviews:queue"), {"date_from": "2999-01-01"})
    assert _queue_ids(future) == []
    newest = c.get(reverse("reviews:queue"), {"sort": "newest"})
    assert _queue_ids(newest)[0] == str(r[1].public_id)


def test_review_confirm_and_correct_are_records_and_leave_the_prediction_alone(client_for, bob, queue_data):
    from classifier.models import Prediction, Review
    from portal.audit.models import AuditEvent

    c = client_for(bob)
    v = queue_data["vgg_preds"]
    before = Prediction.objects.filter(pk=v[0].pk).values().get()
    response = _post_review(c, v[0], verdict="confirmed", note="clear mass")
    assert response.status_code == 302
    response = _post_review(c, v[2], verdict="corrected", label="tumor")
    assert response.status_code == 302
    assert Prediction.objects.filter(pk=v[0].pk).values().get() == before
    confirmed = Review.objects.get(prediction=v[0])
    assert ((confirmed.reviewer, confirmed.verdict, confirmed.label, confirmed.note)
            == (bob, "confirmed", "tumor", "clear mass"))
    corrected = Review.objects.get(prediction=v[2])
    assert (corrected.verdict, corrected.label, corrected.scan_id) == ("corrected", "tumor", v[2].scan_id)
    events = AuditEvent.objects.filter(action="review").order_by("at", "id")
    assert [e.object_id for e in events] == [str(confirmed.pk), str(corrected.pk)]
    assert all(e.actor == bob and e.clinic == queue_data["case"].clinic for e in events)
    # Reviewed predictions leave the queue; the scan's other model's prediction stays.
    remaining = _queue_ids(c.get(reverse("reviews:queue")))
    assert str(v[0].public_id) not in remaining and str(v[2].public_id) not in remaining
    assert str(queue_data["resnet_preds"][0].public_id) in remaining


def test_review_redirects_to_the_next_item_of_the_filtered_queue(client_for, bob, queue_data):
    c = client_for(bob)
    r = queue_data["resnet_preds"]
    url = reverse("reviews:review", args=[r[0].public_id]) + f"?model_version={queue_data['resnet'].pk}"
    token = csrf_token(c.get(url))
    response = c.post(url, {"csrfmiddlewaretoken": token, "verdict": "confirmed",
                            "queue_filters": f"model_version={queue_data['resnet'].pk}"})
    filters = f"model_version={queue_data['resnet'].pk}"
    assert response["Location"] == reverse("reviews:review", args=[r[1].public_id]) + f"?{filters}"
    token = csrf_token(c.get(response["Location"]))
    response = c.post(reverse("reviews:review", args=[r[1].public_id]),
                      {"csrfmiddlewaretoken": token, "verdict": "confirmed", "queue_filters": filters})
    assert response["Location"].startswith(reverse("reviews:queue"))


def test_the_corrected_label_is_not_taken_for_the_queue_label_filter(client_for, bob, queue_data):
    """The review form's own "label" field must not leak into the queue filters."""
    v = queue_data["vgg_preds"]
    response = _post_review(client_for(bob), v[0], verdict="corrected", label="no_tumor", queue_filters="")
    assert "label=" not in response["Location"]
    assert response["Location"] == reverse("reviews:review", args=[queue_data["resnet_preds"][0].public_id])


def test_a_reviewer_reviews_a_prediction_once(client_for, bob, queue_data):
    from classifier.models import Review

    c = client_for(bob)
    prediction = queue_data["vgg_preds"][0]
    url = reverse("reviews:review", args=[prediction.public_id])
    token = csrf_token(c.get(url))
    for verdict in ("confirmed", "corrected"):  # a resent form
        assert c.post(url, {"csrfmiddlewaretoken": token, "verdict": verdict}).status_code == 302
    assert list(Review.objects.values_list("reviewer__username", "verdict")) == [("bob", "confirmed")]
    page = c.get(url).content.decode()
    assert "You reviewed this prediction" in page and 'id="review-form"' not in page


def test_a_correction_must_change_the_label(client_for, bob, queue_data):
    from classifier.models import Review

    response = _post_review(client_for(bob), queue_data["vgg_preds"][0], verdict="corrected", label="tumor")
    assert response.status_code == 200
    assert "other than the model" in response.content.decode()
    assert not Review.objects.exists()


def test_errored_prediction_cannot_be_reviewed(client_for, bob, queue_data):
    url = reverse("reviews:review", args=[queue_data["vgg_preds"][3].public_id])
    assert client_for(bob).get(url).status_code == 404


def test_several_reviewers_and_the_case_history_shows_each_verdict(client_for, bob, carol, alice, queue_data):
    from classifier.models import Review

    v = queue_data["vgg_preds"]
    _post_review(client_for(bob), v[1], verdict="confirmed")
    _post_review(client_for(carol), v[1], verdict="corrected", label="no_tumor", note="artefact")
    assert Review.objects.filter(prediction=v[1]).count() == 2
    page = client_for(alice).get(reverse("reviews:case_history", args=[queue_data["case"].pk]))
    assert page.status_code == 200
    rows = [r for row in page.context["rows"] for r in row["reviews"]]
    assert [(r.reviewer.username, r.verdict, r.label, r.note) for r in rows] == [
        ("bob", "confirmed", "tumor", ""), ("carol", "corrected", "no_tumor", "artefact")]
    html = page.content.decode()
    assert html.count('class="verdict"') == 2 and "artefact" in html


def test_review_page_shows_every_model_and_the_image_is_audited(client_for, bob, queue_data):
    from portal.audit.models import AuditEvent

    c = client_for(bob)
    prediction = queue_data["vgg_preds"][0]
    page = c.get(reverse("reviews:review", args=[prediction.public_id]))
    html = page.content.decode()
    assert "VGG16 v1" in html and "ResNet50 r1" in html and "0.950" in html and "0.450" in html
    assert reverse("cases:scan_image", kwargs={"scan_id": prediction.scan_id}) in html
    image = c.get(reverse("cases:scan_image", kwargs={"scan_id": prediction.scan_id}))
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert b"".join(image.streaming_content)[:2] == b"\xff\xd8"
    event = AuditEvent.objects.get(action="image_view")
    assert event.object_id == str(prediction.scan_id) and event.actor == bob


def test_agreement_figures(client_for, bob, carol, clinic_a, alice, mallory, clinic_b):
    from classifier.models import Review

    vgg = model_version("vgg16", "v1")
    _, batch, scans = case_with_scans(clinic_a, alice, 5)
    preds = predict(batch, scans, vgg, [0.9, 0.8, 0.7, 0.2, 0.1])  # T T T N N
    truth = ["tumor", "no_tumor", "tumor", "tumor", "no_tumor"]     # TP FP TP FN TN
    for p, label in zip(preds, truth, strict=True):
        Review.objects.create(prediction=p, scan=p.scan, reviewer=bob, label=label,
                              verdict="confirmed" if label == p.label else "corrected")
    # Another clinic's reviews never count for clinic A's admin.
    _, batch_b, scans_b = case_with_scans(clinic_b, mallory, 1)
    pb = predict(batch_b, scans_b, vgg, [0.9])[0]
    Review.objects.create(prediction=pb, scan=pb.scan, reviewer=mallory, label="no_tumor", verdict="corrected")
    resnet = model_version("resnet50", "r1")
    pr = predict(batch, scans[:1], resnet, [0.9])[0]
    Review.objects.create(prediction=pr, scan=pr.scan, reviewer=bob, label="tumor", verdict="confirmed")

    page = client_for(carol).get(reverse("reviews:agreement"))
    assert page.status_code == 200
    rows = {str(r["version"]): r for r in page.context["rows"]}
    v = rows["VGG16 v1"]
    assert (v["n"], v["confirmed"], v["tp"], v["fp"], v["tn"], v["fn"]) == (5, 3, 2, 1, 1, 1)
    assert v["sensitivity"] == pytest.approx(2 / 3) and v["specificity"] == pytest.approx(1 / 2)
    r = rows["ResNet50 r1"]
    assert (r["n"], r["tp"], r["specificity"]) == (1, 1, None)
    html = page.content.decode()
    assert "0.667 (2/3)" in html and "60% (3/5)" in html and "—" in html


@pytest.mark.django_db
def test_the_database_keeps_one_review_per_reviewer_and_prediction(bob, queue_data):
    from django.db import IntegrityError, transaction

    from classifier.models import Review

    prediction = queue_data["vgg_preds"][0]
    fields = {"prediction": prediction, "scan": prediction.scan, "reviewer": bob, "label": "tumor"}
    Review.objects.create(verdict="confirmed", **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        Review.objects.create(verdict="corrected", **fields)
    assert Review.objects.filter(prediction=prediction, reviewer=bob).count() == 1
