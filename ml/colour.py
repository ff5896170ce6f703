"""Colour: brain MRI slices are greyscale; a strongly coloured image is not one.

The model turns every image grey before it looks at it (``ml.prepare``), so a colour
photograph reaches the backbone as a plausible grey picture and can slip past the feature-space
OOD gate (a cat photo did). Colour is therefore checked on the decoded image, by the worker's
gate: an image with more than :data:`COLOUR_LIMIT` of its pixels strongly coloured is "not
assessed" (its probability is still computed for reviewers).

Measure: on a thumbnail of at most 128 px a side, the share of pixels whose channels differ by
more than :data:`CHROMA_LEVELS` grey levels (max(R, G, B) - min(R, G, B)). On the 253 images of
the shared training set the largest share is 7.9 % (a JPEG with a tinted annotation), most are
0 %; colour photographs score 42-96 % (internal figures, ``bench/ml_ood.py``).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["COLOUR_LIMIT", "CHROMA_LEVELS", "colour_share", "colour_reason"]

COLOUR_LIMIT = 0.25
CHROMA_LEVELS = 24
_THUMB_SIDE = 128


def colour_share(image: Image.Image) -> float:
    """Share of strongly coloured pixels (0..1) of a decoded image (any mode)."""
    if image.mode in ("L", "I", "I;16", "F", "1"):
        return 0.0
    if image.mode != "RGB":  # the worker's decoded images are already RGB (ml.intake)
        image = image.convert("RGB")
    factor = max(1, max(image.size) // _THUMB_SIDE)
    small = image.reduce(factor) if factor > 1 else image
    rgb = np.asarray(small, dtype=np.int16)
    if rgb.size == 0:
        return 0.0
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    return float((chroma > CHROMA_LEVELS).mean())


def colour_reason(share: float) -> str | None:
    """The not-assessed reason for a colour image, or None for a greyscale one."""
    if share <= COLOUR_LIMIT:
        return None
    return f"the image is in colour ({share:.0%} of it strongly coloured); MRI slices are greyscale"
