"""pydicom's bundled MR test files (uncompressed, JPEG 2000, JPEG-LS) go through the upload
path and are predicted by the real worker from their stored, de-identified copies."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.classifier.helpers import wait_for_jobs
from tests.fixtures.dicom import bundled

pytestmark = pytest.mark.worker

BUNDLED_MR = ("MR_small.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm")


def test_bundled_mr_files_are_predicted_and_ct_is_refused(transactional_db, celery_worker, clinic_a, alice,
                                                          vgg16_model):
    from classifier.models import Prediction
    from portal.cases.models import Case
    from portal.cases.uploads import ingest

    case = Case.objects.create(clinic=clinic_a, patient_ref="P-DICOM", created_by=alice)
    files = [SimpleUploadedFile(name, bundled(name)) for name in BUNDLED_MR]
    files.append(SimpleUploadedFile("CT_small.dcm", bundled("CT_small.dcm")))
    result = ingest(case, alice, files, ["vgg16"])
    scans = {scan.original_name: scan for scan in result.batch.scans.all()}
    assert scans["CT_small.dcm"].status == "rejected"
    assert scans["CT_small.dcm"].rejection_reason == "Not accepted: CT images are not supported: the model reads MRI."
    # The three MR files hold the same pixels in three transfer syntaxes: each is its own scan.
    assert all(scans[name].status == "accepted" and scans[name].format == "DICOM" for name in BUNDLED_MR)
    [job] = wait_for_jobs(result.jobs, worker=celery_worker)
    assert (job.status, job.done, job.failed) == ("succeeded", 3, 0)
    predictions = list(Prediction.objects.filter(scan__batch=result.batch))
    assert len(predictions) == 3 and all(p.probability is not None and not p.error for p in predictions)
    # Same pixels, so the same probability whatever the compression (all three are lossless).
    assert max(p.probability for p in predictions) - min(p.probability for p in predictions) < 1e-4


def test_dicom_series_sent_through_the_api_is_predicted_and_read_back_as_json(
    transactional_db, celery_worker, clinic_a, alice, vgg16_model
):
    import pydicom
    from django.test import Client

    from portal.api.models import ApiToken
    from tests.fixtures.dicom import make_mr_dicom, make_zip

    key = ApiToken.issue(alice, "pacs")[1]
    client = Client(HTTP_AUTHORIZATION=f"Token {key}")
    case = client.post("/api/v1/cases/", {"patient_ref": "P-SERIES"}, content_type="application/json").json()
    series = make_zip([(f"series/IM{i:04d}", make_mr_dicom(instance=i, seed=i)) for i in range(1, 4)])
    batch = client.post(f"/api/v1/cases/{case['id']}/batches/",
                        {"files": [SimpleUploadedFile("series.zip", series)]}).json()
    assert batch["accepted_count"] == 3
    from classifier.models import PredictionJob

    wait_for_jobs(list(PredictionJob.objects.filter(batch_id=batch["id"])), worker=celery_worker)
    assert client.get(f"/api/v1/batches/{batch['id']}/").json()["finished"] is True
    results = client.get(f"/api/v1/batches/{batch['id']}/predictions/").json()["results"]
    assert len(results) == 3
    for row in results:
        assert 0.0 <= row["probability"] <= 1.0 and row["label"] in ("tumor", "no_tumor") and row["error"] == ""
        assert row["model_version"]["architecture"] == "vgg16"
    from portal.cases.models import Scan

    for scan in Scan.objects.filter(batch_id=batch["id"]):
        with scan.file.open("rb") as handle:
            stored = pydicom.dcmread(handle)
        assert stored.PatientIdentityRemoved == "YES" and stored.PatientID != "PID-12345"
