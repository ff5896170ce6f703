"""One image -> the model's input array. The single place where serving and training meet.

Steps: optional brain crop -> letterbox into an ``input_size`` square on black (keeps the
aspect ratio; the pixels of padding to a square and resizing it, bilinear with antialiasing,
in memory linear in the image: see :func:`letterbox`) -> optional intensity
normalisation (histogram equalisation of the greyscale image, the same for every scanner's
contrast and brightness) -> uint8 array (H, W, 3). The backbone's own ``preprocess_input``
lives inside the saved model. The choices are recorded in the artifact's metadata, so an
artifact is always served with the preprocessing it was trained with.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageOps

__all__ = ["PREPROCESSING_VERSION", "INTENSITY_MODES", "intensity_of", "prepare_image", "prepare_bytes",
           "prepare_with_geometry", "preprocessing_description", "letterbox"]

# 2: optional histogram equalisation ("intensity": "equalize"); 1: none. Artifacts of
# version 1 have no "intensity" key and are served without it.
PREPROCESSING_VERSION = 2
INTENSITY_MODES = ("none", "equalize")


def preprocessing_description(input_size: int, crop: bool, intensity: str = "none") -> dict:
    if intensity not in INTENSITY_MODES:
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}")
    return {
        "version": PREPROCESSING_VERSION,
        "decode": "ml.intake.decode_image (8-bit RGB, EXIF orientation, alpha on black)",
        "crop": "brain" if crop else "none",
        "resize": "pad-to-square-black, bilinear with antialias",
        "input_size": int(input_size),
        "intensity": intensity,
        "input_range": "0..255 RGB float32; backbone preprocess_input inside the model",
    }


def intensity_of(metadata: dict) -> str:
    """The intensity step an artifact was trained with (``none`` for version-1 artifacts)."""
    return (metadata.get("preprocessing") or {}).get("intensity", "none")


def prepare_image(image: Image.Image, input_size: int, crop: bool = True, intensity: str = "none") -> np.ndarray:
    return prepare_with_geometry(image, input_size, crop, intensity)[0]


def prepare_with_geometry(image: Image.Image, input_size: int, crop: bool = True, intensity: str = "none"):
    """Like :func:`prepare_image`, also returning ``(box, side)``: the crop box in the original
    image and the side of the padded square (to map model-frame maps back, e.g. Grad-CAM)."""
    from .crop import brain_bbox

    if image.mode != "RGB":
        image = image.convert("RGB")
    box = brain_bbox(image) if crop else None
    if box is None:
        box = (0, 0, image.width, image.height)
    else:
        image = image.crop(box)
    side = max(image.size)
    image = letterbox(image, input_size)
    if intensity == "equalize":
        image = ImageOps.equalize(image.convert("L")).convert("RGB")
    elif intensity != "none":
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}")
    return np.asarray(image, dtype=np.uint8), box, side


# Up to this aspect ratio (long side / short side), letterbox builds the padded square itself.
SQUARE_PAD_MAX_ASPECT = 2


def letterbox(image: Image.Image, n: int) -> Image.Image:
    """``image`` centred in an n x n black square: the pixels of padding it to a square of its
    long side and resizing that to n (bilinear, antialiased), in memory linear in the image.

    The padded square grows with the square of the long side (a 20 x 100000 strip: 30 GB).
    For images up to 2:1 it costs at most twice the image and is built as before
    (bit-identical). Longer images get only as much black along their short axis as the
    filter can reach, and a box resize computes the output rows or columns that can see the
    image; the others stay black (within one grey level of the padded square: Pillow's
    filter positions round differently). That local padding costs at most the image itself;
    where it would cost more (strips far longer than wide) the long axis is resized first, so
    memory stays within the image plus n x (short side + a few filter widths).
    """
    w, h = image.size
    side = max(w, h)
    if side <= SQUARE_PAD_MAX_ASPECT * min(w, h):
        # About square (every scan seen so far): the padded square costs at most twice the
        # image, so build it; the pixels stay bit-identical to what existing artifacts saw.
        if w != h:
            square = Image.new("RGB", (side, side), (0, 0, 0))
            square.paste(image, ((side - w) // 2, (side - h) // 2))
            image = square
        return image if side == n else image.resize((n, n), Image.BILINEAR, reducing_gap=None)
    canvas = Image.new("RGB", (n, n), (0, 0, 0))
    if side == n:
        canvas.paste(image, ((n - w) // 2, (n - h) // 2))
        return canvas
    wide = w > h
    short = h if wide else w
    offset = (side - short) // 2  # where the image starts along the short axis of the square
    scale = side / n
    reach = math.ceil(3 * max(scale, 1.0)) + 2  # beyond the bilinear filter's support
    start = offset - min(offset, reach)
    end = offset + short + min(side - short - offset, reach)
    first = math.ceil(start / scale) if start else 0
    last = n if end == side else min(n, math.floor(end / scale))
    if last <= first:  # pragma: no cover - the padded strip always spans an output pixel
        return canvas
    lo, hi = max(0.0, first * scale - start), min(float(end - start), last * scale - start)
    if 2 * (end - start - short) > short:  # the padding would cost more than the image
        image = image.resize((n, h) if wide else (w, n), Image.BILINEAR, reducing_gap=None)
    if wide:
        long = image.width
        strip = Image.new("RGB", (long, end - start), (0, 0, 0))
        strip.paste(image, (0, offset - start))
        part = strip.resize((n, last - first), Image.BILINEAR, box=(0, lo, long, hi), reducing_gap=None)
        canvas.paste(part, (0, first))
    else:
        long = image.height
        strip = Image.new("RGB", (end - start, long), (0, 0, 0))
        strip.paste(image, (offset - start, 0))
        part = strip.resize((last - first, n), Image.BILINEAR, box=(lo, 0, hi, long), reducing_gap=None)
        canvas.paste(part, (first, 0))
    return canvas


def prepare_bytes(data: bytes, input_size: int, crop: bool = True, limits=None, intensity: str = "none") -> np.ndarray:
    from .intake import IntakeLimits, decode_image

    decoded = decode_image(data, limits or IntakeLimits())
    return prepare_image(decoded.image, input_size, crop, intensity)
