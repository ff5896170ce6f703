"""What the pages say at a glance: the batch page's Analyse form, the heatmap viewer and where
it is linked, result cells that say what the number is, counts in words, the audit page's
object names, the favicon."""

import re

import pytest
from django.urls import reverse

from tests.portal.reviews_data import case_with_scans, model_version, predict

pytestmark = pytest.mark.django_db
WORDS = "the model's estimated probability of a tumor"


def html(response, status=200):
    assert response.status_code == status
    return response.content.decode()


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def unanalysed_batch(clinic_a, alice):
    version = model_version()
    case, batch, scans = case_with_scans(clinic_a, alice, 2)
    return version, case, batch


@pytest.fixture
def analysed(clinic_a, alice):
    version = model_version()
    case, batch, scans = case_with_scans(clinic_a, alice, 2, patient_ref="P-HEAT")
    tumor, clear = predict(batch, scans, version, [0.83, 0.12])
    return version, case, batch, tumor


def test_batch_page_ticks_the_only_active_model(unanalysed_batch, client_for, alice):
    _, _, batch = unanalysed_batch
    page = html(client_for(alice).get(reverse("cases:batch", args=[batch.pk])))
    [box] = re.findall(r'<input type="checkbox" name="models"[^>]*>', page)
    assert 'value="vgg16"' in box and "checked" in box


def test_analyse_without_a_model_says_to_choose_one(unanalysed_batch, client_for, alice):
    _, _, batch = unanalysed_batch
    client = client_for(alice)
    client.get(reverse("cases:batch", args=[batch.pk]))
    response = client.post(
        reverse("cases:batch_predict", args=[batch.pk]),
        {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}, follow=True,
    )
    page = html(response)
    assert "Choose at least one model to analyse this batch with." in page
    assert "has not analysed this batch yet" not in page
    assert not batch.prediction_jobs.exists()


def test_queuing_an_analysis_from_the_batch_page_is_audited(
    unanalysed_batch, client_for, alice, django_capture_on_commit_callbacks
):
    from portal.audit.models import AuditEvent

    version, _, batch = unanalysed_batch
    client = client_for(alice)
    client.get(reverse("cases:batch", args=[batch.pk]))
    with django_capture_on_commit_callbacks(execute=False):
        client.post(
            reverse("cases:batch_predict", args=[batch.pk]),
            {"models": ["vgg16"], "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
        )
    job = batch.prediction_jobs.get()
    event = AuditEvent.objects.get(action="analysis_queue")
    assert (event.actor, event.object_id, event.clinic_id) == (alice, str(batch.pk), batch.case.clinic_id)
    assert event.extra["model"] == version.display_name and event.extra["job"] == str(job.public_id)


def test_counts_are_pluralised(unanalysed_batch, client_for, alice):
    _, _, batch = unanalysed_batch
    batch.files_received, batch.duplicate_count = 3, 1
    batch.save()
    page = html(client_for(alice).get(reverse("cases:batch", args=[batch.pk])))
    assert "<strong>1</strong> duplicate." in page and "1 duplicates" not in page


def test_no_results_heading_over_a_batch_without_results(unanalysed_batch, client_for, alice):
    from classifier.models import PredictionJob

    version, _, batch = unanalysed_batch
    client = client_for(alice)
    page = html(client.get(reverse("cases:batch", args=[batch.pk])))
    assert "<h2>Results" not in page and "not analysed yet" in page
    PredictionJob.objects.create(batch=batch, model_version=version, total=2)  # queued, nothing back yet
    page = html(client.get(reverse("cases:batch", args=[batch.pk])))
    assert "<h2>Results" not in page and "No results yet" in page


def test_results_heading_once_a_result_is_in(analysed, client_for, alice):
    _, _, batch, _ = analysed
    assert "<h2>Results (2 scans)</h2>" in html(client_for(alice).get(reverse("cases:batch", args=[batch.pk])))


def test_heatmap_viewer_shows_scan_result_model_and_the_heatmap_image(analysed, client_for, alice):
    version, case, batch, tumor = analysed
    back = reverse("cases:detail", args=[case.pk])
    url = reverse("cases:heatmap_view", args=[tumor.public_id]) + f"?back={back}"
    page = html(client_for(alice).get(url))
    assert tumor.scan.original_name in page
    assert 'class="label-tumor">Tumor' in page and f"P(tumor) = 0.830</span> <span class=\"p-words\">— {WORDS}" in page
    assert reverse("model_card", args=[version.pk]) in page
    assert reverse("cases:heatmap", args=[tumor.public_id]) in page  # the PNG
    assert reverse("cases:scan_image", args=[tumor.scan_id]) in page  # the original beside it
    assert 'id="heatmap-opacity"' in page and 'id="heatmap-legend"' in page
    assert f'href="{back}" id="heatmap-back"' in page
    assert "<script>" not in page and " style=" not in page


def test_heatmap_viewer_back_link_never_leaves_the_site(analysed, client_for, alice):
    _, _, batch, tumor = analysed
    url = reverse("cases:heatmap_view", args=[tumor.public_id]) + "?back=https://evil.example/"
    page = html(client_for(alice).get(url))
    assert "evil.example" not in page
    assert f'href="{reverse("cases:batch", args=[batch.pk])}" id="heatmap-back"' in page


def test_heatmap_viewer_is_404_for_another_clinic_and_for_a_failed_prediction(
    analysed, client_for, mallory, alice
):
    version, _, batch, tumor = analysed
    assert client_for(mallory).get(reverse("cases:heatmap_view", args=[tumor.public_id])).status_code == 404
    _, other_batch, scans = case_with_scans(tumor.scan.case.clinic, alice, 1)
    [failed] = predict(other_batch, scans, version, [None])
    assert client_for(alice).get(reverse("cases:heatmap_view", args=[failed.public_id])).status_code == 404


def test_heatmap_viewer_is_linked_from_batch_results_case_history_scan_and_review_pages(
    analysed, client_for, alice, bob
):
    _, case, batch, tumor = analysed
    viewer = reverse("cases:heatmap_view", args=[tumor.public_id])
    for client, url in (
        (client_for(alice), reverse("cases:batch", args=[batch.pk])),
        (client_for(alice), reverse("cases:detail", args=[case.pk])),
        (client_for(alice), reverse("cases:scan", args=[tumor.scan_id])),
        (client_for(bob), reverse("reviews:review", args=[tumor.public_id])),
        (client_for(bob), reverse("reviews:case_history", args=[case.pk])),
    ):
        assert viewer + "?back=" in html(client.get(url)), url


def test_scan_page_says_what_the_number_is(analysed, client_for, alice):
    _, _, _, tumor = analysed
    page = html(client_for(alice).get(reverse("cases:scan", args=[tumor.scan_id])))
    assert f"P(tumor) = 0.830</span> <span class=\"p-words\">— {WORDS}" in page


def test_review_queue_shows_thumbnails_and_what_the_number_is(analysed, client_for, bob):
    _, _, _, tumor = analysed
    page = html(client_for(bob).get(reverse("reviews:queue")))
    assert reverse("cases:scan_thumbnail", args=[tumor.scan_id]) in page
    assert WORDS in page


def test_audit_page_names_and_links_the_objects(analysed, client_for, alice, carol):
    _, case, _, _ = analysed
    client_for(alice).get(reverse("cases:detail", args=[case.pk]))  # a case_view event
    page = html(client_for(carol).get(reverse("audit:events")))
    link = f'<a href="{reverse("cases:detail", args=[case.pk])}" title="case {case.pk}">Case P-HEAT</a>'
    assert link in page
    assert 'class="nowrap"><time' in page


def test_favicon_is_served(client):
    from django.contrib.staticfiles import finders

    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("img/favicon.ico")
    assert finders.find("img/favicon.ico")


def test_heatmap_viewer_says_when_the_heatmap_could_not_be_drawn(analysed, client_for, alice):
    from classifier.models import Prediction

    _, _, _, tumor = analysed
    Prediction.objects.filter(pk=tumor.pk).update(heatmap_state="failed", heatmap_error="worker ran out of memory")
    page = html(client_for(alice).get(reverse("cases:heatmap_view", args=[tumor.public_id])))
    assert 'class="error" id="heatmap-failed">The heatmap could not be drawn: worker ran out of memory.' in page
    assert 'id="heatmap-overlay" hidden' in page
