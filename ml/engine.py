"""Inference engine: load each artifact once, predict batches from untrusted bytes, explain.

    engine = InferenceEngine(intra_op_threads=2, inter_op_threads=1)
    loaded = engine.load("var/models/vgg16")          # cached by resolved path
    preds = loaded.predict_bytes([b1, b2, b3])          # ImagePrediction per input, same order
    png = loaded.gradcam_png(b1)

A bad image yields ``ImagePrediction(None, None, error="reason")`` and never fails the batch.
Artifacts with a ``calibration`` entry return calibrated probabilities (the stored threshold
is on that scale); artifacts with an OOD gate (``ood.npz``) score every image and return
``assessed=False, label=None`` (probability kept, for reviewers) beyond its threshold.
Artifacts with a ``tta`` entry (:mod:`ml.tta`) score each image in the listed orientations and
give P(tumor) of their mean features (the OOD gate scores the image as it arrived). Gated
artifacts also mark colour images not assessed (:mod:`ml.colour`), with the reason.
The forward pass is a ``tf.function`` traced once per artifact for a variable batch size
(``model.predict`` has per-call overhead); the Keras model itself is the reference runtime.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .intake import ImageImplausible, ImageRejected, IntakeLimits, decode_image
from .prepare import intensity_of

__all__ = ["InferenceEngine", "LoadedModel", "ImagePrediction", "bf16_clone", "resolve_runtime"]

log = logging.getLogger("ml.engine")


@dataclass
class ImagePrediction:
    probability: float | None  # calibrated P(tumor) when the artifact is calibrated
    label: str | None  # "tumor" | "no_tumor" | None (error, or not assessed)
    error: str | None = None
    ood_score: float | None = None  # distance from the training images (None: artifact has no OOD gate)
    assessed: bool = True  # False: the image does not look like the training images; no label given
    reason: str | None = None  # why not assessed, when a plausibility or colour check said so (not the OOD score)

    @property
    def ok(self) -> bool:
        return self.error is None


_BF16_LAYERS = ("Conv2D", "MaxPooling2D", "BatchNormalization", "Activation", "Add", "ZeroPadding2D")


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_runtime(runtime: str | None) -> str:
    runtime = (runtime or "auto").lower()
    if runtime == "auto":
        return "bf16" if cpu_has_bf16() else "keras"
    if runtime not in ("keras", "bf16"):
        raise ValueError("runtime must be auto, keras or bf16")
    return runtime


def bf16_clone(model):
    """The same model with the backbone computing in bfloat16 (weights kept in float32).

    Preprocessing, pooling and the head stay float32. On CPUs with AVX512-BF16/AMX the
    convolutions run about 1.9x faster (VGG16 at 160 px on an AVX512-BF16 EPYC; on CPUs without
    native bfloat16 it is emulated and slower); ``bench/ml_throughput.py`` checks the probabilities
    stay within 0.01 of the float32 Keras model on the evaluation images.
    """
    import keras

    from .layers import CUSTOM_OBJECTS

    cfg = model.get_config()
    for layer in cfg["layers"]:
        if layer["class_name"] in _BF16_LAYERS:
            layer["config"]["dtype"] = keras.DTypePolicy("mixed_bfloat16")
    clone = keras.Model.from_config(cfg, custom_objects=CUSTOM_OBJECTS)
    clone.set_weights(model.get_weights())
    return clone


class LoadedModel:
    """One loaded artifact. Thread-safe for prediction.

    ``runtime``: ``"keras"`` (float32 Keras model, the reference) or ``"bf16"`` (same weights,
    bfloat16 convolutions). ``model`` is always the float32 reference (Grad-CAM uses it).
    """

    def __init__(self, model, metadata: dict, limits: IntakeLimits | None = None, runtime: str = "keras"):
        import tensorflow as tf

        from .builders import gradcam_layer

        self.runtime = resolve_runtime(runtime)
        self.model = model
        serving = bf16_clone(model) if self.runtime == "bf16" else model
        self.metadata = metadata
        self.architecture: str = metadata["architecture"]
        self.threshold: float = float(metadata["threshold"])
        self.input_size: int = int(metadata["input_size"])
        self.crop: bool = bool(metadata.get("crop", True))
        self.intensity: str = intensity_of(metadata)
        self.path = metadata.get("path")
        self.limits = limits or IntakeLimits()
        self.calibration: dict | None = metadata.get("calibration")
        self.ood = None
        if metadata.get("ood"):
            from .ood import OodModel

            self.ood = OodModel.load(Path(metadata["path"]) / metadata["ood"]["file"])
            self.ood.threshold = float(metadata["ood"]["threshold"])
        self.tta: tuple[int, ...] = tuple(int(k) for k in (metadata.get("tta") or {}).get("orientations", ()))
        self._head = None
        s = self.input_size
        if self.ood is not None or self.tta:  # one pass gives the pooled features and P(tumor)
            import keras

            serving = keras.Model(serving.inputs, [serving.get_layer("standardize").input, serving.outputs[0]])
        if self.tta:  # the float32 head, applied to the mean features of the orientations
            from .builders import copy_head, feature_dim, head_model

            self._head = head_model(feature_dim(model))
            copy_head(model, self._head)
        self._serving_model = serving
        self._forward = tf.function(
            lambda x: tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), serving(x, training=False)),
            input_signature=[tf.TensorSpec([None, s, s, 3], tf.float32)],
            reduce_retracing=True,
        )
        self._gradcam_layer = gradcam_layer(model, self.architecture)
        self._grad_model = None
        self._lock = threading.Lock()

    # -- core ---------------------------------------------------------------
    def score_arrays(self, batch: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray | None]:
        """(calibrated P(tumor) (n,), OOD distances (n,) or None) for prepared arrays (n, s, s, 3) in 0..255."""
        from .calibration import apply_calibration

        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"expected (n, {self.input_size}, {self.input_size}, 3), got {batch.shape}")
        probs, dists = [], []
        step = max(1, int(batch_size) // max(1, len(self.tta)))
        for i in range(0, len(batch), step):
            chunk = batch[i:i + step]
            if self.tta:
                from .tta import orbit

                feats, _ = self._forward(orbit(chunk, self.tta))
                feats = feats.numpy().reshape(len(self.tta), len(chunk), -1)
                out = self._head(feats.mean(axis=0), training=False)
                feats = feats[0]  # the gate scores the image as it arrived
            else:
                out = self._forward(chunk)
                if self.ood is not None:
                    feats, out = out
                    feats = feats.numpy()
            if self.ood is not None:
                dists.append(self.ood.score(feats))
            probs.append(np.asarray(out).reshape(-1))
        p = np.concatenate(probs) if probs else np.zeros((0,), np.float32)
        p = apply_calibration(p, self.calibration) if self.calibration else p
        if self.ood is None:
            return p, None
        return p, (np.concatenate(dists) if dists else np.zeros((0,)))

    def predict_arrays(self, batch: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """P(tumor) (calibrated when the artifact is) for prepared arrays (n, s, s, 3) in 0..255."""
        return self.score_arrays(batch, batch_size)[0]

    def label_for(self, p: float) -> str:
        return "tumor" if p >= self.threshold else "no_tumor"

    def prepare(self, data: bytes) -> np.ndarray:
        return self._prepare(data)[0]

    def _prepare(self, data: bytes) -> tuple[np.ndarray, str | None]:
        """(prepared array, the colour gate's reason or None); the colour gate belongs to
        artifacts with an OOD gate (:mod:`ml.colour`)."""
        from .colour import colour_reason, colour_share
        from .prepare import prepare_image

        image = decode_image(data, self.limits).image
        reason = colour_reason(colour_share(image)) if self.ood is not None else None
        return prepare_image(image, self.input_size, self.crop, self.intensity), reason

    def predict_bytes(self, images: list[bytes], batch_size: int = 32,
                      interrupts: tuple[type[BaseException], ...] = ()) -> list[ImagePrediction]:
        """One result per image; an image that cannot be read or prepared fails alone.
        ``interrupts``: exceptions that stop the whole call instead (a caller's time limit:
        the classifier passes Celery's SoftTimeLimitExceeded, an Exception subclass)."""
        results: list[ImagePrediction | None] = [None] * len(images)
        arrays, index, reasons = [], [], []
        for i, data in enumerate(images):
            try:
                array, reason = self._prepare(data)
                arrays.append(array)
                index.append(i)
                reasons.append(reason)
            except ImageImplausible as exc:  # readable, but not a brain scan: no verdict, and no failure
                results[i] = ImagePrediction(None, None, None, assessed=False, reason=str(exc))
            except ImageRejected as exc:
                results[i] = ImagePrediction(None, None, str(exc))
            except Exception as exc:  # never fail the batch for one image
                if isinstance(exc, interrupts):
                    raise
                log.exception("unexpected error preparing image %d", i)
                results[i] = ImagePrediction(None, None, f"could not process image ({type(exc).__name__})")
        if arrays:
            probs, dists = self.score_arrays(np.stack(arrays), batch_size=batch_size)
            for k, (i, p) in enumerate(zip(index, probs, strict=True)):
                p = float(p)
                if dists is None:
                    results[i] = ImagePrediction(p, self.label_for(p), None)
                    continue
                d = float(dists[k])
                ok = d <= self.ood.threshold and reasons[k] is None
                results[i] = ImagePrediction(p, self.label_for(p) if ok else None, None, ood_score=d, assessed=ok,
                                             reason=reasons[k])
        return results  # type: ignore[return-value]

    def predict_one(self, data: bytes) -> ImagePrediction:
        return self.predict_bytes([data], batch_size=1)[0]

    # -- explanation --------------------------------------------------------
    def gradcam(self, data: bytes):
        """(PNG bytes, probability) for one image; raises ImageRejected for bad input."""
        from .gradcam import gradcam_map, make_gradcam_model, overlay_png
        from .prepare import prepare_with_geometry

        decoded = decode_image(data, self.limits)
        arr, box, side = prepare_with_geometry(decoded.image, self.input_size, self.crop, self.intensity)
        with self._lock:
            if self._grad_model is None:
                self._grad_model = make_gradcam_model(self.model, self._gradcam_layer)
        cam, prob = gradcam_map(self._grad_model, arr)
        if self.calibration:
            from .calibration import apply_calibration

            prob = float(apply_calibration(np.array([prob]), self.calibration)[0])
        return overlay_png(decoded.image, cam, box, side), prob

    def gradcam_png(self, data: bytes) -> bytes:
        return self.gradcam(data)[0]


class InferenceEngine:
    """Holds loaded artifacts, one per resolved path, for the life of the process."""

    def __init__(self, intra_op_threads: int | None = None, inter_op_threads: int | None = None,
                 limits: IntakeLimits | None = None, runtime: str = "keras"):
        """``runtime``: ``"keras"`` (float32 reference, default), ``"bf16"`` or ``"auto"``
        (bf16 where the CPU has native bfloat16, else keras)."""
        from .tfutil import configure_threads

        self.runtime = resolve_runtime(runtime)
        self.threads = configure_threads(intra_op_threads, inter_op_threads)
        self.limits = limits or IntakeLimits()
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(path) -> str:
        return str(Path(path).expanduser().resolve())

    def load(self, path) -> LoadedModel:
        key = self._key(path)
        with self._lock:
            loaded = self._models.get(key)
            if loaded is None:
                from .artifacts import load_artifact

                model, meta = load_artifact(key)
                loaded = LoadedModel(model, meta, self.limits, self.runtime)
                self._models[key] = loaded
            return loaded

    def unload(self, path) -> bool:
        with self._lock:
            return self._models.pop(self._key(path), None) is not None

    def loaded_paths(self) -> list[str]:
        with self._lock:
            return list(self._models)
