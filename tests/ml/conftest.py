"""Fixtures for ml/ tests: small generated images and tiny artifacts (weights none, 32-64 px)."""
from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from tests.fixtures.images import brain_image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


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
