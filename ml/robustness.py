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
                    progress=None) -> dict:
    """{change: (n, d) pooled features of the images ``ds.samples[indices]`` with that change},
    cached per image and change."""
    import numpy as np

    from .features import run_model
    from .intake import decode_image
    from .prepare import prepare_image

    shas = [ds.samples[i].sha256 for i in indices]
    out = {}
    for n, name in enumerate(CHANGES):
        key = f"change-{name}"
        got = [cache.get(s, key) if cache else None for s in shas]
        if any(v is None for v in got):
            arrays = np.stack([prepare_image(CHANGES[name](decode_image(ds.samples[i].path.read_bytes()).image),
                                             input_size, crop, intensity) for i in indices])
            got = list(run_model(fmodel, arrays, progress=progress, what=f"features, change {name}"))
            if cache:
                for s, f in zip(shas, got, strict=True):
                    cache.put(s, key, f)
                cache.save()
        elif progress:
            progress(f"features, change {name}: {len(shas)} images from cache")
        out[name] = np.stack(got)
        if hasattr(progress, "part"):
            progress.part(n + 1, len(CHANGES))
    return out
