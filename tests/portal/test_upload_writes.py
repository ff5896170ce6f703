"""An upload's writes run side by side in the storage pool: every file is stored or rejected
with its reason, one failed write costs only its file, a storage that refuses everything
records nothing."""

import hashlib

import pytest

from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db


def _sha(upload_file):
    upload_file.seek(0)
    digest = hashlib.sha256(upload_file.read()).hexdigest()
    upload_file.seek(0)
    return digest


def _keys(s3_server, prefix):
    found = s3_server.client().list_objects_v2(Bucket=s3_server.bucket, Prefix=prefix)
    return {item["Key"] for item in found.get("Contents", [])}


def test_an_upload_of_many_files_stores_every_one_in_the_bucket(s3_storage, client_for, alice, clinic_a, vgg16_model):
    from classifier.storage_io import read_bytes
    from portal.cases.models import Batch

    case = make_case(clinic_a, alice)
    files = [jpeg(f"s{i:02d}.jpg", seed=100 + i) for i in range(24)]
    response = upload(client_for(alice), case, files)
    assert response.status_code == 302
    batch = Batch.objects.get(case=case)
    assert (batch.files_received, batch.accepted_count, batch.rejected_count) == (24, 24, 0)
    scans = list(batch.scans.all())
    assert _keys(s3_storage, f"media/scans/{clinic_a.pk}/{case.pk}/") == {f"media/{s.file.name}" for s in scans}
    for scan in scans:
        stored = s3_storage.client().get_object(Bucket=s3_storage.bucket, Key=f"media/{scan.file.name}")
        assert read_bytes(scan.file) == stored["Body"].read() and stored["ContentLength"] > 0


def test_the_writes_of_one_upload_overlap(client_for, alice, clinic_a, vgg16_model, settings, tmp_path):
    from portal.cases.models import Batch

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.portal.storages.ConcurrentWritesStorage", "OPTIONS": {"location": str(tmp_path)}},
    }
    case = make_case(clinic_a, alice)
    assert upload(client_for(alice), case, [jpeg(f"o{i}.jpg", seed=200 + i) for i in range(6)]).status_code == 302
    batch = Batch.objects.get(case=case)
    assert (batch.accepted_count, batch.rejected_count) == (6, 0)  # one at a time, the first would fail
    assert len([p for p in tmp_path.rglob("*.jpg")]) == 6


def test_a_write_the_s3_server_refuses_fails_only_that_file_with_its_reason(
    s3_storage, client_for, alice, clinic_a, vgg16_model, settings
):
    from classifier.models import PredictionJob
    from portal.cases.models import Batch, Scan
    from portal.cases.uploads import NOT_STORED

    files = [jpeg(f"r{i}.jpg", seed=300 + i) for i in range(5)]
    refused = _sha(files[2])
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "tests.portal.storages.OneWriteRefusedS3Storage",
            "OPTIONS": {**settings.STORAGES["default"]["OPTIONS"], "fail_marker": refused},
        },
    }
    case = make_case(clinic_a, alice)
    copy = jpeg("r2-copy.jpg", seed=302)  # the same content later in the upload
    response = upload(client_for(alice), case, [*files, copy])
    assert response.status_code == 302
    batch = Batch.objects.get(case=case)
    assert (batch.files_received, batch.accepted_count, batch.rejected_count, batch.duplicate_count) == (6, 4, 2, 0)
    for name in ("r2.jpg", "r2-copy.jpg"):
        scan = batch.scans.get(original_name=name)
        assert (scan.status, scan.rejection_reason, scan.file.name, scan.duplicate_of) == (
            Scan.Status.REJECTED, NOT_STORED, "", None
        )
    accepted = batch.scans.filter(status=Scan.Status.ACCEPTED)
    assert _keys(s3_storage, f"media/scans/{clinic_a.pk}/{case.pk}/") == {f"media/{s.file.name}" for s in accepted}
    assert PredictionJob.objects.get(batch=batch).total == 4
    page = client_for(alice).get(response["Location"]).content.decode()
    assert "could not be stored" in page


def test_a_write_that_fails_half_way_is_removed_and_only_its_file_is_rejected(
    client_for, alice, clinic_a, vgg16_model, settings, tmp_path
):
    from django.core.files.storage import default_storage

    from portal.cases.models import Batch, Scan

    files = [jpeg(f"h{i}.jpg", seed=400 + i, size=(200, 200)) for i in range(4)]
    failing = _sha(files[1])
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "tests.portal.storages.OneWriteFailsStorage",
            "OPTIONS": {"location": str(tmp_path), "fail_marker": failing},
        },
    }
    case = make_case(clinic_a, alice)
    assert upload(client_for(alice), case, files).status_code == 302
    assert default_storage.partial, "the storage never wrote the failing file"
    batch = Batch.objects.get(case=case)
    assert (batch.accepted_count, batch.rejected_count) == (3, 1)
    assert batch.scans.get(original_name="h1.jpg").status == Scan.Status.REJECTED
    on_disk = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(f"{s.sha256}.jpg" for s in batch.scans.filter(status=Scan.Status.ACCEPTED))
    assert f"{failing}.jpg" not in on_disk  # the half-written file is gone


def test_an_s3_server_that_refuses_every_write_records_nothing_and_answers_503(
    s3_server, client_for, alice, clinic_a, vgg16_model, settings
):
    from portal.cases.models import Batch, Scan
    from portal.storage_config import build_storages

    settings.STORAGES = build_storages(
        media_root=settings.MEDIA_ROOT, model_root=settings.MODEL_ROOT, debug=False,
        s3=s3_server.settings_kwargs(secret_key="not-the-secret"),
    )
    case = make_case(clinic_a, alice)
    response = upload(client_for(alice), case, [jpeg("w1.jpg", seed=501), jpeg("w2.jpg", seed=502)])
    assert response.status_code == 503
    assert "could not be stored" in response.content.decode()
    assert not Scan.objects.exists() and not Batch.objects.exists()
    assert _keys(s3_server, f"media/scans/{clinic_a.pk}/{case.pk}/") == set()
