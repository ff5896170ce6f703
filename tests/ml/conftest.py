"""Fixtures for ml/ tests: small generated images and tiny artifacts (weights none, 32-64 px)."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def brain_image(size=(120, 100), tumor=False, seed=0, mode="RGB") -> Image.Image:
    """A dark background with a bright 'head' ellipse; a tumour is a bright blob inside it."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    cx, cy = w / 2 + rng.uniform(-3, 3), h / 2 + rng.uniform(-3, 3)
    rx, ry = w * rng.uniform(0.28, 0.36), h * rng.uniform(0.32, 0.4)
    head = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    # Low-frequency random texture makes each generated scan distinct (for duplicate detection).
    field = Image.fromarray(rng.uniform(0, 255, (5, 5)).astype(np.uint8), "L").resize((w, h), Image.BICUBIC)
    texture = np.asarray(field, np.float64) - 128
    arr = np.zeros((h, w), np.float64)
    arr[head] = 110 + 0.6 * texture[head] + rng.normal(0, 8, head.sum())
    if tumor:
        tx, ty = cx + rng.uniform(-rx / 3, rx / 3), cy + rng.uniform(-ry / 3, ry / 3)
        blob = ((xx - tx) ** 2 + (yy - ty) ** 2) <= (min(w, h) * 0.08) ** 2
        arr[blob] = 245
    arr = np.clip(arr, 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "L")
    return img.convert(mode) if mode != "L" else img


def encode(img: Image.Image, fmt="PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="session")
def make_brain():
    return brain_image


@pytest.fixture(scope="session")
def enc():
    return encode


def _tiny_artifact(tmp_path_factory, arch, size):
    from ml.artifacts import save_artifact
    from ml.builders import build_classifier

    model = build_classifier(arch, weights="none", input_size=size)
    out = tmp_path_factory.mktemp(f"art_{arch}")
    save_artifact(model, out, architecture=arch, input_size=size, threshold=0.5,
                  metrics={"note": "untrained"}, dataset_fingerprint="test")
    return out


@pytest.fixture(scope="session")
def vgg_artifact(tmp_path_factory):
    return _tiny_artifact(tmp_path_factory, "vgg16", 64)


@pytest.fixture(scope="session")
def resnet_artifact(tmp_path_factory):
    return _tiny_artifact(tmp_path_factory, "resnet50", 64)


@pytest.fixture(scope="session")
def engine():
    from ml.engine import InferenceEngine

    return InferenceEngine(intra_op_threads=2, inter_op_threads=1)
