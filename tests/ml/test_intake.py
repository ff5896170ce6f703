import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ml.intake import DecodedImage, ImageRejected, IntakeLimits, decode_image

# The conversion tests use tiny or flat images; only the format is under test there.
FORMAT_ONLY = IntakeLimits(min_side=None, max_aspect=None, content_checks=False)


def test_rgb_jpeg_and_png(make_brain, enc):
    img = make_brain(mode="RGB")
    for fmt in ("JPEG", "PNG"):
        d = decode_image(enc(img, fmt))
        assert isinstance(d, DecodedImage)
        assert d.format == fmt and d.image.mode == "RGB"
        assert (d.width, d.height) == (120, 100) == d.image.size


def test_greyscale_jpeg(make_brain, enc):
    d = decode_image(enc(make_brain(mode="L"), "JPEG"))
    assert d.image.mode == "RGB" and d.format == "JPEG"
    a = np.asarray(d.image)
    assert np.array_equal(a[..., 0], a[..., 1])


def test_rgba_png_composited_on_black(enc):
    arr = np.zeros((10, 12, 4), np.uint8)
    arr[..., :3] = 200
    arr[:, :6, 3] = 0      # transparent left half
    arr[:, 6:, 3] = 255
    d = decode_image(enc(Image.fromarray(arr, "RGBA"), "PNG"), FORMAT_ONLY)
    out = np.asarray(d.image)
    assert d.image.mode == "RGB"
    assert out[:, :6].max() == 0 and out[:, 6:].min() == 200


def test_palette_png_with_and_without_transparency(make_brain, enc):
    p = make_brain(mode="RGB").convert("P", palette=Image.ADAPTIVE, colors=16)
    d = decode_image(enc(p, "PNG"))
    assert d.image.mode == "RGB" and d.image.size == (120, 100)
    p.info["transparency"] = 0
    d2 = decode_image(enc(p, "PNG", transparency=0))
    assert d2.image.mode == "RGB"


def test_la_png(enc):
    img = Image.new("LA", (8, 8), (180, 255))
    assert np.asarray(decode_image(enc(img, "PNG"), FORMAT_ONLY).image).min() == 180


def test_16bit_greyscale_png_scaled(enc):
    arr = np.full((6, 7), 65535, np.uint16)
    arr[:, :3] = 0
    img = Image.fromarray(arr)  # mode I;16
    assert img.mode.startswith("I;16")
    d = decode_image(enc(img, "PNG"), FORMAT_ONLY)
    out = np.asarray(d.image)
    assert d.image.mode == "RGB" and out.shape == (6, 7, 3)
    assert out[:, :3].max() == 0 and out[:, 3:].min() == 255


def test_png_named_jpg_is_sniffed_by_content(make_brain, enc, tmp_path):
    p = tmp_path / "scan.jpg"
    p.write_bytes(enc(make_brain(), "PNG"))
    assert decode_image(p.read_bytes()).format == "PNG"


def test_exif_orientation_applied(enc):
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 20, 20))  # left half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    d = decode_image(enc(img, "JPEG", exif=exif.tobytes(), quality=95), FORMAT_ONLY)
    assert d.image.size == (20, 40) and (d.width, d.height) == (20, 40)
    top = np.asarray(d.image)[2, 10]
    assert top[2] > 200 and top[0] < 60  # the blue half is now on top


@pytest.mark.parametrize("data,reason", [
    (b"", "empty file"),
    (b"GIF89a" + b"\0" * 40, "not a JPEG, PNG or DICOM image"),
    (b"hello, world, this is text", "not a JPEG, PNG or DICOM image"),
    (b"%PDF-1.4 ...", "not a JPEG, PNG or DICOM image"),
])
def test_not_an_image_rejected(data, reason):
    with pytest.raises(ImageRejected) as ei:
        decode_image(data)
    assert str(ei.value) == reason


def test_other_formats_rejected(make_brain, enc):
    for fmt in ("GIF", "BMP", "TIFF", "WEBP"):
        with pytest.raises(ImageRejected, match="not a JPEG, PNG or DICOM image"):
            decode_image(enc(make_brain(), fmt))


def test_truncated_rejected(make_brain, enc):
    for fmt in ("JPEG", "PNG"):
        data = enc(make_brain(), fmt)
        with pytest.raises(ImageRejected, match="truncated or corrupt image data"):
            decode_image(data[: len(data) // 2])


def test_garbage_after_magic_rejected():
    with pytest.raises(ImageRejected, match="truncated or corrupt image data"):
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(ImageRejected, match="truncated or corrupt image data"):
        decode_image(b"\xff\xd8\xff\xe0" + b"\x13" * 64)


def test_byte_limit(make_brain, enc):
    data = enc(make_brain(), "PNG")
    with pytest.raises(ImageRejected) as ei:
        decode_image(data, IntakeLimits(max_bytes=100))
    assert str(ei.value) == f"image is {len(data)} bytes; the limit is 100"


def _png_header_only(w, h):
    def chunk(t, body):
        return struct.pack(">I", len(body)) + t + body + struct.pack(">I", zlib.crc32(t + body) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    # A bomb: huge declared size, tiny compressed stream of zeros.
    raw = zlib.compress(b"\x00" * 1000, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_pixel_limit_decompression_bomb():
    with pytest.raises(ImageRejected) as ei:
        decode_image(_png_header_only(10000, 8000))
    assert str(ei.value) == "image is 80000000 pixels; the limit is 50000000"


def test_pixel_limit_custom(make_brain, enc):
    with pytest.raises(ImageRejected, match="image is 12000 pixels; the limit is 1000"):
        decode_image(enc(make_brain(), "JPEG"), IntakeLimits(max_pixels=1000))


def test_non_bytes_rejected():
    with pytest.raises(ImageRejected, match="must be bytes"):
        decode_image("a string")  # type: ignore[arg-type]


def test_16bit_samples_round_to_the_nearest_8bit_level(enc):
    """Every 16-bit level maps to round(v / 257), as before the integer conversion."""
    values = np.arange(65536, dtype=np.uint32)
    arr = values.reshape(256, 256).astype(np.uint16)
    d = decode_image(enc(Image.fromarray(arr), "PNG"), FORMAT_ONLY)
    out = np.asarray(d.image)[..., 0].reshape(-1)
    assert np.array_equal(out, np.rint(values / 257.0).astype(np.uint8))
