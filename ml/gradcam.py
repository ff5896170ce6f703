"""Grad-CAM (Selvaraju et al. 2017) for both backbones, rendered as a PNG overlay."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = ["gradcam_map", "overlay_png", "make_gradcam_model", "MAX_OVERLAY_SIDE"]

MAX_OVERLAY_SIDE = 1024

# A compact "jet"-like colour map (position, R, G, B).
_CMAP = np.array([
    [0.00, 0, 0, 128], [0.15, 0, 0, 255], [0.40, 0, 255, 255], [0.60, 255, 255, 0],
    [0.85, 255, 0, 0], [1.00, 128, 0, 0]], dtype=np.float64)


def _colorize(heat: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(heat, _CMAP[:, 0], _CMAP[:, i]) for i in (1, 2, 3)], axis=-1).astype(np.uint8)


def make_gradcam_model(model, layer_name: str):
    import keras

    return keras.Model(model.inputs, [model.get_layer(layer_name).output, model.outputs[0]])


def gradcam_map(grad_model, x: np.ndarray) -> tuple[np.ndarray, float]:
    """Heat map (h, w) in 0..1 at the conv layer's resolution, and P(tumor), for one image array."""
    import tensorflow as tf

    inp = tf.convert_to_tensor(x[None].astype(np.float32))
    with tf.GradientTape() as tape:
        fmap, prob = grad_model(inp, training=False)
        # Explain the tumour logit: d logit / d fmap (sigmoid saturation would flatten gradients).
        p = tf.clip_by_value(prob[:, 0], 1e-7, 1 - 1e-7)
        logit = tf.math.log(p) - tf.math.log1p(-p)
    grads = tape.gradient(logit, fmap)
    weights = tf.reduce_mean(grads, axis=(1, 2))  # (1, C)
    cam = tf.nn.relu(tf.reduce_sum(fmap * weights[:, None, None, :], axis=-1))[0].numpy()
    top = float(cam.max())
    cam = cam / top if top > 0 else np.zeros_like(cam)
    return cam.astype(np.float32), float(prob.numpy()[0, 0])


def overlay_png(image: Image.Image, cam: np.ndarray, box: tuple[int, int, int, int], side: int,
                alpha: float = 0.45) -> bytes:
    """Map the model-frame heat map back onto the original image and return PNG bytes.

    The output has the decoded image's size (scaled down to at most ``MAX_OVERLAY_SIDE`` px a side).
    """
    image = image.convert("RGB")
    W, H = image.size
    left, top, right, bottom = box
    cw, ch = right - left, bottom - top
    # Model frame = the padded square of side `side` holding the crop centred. Only the crop's
    # part of it is resampled (a box resize: the same pixels as resizing the map to the whole
    # square and cutting the crop out, without a side x side image).
    heat = Image.fromarray((cam * 255).astype(np.uint8), "L")
    kx, ky = heat.width / side, heat.height / side
    ox, oy = (side - cw) // 2, (side - ch) // 2
    heat_crop = heat.resize((cw, ch), Image.BILINEAR,
                            box=(ox * kx, oy * ky, (ox + cw) * kx, (oy + ch) * ky), reducing_gap=None)
    full = Image.new("L", (W, H), 0)
    full.paste(heat_crop, (left, top))
    scale = min(1.0, MAX_OVERLAY_SIDE / max(W, H))
    if scale < 1.0:
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        image = image.resize(size, Image.BILINEAR)
        full = full.resize(size, Image.BILINEAR)
    heat = np.asarray(full, dtype=np.float64) / 255.0
    colour = _colorize(heat).astype(np.float64)
    base = np.asarray(image, dtype=np.float64)
    a = (alpha * np.clip(heat * 1.5, 0, 1))[..., None]
    out = (base * (1 - a) + colour * a).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(out, "RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()
