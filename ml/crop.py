"""Brain crop: trim the dark background around the head.

Used identically by training, evaluation and serving (through :mod:`ml.prepare`).
The crop is deterministic and conservative: if the bright region is implausibly
small (blank or nearly black image) the image is returned unchanged.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["brain_bbox", "brain_crop"]


def brain_bbox(image: Image.Image, *, threshold: float = 0.12, margin: float = 0.03,
               min_fraction: float = 0.05) -> tuple[int, int, int, int] | None:
    """Bounding box (left, top, right, bottom) of the head, or ``None`` when nothing stands out.

    Pixels brighter than ``threshold`` of the image's 99th-percentile intensity (after a
    small blur that removes speckle and thin text) count as foreground; the box is the
    smallest one holding 99% of those pixels on each axis, grown by ``margin``.
    """
    grey = image.convert("L")
    w, h = grey.size
    scale = max(1, max(w, h) // 256)
    small = grey.reduce(scale) if scale > 1 else grey
    small = small.filter(ImageFilter.GaussianBlur(radius=2))
    arr = np.asarray(small, dtype=np.float32)
    top = float(np.percentile(arr, 99))
    if top < 8:  # essentially black
        return None
    mask = arr > threshold * top
    if mask.mean() < min_fraction:
        return None
    rows = mask.sum(axis=1).astype(np.float64)
    cols = mask.sum(axis=0).astype(np.float64)

    def span(profile: np.ndarray) -> tuple[int, int]:
        c = np.cumsum(profile)
        total = c[-1]
        lo = int(np.searchsorted(c, 0.005 * total))
        hi = int(np.searchsorted(c, 0.995 * total))
        return lo, hi + 1

    r0, r1 = span(rows)
    c0, c1 = span(cols)
    sh, sw = arr.shape
    mr, mc = int(round(margin * sh)), int(round(margin * sw))
    r0, r1 = max(0, r0 - mr), min(sh, r1 + mr)
    c0, c1 = max(0, c0 - mc), min(sw, c1 + mc)
    fx, fy = w / sw, h / sh
    box = (int(c0 * fx), int(r0 * fy), min(w, int(np.ceil(c1 * fx))), min(h, int(np.ceil(r1 * fy))))
    if (box[2] - box[0]) < 0.2 * w or (box[3] - box[1]) < 0.2 * h:
        return None
    return box


def brain_crop(image: Image.Image) -> Image.Image:
    box = brain_bbox(image)
    if box is None:
        return image
    return image.crop(box)
