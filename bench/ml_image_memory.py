"""Peak memory of one image through the worker's path: ml.intake.decode_image + ml.prepare.

Each case runs in a fresh subprocess (no TensorFlow: decode and prepare do not need it):
the file's bytes are read, the process's resident memory is noted, then the image is
decoded (intake limits relaxed, so every shape gets through) and prepared for a 224 px
model with the brain crop, as served. The peak resident memory above that baseline
(VmHWM - VmRSS, from /proc) is what the image cost; it is compared with the estimate that
intake checks against ``IMAGE_WORK_BUDGET_MB`` (``ml.intake.working_bytes``).

    .venv/bin/python bench/ml_image_memory.py [--quick]

Prints a table and last one JSON line.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine_info  # noqa: E402

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[1] + "/bench")
from _machine import peak_rss_mb, rss_mb
from ml.intake import IntakeLimits, decode_image, working_bytes
from ml.prepare import prepare_with_geometry
data = open(sys.argv[2], "rb").read()
relaxed = IntakeLimits(max_bytes=1 << 40, max_pixels=1 << 40, min_side=None, max_aspect=None,
                       work_budget_bytes=1 << 50, content_checks=False)
from PIL import Image
import io
with Image.open(io.BytesIO(data)) as probe:
    mode = probe.mode
base = rss_mb()
decoded = decode_image(data, relaxed)
arr, box, side = prepare_with_geometry(decoded.image, 224, crop=True)
assert arr.shape == (224, 224, 3)
print(json.dumps({"peak_mb": peak_rss_mb() - base, "mode": mode,
                  "estimate_mb": working_bytes(decoded.width, decoded.height, mode, len(data)) / 2**20}))
"""


def make(width: int, height: int, mode: str, fmt: str) -> bytes:
    """A scan-like test image: dark background, bright textured ellipse (compresses like a scan)."""
    import numpy as np
    from PIL import Image

    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    inside = (xx / 0.7) ** 2 + (yy / 0.8) ** 2 <= 1
    rng = np.random.default_rng(0)
    grey = np.where(inside, 110 + rng.integers(0, 40, (height, width), dtype=np.uint8), 0).astype(np.uint8)
    del inside
    if mode == "I;16":
        img = Image.fromarray(grey.astype(np.uint16) * 257)
    elif mode == "RGBA":
        img = Image.merge("RGBA", [Image.fromarray(grey)] * 3 + [Image.new("L", (width, height), 255)])
    elif mode == "RGB":
        img = Image.fromarray(grey).convert("RGB")
    else:
        img = Image.fromarray(grey).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {"compress_level": 1}))
    return buf.getvalue()


CASES = [  # (width, height, mode, format)
    (512, 512, "RGB", "JPEG"), (1024, 1024, "RGB", "JPEG"), (2048, 2048, "RGB", "JPEG"),
    (4096, 4096, "RGB", "JPEG"), (7000, 7000, "RGB", "JPEG"),
    (4096, 4096, "L", "PNG"), (4096, 4096, "RGBA", "PNG"), (4096, 4096, "I;16", "PNG"),
    (1920, 1080, "RGB", "PNG"), (4096, 2048, "RGB", "PNG"), (2048, 4096, "RGB", "JPEG"), (4096, 1024, "RGB", "PNG"),
    (20, 20000, "L", "PNG"), (20, 100000, "L", "PNG"), (200, 20000, "RGB", "PNG"), (100000, 20, "L", "PNG"),
]
QUICK = [c for c in CASES if c[0] * c[1] <= 4_200_000]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only images up to 4 megapixels")
    args = ap.parse_args()
    rows = []
    print(f"{'size':>13} {'mode':>5} {'fmt':>4} {'Mpx':>6} {'file MB':>8} {'peak MB':>8} {'B/px':>6} {'est MB':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for w, h, mode, fmt in (QUICK if args.quick else CASES):
            path = Path(tmp) / "image"
            data = make(w, h, mode, fmt)
            path.write_bytes(data)
            out = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(path)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            mpx = w * h / 1e6
            row = {"width": w, "height": h, "mode": r["mode"], "format": fmt, "megapixels": round(mpx, 2),
                   "file_mb": round(len(data) / 2**20, 2), "peak_mb": round(r["peak_mb"], 1),
                   "bytes_per_pixel": round(r["peak_mb"] * 2**20 / (w * h), 1),
                   "estimate_mb": round(r["estimate_mb"], 1)}
            rows.append(row)
            print(f"{w:>6}x{h:<6} {r['mode']:>5} {fmt:>4} {mpx:>6.2f} {row['file_mb']:>8.2f} {row['peak_mb']:>8.1f} "
                  f"{row['bytes_per_pixel']:>6.1f} {row['estimate_mb']:>7.1f}")
    print(json.dumps({"bench": "ml_image_memory", "rows": rows, "machine": machine_info()}))


if __name__ == "__main__":
    main()
