"""Load a data set into model-ready arrays and run frozen parts of a model over them."""
from __future__ import annotations

import logging
import time

import numpy as np

__all__ = ["load_arrays", "run_model", "Progress", "FeatureCache", "view_features", "feature_key", "finish_intensity"]

log = logging.getLogger("ml")


class Progress:
    """Prints progress lines to stderr (or calls ``sink``) with elapsed time."""

    def __init__(self, sink=None, quiet: bool = False):
        import sys

        self.t0 = time.monotonic()
        self.quiet = quiet
        self.sink = sink or (lambda s: print(s, file=sys.stderr, flush=True))

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            self.sink(f"[{time.monotonic() - self.t0:7.1f}s] {msg}")


def load_arrays(ds, input_size: int, crop: bool, progress=None, intensity: str = "none"):
    """(arrays uint8 (n, s, s, 3), kept indices): files that fail intake are skipped and reported."""
    from .intake import ImageRejected, decode_image
    from .prepare import prepare_image

    arrays, keep = [], []
    for i, s in enumerate(ds.samples):
        try:
            arrays.append(prepare_image(decode_image(s.path.read_bytes()).image, input_size, crop, intensity))
            keep.append(i)
        except (ImageRejected, OSError) as exc:
            if progress:
                progress(f"skipping {s.path}: {exc}")
    if not arrays:
        raise ValueError("no usable images in the data set")
    return np.stack(arrays), np.asarray(keep)


def finish_intensity(arrays: np.ndarray, intensity: str) -> np.ndarray:
    """The intensity step of :func:`ml.prepare.prepare_image` on already prepared (square,
    resized) arrays: the serving path itself, with nothing left to crop or resize."""
    from PIL import Image

    from .prepare import prepare_image

    if intensity == "none" or not len(arrays):
        return arrays
    return np.stack([prepare_image(Image.fromarray(a), a.shape[0], False, intensity) for a in arrays])


def run_model(model, arrays, batch_size: int = 16, progress=None, what: str = "features"):
    """Run ``model`` (a Keras model, possibly multi-output) over arrays in batches, as float32 numpy."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None, *arrays.shape[1:]], tf.float32)]
    fn = tf.function(lambda x: model(x, training=False), input_signature=spec, reduce_retracing=True)
    outs = []
    t0 = time.monotonic()
    n = len(arrays)
    for i in range(0, n, batch_size):
        out = fn(np.asarray(arrays[i:i + batch_size], np.float32))
        outs.append([o.numpy() for o in out] if isinstance(out, (list, tuple)) else [out.numpy()])
        done = min(n, i + batch_size)
        if progress and (done == n or (i // batch_size) % 5 == 4):
            rate = done / max(1e-9, time.monotonic() - t0)
            progress(f"{what}: {done}/{n} images ({rate:.1f}/s)")
    cols = [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
    return cols if len(cols) > 1 else cols[0]


def feature_key(**parts) -> str:
    """Cache key of a frozen feature extractor + preprocessing + augmentation settings."""
    import hashlib
    import json

    from .augment import AUGMENT_VERSION
    from .prepare import PREPROCESSING_VERSION

    parts = {**parts, "prep": PREPROCESSING_VERSION, "aug": AUGMENT_VERSION}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


class FeatureCache:
    """Per-image, per-view feature vectors on disk (one .npz per feature key), keyed by content hash.

    Only valid for a frozen backbone: the key covers architecture, weights (file hash),
    input size, crop, pooled layers, pooling, preprocessing and augmentation versions and seed.
    """

    def __init__(self, cache_dir, key: str):
        from pathlib import Path

        self.path = Path(cache_dir) / f"features_{key}.npz" if cache_dir else None
        self.data: dict[str, np.ndarray] = {}
        self.dirty = False
        if self.path and self.path.is_file():
            with np.load(self.path) as z:
                self.data = {k: z[k] for k in z.files}

    def get(self, sha: str, view: int):
        return self.data.get(f"{sha}_{view}")

    def put(self, sha: str, view: int, vec) -> None:
        self.data[f"{sha}_{view}"] = np.asarray(vec, np.float32)
        self.dirty = True

    def save(self) -> None:
        if self.path and self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp.npz")
            np.savez(tmp, **self.data)
            tmp.replace(self.path)
            self.dirty = False


def view_features(fmodel, arrays, shas, n_views: int, seed: int, cache: FeatureCache | None = None,
                  progress=None, batch_size: int = 16, intensity: str = "none") -> np.ndarray:
    """(views, n, d) features of every image and augmentation view, computing only what the cache lacks.

    ``arrays``: prepared images *before* the intensity step; each view is made, then
    ``intensity`` applied (as for an upload that arrived changed)."""
    from .augment import view_of

    out = [[None] * len(arrays) for _ in range(n_views)]
    for v in range(n_views):
        missing = []
        for i, sha in enumerate(shas):
            hit = cache.get(sha, v) if cache else None
            if hit is None:
                missing.append(i)
            else:
                out[v][i] = hit
        if missing:
            batch = finish_intensity(np.stack([view_of(arrays[i], v, seed, shas[i]) for i in missing]), intensity)
            feats = run_model(fmodel, batch, batch_size=batch_size, progress=progress,
                              what=f"features view {v + 1}/{n_views}")
            for i, f in zip(missing, feats, strict=True):
                out[v][i] = f
                if cache:
                    cache.put(shas[i], v, f)
            if cache:
                cache.save()
        elif progress:
            progress(f"features view {v + 1}/{n_views}: {len(arrays)} images from cache")
        if hasattr(progress, "part"):
            progress.part(v + 1, n_views)
    return np.stack([np.stack(col) for col in out])
