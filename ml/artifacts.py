"""Model artifact: ``model.keras`` + ``metadata.json`` in one directory.

metadata.json (format 1) holds: format, architecture, input_size, preprocessing (crop etc.),
threshold, class_names ["no_tumor", "tumor"], positive_class, metrics, dataset_fingerprint,
weights, versions, created (UTC ISO 8601), model_file, model_sha256, plus ``extra``.
Optional: ``calibration`` (Platt parameters applied by the engine), ``ood`` (the OOD gate's
file, normally ``ood.npz``, its SHA-256 and threshold) and the model card's sections
(``training_data``, ``backbone``). Loading checks that the files exist, the JSON is valid
and complete, and that model.keras (and the OOD file) still have the recorded SHA-256 and
the recorded input size.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
from pathlib import Path

__all__ = ["ArtifactError", "save_artifact", "read_metadata", "load_artifact", "MODEL_FILE", "METADATA_FILE",
           "CLASS_NAMES", "FORMAT_VERSION"]

MODEL_FILE = "model.keras"
METADATA_FILE = "metadata.json"
CLASS_NAMES = ["no_tumor", "tumor"]
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "architecture", "input_size", "threshold", "class_names", "model_file",
                 "model_sha256", "preprocessing", "created", "versions")


class ArtifactError(Exception):
    """A model artifact is missing, incomplete or inconsistent. ``str()`` says why."""


def _sha256(path: Path) -> str:
    from .weights import file_sha256

    return file_sha256(path)


def _jsonable(obj):
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_artifact(model, out_dir, *, architecture: str, input_size: int, threshold: float = 0.5,
                  metrics: dict | None = None, dataset_fingerprint: str | None = None,
                  extra: dict | None = None, crop: bool = True, intensity: str = "none",
                  calibration: dict | None = None, ood=None, sections: dict | None = None) -> Path:
    """Write ``out_dir/model.keras`` and ``out_dir/metadata.json`` (and ``ood.npz`` for an
    :class:`ml.ood.OodModel` ``ood``); return ``out_dir`` as a Path.

    ``calibration``: ``{"method": "platt", "a", "b", "threshold", ...}``; ``threshold`` is then
    on the calibrated probability. ``sections``: further top-level keys (model card)."""
    from .builders import ARCHITECTURES
    from .prepare import preprocessing_description
    from .tfutil import library_versions

    architecture = architecture.lower()
    if architecture not in ARCHITECTURES:
        raise ArtifactError(f"unknown architecture {architecture!r}")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ArtifactError(f"threshold must be within 0..1, got {threshold}")
    shape = tuple(model.inputs[0].shape)
    if shape[1:3] != (input_size, input_size):
        raise ArtifactError(f"model input is {shape[1:3]} but input_size={input_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / MODEL_FILE
    tmp = out / (MODEL_FILE + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, model_path)
    meta = {
        "format": FORMAT_VERSION,
        "architecture": architecture,
        "input_size": int(input_size),
        "preprocessing": preprocessing_description(input_size, crop, intensity),
        "crop": bool(crop),
        "threshold": float(threshold),
        "class_names": list(CLASS_NAMES),
        "positive_class": "tumor",
        "output": "sigmoid P(tumor); label = tumor if P >= threshold",
        "metrics": metrics or {},
        "dataset_fingerprint": dataset_fingerprint,
        "versions": library_versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "model_file": MODEL_FILE,
        "model_sha256": _sha256(model_path),
        "model_config": getattr(model, "_neuroai_config", None),
    }
    if calibration:
        if calibration.get("method") not in ("platt", "temperature"):
            raise ArtifactError(f"unknown calibration method {calibration.get('method')!r}")
        meta["calibration"] = calibration
    if ood is not None:
        from .ood import OOD_FILE, OOD_METHOD

        ood.save(out / OOD_FILE)
        meta["ood"] = {"method": OOD_METHOD, "file": OOD_FILE, "sha256": _sha256(out / OOD_FILE),
                       "threshold": float(ood.threshold), "shrinkage": float(ood.shrinkage),
                       "features": int(len(ood.mean))}
    for key, value in (sections or {}).items():
        if key in meta:
            raise ArtifactError(f"metadata section {key!r} would replace a reserved key")
        meta[key] = value
    if extra:
        meta["extra"] = extra
    tmpj = out / (METADATA_FILE + ".tmp")
    tmpj.write_text(json.dumps(_jsonable(meta), indent=2, sort_keys=True) + "\n")
    os.replace(tmpj, out / METADATA_FILE)
    return out


def _artifact_dir(path) -> Path:
    p = Path(path)
    if p.is_file() and p.name in (METADATA_FILE, MODEL_FILE):
        p = p.parent
    return p


def read_metadata(path, *, check_hash: bool = True) -> dict:
    """Read and validate an artifact's metadata; raise :class:`ArtifactError` with the reason."""
    d = _artifact_dir(path)
    if not d.exists():
        raise ArtifactError(f"artifact directory not found: {d}")
    if not d.is_dir():
        raise ArtifactError(f"not an artifact directory: {d}")
    mpath = d / METADATA_FILE
    if not mpath.is_file():
        raise ArtifactError(f"artifact has no {METADATA_FILE}: {d}")
    try:
        meta = json.loads(mpath.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{METADATA_FILE} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{METADATA_FILE} must hold a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ArtifactError(f"{METADATA_FILE} lacks required keys: {', '.join(missing)}")
    if meta["format"] != FORMAT_VERSION:
        raise ArtifactError(f"unsupported artifact format {meta['format']!r} (expected {FORMAT_VERSION})")
    from .builders import ARCHITECTURES

    if meta["architecture"] not in ARCHITECTURES:
        raise ArtifactError(f"unknown architecture {meta['architecture']!r} in {METADATA_FILE}")
    if not isinstance(meta["input_size"], int) or meta["input_size"] < 32:
        raise ArtifactError(f"bad input_size {meta['input_size']!r} in {METADATA_FILE}")
    thr = meta["threshold"]
    if not isinstance(thr, (int, float)) or isinstance(thr, bool) or not 0.0 <= float(thr) <= 1.0:
        raise ArtifactError(f"bad threshold {thr!r} in {METADATA_FILE}")
    if meta["class_names"] != CLASS_NAMES:
        raise ArtifactError(f"class_names must be {CLASS_NAMES}, got {meta['class_names']!r}")
    model_path = d / str(meta["model_file"])
    if meta["model_file"] != MODEL_FILE or not model_path.is_file():
        raise ArtifactError(f"artifact has no model file {MODEL_FILE}: {d}")
    if check_hash:
        actual = _sha256(model_path)
        if actual != meta["model_sha256"]:
            raise ArtifactError(f"{MODEL_FILE} does not match metadata.json (sha256 {actual[:12]}… "
                                f"!= recorded {str(meta['model_sha256'])[:12]}…): file changed or corrupt")
    ood = meta.get("ood")
    if ood is not None:
        from .ood import OOD_FILE

        if (not isinstance(ood, dict) or ood.get("file") != OOD_FILE
                or not isinstance(ood.get("threshold"), (int, float))):
            raise ArtifactError(f"bad \"ood\" entry in {METADATA_FILE}")
        if not (d / OOD_FILE).is_file():
            raise ArtifactError(f"artifact has no OOD file {OOD_FILE} (listed in {METADATA_FILE}): {d}")
        if check_hash and _sha256(d / OOD_FILE) != ood.get("sha256"):
            raise ArtifactError(f"{OOD_FILE} does not match metadata.json (sha256): file changed or corrupt")
    cal = meta.get("calibration")
    if cal is not None and (not isinstance(cal, dict) or cal.get("method") not in ("platt", "temperature")):
        raise ArtifactError(f"bad \"calibration\" entry in {METADATA_FILE}")
    meta.setdefault("crop", meta["preprocessing"].get("crop") == "brain")
    meta["path"] = str(d.resolve())
    return meta


def load_artifact(path):
    """Load ``(keras.Model, metadata)``; raise :class:`ArtifactError` if missing or inconsistent."""
    from .tfutil import quiet_tf

    meta = read_metadata(path)
    quiet_tf()
    import keras

    from .layers import CUSTOM_OBJECTS

    model_path = Path(meta["path"]) / MODEL_FILE
    try:
        model = keras.saving.load_model(model_path, custom_objects=CUSTOM_OBJECTS, compile=False)
    except Exception as exc:
        raise ArtifactError(f"cannot load {MODEL_FILE}: {type(exc).__name__}: {exc}") from None
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[1:] != (meta["input_size"], meta["input_size"], 3):
        raise ArtifactError(f"model input shape {shape[1:]} disagrees with metadata input_size {meta['input_size']}")
    out_shape = tuple(model.outputs[0].shape)
    if out_shape[-1] != 1:
        raise ArtifactError(f"model output shape {out_shape} is not a single sigmoid probability")
    return model, meta
