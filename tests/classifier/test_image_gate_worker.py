"""The image gate, through the real worker and the shipped VGG16 (installed as `start` does).

- A photograph (matplotlib's bundled portrait) and a CT slice exported as PNG (pydicom's
  CT_small) pass the upload's plausibility checks; the OOD gate marks both "Not assessed",
  keeping their probability for reviewers.
- A uniform grey image is refused at upload with its reason. If one still reaches the worker
  (here: a stored file replaced after intake), the worker's own plausibility check gives
  "Not assessed" with the reason, not a label, and not a failure.
- A brain MRI slice the shipped model never learned from (one of its held-out test images,
  listed by SHA-256 in its metadata) is assessed and labelled.
- The batch page and the case history show each state.
"""

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tests.classifier.helpers import wait_for_jobs
from tests.fixtures.dicom import bundled
from tests.fixtures.images import make_image_bytes, photograph
from tests.fixtures.shipped import OOD_THRESHOLD, SHIP_JSON

pytestmark = pytest.mark.worker

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "brain-mri-navoneel"
NOT_ASSESSED = "Not assessed: this image does not look like the brain MRI slices the model was trained on"


def _png(array) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def ct_slice_png() -> bytes:
    """CT_small's pixels with a soft-tissue-to-bone window, as a viewer's PNG export."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(bundled("CT_small.dcm")))
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    lo, hi = np.percentile(hu, 0.5), np.percentile(hu, 99.5)
    return _png(np.clip((hu - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8))


def held_out_mri() -> tuple[str, bytes]:
    """The first (by name) of the shared images the shipped model held out of its training."""
    held_out = set(SHIP_JSON["metadata"]["extra"]["split"]["test_sha256"])
    for path in sorted(SHARED.rglob("*")):
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() in held_out:
            return path.name, path.read_bytes()
    raise AssertionError("the shipped model lists no held-out image of the shared set")


def grey_png() -> bytes:
    return _png(np.full((256, 256), 128, np.uint8))


def test_gate_through_the_real_worker(transactional_db, shipped_vgg16, celery_worker, clinic_a, alice, client):
    from classifier.models import Prediction
    from portal.cases.models import Case
    from portal.cases.uploads import ingest

    case = Case.objects.create(clinic=clinic_a, patient_ref="P-GATE", created_by=alice)
    mri_name, mri_bytes = held_out_mri()
    files = [
        SimpleUploadedFile("photo.jpg", photograph(), "image/jpeg"),
        SimpleUploadedFile("ct-slice.png", ct_slice_png(), "image/png"),
        SimpleUploadedFile("grey.png", grey_png(), "image/png"),
        SimpleUploadedFile(mri_name, mri_bytes, "image/jpeg"),
        SimpleUploadedFile("stand-in.png", make_image_bytes(size=(128, 128), seed=7, fmt="PNG"), "image/png"),
    ]
    result = ingest(case, alice, files, ["vgg16"])
    scans = {scan.original_name: scan for scan in result.batch.scans.all()}
    # The upload's plausibility layer refuses the grey square with a plain reason.
    assert scans["grey.png"].status == "rejected"
    assert "blank" in scans["grey.png"].rejection_reason
    # A stored file that became a grey square after intake reaches the worker's own check.
    stand_in = scans["stand-in.png"]
    with stand_in.file.open("wb") as handle:
        handle.write(grey_png())

    [job] = wait_for_jobs(result.jobs, worker=celery_worker)
    assert (job.status, job.done, job.failed) == ("succeeded", 4, 0)
    got = {p.scan.original_name: p for p in Prediction.objects.filter(scan__case=case).select_related("scan")}
    for name in ("photo.jpg", "ct-slice.png"):
        p = got[name]
        assert (p.assessed, p.label, p.error) == (False, "", ""), name
        assert p.probability is not None and p.ood_score > OOD_THRESHOLD, (name, p.ood_score, OOD_THRESHOLD)
    grey = got["stand-in.png"]
    assert (grey.assessed, grey.label, grey.error, grey.probability) == (False, "", "", None)
    assert "blank" in grey.not_assessed_reason
    mri = got[mri_name]
    assert mri.assessed and mri.label in ("tumor", "no_tumor") and mri.ood_score <= OOD_THRESHOLD

    client.force_login(alice)
    batch_page = client.get(f"/batches/{result.batch.pk}/").content.decode()
    case_page = client.get(f"/cases/{case.pk}/").content.decode()
    for page in (batch_page, case_page):
        assert page.count(NOT_ASSESSED) == 3
        assert "image is blank (one uniform shade)" in page
        assert mri.get_label_display() in page
