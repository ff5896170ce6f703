"""The upload page refuses files no clinician would send (issue 9: thin strips that used to
exhaust the worker; issue 10: blank, uniform, tiny images), each with its plain reason, while
the other files of the batch are accepted and analysed."""

import html
import io

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tests.fixtures.images import brain_image
from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def png(name, array_or_size, fill=0):
    image = (Image.fromarray(array_or_size) if isinstance(array_or_size, np.ndarray)
             else Image.new("L", array_or_size, fill))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), "image/png")


def strip(name, width, height):
    """A 20-pixel-wide grey strip: a few KB, 2 megapixels at most, under every size limit."""
    rng = np.random.default_rng(width + height)
    return png(name, (100 + rng.integers(0, 20, (height, width))).astype(np.uint8))


def mri_like(name, seed):
    buffer = io.BytesIO()
    brain_image(size=(256, 224), tumor=True, seed=seed).save(buffer, format="PNG")
    return SimpleUploadedFile(name, buffer.getvalue(), "image/png")


def batch_page(client, batch):
    from django.urls import reverse

    return html.unescape(client.get(reverse("cases:batch", kwargs={"batch_id": batch.pk})).content.decode())


def test_thin_strips_are_refused_at_upload_and_the_good_files_are_accepted(client_for, alice, clinic_a, vgg16_model):
    from portal.cases.models import Batch, Scan

    case = make_case(clinic_a, alice)
    files = [jpeg("good-1.jpg", seed=1), strip("strip-100000.png", 20, 100_000), mri_like("good-2.png", 2),
             strip("strip-20000.png", 20, 20_000), jpeg("good-3.jpg", seed=3)]
    assert all(f.size < 3 * 1024 * 1024 for f in files)
    client = client_for(alice)
    assert upload(client, case, files).status_code == 302
    batch = Batch.objects.get(case=case)
    assert (batch.files_received, batch.accepted_count, batch.rejected_count) == (5, 3, 2)
    scans = {scan.original_name: scan for scan in batch.scans.all()}
    for name, long in (("strip-100000.png", 100_000), ("strip-20000.png", 20_000)):
        scan = scans[name]
        assert scan.status == Scan.Status.REJECTED and not scan.file
        assert scan.rejection_reason == (
            f"Not accepted: image is 20 × {long} pixels: its longer side is {long // 20} times its "
            "shorter side, a brain scan's at most 4 times."
        )
    assert all(scans[n].status == Scan.Status.ACCEPTED for n in ("good-1.jpg", "good-2.png", "good-3.jpg"))
    assert batch.prediction_jobs.get().total == 3  # only the good files reach the worker
    page = batch_page(client, batch)
    assert "its longer side is 5000 times its shorter side" in page and "good-2.png" in page


def test_blank_tiny_and_strip_images_get_their_own_reason(client_for, alice, clinic_a, vgg16_model):
    from portal.cases.models import Batch, Scan

    case = make_case(clinic_a, alice)
    files = [png("one-pixel.png", (1, 1), 128), png("eight.png", (8, 8), 128), png("black.png", (256, 256), 0),
             png("white.png", (256, 256), 255), png("grey.png", (256, 256), 128), strip("strip.png", 20, 5000),
             mri_like("scan.png", 7)]
    client = client_for(alice)
    upload(client, case, files)
    batch = Batch.objects.get(case=case)
    reasons = dict(batch.scans.values_list("original_name", "rejection_reason"))
    assert reasons == {
        "one-pixel.png": "Not accepted: image is 1 × 1 pixels, too small to hold a brain scan; "
                         "each side needs at least 64 pixels.",
        "eight.png": "Not accepted: image is 8 × 8 pixels, too small to hold a brain scan; "
                     "each side needs at least 64 pixels.",
        "black.png": "Not accepted: image is blank (all black); there is no scan in it.",
        "white.png": "Not accepted: image is blank (all white); there is no scan in it.",
        "grey.png": "Not accepted: image is blank (one uniform shade); there is no scan in it.",
        "strip.png": "Not accepted: image is 20 × 5000 pixels: its longer side is 250 times its shorter side, "
                     "a brain scan's at most 4 times.",
        "scan.png": "",
    }
    assert batch.scans.get(original_name="scan.png").status == Scan.Status.ACCEPTED
    assert batch.accepted_count == 1 and batch.rejected_count == 6
    page = batch_page(client, batch)
    for reason in reasons.values():
        assert reason in page


def test_the_limits_follow_the_settings(client_for, alice, clinic_a, vgg16_model, settings):
    from portal.cases.models import Batch

    settings.UPLOAD_MIN_SIDE_PX = 32
    settings.UPLOAD_MAX_ASPECT_RATIO = 2
    settings.IMAGE_WORK_BUDGET_BYTES = 12 * 1024 * 1024
    case = make_case(clinic_a, alice)
    files = [jpeg("small.jpg", seed=1, size=(40, 40)), jpeg("wide.jpg", seed=2, size=(150, 64)),
             jpeg("large.jpg", seed=3, size=(800, 800))]
    upload(client_for(alice), case, files)
    reasons = dict(Batch.objects.get().scans.values_list("original_name", "rejection_reason"))
    assert reasons["small.jpg"] == ""
    assert "its longer side is 2.3 times its shorter side, a brain scan's at most 2 times" in reasons["wide.jpg"]
    assert "would need about" in reasons["large.jpg"] and "the limit is 12 MB" in reasons["large.jpg"]


def test_the_upload_form_tells_the_smallest_accepted_image(client_for, alice, clinic_a, vgg16_model, settings):
    from django.urls import reverse

    settings.UPLOAD_MIN_SIDE_PX = 96
    case = make_case(clinic_a, alice)
    page = client_for(alice).get(reverse("cases:detail", kwargs={"case_id": case.pk})).content.decode()
    assert "at least 96 pixels a side" in page
