"""Phase two: fine-tune the top block(s) of the backbone at a lower learning rate.

The layers below the first unfrozen block stay frozen, so their outputs are cached once per
augmentation view and the trainable top (top block(s) + pooling + head) is trained on them:
the same computation as back-propagating through the whole frozen network, far cheaper on a
CPU. BatchNormalization layers stay frozen (inference mode), as usual for small data sets.
Early stopping on validation AUC restores the best epoch, epoch 0 being the phase-one model,
so fine-tuning is kept only if it improves validation AUC.
"""
from __future__ import annotations

import numpy as np

__all__ = ["BLOCK_INPUT", "top_blocks", "split_model", "fine_tune"]

# Output tensor feeding the first layer of each block (the tensor cached below it).
BLOCK_INPUT = {
    "vgg16": {"block2_": "block1_pool", "block3_": "block2_pool", "block4_": "block3_pool", "block5_": "block4_pool"},
    "resnet50": {"conv3_": "conv2_block3_out", "conv4_": "conv3_block4_out", "conv5_": "conv4_block6_out"},
}


def top_blocks(model, arch: str, blocks: int) -> tuple[str, ...]:
    from .builders import present_blocks

    present = present_blocks(model, arch)
    return tuple(present[-blocks:])


def split_model(model, arch: str, blocks: int = 1):
    """(bottom model image -> cached tensors, top model cached tensors -> P(tumor), input names)."""
    import keras

    prefixes = top_blocks(model, arch, blocks)
    boundary = BLOCK_INPUT[arch][prefixes[0]]
    names = [boundary]
    # Pooled feature maps from below the boundary (multi-layer heads) are extra cached inputs.
    for layer in model.layers:
        if layer.name.startswith(("gap_", "gmp_")):
            src = layer.name[4:]
            if not src.startswith(prefixes) and src not in names:
                names.append(src)
    tensors = [model.get_layer(n).output for n in names]
    bottom = keras.Model(model.inputs, tensors if len(tensors) > 1 else tensors[0])
    top = keras.Model(tensors if len(tensors) > 1 else tensors[0], model.outputs[0])
    return bottom, top, names


def _set_trainable(model, arch: str, blocks: int) -> int:
    import keras

    from .builders import HEAD_LAYERS

    prefixes = top_blocks(model, arch, blocks)
    n = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
        elif layer.name.startswith(prefixes) or layer.name in HEAD_LAYERS:
            layer.trainable = True
            n += int(bool(layer.weights))
        else:
            layer.trainable = False
    model.get_layer("standardize").trainable = False
    return n


def fine_tune(model, arch: str, train_views, y_train, val_arrays, y_val, *, blocks: int = 1, epochs: int = 10,
              lr: float = 1e-5, batch_size: int = 16, patience: int = 4, seed: int = 0, progress=None):
    """Fine-tune ``model`` in place. ``train_views``: list of (n, s, s, 3) uint8 arrays (augmentation views)."""
    import keras

    from .features import run_model
    from .head import AucEarlyStopping, class_weights

    keras.utils.set_random_seed(seed)
    bottom, top, names = split_model(model, arch, blocks)
    cached = []
    for v, arr in enumerate(train_views):
        out = run_model(bottom, arr, progress=progress, what=f"fine-tune cache view {v + 1}/{len(train_views)}")
        cached.append(out if isinstance(out, list) else [out])
    X = [np.concatenate([c[k] for c in cached]) for k in range(len(cached[0]))]
    y = np.concatenate([np.asarray(y_train)] * len(train_views)).astype(np.float32)
    Xv = run_model(bottom, val_arrays, progress=progress, what="fine-tune cache validation")
    Xv = Xv if isinstance(Xv, list) else [Xv]
    n_trainable = _set_trainable(model, arch, blocks)
    top.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy")
    inputs = X if len(X) > 1 else X[0]

    def predict_val():
        outs = []
        for i in range(0, len(Xv[0]), 64):
            chunk = [v[i:i + 64] for v in Xv]
            outs.append(top(chunk if len(chunk) > 1 else chunk[0], training=False).numpy())
        return np.concatenate(outs)

    cb = AucEarlyStopping(predict_val, np.asarray(y_val, np.float32), patience, progress, every=1)
    top.fit(inputs, y, epochs=epochs, batch_size=batch_size, shuffle=True, class_weight=class_weights(y),
            callbacks=[cb], verbose=0)
    for layer in model.layers:
        layer.trainable = True
    return {"blocks": blocks, "boundary": names, "trainable_layers": n_trainable, "lr": lr,
            "best_epoch": cb.best_epoch, "best_val_auc": float(cb.best[0]), "epochs_run": len(cb.history) - 1,
            "kept": cb.best_epoch > 0, "history": cb.history}
