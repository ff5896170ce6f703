"""Backbone weights: ``imagenet`` (Keras download + cache), ``none``, or a local file.

Offline clinics: Keras looks for ImageNet weights in ``$KERAS_HOME/models/`` (default
``~/.keras/models/``) and uses a file found there without touching the network if its
hash matches. The exact files (``include_top=False``) are listed in :data:`IMAGENET_FILES`;
Keras checks them with the MD5 shown (that is what ``keras.utils.get_file`` verifies for
these two files). Copy the files there, or pass their path as ``--weights PATH``.

A local weights file may be
- a Keras-format notop file, e.g. ``vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``
  (legacy HDF5 layout, loaded in layer order), or
- a Keras 3 ``*.weights.h5`` file saved from ``keras.applications.VGG16/ResNet50(include_top=False)``
  (as written by ``ml.backbones`` from the HED package), loaded by layer name.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["IMAGENET_FILES", "resolve_weights", "keras_models_dir", "WeightsError", "describe_weights",
           "file_sha256"]


class WeightsError(Exception):
    pass


_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"

IMAGENET_FILES = {
    "vgg16": {
        "file": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "url": _BASE + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5": "6d6bbae143d832006294945121d1f1fc",
        "size_bytes": 58889256,
    },
    "resnet50": {
        "file": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "url": _BASE + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "md5": "4d473c1dd8becc155b73f8504c6f6626",
        "size_bytes": 94765736,
    },
}


def keras_models_dir() -> Path:
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def resolve_weights(arch: str, weights) -> tuple[str, str | None]:
    """Normalise a ``--weights`` value to ``(kind, value)``.

    kind is ``"imagenet"`` (value None), ``"none"`` (value None) or ``"file"`` (value = absolute path).
    """
    if weights is None:
        return "none", None
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if not isinstance(weights, str):
        raise WeightsError(f"weights must be 'imagenet', 'none' or a file path, not {weights!r}")
    low = weights.strip().lower()
    if low in ("none", ""):
        return "none", None
    if low == "imagenet":
        return "imagenet", None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    return "file", str(path.resolve())


def imagenet_help(arch: str) -> str:
    info = IMAGENET_FILES[arch]
    return (f"ImageNet weights for {arch} could not be obtained (no network?). Download {info['url']} "
            f"elsewhere and place it as {keras_models_dir() / info['file']} (md5 {info['md5']}), "
            f"or pass --weights /path/to/{info['file']}.")


def describe_weights(arch: str, weights) -> dict:
    kind, value = resolve_weights(arch, weights)
    out: dict = {"kind": kind}
    if kind == "imagenet":
        out.update(file=IMAGENET_FILES[arch]["file"], md5=IMAGENET_FILES[arch]["md5"])
    elif kind == "file":
        out.update(file=os.path.basename(value), sha256=file_sha256(value))
    return out
