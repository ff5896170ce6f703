"""Image intake: untrusted bytes -> RGB PIL image, or a clear rejection.

JPEG, PNG and single-frame MR DICOM are accepted (sniffed from the bytes, never from a
file name; DICOM pixel handling lives in ``ml.dicom``).
Greyscale, palette, RGBA/LA, CMYK and 16-bit images are converted to 8-bit RGB;
transparent pixels (an alpha channel or a tRNS colour key) are composited onto black (the
MRI background). 16-bit and 32-bit samples are stretched from the image's own minimum and
maximum onto 0..255, as a DICOM frame without a window is (``ml.dicom``): a 12-bit scan
exported into a 16-bit PNG would otherwise come out nearly black. The orientation Pillow
reads (EXIF, else XMP) is applied, and :attr:`DecodedImage.orientation` says which it was,
so that the stored copy (``ml.metadata``) keeps the same one.

Checks, each with a plain reason (:class:`ImageRejected`), in the order a clinician's file
meets them:

* before any pixel is decoded (from the header alone): file size, pixel count, shape (the
  longer side at most ``max_aspect`` times the shorter, each side at least ``min_side``) and
  the memory that decoding and preparing the image would take (:func:`working_bytes`,
  at most ``work_budget_bytes``) - so decompression bombs and thin strips cost nothing;
* before any pixel is decoded (from the file's structure, ``ml.structure``): what would make
  decoding slow out of proportion to the pixels - a progressive JPEG of more than
  ``_MAX_JPEG_SCANS`` scans or more than ``_MAX_SCAN_PIXELS`` scans x pixels (each scan is a
  pass over the whole image; an ordinary file has 1 to about 10), more than
  ``_MAX_SEGMENTS`` JPEG segments or ``_MAX_PNG_CHUNKS`` PNG chunks, more than
  ``_MAX_METADATA_BYTES`` of metadata; and JPEG variants the decoder cannot read (12-bit,
  lossless), with that reason rather than "corrupt";
* after decoding, on a small greyscale thumbnail (``content_checks``): blank or nearly
  uniform images, and images that are almost entirely one shade (too little structure to
  be a brain scan).

The portal applies these limits at upload time; the worker applies the same ones again
before it prepares an image (a second line of defence for files stored earlier).

Every PNG chunk's CRC is checked (Pillow's verify() up to IEND, ``ml.structure`` IEND's;
decoding alone does not check the image data's CRCs), and an oversized PNG text chunk or
colour profile is refused as such, not as corruption.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

from ml.structure import JpegFacts

__all__ = ["IntakeLimits", "DecodedImage", "ImageRejected", "ImageImplausible", "decode_image", "sniff_format",
           "working_bytes"]

_JPEG_MAGIC = b"\xff\xd8\xff"
_ORIENTATION = 0x0112
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageRejected(Exception):
    """The bytes are not an acceptable image. ``str(exc)`` is a short human-readable reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.reason


class ImageImplausible(ImageRejected):
    """The file is a readable image, but not plausibly a brain MRI slice: too small, too long and
    thin, blank, or almost one shade. The portal refuses it at upload; where such an image still
    reaches the model (the worker checks again), the result is "not assessed", not a failure."""


@dataclass(frozen=True)
class IntakeLimits:
    """What an image may be. Defaults are the portal's; ``None`` switches a shape check off."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000
    # An MRI slice exported at any usable resolution is 128-1024 px a side (the shared set:
    # 150-1920); under 64 px a 5 mm lesion in a 180 mm field of view is under 2 px.
    min_side: int | None = 64
    # Single slices are about square (the shared set: at most 1.79:1, a 16:9 screenshot);
    # beyond 4:1 the brain would fill under a quarter of the model's input.
    max_aspect: float | None = 4.0
    # Peak memory that decoding + preparing one image may take (see working_bytes).
    work_budget_bytes: int = 1024 * 1024 * 1024
    # Blank / nearly uniform / structureless images (see _check_content).
    content_checks: bool = True


# Peak working memory of decode_image + ml.prepare, per pixel by decoded mode, measured with
# bench/ml_image_memory.py (peak RSS above the process's baseline: 9-12 B/px for L and RGB,
# 20 for RGBA, 11 for 16-bit; table in ml/README.md) and rounded up: the decoded image, its
# RGB conversion (alpha images composite through RGBA, float images through float64),
# then the grey copy the brain crop looks at, the crop and its local padding.
_BYTES_PER_PIXEL = {"1": 12, "L": 12, "RGB": 12, "YCbCr": 12, "P": 24, "LA": 24, "PA": 24,
                    "RGBA": 24, "CMYK": 16, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16,
                    "I": 20, "F": 32}
_DEFAULT_BYTES_PER_PIXEL = 32
_FIXED_BYTES = 8 * 1024 * 1024  # allocator arenas, small buffers: measured 4-7 MB


def working_bytes(width: int, height: int, mode: str, data_bytes: int = 0) -> int:
    """Estimated peak memory (bytes) to decode and prepare a ``width`` x ``height`` image of
    PIL ``mode`` whose file is ``data_bytes`` long: linear in its pixels, never in its long
    side squared (``ml.prepare.letterbox`` pads to a square only up to 2:1)."""
    per_pixel = _BYTES_PER_PIXEL.get(mode, _DEFAULT_BYTES_PER_PIXEL)
    return int(width) * int(height) * per_pixel + int(data_bytes) + _FIXED_BYTES


# Structure limits (see the module docstring). 256 scans is nvImageCodec's default cap, set
# after the libjpeg-turbo audit (Cure53) showed scan-count denial of service; the product cap
# keeps a 50-megapixel image under about 20 scans (about 1.5 s of decoding on 2 cores).
_MAX_JPEG_SCANS = 256
_MAX_SCAN_PIXELS = 1_000_000_000
_MAX_SEGMENTS = 2_000
_MAX_PNG_CHUNKS = 20_000  # a 20 MB PNG in libpng's 8 KB IDAT chunks has about 2,500
_MAX_METADATA_BYTES = 4 * 1024 * 1024  # EXIF, XMP, ICC profiles, comments, text chunks


def _check_structure(data: bytes, fmt: str) -> None:
    from ml.structure import StructureError, jpeg_facts, png_facts

    try:
        facts = jpeg_facts(data) if fmt == "JPEG" else png_facts(data)
    except StructureError:
        raise ImageRejected("truncated or corrupt image data") from None
    if isinstance(facts, JpegFacts):
        if facts.precision != 8 or facts.lossless:
            kind = "lossless" if facts.lossless else f"{facts.precision}-bit"
            raise ImageRejected(
                f"this is a {kind} JPEG, which cannot be read here; export the image as an ordinary "
                "(8-bit) JPEG or a PNG, or upload the DICOM file"
            )
        if facts.scans > _MAX_JPEG_SCANS or facts.scans * facts.pixels > _MAX_SCAN_PIXELS:
            raise ImageRejected(
                f"the JPEG is stored in {facts.scans} progressive scans (an ordinary file has 1 to about 10), "
                "too many to decode in reasonable time; export it again"
            )
        if facts.segments > _MAX_SEGMENTS:
            raise ImageRejected(f"the JPEG has {facts.segments} segments (an ordinary file has a few dozen); "
                                "export it again")
    elif facts.chunks > _MAX_PNG_CHUNKS:
        raise ImageRejected(f"the PNG has {facts.chunks} chunks (an ordinary file has a few thousand at most); "
                            "export it again")
    if facts.metadata_bytes > _MAX_METADATA_BYTES:
        raise ImageRejected(
            f"the file carries {_megabytes(facts.metadata_bytes)} of metadata beside its image, more than the "
            f"{_megabytes(_MAX_METADATA_BYTES)} accepted; export the image again without it"
        )


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 10 * 1024 * 1024 else f"{n / (1024 * 1024):.1f} MB"


def _check_shape(width: int, height: int, mode: str, data_bytes: int, limits: IntakeLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected("image has no pixels")
    pixels = int(width) * int(height)
    if pixels > limits.max_pixels:
        raise ImageRejected(f"image is {pixels} pixels; the limit is {limits.max_pixels}")
    long, short = max(width, height), min(width, height)
    if limits.max_aspect is not None and long > limits.max_aspect * short:
        ratio = long / short
        raise ImageImplausible(
            f"image is {width} × {height} pixels: its longer side is {ratio:.{1 if ratio < 10 else 0}f} "
            f"times its shorter side, a brain scan's at most {limits.max_aspect:g} times"
        )
    if limits.min_side is not None and short < limits.min_side:
        raise ImageImplausible(
            f"image is {width} × {height} pixels, too small to hold a brain scan; "
            f"each side needs at least {limits.min_side} pixels"
        )
    need = working_bytes(width, height, mode, data_bytes)
    if need > limits.work_budget_bytes:
        raise ImageRejected(
            f"image of {width} × {height} pixels would need about {_megabytes(need)} of memory "
            f"to process; the limit is {_megabytes(limits.work_budget_bytes)}"
        )


# Content checks run on a thumbnail of at most _THUMB_SIDE px a side (cheap for any size).
# Thresholds leave wide margins on both sides: the 253 images of the shared set have a
# grey-level spread of at least 30 and at least 26% of their pixels away from the dominant
# shade; a blank or uniform file has a spread under 1-2 (JPEG noise), a dot or a line on a
# blank page a few per cent at most.
_THUMB_SIDE = 128
_MIN_SPREAD = 4.0  # standard deviation of grey levels
_MIN_STRUCTURE = 0.02  # fraction of pixels more than _SHADE_TOLERANCE from the dominant shade
_SHADE_TOLERANCE = 8


def _check_content(image: Image.Image) -> None:
    factor = max(1, max(image.size) // _THUMB_SIDE)
    small = image.reduce(factor) if factor > 1 else image
    grey = np.asarray(small.convert("L"), dtype=np.float32)
    if float(grey.std()) < _MIN_SPREAD:
        mean = float(grey.mean())
        what = "all black" if mean < 16 else "all white" if mean > 239 else "one uniform shade"
        raise ImageImplausible(f"image is blank ({what}); there is no scan in it")
    counts = np.bincount(grey.astype(np.uint8).ravel(), minlength=256)
    dominant = int(counts.argmax())
    away = float((np.abs(grey - dominant) > _SHADE_TOLERANCE).mean())
    if away < _MIN_STRUCTURE:
        raise ImageImplausible(
            f"image is almost entirely one shade ({away:.1%} of it differs); "
            "too little structure for a brain scan"
        )


@dataclass
class DecodedImage:
    image: Image.Image  # mode "RGB", orientation applied
    width: int
    height: int
    format: str  # "JPEG", "PNG" or "DICOM"
    orientation: int = 1  # the EXIF orientation (1-8) applied; 1: as stored


def sniff_format(data: bytes) -> str | None:
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    if data[128:132] == b"DICM":
        return "DICOM"
    return None


def _stretch(img: Image.Image) -> Image.Image:
    """16- or 32-bit samples onto 0..255 from the image's own minimum..maximum, rounded to the
    nearest level, in integers (4 bytes a pixel for 16-bit): the full 0..65535 range gives
    round(v / 257). One value throughout keeps its shade (v / 257)."""
    wide = img.mode == "I"
    arr = np.asarray(img)
    arr = arr.astype(np.int64) if wide else arr.astype(np.uint32)
    lo, hi = int(arr.min()), int(arr.max())
    if hi == lo:
        level = min(255, max(0, round(lo / 257)))
        return Image.new("L", img.size, level).convert("RGB")
    arr -= lo
    arr *= 510
    arr += hi - lo
    arr //= 2 * (hi - lo)
    return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB" and "transparency" in img.info:  # a tRNS colour key
        return _to_rgb(img.convert("RGBA"))
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _stretch(img)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr = np.clip((arr - lo) * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if mode == "P":
        has_alpha = "transparency" in img.info
        img = img.convert("RGBA" if has_alpha else "RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "L" and "transparency" in img.info:
        return _to_rgb(img.convert("LA"))
    # "L", "1", "CMYK", "YCbCr", "LAB", "HSV"
    return img.convert("RGB")


# Pillow's messages (MAX_TEXT_CHUNK, MAX_TEXT_MEMORY; the first also for an iCCP profile),
# lower-cased; the wording has varied.
_TEXT_CHUNK_ERRORS = ("decompressed data too large", "too much memory used in text chunks")


def _verify_png(data: bytes) -> None:
    """Pillow's own integrity check: every chunk up to IEND, with its CRC."""
    with Image.open(io.BytesIO(data), formats=["PNG"]) as img:
        img.verify()


def decode_image(data: bytes, limits: IntakeLimits = IntakeLimits()) -> DecodedImage:
    """Decode untrusted JPEG/PNG bytes to an 8-bit RGB image or raise :class:`ImageRejected`."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageRejected("image data must be bytes")
    data = bytes(data)
    if len(data) == 0:
        raise ImageRejected("empty file")
    if len(data) > limits.max_bytes:
        raise ImageRejected(f"image is {len(data)} bytes; the limit is {limits.max_bytes}")
    fmt = sniff_format(data)
    if fmt == "DICOM":
        from ml.dicom import decode_single

        return decode_single(data, limits)
    if fmt is None:
        raise ImageRejected("not a JPEG, PNG or DICOM image")
    _check_structure(data, fmt)  # before Pillow reads it: a variant it cannot read is named as such
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own MAX_IMAGE_PIXELS; the explicit check just below
            # refuses with a clearer message, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            _check_shape(width, height, img.mode, len(data), limits)
            img.load()
            if fmt == "PNG":
                _verify_png(data)
    except ImageRejected:
        raise
    except ValueError as exc:  # Pillow's MAX_TEXT_CHUNK / MAX_TEXT_MEMORY guards
        if any(text in str(exc).lower() for text in _TEXT_CHUNK_ERRORS):
            raise ImageRejected("a PNG text chunk or colour profile is too large") from None
        raise ImageRejected("truncated or corrupt image data") from None
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"image is too large to decode safely; the limit is {limits.max_pixels} pixels"
        ) from None
    except Exception:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageRejected("truncated or corrupt image data") from None
    orientation = 1
    try:
        value = img.getexif().get(_ORIENTATION, 1)  # what exif_transpose reads: EXIF, else XMP
        turned = ImageOps.exif_transpose(img)
        if isinstance(value, int) and 2 <= value <= 8:
            orientation = value
        img = turned
    except Exception:
        pass  # a broken EXIF block must not reject an otherwise good image
    try:
        rgb = _to_rgb(img)
        rgb.load()
    except Exception:
        raise ImageRejected("unsupported image mode") from None
    if rgb.mode != "RGB":  # pragma: no cover - defensive
        raise ImageRejected("unsupported image mode")
    if limits.content_checks:
        _check_content(rgb)
    return DecodedImage(image=rgb, width=rgb.width, height=rgb.height, format=fmt, orientation=orientation)
