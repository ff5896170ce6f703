"""PNG integrity: every chunk's CRC is checked, and an oversized text chunk is refused for
that reason, not as corruption."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ml.intake import ImageRejected, decode_image


def _png():
    array = np.random.default_rng(0).integers(0, 255, size=(80, 100, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(array, "RGB").save(out, "PNG")
    return out.getvalue()


def _chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _after_ihdr(data, chunk):
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    return data[:end_of_ihdr] + chunk + data[end_of_ihdr:]


def _with_bad_crc(data, kind):
    data = bytearray(data)
    at = data.find(kind)
    (length,) = struct.unpack(">I", data[at - 4:at])
    data[at + 4 + length] ^= 0xFF  # first byte of the chunk's CRC
    return bytes(data)


@pytest.mark.parametrize("kind", [b"IDAT", b"IHDR"])
def test_a_png_with_a_wrong_crc_is_refused(kind):
    assert decode_image(_png()).width == 100
    with pytest.raises(ImageRejected, match="corrupt"):
        decode_image(_with_bad_crc(_png(), kind))


def test_a_wrong_crc_in_a_text_chunk_is_refused_too():
    data = _after_ihdr(_png(), _chunk(b"tEXt", b"Comment\x00hello"))
    assert decode_image(data).width == 100
    with pytest.raises(ImageRejected, match="corrupt"):
        decode_image(_with_bad_crc(data, b"tEXt"))


def test_a_png_with_a_100_mb_text_chunk_is_refused_as_such():
    bomb = _chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (100 * 1024 * 1024), 9))
    assert len(bomb) < 200_000
    with pytest.raises(ImageRejected) as refused:
        decode_image(_after_ihdr(_png(), bomb))
    assert refused.value.reason == "a PNG text chunk or colour profile is too large"
