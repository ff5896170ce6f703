"""The structure of JPEG and PNG files, walked without decoding a pixel.

Two users: ``ml.metadata`` copies the segments and chunks it keeps, and ``ml.intake`` reads
the facts (:func:`jpeg_facts`, :func:`png_facts`) that make decoding slow or memory-hungry
out of all proportion to an image's pixels, so that it refuses such a file before decoding:
a progressive JPEG with thousands of scans (each scan is a pass over every pixel), millions
of tiny segments or chunks, megabytes of metadata. Walking is linear in the file's bytes.
"""
from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["StructureError", "JpegFacts", "PngFacts", "jpeg_segments", "png_chunks", "jpeg_facts", "png_facts"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Markers with no length field: TEM, RST0-7 (only inside scans), SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}
# PNG chunks that make up the image itself; every other chunk is metadata.
_PNG_IMAGE_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS"}


class StructureError(ValueError):
    """The bytes are not a well-formed JPEG or PNG structure."""


def jpeg_segments(data: bytes) -> Iterator[tuple[int | None, int, int]]:
    """``(marker, start, end)`` for each part after SOI, in order, up to and including EOI.
    ``data[start:end]`` is a segment's length field and payload (empty for a marker without
    one); ``marker`` is None for the entropy-coded data that follows a scan header."""
    if not data.startswith(b"\xff\xd8"):
        raise StructureError("not a JPEG")
    pos, end = 2, len(data)
    in_scan = False
    while pos < end:
        if in_scan:
            # Entropy-coded data runs to the next marker that is not a stuffed 0xFF00, a
            # restart marker or fill bytes.
            start = pos
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= end:
                    raise StructureError("JPEG ends inside image data")
                following = data[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    pos += 2
                elif following == 0xFF:
                    pos += 1
                else:
                    break
            yield None, start, pos
            in_scan = False
            continue
        if data[pos] != 0xFF:
            raise StructureError("JPEG marker expected")
        while pos < end and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            yield marker, pos, pos
            if marker == 0xD9:  # EOI: anything after it is not part of the image
                return
            continue
        if pos + 2 > end:
            raise StructureError("JPEG segment length missing")
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        if length < 2 or pos + length > end:
            raise StructureError("JPEG segment runs past the end")
        yield marker, pos, pos + length
        pos += length
        in_scan = marker == 0xDA
    raise StructureError("JPEG has no end-of-image marker")


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """``(type, start, end)`` of each chunk, ``data[start:end]`` being the whole chunk (length,
    type, data, CRC), up to and including IEND, whose CRC is checked here."""
    if not data.startswith(PNG_MAGIC):
        raise StructureError("not a PNG")
    pos, end = len(PNG_MAGIC), len(data)
    while pos + 12 <= end:
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunk_end = pos + 12 + length
        if chunk_end > end:
            raise StructureError("PNG chunk runs past the end")
        if kind == b"IEND" and struct.unpack(">I", data[chunk_end - 4:chunk_end])[0] != zlib.crc32(kind):
            raise StructureError("PNG end chunk damaged")
        yield kind, pos, chunk_end
        pos = chunk_end
        if kind == b"IEND":
            return
    raise StructureError("PNG has no IEND chunk")


@dataclass(frozen=True)
class JpegFacts:
    scans: int  # SOS segments: 1 for a baseline JPEG, about 10 for a progressive one
    segments: int  # marker segments, entropy-coded data aside
    metadata_bytes: int  # APPn and COM payloads: EXIF, XMP, ICC, comments, ...
    precision: int  # bits per sample of the first frame header (8 for what browsers show)
    lossless: bool  # a lossless (SOF3/7/11/15) frame
    pixels: int  # width x height of that frame header


@dataclass(frozen=True)
class PngFacts:
    chunks: int
    metadata_bytes: int  # every chunk but IHDR, PLTE, IDAT, tRNS and IEND


def jpeg_facts(data: bytes) -> JpegFacts:
    scans = segments = metadata = 0
    precision, lossless, pixels = 8, False, 0
    seen_frame = False
    for marker, start, end in jpeg_segments(data):
        if marker is None:
            continue
        segments += 1
        if marker == 0xDA:
            scans += 1
        elif 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata += end - start
        elif marker in _SOF and not seen_frame and end - start >= 7:
            seen_frame = True
            precision, lossless = data[start + 2], marker in _LOSSLESS_SOF
            height, width = struct.unpack(">HH", data[start + 3:start + 7])
            pixels = height * width
    return JpegFacts(scans, segments, metadata, precision, lossless, pixels)


def png_facts(data: bytes) -> PngFacts:
    chunks = metadata = 0
    for kind, start, end in png_chunks(data):
        chunks += 1
        if kind not in _PNG_IMAGE_CHUNKS:
            metadata += end - start
    return PngFacts(chunks, metadata)
