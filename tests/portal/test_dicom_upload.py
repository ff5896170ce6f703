"""DICOM intake through the upload page: de-identified before storage, zips read safely,
two patients never mixed, the scan page and image views work for DICOM."""

import io
import zipfile

import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.fixtures.dicom import bundled, make_mr_dicom, make_zip, mutated_mr_dicom, nest_sequences
from tests.portal.helpers import jpeg, make_case, upload

pytestmark = pytest.mark.django_db

IDENTIFYING = {
    "PatientName": "Doe^Jane", "PatientID": "PID-12345", "PatientBirthDate": "19700101",
    "InstitutionName": "St Example Hospital", "InstitutionAddress": "1 Hospital Road, Exampletown",
    "ReferringPhysicianName": "Who^Doctor", "AccessionNumber": "ACC-777", "StudyID": "STUDY-1",
    "DeviceSerialNumber": "SN-0042", "StationName": "MRI-NORTH", "SeriesDescription": "T1 AX POST",
}
STUDY_UID = "1.3.6.1.4.1.99999.7.1"


@pytest.fixture
def case(clinic_a, alice):
    return make_case(clinic_a, alice)


def dcm(name, **kwargs):
    return SimpleUploadedFile(name, make_mr_dicom(**kwargs), "application/dicom")


def stored(scan):
    with scan.file.open("rb") as handle:
        data = handle.read()
    return data, pydicom.dcmread(io.BytesIO(data))


def test_stored_dicom_is_deidentified_by_the_basic_profile(client_for, alice, case, vgg16_model):
    from portal.cases.models import Scan

    response = upload(client_for(alice), case, [dcm("IM0001", instance=1), dcm("IM0002", instance=2, seed=1)])
    assert response.status_code == 302
    scans = list(Scan.objects.filter(case=case, status="accepted").order_by("position"))
    assert [scan.format for scan in scans] == ["DICOM", "DICOM"]
    study_uids = set()
    for scan in scans:
        data, ds = stored(scan)
        assert scan.file.name.endswith(".dcm")
        for keyword, original in IDENTIFYING.items():
            assert str(ds.get(keyword, "")) != original, keyword
            assert original.encode() not in data, keyword
        assert b"PID-12345" not in data and b"Doe^Jane" not in data and b"St Example" not in data
        assert ds.get("PatientBirthDate", "") == ""
        assert not [element for element in ds if element.tag.is_private]
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.StudyInstanceUID != STUDY_UID and STUDY_UID.encode() not in data
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        study_uids.add(ds.StudyInstanceUID)
        assert ds.Modality == "MR" and ds.Rows == 64  # the image itself is kept
    assert len(study_uids) == 1  # two files of one study keep one pseudonymous study UID


def test_one_study_keeps_one_pseudonym_across_uploads(client_for, alice, case, vgg16_model):
    from portal.cases.models import Scan

    client = client_for(alice)
    upload(client, case, [dcm("IM0001", instance=1)])
    upload(client, case, [dcm("IM0002", instance=2, seed=1)])
    uids = {stored(scan)[1].StudyInstanceUID for scan in Scan.objects.filter(case=case, status="accepted")}
    assert len(uids) == 1


def test_scan_page_shows_series_plane_and_slice_and_images_render_as_png(client_for, alice, case, vgg16_model):
    from PIL import Image

    from portal.cases.models import Scan

    client = client_for(alice)
    upload(client, case, [dcm("IM0001")])
    scan = Scan.objects.get(case=case)
    page = client.get(f"/scans/{scan.pk}/").content.decode()
    assert "T1 AX POST" in page and "axial" in page and "12.5 mm" in page
    image = client.get(f"/scans/{scan.pk}/image/")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    served = b"".join(image.streaming_content if image.streaming else [image.content])
    assert Image.open(io.BytesIO(served)).size == (64, 64)
    thumb = client.get(f"/scans/{scan.pk}/thumbnail/")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"


def test_ct_and_burned_in_annotation_are_refused_with_their_reason(client_for, alice, case, vgg16_model):
    from portal.cases.models import Scan

    files = [
        SimpleUploadedFile("ct.dcm", bundled("CT_small.dcm")),
        dcm("burned.dcm", burned_in="YES"),
    ]
    upload(client_for(alice), case, files)
    scans = {scan.original_name: scan for scan in Scan.objects.filter(case=case)}
    assert scans["ct.dcm"].status == "rejected"
    assert "CT images are not supported: the model reads MRI" in scans["ct.dcm"].rejection_reason
    assert scans["burned.dcm"].status == "rejected" and "burned-in annotation" in scans["burned.dcm"].rejection_reason
    assert not any(scan.file for scan in scans.values())


def test_multi_frame_object_gives_one_scan_per_frame(client_for, alice, case, vgg16_model, settings):
    from portal.cases.models import Scan

    upload(client_for(alice), case, [dcm("cine.dcm", frames=3)])
    scans = list(Scan.objects.filter(case=case, status="accepted").order_by("position"))
    assert [scan.original_name for scan in scans] == [f"cine.dcm [frame {i}]" for i in (1, 2, 3)]
    assert len({scan.sha256 for scan in scans}) == 3
    settings.DICOM_MAX_FRAMES = 2
    upload(client_for(alice), case, [dcm("long.dcm", frames=3, seed=4)])
    refused = Scan.objects.get(original_name="long.dcm")
    assert refused.status == "rejected" and "3 frames; the limit is 2" in refused.rejection_reason


def test_zip_of_a_series_is_accepted(client_for, alice, case, vgg16_model):
    from portal.cases.models import Batch

    archive = make_zip([(f"series/IM{i:04d}", make_mr_dicom(instance=i, seed=i)) for i in range(1, 5)])
    upload(client_for(alice), case, [SimpleUploadedFile("series.bin", archive)])  # judged by content
    batch = Batch.objects.get(case=case)
    assert (batch.files_received, batch.accepted_count, batch.rejected_count) == (4, 4, 0)
    names = sorted(batch.scans.values_list("original_name", flat=True))
    assert names[0] == "series.bin/series/IM0001"


def _refused_zip(client, case, name, archive):
    from portal.cases.models import Scan

    upload(client, case, [SimpleUploadedFile(name, archive)])
    scan = Scan.objects.get(case=case, original_name=name)
    assert scan.status == "rejected" and not scan.file
    assert Scan.objects.filter(case=case, status="accepted").count() == 0
    return scan.rejection_reason


def test_zip_with_a_path_outside_the_archive_is_refused(client_for, alice, case, vgg16_model):
    archive = make_zip([("ok/IM1", make_mr_dicom()), ("../../etc/IM2", make_mr_dicom(seed=2))])
    assert "points outside the archive" in _refused_zip(client_for(alice), case, "evil.zip", archive)


def test_nested_zip_is_refused(client_for, alice, case, vgg16_model):
    inner = make_zip([("IM1", make_mr_dicom())])
    archive = make_zip([("IM2", make_mr_dicom(seed=2)), ("inner.dat", inner)])
    assert "archive inside the archive" in _refused_zip(client_for(alice), case, "nested.zip", archive)


def test_zip_bomb_is_refused_by_ratio(client_for, alice, case, vgg16_model):
    archive = make_zip([("IM1", b"\0" * (8 * 1024 * 1024))])
    assert "zip bomb" in _refused_zip(client_for(alice), case, "bomb.zip", archive)


def test_second_patient_in_an_existing_case_is_refused(client_for, alice, case, vgg16_model):
    from portal.cases.models import Case, Scan

    client = client_for(alice)
    upload(client, case, [dcm("IM0001")])
    case.refresh_from_db()
    assert len(case.dicom_patient_hash) == 64 and "PID-12345" not in case.dicom_patient_hash
    upload(client, case, [dcm("other", patient_id="PID-99999", patient_name="Roe^Richard", seed=3)])
    upload(client, case, [dcm("same", instance=2, seed=4)])
    other, same = Scan.objects.get(original_name="other"), Scan.objects.get(original_name="same")
    assert other.status == "rejected" and not other.file
    assert "belongs to a different patient than this case" in other.rejection_reason
    assert same.status == "accepted"
    assert Case.objects.get(pk=case.pk).dicom_patient_hash == case.dicom_patient_hash


def test_upload_mixing_two_patients_is_refused_whole(client_for, alice, case, vgg16_model, settings):
    from portal.cases.models import Batch, Case

    files = [dcm(f"a{i}", instance=i, seed=i) for i in range(3)]
    files.append(dcm("b0", patient_id="PID-99999", patient_name="Roe^Richard", seed=9))
    files.append(jpeg("plain.jpg"))
    media = settings.MEDIA_ROOT / "scans" / str(case.clinic_id)
    response = upload(client_for(alice), case, files)
    assert response.status_code == 400
    page = response.content.decode()
    assert "2 different patients (3 and 1 files" in page and "refused as a whole" in page
    assert not Batch.objects.filter(case=case).exists()
    assert Case.objects.get(pk=case.pk).dicom_patient_hash == ""
    assert not media.exists() or not any(path.is_file() for path in media.rglob("*"))


def _nothing_recorded(case, settings):
    from portal.cases.models import Batch

    media = settings.MEDIA_ROOT / "scans" / str(case.clinic_id)
    assert not Batch.objects.filter(case=case).exists()
    assert not media.exists() or not any(path.is_file() for path in media.rglob("*"))


def _series_zip(name, series, count):
    entries = [(f"IM{i}", make_mr_dicom(instance=i, seed=100 * series + i)) for i in range(count)]
    return SimpleUploadedFile(name, make_zip(entries))


def test_scans_of_several_zips_count_together_against_one_uploads_limit(client_for, alice, case, vgg16_model,
                                                                          settings):
    """Each zip may hold UPLOAD_MAX_FILES entries; an upload of many zips is still one upload."""
    from portal.cases.models import Batch

    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 8
    response = upload(client_for(alice), case, [_series_zip(f"s{k}.zip", k, 3) for k in range(3)])  # 9 scans
    assert response.status_code == 400
    assert "more than 8 scans once its archives are unpacked" in response.content.decode()
    _nothing_recorded(case, settings)
    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 9  # exactly the limit: taken
    assert upload(client_for(alice), case, [_series_zip(f"s{k}.zip", k, 3) for k in range(3)]).status_code == 302
    assert Batch.objects.get(case=case).accepted_count == 9


def test_frames_count_as_scans_before_they_are_decoded(client_for, alice, case, vgg16_model, settings):
    settings.UPLOAD_MAX_FILES = settings.DATA_UPLOAD_MAX_NUMBER_FILES = 5
    files = [dcm(f"cine{k}.dcm", frames=3, seed=k) for k in range(2)]  # 2 files, 6 scans
    response = upload(client_for(alice), case, files)
    assert response.status_code == 400 and "more than 5 scans" in response.content.decode()
    _nothing_recorded(case, settings)


def test_dicom_bytes_of_one_upload_are_bounded_across_its_zips(client_for, alice, case, vgg16_model, settings):
    """What an upload keeps in memory until it is stored (its de-identified DICOM) is bounded
    as a whole, not per zip: two zips that each fit refuse the upload together."""
    from portal.cases.models import Batch

    settings.DICOM_ZIP_MAX_BYTES = 5 * len(make_mr_dicom())  # each zip of 3 fits; 6 scans do not
    response = upload(client_for(alice), case, [_series_zip(f"s{k}.zip", k, 3) for k in range(2)])
    assert response.status_code == 400
    assert "DICOM data comes to more than 45.0 KB once unpacked" in response.content.decode()
    _nothing_recorded(case, settings)
    assert upload(client_for(alice), case, [_series_zip("s0.zip", 0, 3)]).status_code == 302
    assert Batch.objects.get(case=case).accepted_count == 3


def test_same_patient_in_two_clinics_gets_unrelated_hashes(clinic_a, clinic_b, alice, mallory):
    from portal.cases.deidentify import PatientIdentity

    ds = pydicom.dcmread(io.BytesIO(make_mr_dicom()))
    assert PatientIdentity.of(ds, clinic_a.pk) != PatientIdentity.of(ds, clinic_b.pk)


def test_zip_entry_names_cannot_escape(tmp_path):
    from portal.cases.archives import ArchiveLimits, ArchiveRefused, unpack

    limits = ArchiveLimits(max_entries=10, max_entry_bytes=1 << 20, max_total_bytes=1 << 22, max_ratio=100)
    for name in ("/abs/IM1", "a/../../IM1", "C:/IM1", "a\\..\\IM1"):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as archive:
            archive.writestr(zipfile.ZipInfo(name), b"x")
        with pytest.raises(ArchiveRefused):
            unpack(out.getvalue(), limits)


def test_the_same_dicom_sent_again_is_a_duplicate_not_a_second_scan(client_for, alice, case, vgg16_model):
    from portal.cases.models import Scan

    client = client_for(alice)
    upload(client, case, [dcm("IM0001")])
    upload(client, case, [dcm("IM0001-again")])
    again = Scan.objects.get(original_name="IM0001-again")
    assert again.status == "duplicate" and not again.file
    assert Scan.objects.filter(case=case, status="accepted").count() == 1


def test_a_patient_name_too_long_for_its_vr_is_not_stored(client_for, alice, case, vgg16_model):
    """A name of 64 KB or more is written as UN (explicit VR cannot hold it as PN); the
    anonymiser skipped it and the stored file kept the name (found by fuzzing)."""
    from portal.cases.models import Scan

    name = "Leakcheck^Zelda^" + "A" * 65519
    response = upload(client_for(alice), case, [dcm("long-name.dcm", patient_name=name)])
    assert response.status_code == 302
    scan = Scan.objects.get(case=case)
    assert scan.status == "accepted"
    data, ds = stored(scan)
    assert b"Leakcheck" not in data and "Leakcheck" not in str(ds.get("PatientName", ""))


def test_hostile_dicom_files_are_refused_one_by_one_never_a_server_error(client_for, alice, case, vgg16_model):
    """Each of these raised out of the intake, a 500 for the whole upload (found by fuzzing)."""
    from portal.cases.models import Batch

    files = [
        SimpleUploadedFile("deep.dcm", mutated_mr_dicom(lambda ds: nest_sequences(ds, 120), frames=2, seed=1)),
        SimpleUploadedFile("excess.dcm", mutated_mr_dicom(lambda ds: setattr(ds, "PixelData", ds.PixelData * 3),
                                                          frames=2, seed=2, instance=2)),
        SimpleUploadedFile("iop.dcm", mutated_mr_dicom(lambda ds: setattr(ds, "ImageOrientationPatient", [1, 0]),
                                                       seed=3, instance=3)),
    ]
    response = upload(client_for(alice), case, files)
    assert response.status_code == 302
    scans = {scan.original_name: scan for scan in Batch.objects.get(case=case).scans.all()}
    assert "nests sequences more than 16 levels deep" in scans["deep.dcm"].rejection_reason
    assert [scans[f"excess.dcm [frame {i}]"].status for i in (1, 2)] == ["accepted", "accepted"]
    assert len(scans) == 4 and scans["iop.dcm"].status == "accepted" and scans["iop.dcm"].plane == ""
