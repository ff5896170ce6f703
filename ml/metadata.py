"""Remove metadata from JPEG and PNG bytes without touching the pixel data.

Scans arrive with whatever the scanner, PACS export or phone put in them: EXIF (user
comments, dates, device serials, GPS), XMP, IPTC, ICC profiles (whose description and
copyright tags are free text), JPEG comments, PNG text chunks. Any of them may carry a
patient's name or birth date, so none is stored.

Neither format is re-encoded: the compressed image data is copied byte for byte, so the
decoded pixels are exactly the original's (a PNG re-encode through Pillow would lose
precision on 16-bit RGB files, a JPEG re-encode would re-quantise).

JPEG: markers are walked to the end of image. Kept: SOFn, DHT, DQT, DRI, DAC, SOS and the
entropy-coded data, APP0 "JFIF" without its thumbnail, APP14 "Adobe" (its colour-transform
flag decides how the decoder converts colours). Dropped: every other APPn (EXIF, XMP, ICC,
IPTC, MPF, ...), COM, and anything after EOI. The EXIF orientation is the one EXIF value
that changes how the image is shown (and how the intake turns it before the model sees
it), so it is kept, alone, in a fresh minimal EXIF block.

PNG: chunks are walked; kept are the critical ones (IHDR, PLTE, IDAT, IEND) and the
ancillary chunks that describe pixels and hold no text (tRNS, gAMA, cHRM, sRGB, sBIT, pHYs,
bKGD). Dropped: tEXt, zTXt, iTXt, eXIf, iCCP, tIME, animation and unknown chunks.
"""
from __future__ import annotations

import struct

__all__ = ["MetadataError", "strip_metadata", "strip_jpeg", "strip_png"]

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs", b"bKGD"}
_ORIENTATION = 0x0112
# Markers with no length field: TEM, RST0-7 (only inside scans), SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8, 0xD9}


class MetadataError(ValueError):
    """The bytes are not a well-formed JPEG or PNG structure."""


def strip_metadata(data: bytes, fmt: str) -> bytes:
    if fmt == "JPEG":
        return strip_jpeg(data)
    if fmt == "PNG":
        return strip_png(data)
    raise MetadataError(f"unsupported format {fmt!r}")


def _orientation(app1_payload: bytes) -> int | None:
    from PIL import Image

    try:
        exif = Image.Exif()
        exif.load(app1_payload)
        value = exif.get(_ORIENTATION)
    except Exception:
        return None
    return int(value) if isinstance(value, int) and 2 <= value <= 8 else None


def _orientation_segment(orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    payload = exif.tobytes()
    if not payload.startswith(b"Exif\x00\x00"):
        payload = b"Exif\x00\x00" + payload
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jfif_without_thumbnail(payload: bytes) -> bytes | None:
    if len(payload) < 14 or payload[:5] != b"JFIF\x00":
        return None
    fixed = payload[:12] + b"\x00\x00"  # version, units, density; thumbnail 0x0
    return b"\xff\xe0" + struct.pack(">H", len(fixed) + 2) + fixed


def strip_jpeg(data: bytes) -> bytes:
    if not data.startswith(b"\xff\xd8"):
        raise MetadataError("not a JPEG")
    out = [b"\xff\xd8"]
    orientation = None
    exif_at = None  # where the minimal EXIF goes: right after SOI (and a JFIF APP0)
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
                    raise MetadataError("JPEG ends inside image data")
                following = data[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    pos += 2
                elif following == 0xFF:
                    pos += 1
                else:
                    break
            out.append(data[start:pos])
            in_scan = False
            continue
        if data[pos] != 0xFF:
            raise MetadataError("JPEG marker expected")
        while pos < end and data[pos] == 0xFF:  # fill bytes before a marker
            pos += 1
        if pos >= end:
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI: anything after it is dropped
            out.append(b"\xff\xd9")
            break
        if marker in _STANDALONE:
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > end:
            raise MetadataError("JPEG segment length missing")
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        if length < 2 or pos + length > end:
            raise MetadataError("JPEG segment runs past the end")
        payload = data[pos + 2:pos + length]
        segment = bytes((0xFF, marker)) + data[pos:pos + length]
        pos += length
        if marker == 0xE0:  # APP0: JFIF kept (without thumbnail); JFXX and others dropped
            jfif = _jfif_without_thumbnail(payload)
            if jfif is not None:
                out.append(jfif)
                exif_at = len(out)
        elif marker == 0xE1:  # APP1: EXIF (orientation kept apart) or XMP
            if payload.startswith(b"Exif\x00\x00") and orientation is None:
                orientation = _orientation(payload)
        elif marker == 0xEE:  # APP14: kept only as Adobe's colour-transform block
            if payload.startswith(b"Adobe") and len(payload) == 12:
                out.append(segment)
        elif 0xE2 <= marker <= 0xEF or marker == 0xFE:  # other APPn, COM
            pass
        else:  # frame, tables, restart interval, scan header
            out.append(segment)
            if marker == 0xDA:
                in_scan = True
    else:
        raise MetadataError("JPEG has no end-of-image marker")
    if orientation is not None:
        out.insert(exif_at or 1, _orientation_segment(orientation))
    return b"".join(out)


def strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_MAGIC):
        raise MetadataError("not a PNG")
    out = [_PNG_MAGIC]
    pos, end = len(_PNG_MAGIC), len(data)
    while pos + 12 <= end:
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        chunk_end = pos + 12 + length
        if chunk_end > end:
            raise MetadataError("PNG chunk runs past the end")
        if kind in _PNG_KEEP:
            out.append(data[pos:chunk_end])
        pos = chunk_end
        if kind == b"IEND":
            return b"".join(out)
    raise MetadataError("PNG has no IEND chunk")
