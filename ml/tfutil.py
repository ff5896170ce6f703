"""TensorFlow process set-up: quiet logs and thread pools, configured before TF does work."""
from __future__ import annotations

import logging
import os

log = logging.getLogger("ml")

__all__ = ["configure_threads", "quiet_tf", "library_versions"]


def quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def configure_threads(intra_op_threads: int | None = None, inter_op_threads: int | None = None) -> dict:
    """Set TF's intra/inter-op thread pools. If TF has already initialised, log and continue.

    Returns the values in effect afterwards (0 means "TF default").
    """
    quiet_tf()
    import tensorflow as tf

    for setter, getter, value, what in (
        (tf.config.threading.set_intra_op_parallelism_threads,
         tf.config.threading.get_intra_op_parallelism_threads, intra_op_threads, "intra_op"),
        (tf.config.threading.set_inter_op_parallelism_threads,
         tf.config.threading.get_inter_op_parallelism_threads, inter_op_threads, "inter_op"),
    ):
        if value is None or getter() == int(value):
            continue
        try:
            setter(int(value))
        except RuntimeError as exc:  # TF already initialised in this process
            log.warning("cannot set TF %s threads to %s (TF already initialised; keeping %s): %s",
                        what, value, getter(), exc)
    return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def library_versions() -> dict:
    import platform

    import numpy
    import PIL

    out = {"python": platform.python_version(), "numpy": numpy.__version__, "pillow": PIL.__version__}
    try:
        import tensorflow as tf

        out["tensorflow"] = tf.__version__
    except Exception:  # pragma: no cover
        pass
    try:
        import keras

        out["keras"] = keras.__version__
    except Exception:  # pragma: no cover
        pass
    return out
