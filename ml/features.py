"""Load a data set into model-ready arrays and run frozen parts of a model over them."""
from __future__ import annotations

import logging
import time

import numpy as np

__all__ = ["load_arrays", "run_model", "Progress"]

log = logging.getLogger("ml")


class Progress:
    """Prints progress lines to stderr (or calls ``sink``) with elapsed time."""

    def __init__(self, sink=None, quiet: bool = False):
        import sys

        self.t0 = time.monotonic()
        self.quiet = quiet
        self.sink = sink or (lambda s: print(s, file=sys.stderr, flush=True))

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            self.sink(f"[{time.monotonic() - self.t0:7.1f}s] {msg}")


def load_arrays(ds, input_size: int, crop: bool, progress=None):
    """(arrays uint8 (n, s, s, 3), kept indices): files that fail intake are skipped and reported."""
    from .intake import ImageRejected, decode_image
    from .prepare import prepare_image

    arrays, keep = [], []
    for i, s in enumerate(ds.samples):
        try:
            arrays.append(prepare_image(decode_image(s.path.read_bytes()).image, input_size, crop))
            keep.append(i)
        except (ImageRejected, OSError) as exc:
            if progress:
                progress(f"skipping {s.path}: {exc}")
    if not arrays:
        raise ValueError("no usable images in the data set")
    return np.stack(arrays), np.asarray(keep)


def run_model(model, arrays, batch_size: int = 16, progress=None, what: str = "features"):
    """Run ``model`` (a Keras model, possibly multi-output) over arrays in batches, as float32 numpy."""
    import tensorflow as tf

    spec = [tf.TensorSpec([None, *arrays.shape[1:]], tf.float32)]
    fn = tf.function(lambda x: model(x, training=False), input_signature=spec, reduce_retracing=True)
    outs = []
    t0 = time.monotonic()
    n = len(arrays)
    for i in range(0, n, batch_size):
        out = fn(np.asarray(arrays[i:i + batch_size], np.float32))
        outs.append([o.numpy() for o in out] if isinstance(out, (list, tuple)) else [out.numpy()])
        done = min(n, i + batch_size)
        if progress and (done == n or (i // batch_size) % 5 == 4):
            rate = done / max(1e-9, time.monotonic() - t0)
            progress(f"{what}: {done}/{n} images ({rate:.1f}/s)")
    cols = [np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))]
    return cols if len(cols) > 1 else cols[0]
