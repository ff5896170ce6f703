"""One image -> the model's input array. The single place where serving and training meet.

Steps: optional brain crop -> pad to a square with black (keeps the aspect ratio)
-> resize to ``input_size`` (bilinear, with antialiasing) -> optional intensity
normalisation (histogram equalisation of the greyscale image, the same for every scanner's
contrast and brightness) -> uint8 array (H, W, 3). The backbone's own ``preprocess_input``
lives inside the saved model. The choices are recorded in the artifact's metadata, so an
artifact is always served with the preprocessing it was trained with.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

__all__ = ["PREPROCESSING_VERSION", "INTENSITY_MODES", "intensity_of", "prepare_image", "prepare_bytes", "prepare_with_geometry", "preprocessing_description"]

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
    w, h = image.size
    side = max(w, h)
    if w != h:
        canvas = Image.new("RGB", (side, side), (0, 0, 0))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if side != input_size:
        image = image.resize((input_size, input_size), Image.BILINEAR, reducing_gap=None)
    if intensity == "equalize":
        image = ImageOps.equalize(image.convert("L")).convert("RGB")
    elif intensity != "none":
        raise ValueError(f"intensity must be one of {INTENSITY_MODES}")
    return np.asarray(image, dtype=np.uint8), box, side


def prepare_bytes(data: bytes, input_size: int, crop: bool = True, limits=None, intensity: str = "none") -> np.ndarray:
    from .intake import IntakeLimits, decode_image

    decoded = decode_image(data, limits or IntakeLimits())
    return prepare_image(decoded.image, input_size, crop, intensity)
