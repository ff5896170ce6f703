"""Training-time augmentation on prepared uint8 arrays (seeded, deterministic per view).

View 0 is always the identity. Further views: a horizontal flip (brains are roughly
left-right symmetric and tumours occur on both sides) and, per view, a random small rotation
(±12°), zoom (0.9-1.1), shift (±6 %) and brightness/contrast change (±12 %), drawn from a
seeded generator. A fixed set of views lets the frozen-backbone phase cache features:
training the head on the cached features of K views is the same as training it on images
augmented on the fly with that finite set.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["augment_views", "augment_one"]


def augment_one(arr: np.ndarray, rng: np.random.Generator, flip: bool) -> np.ndarray:
    img = Image.fromarray(arr)
    s = arr.shape[0]
    angle = float(rng.uniform(-12, 12))
    zoom = float(rng.uniform(0.9, 1.1))
    dx, dy = (float(v) for v in rng.uniform(-0.06, 0.06, 2) * s)
    # Inverse affine for PIL: output (x, y) samples input at A @ (x, y) + b, about the centre.
    c = (s - 1) / 2.0
    th = np.deg2rad(angle)
    cos, sin = np.cos(th) / zoom, np.sin(th) / zoom
    a, b, d, e = cos, sin, -sin, cos
    tx = c - a * (c + dx) - b * (c + dy)
    ty = c - d * (c + dx) - e * (c + dy)
    img = img.transform((s, s), Image.AFFINE, (a, b, tx, d, e, ty), resample=Image.BILINEAR, fillcolor=(0, 0, 0))
    out = np.asarray(img, dtype=np.float32)
    gain = float(rng.uniform(0.88, 1.12))
    bias = float(rng.uniform(-0.06, 0.06)) * 255 * (out > 0)
    out = np.clip(out * gain + bias, 0, 255)
    if flip:
        out = out[:, ::-1]
    return out.astype(np.uint8)


AUGMENT_VERSION = 2


def view_of(arr: np.ndarray, view: int, seed: int, key: str) -> np.ndarray:
    """View ``view`` of one image. Random views draw from a generator seeded by (seed, view, key),
    ``key`` being the image's content hash: the same image always gets the same views, whatever
    the split, so per-image features can be cached and shared by ``train`` and ``cv``."""
    if view == 0:
        return arr
    if view == 1:
        return arr[:, ::-1].copy()
    rng = np.random.default_rng([int(seed), int(view), int(str(key)[:15], 16)])
    return augment_one(arr, rng, flip=view % 2 == 1)


def augment_views(arrays: np.ndarray, n_views: int, seed: int = 0, keys=None) -> list[np.ndarray]:
    """``n_views`` versions of the whole (n, s, s, 3) uint8 batch; view 0 is the identity, view 1 the mirror.

    ``keys``: content hashes (hex) of the images; default: hashes of the arrays themselves.
    """
    import hashlib

    if keys is None:
        keys = [hashlib.sha256(a.tobytes()).hexdigest() for a in arrays]
    return [np.stack([view_of(a, v, seed, k) for a, k in zip(arrays, keys)]) if v else arrays
            for v in range(max(1, n_views))]
