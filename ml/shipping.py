"""Shipped models: a trained head in git, the backbone rebuilt from a pinned source.

A full VGG16 artifact is ~30 MB, too big for git; its head (feature standardisation + one
Dense layer) is a few KB. ``export_head`` checks that an artifact's backbone is exactly a
pinned one (:mod:`ml.backbones`; a fine-tuned backbone cannot be shipped this way), and writes
``ml/shipped/<arch>/``:

- ``head.npz``: ``standardize_mean``, ``standardize_inv_std``, ``dense_kernel``, ``dense_bias``
- ``ship.json``: name, backbone id, head SHA-256, the artifact's metadata, and reference
  probabilities of the original artifact on a few named images (file, SHA-256, P(tumor))
- the artifact's ROC / confusion PNGs

``assemble`` rebuilds the full artifact (``model.keras`` + ``metadata.json``, the format of
:mod:`ml.artifacts`) from that folder; its probabilities equal the original's.

    python -m ml ship-head ARTIFACT [--out ml/shipped/vgg16] [--name NAME] [--reference-data DIR]
    python -m ml assemble ml/shipped/vgg16 --out DIR [--cache var/weights]
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
from pathlib import Path

__all__ = ["ShippingError", "SHIPPED_DIR", "export_head", "assemble", "read_manifest", "shipped_folders",
           "reference_images", "HEAD_FILE", "MANIFEST_FILE"]

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
HEAD_FILE = "head.npz"
MANIFEST_FILE = "ship.json"
PLOT_FILES = ("validation_roc.png", "validation_confusion.png", "roc.png", "confusion.png")
MANIFEST_FORMAT = 1


class ShippingError(Exception):
    """A head cannot be exported or a shipped model cannot be assembled; str() says why."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def shipped_folders(root: Path = SHIPPED_DIR) -> list[Path]:
    return sorted(p for p in Path(root).iterdir() if (p / MANIFEST_FILE).is_file()) if Path(root).is_dir() else []


def read_manifest(folder) -> dict:
    from .weights import file_sha256

    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ShippingError(f"cannot read {folder / MANIFEST_FILE}: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ShippingError(f"{folder / MANIFEST_FILE}: unsupported format {manifest.get('format')!r}")
    head = folder / HEAD_FILE
    if not head.is_file() or file_sha256(head) != manifest.get("head_sha256"):
        raise ShippingError(f"{head} is missing or does not match the SHA-256 in {MANIFEST_FILE}")
    return manifest


def backbone_file(bid: str, cache_dir, imagenet_weights=None) -> Path:
    """The local weights file for a pinned backbone id (fetched/rebuilt/verified as needed)."""
    from .backbones import BACKBONES, BackboneError, ensure_vgg16_hed, imagenet_file

    if bid not in BACKBONES:
        raise ShippingError(f"unknown backbone {bid!r}")
    try:
        if bid == "vgg16-hed":
            return ensure_vgg16_hed(cache_dir)
    except BackboneError as exc:
        raise ShippingError(str(exc)) from None
    path, why = imagenet_file(BACKBONES[bid]["arch"], imagenet_weights)
    if path is None:
        raise ShippingError(why)
    return path


def _build(meta: dict, weights_path: Path):
    from .builders import build_classifier

    cfg = meta.get("model_config") or {}
    return build_classifier(meta["architecture"], weights=str(weights_path), input_size=meta["input_size"],
                            dropout=cfg.get("dropout", 0.3), feature_layers=cfg.get("feature_layers"),
                            pooling=cfg.get("pooling"), l2=cfg.get("l2", 1e-3))


def reference_images(data_dir, n: int = 10) -> list[Path]:
    """``n`` images of a ``yes/`` + ``no/`` folder, half from each, evenly spread in name order."""
    out = []
    for i, sub in enumerate(("yes", "no")):
        files = sorted(p for p in (Path(data_dir) / sub).iterdir() if p.is_file())
        k = n // 2 + (n % 2 if i == 0 else 0)
        step = max(1, len(files) // max(k, 1))
        out += files[::step][:k]
    return out


def predict_files(artifact, files) -> list[float | None]:
    from .engine import InferenceEngine

    loaded = InferenceEngine().load(artifact)
    datas = [Path(f).read_bytes() for f in files]
    return [p.probability for p in loaded.predict_bytes(datas, batch_size=16)]


def export_head(artifact, out_dir, *, name: str | None = None, cache_dir="var/weights", reference_data=None,
                reference_n: int = 10, imagenet_weights=None) -> dict:
    """Write the artifact's head + manifest into ``out_dir`` (replacing what was there)."""
    import numpy as np

    from .artifacts import load_artifact
    from .backbones import backbone_description, backbone_id
    from .builders import HEAD_LAYERS
    from .weights import file_sha256

    model, meta = load_artifact(artifact)
    artifact_path = Path(meta.pop("path"))
    arch = meta["architecture"]
    bid = backbone_id(arch, (meta.get("extra") or {}).get("weights"))
    if bid is None:
        raise ShippingError(f"{artifact_path}: its backbone ({(meta.get('extra') or {}).get('weights')}) is not a "
                            "pinned one (HED-derived VGG16 or Keras ImageNet); it cannot be shipped as a head")
    rebuilt = _build(meta, backbone_file(bid, cache_dir, imagenet_weights))
    ours = {layer.name for layer in model.layers if layer.weights}
    theirs = {layer.name for layer in rebuilt.layers if layer.weights}
    if ours != theirs:
        raise ShippingError(f"layers differ from the rebuilt model: {sorted(ours ^ theirs)}")
    for layer in model.layers:
        if not layer.weights or layer.name in HEAD_LAYERS:
            continue
        for a, b in zip(layer.get_weights(), rebuilt.get_layer(layer.name).get_weights(), strict=True):
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ShippingError(f"backbone layer {layer.name} differs from the pinned {bid} backbone "
                                    "(fine-tuned?): only a head on an unchanged backbone can be shipped")
    mean, inv_std = model.get_layer("standardize").get_weights()
    kernel, bias = model.get_layer("tumor_probability").get_weights()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file():
            old.unlink()
    np.savez(out / HEAD_FILE, standardize_mean=mean, standardize_inv_std=inv_std, dense_kernel=kernel,
             dense_bias=bias)
    plots = []
    for plot in PLOT_FILES:
        if (artifact_path / plot).is_file():
            shutil.copyfile(artifact_path / plot, out / plot)
            plots.append(plot)
    if meta.get("ood"):  # the OOD gate's file travels with the head (its SHA-256 is in the metadata)
        shutil.copyfile(artifact_path / meta["ood"]["file"], out / meta["ood"]["file"])
    reference = None
    if reference_data:
        files = reference_images(reference_data, reference_n)
        probs = predict_files(artifact_path, files)
        reference = {"source": str(reference_data), "tolerance": 1e-5, "images": [
            {"file": str(f.relative_to(reference_data)), "sha256": file_sha256(f), "probability": p}
            for f, p in zip(files, probs, strict=True)]}
    created = str(meta.get("created", ""))[:10].replace("-", "")
    head_sha = file_sha256(out / HEAD_FILE)
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name or f"{bid}-{meta['input_size']}-{created}-{head_sha[:8]}",
        "architecture": arch,
        "backbone": backbone_description(bid),
        "head_file": HEAD_FILE,
        "head_sha256": head_sha,
        "plots": plots,
        "source_artifact": {"model_sha256": meta["model_sha256"], "name": artifact_path.name},
        "exported": _now(),
        "metadata": meta,
        "reference": reference,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def assemble(folder, out_dir, *, cache_dir="var/weights", imagenet_weights=None) -> Path:
    """Rebuild the full artifact of a shipped folder into ``out_dir`` (model.keras + metadata.json)."""
    import numpy as np

    from .artifacts import METADATA_FILE, MODEL_FILE, _jsonable, read_metadata
    from .weights import file_sha256

    folder = Path(folder)
    manifest = read_manifest(folder)
    meta = dict(manifest["metadata"])
    bid = manifest["backbone"]["id"]
    model = _build(meta, backbone_file(bid, cache_dir, imagenet_weights))
    with np.load(folder / HEAD_FILE, allow_pickle=False) as head:
        model.get_layer("standardize").set_weights([head["standardize_mean"], head["standardize_inv_std"]])
        model.get_layer("tumor_probability").set_weights([head["dense_kernel"], head["dense_bias"]])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / (MODEL_FILE + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, out / MODEL_FILE)
    for plot in manifest.get("plots") or []:
        shutil.copyfile(folder / plot, out / plot)
    if meta.get("ood"):
        shutil.copyfile(folder / meta["ood"]["file"], out / meta["ood"]["file"])
    meta["model_sha256"] = file_sha256(out / MODEL_FILE)
    meta["version"] = manifest["name"]
    meta.setdefault("backbone", {k: manifest["backbone"][k] for k in ("name", "imagenet", "source")})
    meta["shipped"] = {"name": manifest["name"], "backbone": bid, "head_sha256": manifest["head_sha256"],
                       "source_model_sha256": manifest["source_artifact"]["model_sha256"], "assembled": _now()}
    tmpj = out / (METADATA_FILE + ".tmp")
    tmpj.write_text(json.dumps(_jsonable(meta), indent=2, sort_keys=True) + "\n")
    os.replace(tmpj, out / METADATA_FILE)
    read_metadata(out)  # the assembled artifact must pass the same checks as any import
    return out
