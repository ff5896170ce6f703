"""One image -> the model's input array. The single place where serving and training meet.

Steps: optional brain crop -> pad to a square with black (keeps the aspect ratio)
-> resize to ``input_size`` (bilinear, with antialiasing) -> uint8 array (H, W, 3).
The backbone's own ``preprocess_input`` lives inside the saved model.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["PREPROCESSING_VERSION", "prepare_image", "prepare_bytes", "prepare_with_geometry", "preprocessing_description"]

PREPROCESSING_VERSION = 1


def preprocessing_description(input_size: int, crop: bool) -> dict:
    return {
        "version": PREPROCESSING_VERSION,
        "decode": "ml.intake.decode_image (8-bit RGB, EXIF orientation, alpha on black)",
        "crop": "brain" if crop else "none",
        "resize": "pad-to-square-black, bilinear with antialias",
        "input_size": int(input_size),
        "input_range": "0..255 RGB float32; backbone preprocess_input inside the model",
    }


def prepare_image(image: Image.Image, input_size: int, crop: bool = True) -> np.ndarray:
    return prepare_with_geometry(image, input_size, crop)[0]


def prepare_with_geometry(image: Image.Image, input_size: int, crop: bool = True):
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
    w, h = image.size
    side = max(w, h)
    if w != h:
        canvas = Image.new("RGB", (side, side), (0, 0, 0))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if side != input_size:
        image = image.resize((input_size, input_size), Image.BILINEAR, reducing_gap=None)
    return np.asarray(image, dtype=np.uint8), box, side


def prepare_bytes(data: bytes, input_size: int, crop: bool = True, limits=None) -> np.ndarray:
    from .intake import IntakeLimits, decode_image

    decoded = decode_image(data, limits or IntakeLimits())
    return prepare_image(decoded.image, input_size, crop)
