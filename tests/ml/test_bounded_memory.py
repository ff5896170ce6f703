"""Issue 9, defect 1: a 5 KB image must not exhaust the worker. Decode + prepare (and the
Grad-CAM overlay) run here in a subprocess under a 1 GiB address-space limit
(``RLIMIT_AS``), without TensorFlow, which they do not need. Before the fix, a 20 x 20000
strip needed 1.5 GB (the padded 20000 x 20000 square) and a 20 x 100000 one about 30 GB."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1024 * 1024 * 1024

CHILD = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (__LIMIT__, __LIMIT__))
sys.path.insert(0, __ROOT__)
import json
import numpy as np
from ml.intake import ImageRejected, IntakeLimits, decode_image
from ml.prepare import prepare_with_geometry
from ml.gradcam import overlay_png
assert "tensorflow" not in sys.modules
limits = IntakeLimits(**json.loads(sys.argv[1]))
out = []
for path in sys.argv[2:]:
    try:
        decoded = decode_image(open(path, "rb").read(), limits)
    except ImageRejected as exc:
        out.append({"rejected": str(exc)})
        continue
    arr, box, side = prepare_with_geometry(decoded.image, 224, crop=True)
    plain, _, _ = prepare_with_geometry(decoded.image, 224, crop=False)
    cam = np.ones((7, 7), np.float32)
    png = overlay_png(decoded.image, cam, box, side)
    lit = np.nonzero(plain.max(axis=(0, 2)))[0], np.nonzero(plain.max(axis=(1, 2)))[0]
    out.append({"shape": list(arr.shape), "box": list(box), "side": side, "overlay_bytes": len(png),
                "lit_columns": [int(lit[0].min()), int(lit[0].max())],
                "lit_rows": [int(lit[1].min()), int(lit[1].max())]})
print(json.dumps(out))
"""


def _strip_png(width, height):
    """A mid-grey strip with a little texture: a few KB of PNG."""
    rng = np.random.default_rng(0)
    arr = (100 + rng.integers(0, 20, (height, width))).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, format="PNG")
    return buf.getvalue()


def _run(tmp_path, limits, images):
    paths = []
    for i, data in enumerate(images):
        path = tmp_path / f"image-{i}.png"
        path.write_bytes(data)
        paths.append(str(path))
    code = CHILD.replace("__LIMIT__", str(LIMIT)).replace("__ROOT__", repr(str(ROOT)))
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(limits), *paths],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# Shape checks off: the worker's second line (the memory budget) and the bounded
# preprocessing itself are under test, as for a file stored before the shape checks existed.
SHAPE_CHECKS_OFF = {"min_side": None, "max_aspect": None, "content_checks": False}


@pytest.mark.parametrize("width,height", [(20, 100_000), (100_000, 20), (20, 20_000)])
def test_thin_strips_are_prepared_within_a_small_memory_limit(tmp_path, width, height):
    data = _strip_png(width, height)
    assert len(data) < 3 * 1024 * 1024
    [result] = _run(tmp_path, SHAPE_CHECKS_OFF, [data])
    assert result["shape"] == [224, 224, 3]
    assert result["side"] == max(width, height) and result["overlay_bytes"] > 0
    # Letterboxed like the padded square would be: the strip is a thin centred band.
    across = "lit_columns" if width < height else "lit_rows"
    along = "lit_rows" if width < height else "lit_columns"
    assert result[along] == [0, 223]
    lo, hi = result[across]
    assert 110 <= lo <= hi <= 113


def test_the_memory_budget_refuses_a_strip_before_decoding_it(tmp_path):
    budget = {**SHAPE_CHECKS_OFF, "work_budget_bytes": 16 * 1024 * 1024}
    [result] = _run(tmp_path, budget, [_strip_png(20, 100_000)])
    assert result["rejected"].startswith("image of 20 × 100000 pixels would need about ")
    assert result["rejected"].endswith(" MB of memory to process; the limit is 16 MB")


def test_the_memory_budget_refuses_a_decompression_bomb_within_the_limit(tmp_path):
    """A 1 KB PNG declaring 9000 x 9000 pixels, with the pixel limit set high: only the
    working-size budget (default 1 GiB) stands between it and a decode of about 1 GB."""
    from tests.ml.test_intake_plausibility import _png_header_only

    relaxed = {**SHAPE_CHECKS_OFF, "max_pixels": 10**12, "work_budget_bytes": 512 * 1024 * 1024}
    [result] = _run(tmp_path, relaxed, [_png_header_only(9000, 9000)])
    assert result == {"rejected": "image of 9000 × 9000 pixels would need about 935 MB of memory to process; "
                                  "the limit is 512 MB"}
