"""Image intake: untrusted bytes -> RGB PIL image, or a clear rejection.

Only JPEG and PNG are accepted (sniffed from the bytes, never from a file name).
Greyscale, palette, RGBA/LA, CMYK and 16-bit images are converted to 8-bit RGB;
transparent pixels are composited onto black (the MRI background). The EXIF
orientation tag is applied. Byte and pixel limits are checked before the pixel
data is decoded, so decompression bombs are refused cheaply.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

__all__ = ["IntakeLimits", "DecodedImage", "ImageRejected", "decode_image", "sniff_format"]

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageRejected(Exception):
    """The bytes are not an acceptable image. ``str(exc)`` is a short human-readable reason."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.reason


@dataclass(frozen=True)
class IntakeLimits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000


@dataclass
class DecodedImage:
    image: Image.Image  # mode "RGB", EXIF orientation applied
    width: int
    height: int
    format: str  # "JPEG" or "PNG"


def sniff_format(data: bytes) -> str | None:
    if data.startswith(_JPEG_MAGIC):
        return "JPEG"
    if data.startswith(_PNG_MAGIC):
        return "PNG"
    return None


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit samples: scale the full 0..65535 range to 0..255.
        arr = np.clip(np.rint(arr / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
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
    if fmt is None:
        raise ImageRejected("not a JPEG or PNG image")
    try:
        with warnings.catch_warnings():
            # Pillow warns past its own MAX_IMAGE_PIXELS; the explicit check just below
            # refuses with a clearer message, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            pixels = int(width) * int(height)
            if width <= 0 or height <= 0:
                raise ImageRejected("image has no pixels")
            if pixels > limits.max_pixels:
                raise ImageRejected(f"image is {pixels} pixels; the limit is {limits.max_pixels}")
            img.load()
    except ImageRejected:
        raise
    except Image.DecompressionBombError:
        raise ImageRejected(
            f"image is too large to decode safely; the limit is {limits.max_pixels} pixels"
        ) from None
    except Exception:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageRejected("truncated or corrupt image data") from None
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:
        pass  # a broken EXIF block must not reject an otherwise good image
    try:
        rgb = _to_rgb(img)
        rgb.load()
    except Exception:
        raise ImageRejected("unsupported image mode") from None
    if rgb.mode != "RGB":  # pragma: no cover - defensive
        raise ImageRejected("unsupported image mode")
    return DecodedImage(image=rgb, width=rgb.width, height=rgb.height, format=fmt)
