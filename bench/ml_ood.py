"""Out-of-distribution gate: what share of non-brain-MRI images it refuses, and what share of
held-out brain MRIs it lets through.

    .venv/bin/python bench/ml_ood.py --write var/ood_set                 # build the OOD set only
    .venv/bin/python bench/ml_ood.py --artifact var/models/vgg16_hed_trust --write var/ood_set

The OOD set is made offline from what installed packages ship: scikit-image's data images
(photographs, textures, text, microscopy, astronomy), pydicom's test files that are not MR
(CT, ultrasound, nuclear medicine, radiographs, ...; pixel data decodable without plugins,
duplicates by pixel content removed, each rendered to 8-bit PNG by min-max windowing, the
middle frame of multi-frame files), and generated images: blank, uniform grey levels, gradients,
noise, checkerboards and rendered text. The held-out figure comes from the artifact's own
grouped CV (``metrics["ood"]["heldout_assessed"]``, each test fold scored by a gate fitted
without it). Prints a table per source and, last, one JSON line.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from _machine import machine_info  # noqa: E402

SKIMAGE = ("astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee", "coins",
           "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "rocket",
           "text")


def _png(arr) -> bytes:
    import numpy as np
    from PIL import Image

    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.dtype != np.uint8:
        a = a.astype(np.float64)
        lo, hi = np.percentile(a, 0.5), np.percentile(a, 99.5)
        a = np.clip((a - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def skimage_images():
    import skimage.data as data

    for name in SKIMAGE:
        yield "skimage", name, _png(getattr(data, name)())


def dicom_images():
    import warnings

    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_files

    seen = set()
    for f in sorted(get_testdata_files()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(f)
                if str(getattr(ds, "Modality", "")) == "MR" or "PixelData" not in ds:
                    continue
                a = ds.pixel_array
        except Exception:  # compressed syntaxes needing plugins, broken test files
            continue
        if a.ndim == 4 or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
            a = a[len(a) // 2]
        if a.ndim == 3 and a.shape[-1] == 4:
            a = a[..., :3]
        if min(a.shape[:2]) < 16:
            continue
        key = hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        yield f"pydicom {getattr(ds, 'Modality', '?') or '?'}", Path(f).stem, _png(a)


def generated_images(size: int = 256):
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(0)
    yield "blank", "black", _png(np.zeros((size, size), np.uint8))
    yield "blank", "white", _png(np.full((size, size), 255, np.uint8))
    for v in (32, 64, 96, 128, 160, 192, 224):
        yield "uniform grey", f"grey{v}", _png(np.full((size, size), v, np.uint8))
    ramp = np.linspace(0, 255, size)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    yield "gradient", "horizontal", _png(np.tile(ramp, (size, 1)).astype(np.uint8))
    yield "gradient", "vertical", _png(np.tile(ramp[:, None], (1, size)).astype(np.uint8))
    yield "gradient", "diagonal", _png(((xx + yy) / 2 * 255).astype(np.uint8))
    r = np.sqrt((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    yield "gradient", "radial", _png((np.clip(1 - r / 0.71, 0, 1) * 255).astype(np.uint8))
    yield "gradient", "radial-dark", _png((np.clip(r / 0.71, 0, 1) * 255).astype(np.uint8))
    yield "gradient", "colour", _png(np.stack([xx * 255, yy * 255, (1 - xx) * 255], -1).astype(np.uint8))
    for k in range(3):
        yield "noise", f"uniform{k}", _png(rng.integers(0, 256, (size, size), dtype=np.uint8))
        yield "noise", f"gaussian{k}", _png(np.clip(rng.normal(128, 40, (size, size)), 0, 255).astype(np.uint8))
        yield "noise", f"colour{k}", _png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    sp = np.where(rng.uniform(size=(size, size)) < 0.1, 255, 0).astype(np.uint8)
    yield "noise", "salt", _png(sp)
    for cell in (4, 8, 16, 32, 64):
        board = (((np.arange(size) // cell)[:, None] + (np.arange(size) // cell)[None, :]) % 2 * 255).astype(np.uint8)
        yield "checkerboard", f"cell{cell}", _png(board)
    font = ImageFont.load_default()
    lines = ["Patient: DOE^JANE  DOB 1970-01-01", "Brain MRI report", "No acute intracranial abnormality.",
             "Findings: see attached images", "Lorem ipsum dolor sit amet, consectetur", "T2 FLAIR AXIAL 5mm"]
    for k, (fg, bg) in enumerate([(0, 255), (255, 0), (200, 30)]):
        img = Image.new("L", (size, size), bg)
        d = ImageDraw.Draw(img)
        for j, line in enumerate(lines * 3):
            d.text((6, 6 + 14 * j), line, fill=fg, font=font)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        yield "rendered text", f"text{k}", buf.getvalue()


def ood_set():
    yield from skimage_images()
    yield from dicom_images()
    yield from generated_images()


def main() -> int:
    ap = argparse.ArgumentParser(description="OOD gate benchmark")
    ap.add_argument("--artifact", default=None, help="artifact to score (omit to only write the set)")
    ap.add_argument("--write", default=None, help="also write the OOD set as PNG files into this folder")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    info = machine_info()
    items = list(ood_set())
    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for source, name, data in items:
            (out / f"{source.replace(' ', '_')}__{name}.png").write_bytes(data)
        print(f"wrote {len(items)} images to {out}")
    result = {"bench": "ml_ood", "n_images": len(items), "machine": info}
    if args.artifact:
        from collections import defaultdict

        from ml.engine import InferenceEngine

        loaded = InferenceEngine(args.threads, 1).load(args.artifact)
        if loaded.ood is None:
            raise SystemExit(f"{args.artifact} has no OOD gate")
        preds = loaded.predict_bytes([d for _, _, d in items], batch_size=16)
        by = defaultdict(lambda: [0, 0])
        missed = []
        for (source, name, _), p in zip(items, preds, strict=True):
            by[source][0] += 1
            by[source][1] += int(p.error is not None or not p.assessed)
            if p.error is None and p.assessed:
                missed.append(f"{source}/{name} (score {p.ood_score:.1f}, P={p.probability:.2f})")
        print(f"artifact: {args.artifact}; OOD threshold {loaded.ood.threshold:.2f}")
        print(f"{'source':22s} {'images':>6s} {'not assessed':>12s}")
        for source, (n, k) in by.items():
            print(f"{source:22s} {n:6d} {k / n:12.1%}")
        total = sum(k for _, k in by.values()) / len(items)
        heldout = loaded.metadata.get("metrics", {}).get("ood", {}).get("heldout_assessed")
        print(f"{'all OOD images':22s} {len(items):6d} {total:12.1%}")
        print(f"held-out brain MRIs assessed (artifact's grouped CV, internal figure): "
              f"{'n/a' if heldout is None else format(heldout, '.1%')}")
        if missed:
            print("assessed although out of distribution: " + "; ".join(missed))
        # refused before the model (shape, blank, one shade): an error, or "not assessed" with a
        # reason and no score; the colour check gives a reason with a score
        errors = sum(p.error is not None or (p.reason is not None and p.ood_score is None) for p in preds)
        coloured = sum(p.reason is not None and p.ood_score is not None for p in preds)
        print(f"refused before the model: {errors}; not assessed for colour: {coloured}")
        result.update({"artifact": str(args.artifact), "threshold": loaded.ood.threshold, "ood_not_assessed": total,
                       "by_source": {s: {"n": n, "not_assessed": k / n} for s, (n, k) in by.items()},
                       "rejected_at_intake": errors, "not_assessed_colour": coloured, "heldout_assessed": heldout,
                       "missed": missed})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
