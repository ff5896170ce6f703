"""Changes an upload can bring, applied to the decoded image before it is prepared.

Used to measure robustness (``ml.cv``, ``bench/ml_robustness.py``): each change is applied to
every test image, which then goes through the serving path; a robust model keeps its
accuracy and rarely flips a label.
"""
from __future__ import annotations

import io

from PIL import Image

__all__ = ["CHANGES", "apply_change"]


def _jpeg(quality: int):
    def change(img: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=quality)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return change


def _half_and_back(img: Image.Image) -> Image.Image:
    w, h = img.size
    return img.resize((max(1, w // 2), max(1, h // 2)), Image.BILINEAR).resize((w, h), Image.BILINEAR)


def _gamma(g: float):
    lut = [min(255, int(round(255 * (i / 255) ** g))) for i in range(256)]

    def change(img: Image.Image) -> Image.Image:
        return img.convert("RGB").point(lut * 3)
    return change


CHANGES = {
    "rot90": lambda img: img.transpose(Image.ROTATE_90),
    "rot180": lambda img: img.transpose(Image.ROTATE_180),
    "rot270": lambda img: img.transpose(Image.ROTATE_270),
    "hflip": lambda img: img.transpose(Image.FLIP_LEFT_RIGHT),
    "jpeg_q30": _jpeg(30),
    "half_size": _half_and_back,
    "gamma_0.7": _gamma(0.7),
    "gamma_1.4": _gamma(1.4),
}


def apply_change(name: str, img: Image.Image) -> Image.Image:
    return CHANGES[name](img)


def change_features(fmodel, ds, indices, input_size: int, crop: bool, intensity: str, cache=None,
                    progress=None, orientations=None) -> dict:
    """{change: pooled features of the images ``ds.samples[indices]`` with that change}, cached per
    image, change and orientation: (n, d), or (k, n, d) with ``orientations`` (the engine's
    test-time views of the changed image, :mod:`ml.tta`)."""
    import numpy as np

    from .augment import dihedral
    from .features import run_model
    from .intake import decode_image
    from .prepare import prepare_image

    shas = [ds.samples[i].sha256 for i in indices]
    out = {}
    for n, name in enumerate(CHANGES):
        prepared = None
        per_view = []
        for o in (orientations or (0,)):
            key = f"change-{name}" + (f"-o{o}" if o else "")
            got = [cache.get(s, key) if cache else None for s in shas]
            if any(v is None for v in got):
                if prepared is None:
                    prepared = [prepare_image(CHANGES[name](decode_image(ds.samples[i].path.read_bytes()).image),
                                              input_size, crop, intensity) for i in indices]
                arrays = np.stack([dihedral(a, o) for a in prepared])
                got = list(run_model(fmodel, arrays, progress=progress, what=f"features, change {name}, view {o}"))
                if cache:
                    for s, f in zip(shas, got, strict=True):
                        cache.put(s, key, f)
                    cache.save()
            elif progress:
                progress(f"features, change {name}, view {o}: {len(shas)} images from cache")
            per_view.append(np.stack(got))
        out[name] = np.stack(per_view) if orientations else per_view[0]
        if hasattr(progress, "part"):
            progress.part(n + 1, len(CHANGES))
    return out
