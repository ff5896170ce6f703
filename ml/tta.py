"""Test-time augmentation (TTA): score an image in several orientations and average.

A scan can arrive rotated by 90, 180 or 270 degrees (PACS exports, photos of a screen). The
head is trained on all eight orientations, yet a single view still changes some labels when
the image is turned. Scoring the four rotations of every image and averaging makes the result
the same, up to resampling, whichever of them arrived.

The head is linear in the pooled backbone features (standardise -> dense -> sigmoid), so the
mean of the four views' logits is the head applied to the mean of their features: one head
call on averaged features. The cost is four backbone passes per image.

The orientations are :func:`ml.augment.dihedral`'s indices, so the cached training views
0, 2, 3, 4 are exactly these views of the training images.
"""
from __future__ import annotations

import numpy as np

__all__ = ["TTA_ORIENTATIONS", "orbit", "tta_features"]

TTA_ORIENTATIONS = (0, 2, 3, 4)  # identity and rotations by 90 / 180 / 270 degrees


def orbit(arrays: np.ndarray, orientations=TTA_ORIENTATIONS) -> np.ndarray:
    """(k * n, s, s, c): every image of ``arrays`` (n, s, s, c) in each orientation, orientation-major."""
    from .augment import dihedral

    return np.concatenate([np.stack([dihedral(a, k) for a in arrays]) for k in orientations]) if len(arrays) \
        else np.asarray(arrays)


def tta_features(F_views: np.ndarray, idx=None, orientations=None) -> np.ndarray:
    """(n, d) features to score: the mean over ``orientations`` of ``F_views`` (views, n, d),
    or the identity view (view 0) when ``orientations`` is empty/None. ``idx`` picks images."""
    F_views = np.asarray(F_views)
    sel = slice(None) if idx is None else idx
    if not orientations:
        return F_views[0][sel]
    return F_views[list(orientations)][:, sel].mean(axis=0)
