"""Files from outside the training set's sources (a fuzzing pass found each): structures that
would make decoding slow out of proportion to the pixels are refused before decoding, with
a reason; 16-bit exports and colour-key transparency come out as a viewer shows them; the
stored copy (metadata stripped) decodes in the orientation the upload was checked in."""

import io
import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ml.intake import ImageRejected, IntakeLimits, decode_image
from ml.metadata import strip_metadata

FORMAT_ONLY = IntakeLimits(min_side=None, max_aspect=None, content_checks=False)


def jpeg(img, **kw):
    out = io.BytesIO()
    img.save(out, "JPEG", **kw)
    return out.getvalue()


def png(img, **kw):
    out = io.BytesIO()
    img.save(out, "PNG", **kw)
    return out.getvalue()


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def scan_bomb(side, repeats):
    """A progressive JPEG whose small refinement scans are repeated: each scan is a pass
    over every pixel, so decoding time grows with the repeats, not with the file."""
    data = jpeg(Image.new("L", (side, side)), progressive=True, quality=50)
    marks = [m.start() for m in re.finditer(rb"\xff[\xc4\xda\xd9]", data)]
    small = b"".join(p for p in (data[a:b] for a, b in zip(marks[:-1], marks[1:], strict=True)) if len(p) < 1000)
    return data[:-2] + small * repeats + b"\xff\xd9"


def test_a_progressive_jpeg_of_too_many_scans_is_refused_before_decoding():
    bomb = scan_bomb(2000, 300)  # 0.3 MB; at 7000 px such a file took minutes to decode
    with pytest.raises(ImageRejected, match="progressive scans .* too many to decode"):
        decode_image(bomb, FORMAT_ONLY)  # (decoded, it would pass: no content checks here)
    ordinary = jpeg(Image.effect_noise((800, 800), 40).convert("L"), progressive=True)
    assert decode_image(ordinary, FORMAT_ONLY).image.size == (800, 800)


def test_millions_of_tiny_segments_chunks_or_megabytes_of_metadata_are_refused(make_brain):
    base = jpeg(make_brain())
    with pytest.raises(ImageRejected, match=r"the JPEG has \d{4} segments"):
        decode_image(base[:2] + b"\xff\xfe\x00\x02" * 2999 + base[2:])
    app = b"\xff\xe2" + struct.pack(">H", 65535) + b"\0" * 65533
    with pytest.raises(ImageRejected, match="MB of metadata beside its image"):
        decode_image(base[:2] + app * 70 + base[2:])  # 4.4 MB of APP2 (an ICC profile's home)
    image = png(make_brain())
    private = png_chunk(b"zzZz", b"")
    with pytest.raises(ImageRejected, match=r"the PNG has 2500\d chunks"):
        decode_image(image[:33] + private * 25_000 + image[33:])
    assert decode_image(image[:33] + private * 50 + image[33:]).format == "PNG"  # a few are harmless


@pytest.mark.parametrize("sof, precision, words", [(0xC1, 12, "12-bit JPEG"), (0xC3, 8, "lossless JPEG")])
def test_jpeg_variants_that_cannot_be_read_say_so(make_brain, sof, precision, words):
    data = bytearray(jpeg(make_brain()))
    at = data.index(b"\xff\xc0")
    data[at + 1], data[at + 4] = sof, precision
    with pytest.raises(ImageRejected) as rejected:
        decode_image(bytes(data))
    assert words in rejected.value.reason and "upload the DICOM file" in rejected.value.reason


def test_a_damaged_png_end_chunk_is_refused(make_brain):
    data = png(make_brain())
    with pytest.raises(ImageRejected, match="corrupt"):
        decode_image(data[:-4] + b"\0\0\0\0")


def test_a_12_bit_scan_in_a_16_bit_png_is_stretched_not_crushed():
    """Raw scanner values (0..4095) divided by 257 gave a nearly black image that the model
    still scored, and 0..1000 was refused as "blank"."""
    rng = np.random.default_rng(0)
    scan = np.zeros((256, 256))
    scan[48:208, 64:192] = rng.uniform(0.3, 1, (160, 128))
    for top in (4095, 1000):
        decoded = decode_image(png(Image.fromarray((scan * top).astype(np.uint16))))
        grey = np.asarray(decoded.image)[..., 0]
        assert grey.max() == 255 and grey.min() == 0
    full = np.arange(65536, dtype=np.uint32).reshape(256, 256).astype(np.uint16)
    out = np.asarray(decode_image(png(Image.fromarray(full)), FORMAT_ONLY).image)[..., 0].reshape(-1)
    assert np.array_equal(out, np.rint(np.arange(65536) / 257.0).astype(np.uint8))  # full range: as before
    flat = np.asarray(decode_image(png(Image.fromarray(np.full((8, 8), 30000, np.uint16))), FORMAT_ONLY).image)
    assert flat.min() == flat.max() == 117  # one value keeps its shade (30000 / 257)


def test_an_rgb_png_with_a_transparent_colour_key_is_composited_on_black():
    arr = np.full((64, 64, 3), 255, np.uint8)
    arr[16:48, 16:48] = (90, 90, 90)
    out = np.asarray(decode_image(png(Image.fromarray(arr), transparency=(255, 255, 255)), FORMAT_ONLY).image)
    assert out[0, 0].tolist() == [0, 0, 0] and out[32, 32].tolist() == [90, 90, 90]


def _oriented_cases():
    img = Image.new("L", (200, 256), 40)
    img.paste(220, (0, 0, 100, 60))
    exif6 = Image.Exif()
    exif6[0x0112] = 6
    exif1 = Image.Exif()
    exif1[0x0112] = 1
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    xmp_segment = b"\xff\xe1" + struct.pack(">H", len(xmp) + 31) + b"http://ns.adobe.com/xap/1.0/\x00" + xmp
    plain = jpeg(img, quality=95)
    second = b"\xff\xe1" + struct.pack(">H", len(exif6.tobytes()) + 2) + exif6.tobytes()
    return {
        "png eXIf 6": (png(img, exif=exif6.tobytes()), "PNG"),
        "jpeg xmp only": (plain[:2] + xmp_segment + plain[2:], "JPEG"),
        "jpeg exif 1 then 6": (jpeg(img, quality=95, exif=exif1.tobytes())[:2] + second
                               + jpeg(img, quality=95, exif=exif1.tobytes())[2:], "JPEG"),
        "jpeg exif 6": (jpeg(img, quality=95, exif=exif6.tobytes()), "JPEG"),
    }


@pytest.mark.parametrize("name", list(_oriented_cases()))
def test_the_stored_copy_decodes_in_the_orientation_the_upload_was_checked_in(name):
    data, fmt = _oriented_cases()[name]
    uploaded = decode_image(data, FORMAT_ONLY)
    stored = decode_image(strip_metadata(data, fmt, uploaded.orientation), FORMAT_ONLY)
    assert stored.image.size == uploaded.image.size
    assert np.array_equal(np.asarray(stored.image), np.asarray(uploaded.image))
