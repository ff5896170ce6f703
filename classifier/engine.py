"""One inference engine per worker process; each model version is loaded once."""

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from classifier.models import ModelVersion
    from ml.engine import InferenceEngine, LoadedModel

_engine: "InferenceEngine | None" = None
_lock = threading.Lock()


def get_engine() -> "InferenceEngine":
    global _engine
    with _lock:
        if _engine is None:
            from classifier.intake import intake_limits
            from ml.engine import InferenceEngine

            _engine = InferenceEngine(
                intra_op_threads=settings.TF_INTRA_OP_THREADS,
                inter_op_threads=settings.TF_INTER_OP_THREADS,
                limits=intake_limits(),
                runtime=getattr(settings, "ML_RUNTIME", "keras"),
            )
        return _engine


def artifact_dir(model_version: "ModelVersion") -> Path:
    """The artifact's folder on this host: under MODEL_ROOT, or fetched from object storage
    into MODEL_CACHE_DIR and checked by SHA-256 (classifier/artifact_store.py)."""
    from classifier.artifact_store import local_dir

    return local_dir(model_version)


def load_model(model_version: "ModelVersion") -> "LoadedModel":
    """The loaded model of ``model_version``, cached for the life of the process."""
    return get_engine().load(artifact_dir(model_version))
