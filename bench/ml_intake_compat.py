"""The shared set through the new intake and the bounded preprocessing (issues 9 and 10).

1. Intake: every image is decoded with the portal's default limits (``IntakeLimits()``:
   shape, memory budget, blank/uniform/structure checks); none may be refused.
2. Old vs new letterboxing: how far the bounded preprocessing moves the model's input
   (also after histogram equalisation, the default intensity step, which can stretch a
   one-level difference).

Until issue 9, ``ml.prepare`` padded the (cropped) image to a black square of its long side
and resized that square to the model's input size; a 20 x 100000 strip made a 30 GB square.
``ml.prepare.letterbox`` computes the same pixels without the square. This script runs both
on every image of the shared set (internal figures), with and without the brain crop, at
the served input size, and prints the largest absolute pixel difference and how many pixels
differ at all. The old way is kept here, verbatim, as the reference.

    .venv/bin/python bench/ml_intake_compat.py [--data DIR] [--sizes 160 224]

Prints a table and last one JSON line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402

from _machine import machine_info  # noqa: E402

DATA = Path("/work/shared/datasets/brain-mri-navoneel")


def padded_square(image: Image.Image, n: int) -> Image.Image:
    """The pre-issue-9 way: pad to a square of the long side, then resize it."""
    w, h = image.size
    side = max(w, h)
    if w != h:
        canvas = Image.new("RGB", (side, side), (0, 0, 0))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if side != n:
        image = image.resize((n, n), Image.BILINEAR, reducing_gap=None)
    return image


def main() -> None:
    from ml.crop import brain_bbox
    from ml.intake import ImageRejected, IntakeLimits, decode_image
    from ml.prepare import letterbox

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 224], help="model input sizes (160: the default)")
    args = ap.parse_args()
    files = sorted(p for p in args.data.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images, refused = [], []
    for path in files:
        try:
            images.append(decode_image(path.read_bytes(), IntakeLimits()).image)
        except ImageRejected as exc:
            refused.append(f"{path.parent.name}/{path.name}: {exc}")
    print(f"intake (default limits): {len(files)} images, {len(images)} accepted, {len(refused)} refused "
          "(internal figures)")
    for line in refused:
        print("  refused", line)
    results = {"intake": {"images": len(files), "accepted": len(images), "refused": refused}}
    print(f"{'input':>5} {'crop':<8}{'intensity':<10}{'images':>7}{'differ':>8}{'max |d|':>9}"
          f"{'pixels differ':>15}{'mean |d|':>10}")
    combos = [(s, c, "none") for s in args.sizes for c in (True, False)] + [(s, True, "equalize") for s in args.sizes]
    for size, crop, intensity in combos:
        worst, changed, differ_px, total_px, sum_abs = 0, 0, 0, 0, 0.0
        for image in images:
            box = brain_bbox(image) if crop else None
            if box is not None:
                image = image.crop(box)
            old, new = padded_square(image, size), letterbox(image, size)
            if intensity == "equalize":  # as ml.prepare does after the resize
                old, new = (ImageOps.equalize(im.convert("L")).convert("RGB") for im in (old, new))
            old, new = np.asarray(old, np.int16), np.asarray(new, np.int16)
            d = np.abs(old - new)
            worst = max(worst, int(d.max()))
            changed += int(d.any())
            differ_px += int(d.any(axis=-1).sum())
            total_px += d.shape[0] * d.shape[1]
            sum_abs += float(d.sum())
        key = "crop" if crop else "no_crop"
        results[f"{size}_{key}_{intensity}"] = {"images": len(images), "images_differ": changed, "max_abs": worst,
                                    "pixel_fraction_differ": differ_px / total_px, "mean_abs": sum_abs / (total_px * 3)}
        print(f"{size:>5} {key:<8}{intensity:<10}{len(images):>7}{changed:>8}{worst:>9}"
              f"{differ_px / total_px:>15.2e}{sum_abs / (total_px * 3):>10.2e}")
    print(json.dumps({"bench": "ml_intake_compat", "results": results, "machine": machine_info()}))


if __name__ == "__main__":
    main()
