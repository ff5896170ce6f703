"""Scan images are private: served only through views that check the clinic."""

import pytest
from django.urls import reverse

from tests.portal.helpers import jpeg, make_case, text_as_jpeg, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def scans(client_for, alice, clinic_a, vgg16_model):
    from portal.cases.models import Scan

    case = make_case(clinic_a, alice)
    upload(client_for(alice), case,
           [jpeg("a.jpg", seed=1, size=(300, 200)), jpeg("b.png", seed=2, fmt="PNG"), text_as_jpeg()])
    return {scan.original_name: scan for scan in Scan.objects.all()}


def _body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_image_is_streamed_with_private_headers_and_audited(client_for, alice, scans):
    from portal.audit.models import AuditEvent

    for name, content_type in (("a.jpg", "image/jpeg"), ("b.png", "image/png")):
        scan = scans[name]
        response = client_for(alice).get(reverse("cases:scan_image", kwargs={"scan_id": scan.pk}))
        assert response.status_code == 200
        assert response["Content-Type"] == content_type
        assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
        assert response["X-Content-Type-Options"] == "nosniff"
        with scan.file.open("rb") as handle:
            assert _body(response) == handle.read()
        assert AuditEvent.objects.filter(action="image_view", object_id=str(scan.pk), actor=alice).exists()


def test_accel_redirect_when_a_front_proxy_serves_files(client_for, alice, scans, settings):
    settings.PRIVATE_FILES_ACCEL_PREFIX = "/protected/"
    scan = scans["a.jpg"]
    response = client_for(alice).get(reverse("cases:scan_image", kwargs={"scan_id": scan.pk}))
    assert response.status_code == 200
    assert response["X-Accel-Redirect"] == f"/protected/{scan.file.name}"
    assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    assert response.content == b""


def test_thumbnail_is_a_small_jpeg_made_once(client_for, alice, scans, settings):
    import io

    from PIL import Image

    from portal.cases.views import THUMBNAIL_SIZE, thumbnail_name

    scan = scans["a.jpg"]
    url = reverse("cases:scan_thumbnail", kwargs={"scan_id": scan.pk})
    first = client_for(alice).get(url)
    assert first.status_code == 200 and first["Content-Type"] == "image/jpeg"
    assert {"private", "no-store"} <= {part.strip() for part in first["Cache-Control"].split(",")}
    image = Image.open(io.BytesIO(first.content))
    assert image.format == "JPEG" and max(image.size) <= THUMBNAIL_SIZE
    assert (settings.MEDIA_ROOT / thumbnail_name(scan)).is_file()
    assert client_for(alice).get(url).content == first.content


def test_rejected_scan_has_no_image(client_for, alice, scans):
    scan = scans["notes.jpg"]
    for name in ("cases:scan_image", "cases:scan_thumbnail"):
        assert client_for(alice).get(reverse(name, kwargs={"scan_id": scan.pk})).status_code == 404


def test_no_public_media_url(client, scans):
    scan = scans["a.jpg"]
    assert client.get("/media/" + scan.file.name).status_code in (302, 404)
    assert client.get(reverse("cases:scan_image", kwargs={"scan_id": scan.pk})).status_code == 302


def test_other_clinic_gets_404_for_images(client_for, mallory, scans):
    for scan in scans.values():
        for name in ("cases:scan_image", "cases:scan_thumbnail", "cases:scan"):
            assert client_for(mallory).get(reverse(name, kwargs={"scan_id": scan.pk})).status_code == 404


def test_a_scan_whose_file_has_gone_answers_410_for_image_thumbnail_and_heatmap(
    client_for, alice, scans, vgg16_model
):
    """The row stays (nothing is lost from the record) but the file was removed from
    storage: a plain "no longer available" page, never a 500 or a heatmap pending forever;
    the thumbnail made earlier is not shown in its place."""
    from classifier.models import Prediction, PredictionJob

    scan = scans["a.jpg"]
    thumbnail_url = reverse("cases:scan_thumbnail", kwargs={"scan_id": scan.pk})
    assert client_for(alice).get(thumbnail_url).status_code == 200  # cached before the loss
    prediction = Prediction.objects.create(
        scan=scan, model_version=vgg16_model, job=PredictionJob.objects.get(batch=scan.batch),
        probability=0.7, label="tumor", threshold=0.5,
    )
    scan.file.storage.delete(scan.file.name)
    urls = [
        reverse("cases:scan_image", kwargs={"scan_id": scan.pk}),
        thumbnail_url,
        reverse("cases:heatmap", kwargs={"prediction_id": prediction.public_id}),
    ]
    for url in urls:
        response = client_for(alice).get(url)
        assert response.status_code == 410, url
        assert b"Image no longer available" in response.content, url
        assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    from classifier.models import HeatmapState

    prediction.refresh_from_db()
    assert prediction.heatmap_state == HeatmapState.NONE  # nothing was queued for it
    assert client_for(alice).get(reverse("cases:scan", kwargs={"scan_id": scan.pk})).status_code == 200
