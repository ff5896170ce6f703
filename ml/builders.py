"""Classifier builders: VGG16 / ResNet50 backbone + small head, preprocessing inside the model.

Model input: float32 (or uint8) RGB 0..255, ``input_size`` x ``input_size``, as produced by
:func:`ml.prepare.prepare_image`. Output: sigmoid P(tumor), shape (batch, 1).

Head: global pooling of one or more backbone feature maps -> concatenation -> fixed
standardisation (mean/std of the training features, set by ``ml.train``) -> dropout ->
Dense(1, sigmoid) with L2. The standardisation matters on this data: a head on
unnormalised pooled features trains badly.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["ARCHITECTURES", "build_classifier", "GRADCAM_LAYER", "DEFAULT_FEATURE_LAYERS", "BLOCKS", "gradcam_layer",
           "present_blocks"]

ARCHITECTURES = ("vgg16", "resnet50")

# Last convolutional feature map of each backbone (used by Grad-CAM and the default head).
GRADCAM_LAYER = {"vgg16": "block5_conv3", "resnet50": "conv5_block3_out"}
# Default head input. VGG16: block4_conv3 (on this data block-4 features beat block-5 ones by
# about 0.08 ROC AUC with the HED-derived backbone, and block 5 is then left out of the model).
DEFAULT_FEATURE_LAYERS = {"vgg16": ("block4_conv3",), "resnet50": ("conv5_block3_out",)}
DEFAULT_POOLING = {"vgg16": "avgmax", "resnet50": "avg"}
# Blocks (layer-name prefixes), bottom to top; phase two unfreezes the top ones present in the model.
BLOCKS = {"vgg16": ("block1_", "block2_", "block3_", "block4_", "block5_"),
          "resnet50": ("conv1_", "conv2_", "conv3_", "conv4_", "conv5_")}


def present_blocks(model, arch: str) -> list[str]:
    names = [layer.name for layer in model.layers]
    return [b for b in BLOCKS[arch] if any(n.startswith(b) for n in names)]


def gradcam_layer(model, arch: str) -> str:
    """The deepest backbone feature map the head reads (last conv map of the model)."""
    names = {layer.name for layer in model.layers}
    if GRADCAM_LAYER[arch] in names:
        return GRADCAM_LAYER[arch]
    pooled = [layer.name[4:] for layer in model.layers if layer.name.startswith("gap_")]
    if not pooled:
        raise ValueError("model has no pooled feature layer")
    order = [layer.name for layer in model.layers]
    return max(pooled, key=order.index)


def _backbone(arch: str, x, weights_kind: str, input_size: int):
    import keras

    app = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}[arch]
    w = "imagenet" if weights_kind == "imagenet" else None
    try:
        return app(include_top=False, weights=w, input_tensor=x, input_shape=(input_size, input_size, 3))
    except Exception as exc:
        if weights_kind == "imagenet":
            from .weights import WeightsError, imagenet_help

            raise WeightsError(imagenet_help(arch) + f" ({type(exc).__name__}: {exc})") from exc
        raise


def load_backbone_file(arch: str, backbone, path: str) -> None:
    """Copy weights from a local file into ``backbone`` by layer name (see :mod:`ml.weights`)."""
    import keras

    from .weights import WeightsError

    app = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}[arch]
    ref = app(include_top=False, weights=None, input_shape=(64, 64, 3) if arch == "vgg16" else (96, 96, 3))
    try:
        ref.load_weights(path)
    except Exception as exc:
        raise WeightsError(f"cannot load {arch} backbone weights from {path}: {type(exc).__name__}: {exc}") from exc
    copied = 0
    for layer in ref.layers:
        if not layer.weights:
            continue
        try:
            target = backbone.get_layer(layer.name)
        except ValueError as exc:
            raise WeightsError(f"weights file {path} has layer {layer.name!r} that the {arch} backbone lacks") from exc
        target.set_weights(layer.get_weights())
        copied += 1
    if copied == 0:
        raise WeightsError(f"weights file {path} held no {arch} layers")
    del ref


def build_classifier(arch: str, weights="imagenet", input_size: int = 224, dropout: float = 0.3, *,
                     feature_layers: Sequence[str] | None = None, pooling: str | None = None, l2: float = 1e-3,
                     seed: int | None = 0):
    """Build the transfer-learning classifier (uncompiled ``keras.Model``).

    weights: ``"imagenet"`` (Keras download/cache), ``"none"``/``None`` (random init) or a path
    to a local backbone weights file. ``pooling``: ``"avg"`` or ``"avgmax"`` (average and max,
    concatenated; default per architecture). ``feature_layers``: backbone layers to pool
    (default :data:`DEFAULT_FEATURE_LAYERS`).
    """
    import keras

    from .layers import CaffePreprocess
    from .weights import resolve_weights

    arch = str(arch).lower()
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if input_size < 32:
        raise ValueError("input_size must be at least 32")
    pooling = pooling or DEFAULT_POOLING[arch]
    if pooling not in ("avg", "avgmax"):
        raise ValueError("pooling must be 'avg' or 'avgmax'")
    kind, path = resolve_weights(arch, weights)
    if seed is not None:
        keras.utils.set_random_seed(seed)

    inp = keras.Input(shape=(input_size, input_size, 3), name="image")
    x = CaffePreprocess(name="preprocess")(inp)
    base = _backbone(arch, x, kind, input_size)
    if kind == "file":
        load_backbone_file(arch, base, path)

    names = tuple(feature_layers or DEFAULT_FEATURE_LAYERS[arch])
    pooled = []
    for name in names:
        fmap = base.get_layer(name).output
        pooled.append(keras.layers.GlobalAveragePooling2D(name=f"gap_{name}")(fmap))
        if pooling == "avgmax":
            pooled.append(keras.layers.GlobalMaxPooling2D(name=f"gmp_{name}")(fmap))
    feats = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="features")(pooled)
    out = apply_head(make_head(dropout, l2), feats)
    model = keras.Model(inp, out, name=f"neuroai_{arch}")
    model._neuroai_config = {"arch": arch, "input_size": input_size, "feature_layers": list(names),
                             "pooling": pooling, "dropout": dropout, "l2": l2, "weights_kind": kind}
    return model


def make_head(dropout: float = 0.3, l2: float = 1e-3):
    """The head's layers: fixed standardisation, dropout, Dense(1, sigmoid) with L2."""
    import keras

    from .layers import Standardize

    return [Standardize(name="standardize"), keras.layers.Dropout(dropout, name="dropout"),
            keras.layers.Dense(1, activation="sigmoid", name="tumor_probability",
                               kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)]


def apply_head(layers, x):
    for layer in layers:
        x = layer(x)
    return x


def head_model(feature_dim: int, dropout: float = 0.3, l2: float = 1e-3):
    """A standalone head on pooled features (phase one trains this on cached features)."""
    import keras

    inp = keras.Input(shape=(feature_dim,), name="features")
    return keras.Model(inp, apply_head(make_head(dropout, l2), inp), name="head")


def copy_head(src, dst) -> None:
    for name in HEAD_LAYERS:
        dst.get_layer(name).set_weights(src.get_layer(name).get_weights())


HEAD_LAYERS = ("standardize", "dropout", "tumor_probability")


def feature_model(model):
    """Model from the image to the (unstandardised) pooled features: the frozen part of phase one."""
    import keras

    return keras.Model(model.inputs, model.get_layer("standardize").input)


def feature_dim(model) -> int:
    return int(model.get_layer("standardize").input.shape[-1])
