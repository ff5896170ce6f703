"""Batch upload: content checks, private storage, duplicates, limits, jobs after commit."""

import pytest
from django.urls import reverse

from tests.portal.helpers import jpeg, make_case, text_as_jpeg, truncated_jpeg, upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def case(clinic_a, alice):
    return make_case(clinic_a, alice)


def test_upload_judges_files_by_content_and_records_every_file(
    client_for, alice, case, vgg16_model, django_capture_on_commit_callbacks, settings
):
    from classifier.models import PredictionJob
    from portal.audit.models import AuditEvent
    from portal.cases.models import Batch, Scan

    client = client_for(alice)
    png = jpeg("looks-like.jpg", seed=5, fmt="PNG")  # PNG content under a .jpg name
    files = [jpeg("a.jpg", seed=1), jpeg("b.jpeg", seed=2), png, text_as_jpeg(), truncated_jpeg()]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = upload(client, case, files)
    assert response.status_code == 302
    batch = Batch.objects.get(case=case)
    assert response["Location"] == reverse("cases:batch", kwargs={"batch_id": batch.pk})
    assert (batch.files_received, batch.accepted_count, batch.rejected_count) == (5, 3, 2)
    scans = {scan.original_name: scan for scan in batch.scans.all()}
    assert scans["looks-like.jpg"].status == Scan.Status.ACCEPTED
    assert scans["looks-like.jpg"].format == "PNG"
    assert scans["notes.jpg"].status == Scan.Status.REJECTED
    assert "not a JPEG, PNG or DICOM" in scans["notes.jpg"].rejection_reason
    assert scans["truncated.jpg"].status == Scan.Status.REJECTED
    assert "truncated or corrupt" in scans["truncated.jpg"].rejection_reason
    assert not scans["notes.jpg"].file
    for name in ("a.jpg", "b.jpeg", "looks-like.jpg"):
        scan = scans[name]
        assert scan.width == 64 and scan.height == 64 and len(scan.sha256) == 64
        # Stored under a path made from the content hash, never the client's name.
        ext = {"JPEG": "jpg", "PNG": "png"}[scan.format]
        assert scan.file.name == f"scans/{case.clinic_id}/{case.pk}/{scan.sha256}.{ext}"
        assert (settings.MEDIA_ROOT / scan.file.name).is_file()
    job = PredictionJob.objects.get(batch=batch)
    assert job.model_version == vgg16_model and job.total == 3 and job.status == "queued"
    # The task is sent only once the batch, scans and job are committed.
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="upload", object_id=str(batch.pk)).exists()
    page = client.get(response["Location"]).content.decode()
    assert "not a JPEG, PNG or DICOM" in page and "truncated or corrupt" in page


def test_task_is_sent_only_after_commit(client_for, alice, case, vgg16_model, django_capture_on_commit_callbacks,
                                        monkeypatch):
    from classifier import tasks
    from classifier.models import PredictionJob

    sent = []
    monkeypatch.setattr(tasks.run_prediction_job, "delay", lambda job_id: sent.append(job_id))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        upload(client_for(alice), case, [jpeg("a.jpg")])
        assert sent == []  # nothing sent while the transaction is open
    for callback in callbacks:
        callback()
    assert sent == [PredictionJob.objects.get().pk]


def test_duplicates_within_the_case_and_within_the_batch_are_not_stored_twice(
    client_for, alice, case, vgg16_model, settings
):
    from portal.cases.models import Scan

    client = client_for(alice)
    upload(client, case, [jpeg("first.jpg", seed=1)])
    upload(client, case, [jpeg("again.jpg", seed=1), jpeg("new.jpg", seed=2), jpeg("new-copy.jpg", seed=2)])
    first = Scan.objects.get(original_name="first.jpg")
    again = Scan.objects.get(original_name="again.jpg")
    copy = Scan.objects.get(original_name="new-copy.jpg")
    assert again.status == Scan.Status.DUPLICATE and again.duplicate_of == first
    assert "already in this case" in again.rejection_reason
    assert copy.status == Scan.Status.DUPLICATE
    assert copy.duplicate_of == Scan.objects.get(original_name="new.jpg")
    assert "earlier in this upload" in copy.rejection_reason
    assert not again.file and not copy.file
    assert Scan.objects.filter(case=case, status="accepted").count() == 2
    stored = list((settings.MEDIA_ROOT / "scans" / str(case.clinic_id) / str(case.pk)).iterdir())
    assert len(stored) == 2
    batch = again.batch
    assert (batch.accepted_count, batch.duplicate_count) == (1, 2)
    # Only the accepted scan is predicted.
    assert batch.prediction_jobs.get().total == 1


def test_same_content_in_another_case_is_not_a_duplicate(client_for, alice, case, clinic_a, vgg16_model):
    from portal.cases.models import Scan

    other = make_case(clinic_a, alice, ref="P-0002")
    client = client_for(alice)
    upload(client, case, [jpeg("x.jpg", seed=3)])
    upload(client, other, [jpeg("x.jpg", seed=3)])
    assert Scan.objects.filter(status="accepted").count() == 2


def test_size_and_pixel_limits(client_for, alice, case, vgg16_model, settings):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    from portal.cases.models import Scan

    settings.UPLOAD_MAX_FILE_BYTES = 3000
    settings.UPLOAD_MAX_PIXELS = 80 * 80
    big_file = jpeg("noisy.png", seed=1, size=(64, 64), fmt="PNG")  # random noise: several KB
    plain = io.BytesIO()
    Image.new("RGB", (100, 100), (30, 30, 30)).save(plain, format="PNG")
    many_pixels = SimpleUploadedFile("wide.png", plain.getvalue(), "image/png")
    small = jpeg("small.jpg", seed=3, size=(64, 64))
    assert big_file.size > 3000 and many_pixels.size < 3000 and small.size < 3000
    upload(client_for(alice), case, [big_file, many_pixels, small])
    reasons = dict(Scan.objects.values_list("original_name", "rejection_reason"))
    assert "the limit is" in reasons["noisy.png"]
    assert Scan.objects.get(original_name="small.jpg").status == "accepted"
    wide = Scan.objects.get(original_name="wide.png")
    assert wide.status == "rejected"
    assert "pixels" in wide.rejection_reason or "large" in wide.rejection_reason


def test_pillow_pixel_limit_follows_the_setting():
    from django.conf import settings
    from PIL import Image

    assert Image.MAX_IMAGE_PIXELS == settings.UPLOAD_MAX_PIXELS


def test_original_names_are_kept_for_display_only(client_for, alice, case, vgg16_model):
    from portal.cases.models import Scan

    upload(client_for(alice), case, [jpeg("../../etc/passwd<script>.jpg", seed=4)])
    scan = Scan.objects.get()
    assert scan.original_name == "passwd<script>.jpg"
    assert "passwd" not in scan.file.name
    page = client_for(alice).get(reverse("cases:batch", kwargs={"batch_id": scan.batch_id})).content
    assert b"passwd&lt;script&gt;.jpg" in page and b"passwd<script>" not in page


def test_model_choice_both_models_and_only_active_ones_offered(client_for, alice, case, registered_models):
    from classifier.models import PredictionJob

    client = client_for(alice)
    page = client.get(reverse("cases:detail", kwargs={"case_id": case.pk})).content.decode()
    assert 'value="vgg16"' in page and 'value="resnet50"' in page
    upload(client, case, [jpeg("a.jpg")], models=["vgg16", "resnet50"])
    jobs = PredictionJob.objects.all()
    assert {job.model_version.architecture for job in jobs} == {"vgg16", "resnet50"}
    assert all(job.model_version.is_active for job in jobs)


def test_an_architecture_without_active_version_is_not_offered(client_for, alice, case, vgg16_model):
    page = client_for(alice).get(reverse("cases:detail", kwargs={"case_id": case.pk})).content.decode()
    assert 'value="vgg16"' in page and 'value="resnet50"' not in page
    response = upload(client_for(alice), case, [jpeg("a.jpg")], models=["resnet50"])
    assert response.status_code == 400  # not a valid choice


def test_no_active_model_still_stores_the_scans_and_says_so(client_for, alice, case):
    from portal.cases.models import Batch

    client = client_for(alice)
    page = client.get(reverse("cases:detail", kwargs={"case_id": case.pk})).content.decode()
    assert "No model is active" in page
    response = upload(client, case, [jpeg("a.jpg")], models=[])
    assert response.status_code == 302
    batch = Batch.objects.get()
    assert batch.accepted_count == 1 and not batch.prediction_jobs.exists()
    follow = client.get(response["Location"])
    assert "No model is active" in follow.content.decode()


def test_a_batch_can_be_analysed_later_once_a_model_is_active(
    client_for, alice, case, register_tiny_model, django_capture_on_commit_callbacks
):
    from portal.cases.models import Batch

    client = client_for(alice)
    upload(client, case, [jpeg("a.jpg")], models=[])
    batch = Batch.objects.get()
    register_tiny_model("vgg16")
    page = client.get(reverse("cases:batch", kwargs={"batch_id": batch.pk}))
    token = page.cookies.get("csrftoken", client.cookies["csrftoken"]).value
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            reverse("cases:batch_predict", kwargs={"batch_id": batch.pk}),
            {"models": ["vgg16"], "csrfmiddlewaretoken": token},
        )
    assert response.status_code == 302
    assert batch.prediction_jobs.get().total == 1 and len(callbacks) == 1


def test_upload_without_files_is_a_form_error(client_for, alice, case, vgg16_model):
    response = upload(client_for(alice), case, [])
    assert response.status_code == 400
    assert "Choose at least one image file" in response.content.decode()


def test_upload_requires_csrf_token(client_for, alice, case, vgg16_model):
    from portal.cases.models import Batch

    response = client_for(alice).post(
        reverse("cases:upload", kwargs={"case_id": case.pk}), {"files": [jpeg("a.jpg")], "models": ["vgg16"]}
    )
    assert response.status_code == 403
    assert not Batch.objects.exists()


def test_upload_touches_case_activity(client_for, alice, case, vgg16_model):
    before = case.last_activity_at
    upload(client_for(alice), case, [jpeg("a.jpg")])
    case.refresh_from_db()
    assert case.last_activity_at > before


def test_failed_recording_leaves_no_stored_file_and_no_rows(client_for, alice, case, vgg16_model, settings,
                                                            monkeypatch):
    from portal.cases import uploads
    from portal.cases.models import Batch, Scan

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(uploads, "queue_predictions", broken)
    client = client_for(alice)
    client.raise_request_exception = True
    with pytest.raises(RuntimeError):
        upload(client, case, [jpeg("a.jpg"), jpeg("b.jpg", seed=2)])
    assert not Batch.objects.exists() and not Scan.objects.exists()
    folder = settings.MEDIA_ROOT / "scans" / str(case.clinic_id) / str(case.pk)
    assert not folder.exists() or not any(folder.iterdir())
