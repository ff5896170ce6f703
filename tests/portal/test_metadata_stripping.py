"""Stored and served scans carry no metadata that could name a patient (EXIF, XMP, ICC,
comments, PNG text chunks), and their pixels are exactly the uploaded ones."""

import io
import zlib

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.portal.helpers import make_case, upload

pytestmark = pytest.mark.django_db

PATIENT = "Jane Doe 1961-04-12"


def _pixels(data):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _random_image(mode="RGB", seed=0):
    from PIL import Image

    array = np.random.default_rng(seed).integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
    return Image.fromarray(array, "RGB").convert(mode)


def jpeg_with_patient_metadata(orientation=None):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010E] = PATIENT  # ImageDescription
    exif.get_ifd(0x8769)[0x9286] = b"ASCII\x00\x00\x00" + PATIENT.encode()  # UserComment
    if orientation:
        exif[0x0112] = orientation
    xmp = f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:creator>{PATIENT}</dc:creator></x:xmpmeta>'
    out = io.BytesIO()
    _random_image().save(
        out, "JPEG", quality=90, exif=exif.tobytes(), comment=PATIENT.encode(),
        icc_profile=b"desc" + PATIENT.encode() * 4, xmp=xmp.encode(),
    )
    return out.getvalue()


def png_with_text_chunks(mode="RGB"):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", PATIENT)  # tEXt
    info.add_text("Birth", PATIENT, zip=True)  # zTXt
    info.add_itxt("Comment", PATIENT, lang="en", tkey="Comment")  # iTXt
    out = io.BytesIO()
    _random_image(mode, seed=1).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def _served(client, scan):
    response = client.get(reverse("cases:scan_image", kwargs={"scan_id": scan.pk}))
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def _metadata_text(data):
    """Everything Pillow reports as metadata, plus the raw text of any compressed chunk."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        found = [repr(image.info), repr(dict(image.getexif())), repr(image.getexif().get_ifd(0x8769))]
        found += [repr(getattr(image, "text", {}))]
    return " ".join(found)


def _upload_one(client_for, alice, clinic_a, name, data, content_type):
    from portal.cases.models import Scan

    case = make_case(clinic_a, alice, ref=f"P-{name}")
    upload(client_for(alice), case, [SimpleUploadedFile(name, data, content_type)])
    return Scan.objects.get(case=case)


def test_jpeg_exif_text_is_not_stored_or_served_and_pixels_are_unchanged(client_for, alice, clinic_a, vgg16_model):
    original = jpeg_with_patient_metadata()
    assert PATIENT.encode() in original and "Jane Doe" in _metadata_text(original)
    scan = _upload_one(client_for, alice, clinic_a, "exif.jpg", original, "image/jpeg")
    served = _served(client_for(alice), scan)
    assert PATIENT.encode() not in served and b"Jane" not in served
    assert "Jane" not in _metadata_text(served)
    with scan.file.open("rb") as handle:
        assert b"Jane" not in handle.read()
    assert np.array_equal(_pixels(served), _pixels(original))
    import hashlib

    assert scan.sha256 == hashlib.sha256(original).hexdigest()  # duplicates still found by it


def test_jpeg_orientation_alone_is_kept(client_for, alice, clinic_a, vgg16_model):
    from PIL import Image

    original = jpeg_with_patient_metadata(orientation=6)
    scan = _upload_one(client_for, alice, clinic_a, "rotated.jpg", original, "image/jpeg")
    served = _served(client_for(alice), scan)
    with Image.open(io.BytesIO(served)) as image:
        assert dict(image.getexif()) == {0x0112: 6}
    assert np.array_equal(_pixels(served), _pixels(original))


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA"])
def test_png_text_chunks_are_not_stored_or_served_and_pixels_are_unchanged(client_for, alice, clinic_a, vgg16_model,
                                                                            mode):
    from PIL import Image

    original = png_with_text_chunks(mode)
    assert {b"tEXt", b"zTXt", b"iTXt"} <= {original[i:i + 4] for i in range(len(original) - 4)}
    scan = _upload_one(client_for, alice, clinic_a, f"text-{mode}.png", original, "image/png")
    served = _served(client_for(alice), scan)
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"Jane"):
        assert chunk not in served
    assert "Jane" not in _metadata_text(served)
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(served)) as after:
        assert after.mode == before.mode
        assert np.array_equal(np.asarray(after), np.asarray(before))
    assert zlib.crc32(served) != zlib.crc32(original)


def test_the_same_file_uploaded_again_is_still_a_duplicate(client_for, alice, clinic_a, vgg16_model):
    from portal.cases.models import Scan

    original = jpeg_with_patient_metadata()
    case = make_case(clinic_a, alice)
    for _ in range(2):
        upload(client_for(alice), case, [SimpleUploadedFile("same.jpg", original, "image/jpeg")])
    assert sorted(Scan.objects.filter(case=case).values_list("status", flat=True)) == ["accepted", "duplicate"]
