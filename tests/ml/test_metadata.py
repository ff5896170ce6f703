"""ml.metadata: metadata removed at the byte level, pixels untouched, for the JPEG and PNG
variants scanners and exports produce."""

import io

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from ml.metadata import MetadataError, strip_jpeg, strip_png

SECRET = b"Jane Doe 1961-04-12"


def _image(seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 56, 3), dtype=np.uint8), "RGB")


def _pixels(data):
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image)


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"subsampling": 0}, {"restart_marker_blocks": 1}])
def test_jpeg_comments_exif_and_trailers_go_pixels_stay(options):
    exif = Image.Exif()
    exif[0x010E] = SECRET.decode()
    out = io.BytesIO()
    _image().save(out, "JPEG", comment=SECRET, exif=exif.tobytes(), icc_profile=SECRET * 3, **options)
    original = out.getvalue() + b"appended " + SECRET  # data after EOI
    stripped = strip_jpeg(original)
    assert SECRET not in stripped and b"ICC_PROFILE" not in stripped
    assert stripped.endswith(b"\xff\xd9")
    assert np.array_equal(_pixels(stripped), _pixels(original))


def test_cmyk_jpeg_keeps_its_adobe_block_and_colours():
    out = io.BytesIO()
    _image().convert("CMYK").save(out, "JPEG", comment=SECRET)
    original = out.getvalue()
    stripped = strip_jpeg(original)
    assert SECRET not in stripped
    assert np.array_equal(_pixels(stripped), _pixels(original))


def test_sixteen_bit_png_is_copied_not_re_encoded():
    array = (np.random.default_rng(1).integers(0, 65535, (30, 20))).astype(np.uint16)
    info = PngImagePlugin.PngInfo()
    info.add_text("Patient", SECRET.decode())
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG", pnginfo=info)
    original = out.getvalue()
    stripped = strip_png(original)
    assert SECRET not in stripped
    assert np.array_equal(_pixels(stripped), _pixels(original))


def test_malformed_structures_are_refused():
    with pytest.raises(MetadataError):
        strip_jpeg(b"\xff\xd8\xff\xe1\x00")
    with pytest.raises(MetadataError):
        strip_png(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
