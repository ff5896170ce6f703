"""Intake plausibility (issue 10, layer 1) and shape limits (issue 9): files no clinician
would send are refused before the worker sees them, each with a plain reason."""
import io

import numpy as np
import pytest
from PIL import Image

from ml.intake import ImageRejected, IntakeLimits, decode_image, working_bytes


def _png(width, height, fill=0, mode="L"):
    buf = io.BytesIO()
    Image.new(mode, (width, height), fill).save(buf, format="PNG")
    return buf.getvalue()


def _strip(width, height):
    """A grey strip with some structure (rows of a gradient): only its shape is wrong."""
    arr = np.tile((np.arange(width, dtype=np.uint16) * 255 // max(1, width - 1)).astype(np.uint8), (height, 1))
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="PNG")
    return buf.getvalue()


DEFAULT_LIMITS = IntakeLimits()


def _reason(data, limits=DEFAULT_LIMITS):
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, limits)
    return str(caught.value)


@pytest.mark.parametrize("data,expected", [
    (_png(1, 1, 128), "image is 1 × 1 pixels, too small to hold a brain scan; each side needs at least 64 pixels"),
    (_png(8, 8, 128), "image is 8 × 8 pixels, too small to hold a brain scan; each side needs at least 64 pixels"),
    (_png(256, 256, 0), "image is blank (all black); there is no scan in it"),
    (_png(256, 256, 255), "image is blank (all white); there is no scan in it"),
    (_png(256, 256, (128, 128, 128), "RGB"), "image is blank (one uniform shade); there is no scan in it"),
    (_strip(20, 5000), "image is 20 × 5000 pixels: its longer side is 250 times its shorter side, "
                       "a brain scan's at most 4 times"),
    (_strip(5000, 20), "image is 5000 × 20 pixels: its longer side is 250 times its shorter side, "
                       "a brain scan's at most 4 times"),
], ids=["1x1", "8x8", "black", "white", "grey", "20x5000", "5000x20"])
def test_implausible_images_are_refused_with_their_reason(data, expected):
    assert _reason(data) == expected


def test_a_nearly_uniform_jpeg_is_blank_despite_compression_noise():
    rng = np.random.default_rng(0)
    arr = np.clip(90 + rng.normal(0, 1.0, (200, 200)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="JPEG", quality=75)
    assert _reason(buf.getvalue()) == "image is blank (one uniform shade); there is no scan in it"


def test_a_dot_on_a_blank_page_has_too_little_structure():
    arr = np.zeros((300, 300), np.uint8)
    arr[140:160, 140:160] = 255  # 0.4% of the image
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="PNG")
    assert "too little structure for a brain scan" in _reason(buf.getvalue())


@pytest.mark.parametrize("size", [(64, 64), (120, 100), (512, 512), (256, 64), (180, 300)])
def test_mri_like_images_are_accepted(make_brain, enc, size):
    for fmt in ("JPEG", "PNG"):
        decoded = decode_image(enc(make_brain(size=size, tumor=True, seed=1), fmt))
        assert (decoded.width, decoded.height) == size


def test_shape_limits_are_inclusive_and_can_be_set(make_brain, enc):
    assert decode_image(enc(make_brain(size=(256, 64)), "PNG")).width == 256  # exactly 4:1
    assert "longer side is 4.1 times" in _reason(enc(make_brain(size=(263, 64)), "PNG"))
    assert "each side needs at least 64 pixels" in _reason(enc(make_brain(size=(100, 63)), "PNG"))
    small = IntakeLimits(min_side=32, max_aspect=5.0)
    assert decode_image(enc(make_brain(size=(160, 32)), "PNG"), small).width == 160
    assert "each side needs at least 32 pixels" in _reason(enc(make_brain(size=(100, 31)), "PNG"), small)


def _png_header_only(width, height):
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def test_working_size_over_the_budget_is_refused_before_decoding():
    limits = IntakeLimits(max_pixels=10**12, work_budget_bytes=256 * 1024 * 1024)
    reason = _reason(_png_header_only(9000, 9000), limits)  # a 1 KB file
    assert reason == "image of 9000 × 9000 pixels would need about 935 MB of memory to process; the limit is 256 MB"


def test_working_size_grows_with_the_pixels_not_with_the_long_side():
    assert working_bytes(20, 100_000, "L") == working_bytes(2_000, 1_000, "L")
    assert working_bytes(4000, 4000, "RGBA") > working_bytes(4000, 4000, "RGB")
