"""Training-time augmentation on prepared uint8 arrays (seeded, deterministic per view).

Views are applied to the prepared image *before* the intensity step (histogram
equalisation), then the intensity step runs, as it would on an upload that came rotated,
re-encoded or rescaled. The views cover what a real upload can bring:

* views 0-7: the eight orientations (identity, mirror, rotations by 90/180/270 degrees,
  and their mirrors): PACS exports and phone photos of screens arrive in any of them;
* views 8+: a random orientation plus, each drawn from a generator seeded by (seed, view,
  image hash): small rotation (+-12 deg), zoom 0.9-1.1 and shift +-6 %, brightness/contrast
  +-12 %, gamma 0.6-1.6, Gaussian blur (radius up to 1.2 px), Gaussian noise (sd up to 6),
  rescaling (down to 40-90 % and back) and JPEG re-encoding at quality 30-95.

A fixed set of views lets the frozen-backbone phase cache features: training the head on
the cached features of K views is the same as training it on images augmented on the fly
with that finite set.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

__all__ = ["augment_views", "augment_one", "view_of", "dihedral", "AUGMENT_VERSION", "N_ORIENTATIONS"]

AUGMENT_VERSION = 3
N_ORIENTATIONS = 8


def dihedral(arr: np.ndarray, k: int) -> np.ndarray:
    """Orientation ``k`` (0..7) of an (h, w, c) array: 0 identity, 1 mirror, 2/3/4 rotation by
    90/180/270 degrees (counter-clockwise), 5/6/7 the same rotations of the mirror image."""
    k = int(k) % N_ORIENTATIONS
    if k == 0:
        return arr
    if k == 1:
        return arr[:, ::-1].copy()
    mirror, turns = k >= 5, (k - 1) if k < 5 else (k - 4)
    a = arr[:, ::-1] if mirror else arr
    return np.ascontiguousarray(np.rot90(a, turns))


def _affine(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    s = img.width
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
    return img.transform((s, s), Image.AFFINE, (a, b, tx, d, e, ty), resample=Image.BILINEAR, fillcolor=(0, 0, 0))


def augment_one(arr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random photometric + geometric change of a square uint8 RGB array (same shape back)."""
    s = arr.shape[0]
    img = Image.fromarray(dihedral(arr, int(rng.integers(0, N_ORIENTATIONS))))
    if rng.random() < 0.7:
        img = _affine(img, rng)
    if rng.random() < 0.3:
        f = float(rng.uniform(0.4, 0.9))
        small = max(8, int(round(s * f)))
        img = img.resize((small, small), Image.BILINEAR).resize((s, s), Image.BILINEAR)
    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    out = np.asarray(img, dtype=np.float32)
    gain = float(rng.uniform(0.88, 1.12))
    bias = float(rng.uniform(-0.06, 0.06)) * 255 * (out > 0)
    out = np.clip(out * gain + bias, 0, 255)
    gamma = float(np.exp(rng.uniform(np.log(0.6), np.log(1.6))))
    out = 255.0 * (out / 255.0) ** gamma
    if rng.random() < 0.3:
        out = out + rng.normal(0, float(rng.uniform(1, 6)), out.shape[:2])[..., None]
    out = np.clip(out, 0, 255).astype(np.uint8)
    if rng.random() < 0.6:
        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(rng.integers(30, 96)))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8)
    return out


def view_of(arr: np.ndarray, view: int, seed: int, key: str) -> np.ndarray:
    """View ``view`` of one image. Views 0-7 are the orientations; random views draw from a
    generator seeded by (seed, view, key), ``key`` being the image's content hash: the same
    image always gets the same views, whatever the split, so per-image features can be cached
    and shared by ``train`` and ``cv``."""
    if view < N_ORIENTATIONS:
        return dihedral(arr, view)
    rng = np.random.default_rng([int(seed), int(view), int(str(key)[:15], 16)])
    return augment_one(arr, rng)


def augment_views(arrays: np.ndarray, n_views: int, seed: int = 0, keys=None,
                  intensity: str = "none") -> list[np.ndarray]:
    """``n_views`` versions of the whole (n, s, s, 3) uint8 batch (before the intensity step),
    each followed by the intensity step; view 0 is the identity.

    ``keys``: content hashes (hex) of the images; default: hashes of the arrays themselves.
    """
    import hashlib

    from .features import finish_intensity

    if keys is None:
        keys = [hashlib.sha256(a.tobytes()).hexdigest() for a in arrays]
    return [finish_intensity(np.stack([view_of(a, v, seed, k) for a, k in zip(arrays, keys, strict=True)]), intensity)
            for v in range(max(1, n_views))]
