"""One inference engine per worker process; each model version is loaded once."""

import threading
from pathlib import Path

from django.conf import settings

_engine = None
_lock = threading.Lock()


def get_engine():
    global _engine
    with _lock:
        if _engine is None:
            from ml.engine import InferenceEngine

            from classifier.intake import intake_limits

            _engine = InferenceEngine(
                intra_op_threads=settings.TF_INTRA_OP_THREADS,
                inter_op_threads=settings.TF_INTER_OP_THREADS,
                limits=intake_limits(),
                runtime=getattr(settings, "ML_RUNTIME", "keras"),
            )
        return _engine


def artifact_dir(model_version):
    path = Path(model_version.artifact_path)
    return path if path.is_absolute() else settings.MODEL_ROOT / path


def load_model(model_version):
    """The loaded model of ``model_version``, cached for the life of the process."""
    return get_engine().load(artifact_dir(model_version))
