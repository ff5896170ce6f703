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
IPTC, MPF, ...), COM, and anything after EOI.

The orientation is the one metadata value that changes how the image is shown, and how the
intake turns it before the model sees it. Pillow reads it from the first EXIF block, else
from XMP (a PNG's eXIf chunk or "Raw profile type exif" text too); the upload passes the
orientation its decode applied, and the stored file carries it alone, in a fresh minimal
EXIF block (JPEG) or eXIf chunk (PNG), so the stored file decodes exactly as the upload did.
Without that argument, a JPEG keeps the orientation of its first EXIF block.

PNG: chunks are walked; kept are the critical ones (IHDR, PLTE, IDAT, IEND) and the
ancillary chunks that describe pixels and hold no text (tRNS, gAMA, cHRM, sRGB, sBIT, pHYs,
bKGD). Dropped: tEXt, zTXt, iTXt, eXIf, iCCP, tIME, animation and unknown chunks (an
orientation comes back alone, as above).
"""
from __future__ import annotations

import struct
import zlib

from ml.structure import PNG_MAGIC, StructureError, jpeg_segments, png_chunks

__all__ = ["MetadataError", "strip_metadata", "strip_jpeg", "strip_png"]

_PNG_KEEP = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"pHYs", b"bKGD"}
_ORIENTATION = 0x0112


class MetadataError(StructureError):
    """The bytes are not a well-formed JPEG or PNG structure."""


def strip_metadata(data: bytes, fmt: str, orientation: int | None = None) -> bytes:
    """``data`` without its metadata; ``orientation`` (1-8): the one the decoder applied,
    kept in the result (1: none)."""
    try:
        if fmt == "JPEG":
            return strip_jpeg(data, orientation)
        if fmt == "PNG":
            return strip_png(data, orientation)
    except MetadataError:
        raise
    except StructureError as exc:
        raise MetadataError(str(exc)) from None
    raise MetadataError(f"unsupported format {fmt!r}")


def _orientation(app1_payload: bytes) -> int | None:
    from PIL import Image

    try:
        exif = Image.Exif()
        exif.load(app1_payload)
        value = exif.get(_ORIENTATION)
    except Exception:
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def _orientation_exif(orientation: int) -> bytes:
    """A minimal EXIF (TIFF) block holding only the orientation, without the "Exif" header."""
    from PIL import Image

    exif = Image.Exif()
    exif[_ORIENTATION] = orientation
    payload = exif.tobytes()
    return payload[6:] if payload.startswith(b"Exif\x00\x00") else payload


def _orientation_segment(orientation: int) -> bytes:
    payload = b"Exif\x00\x00" + _orientation_exif(orientation)
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _orientation_chunk(orientation: int) -> bytes:
    payload = _orientation_exif(orientation)
    return struct.pack(">I", len(payload)) + b"eXIf" + payload + struct.pack(">I", zlib.crc32(b"eXIf" + payload))


def _jfif_without_thumbnail(payload: bytes) -> bytes | None:
    if len(payload) < 14 or payload[:5] != b"JFIF\x00":
        return None
    fixed = payload[:12] + b"\x00\x00"  # version, units, density; thumbnail 0x0
    return b"\xff\xe0" + struct.pack(">H", len(fixed) + 2) + fixed


def strip_jpeg(data: bytes, orientation: int | None = None) -> bytes:
    out = [b"\xff\xd8"]
    first_exif = None  # the orientation of the first EXIF block, as Pillow reads it
    exif_seen = False
    exif_at = None  # where the minimal EXIF goes: right after SOI (and a JFIF APP0)
    try:
        for marker, start, end in jpeg_segments(data):
            body = data[start:end]
            if marker is None:  # entropy-coded data
                out.append(body)
                continue
            payload = body[2:]
            if marker == 0xE0:  # APP0: JFIF kept (without thumbnail); JFXX and others dropped
                jfif = _jfif_without_thumbnail(payload)
                if jfif is not None:
                    out.append(jfif)
                    exif_at = len(out)
            elif marker == 0xE1:  # APP1: EXIF (orientation kept apart) or XMP
                if payload.startswith(b"Exif\x00\x00") and not exif_seen:
                    exif_seen, first_exif = True, _orientation(payload)
            elif marker == 0xEE:  # APP14: kept only as Adobe's colour-transform block
                if payload.startswith(b"Adobe") and len(payload) == 12:
                    out.append(bytes((0xFF, marker)) + body)
            elif 0xE2 <= marker <= 0xEF or marker == 0xFE:  # other APPn, COM
                pass
            else:  # frame, tables, restart interval, scan header, RSTn, EOI
                out.append(bytes((0xFF, marker)) + body)
    except StructureError as exc:
        raise MetadataError(str(exc)) from None
    keep = orientation if orientation is not None else first_exif
    if keep is not None and 2 <= keep <= 8:
        out.insert(exif_at or 1, _orientation_segment(keep))
    return b"".join(out)


def strip_png(data: bytes, orientation: int | None = None) -> bytes:
    out = [PNG_MAGIC]
    try:
        for kind, start, end in png_chunks(data):
            if kind in _PNG_KEEP:
                out.append(data[start:end])
            if kind == b"IHDR" and orientation is not None and 2 <= orientation <= 8:
                out.append(_orientation_chunk(orientation))  # before IDAT, where readers look
    except StructureError as exc:
        raise MetadataError(str(exc)) from None
    return b"".join(out)
