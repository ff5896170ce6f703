from classifier.models.jobs import (
    ChunkStatus,
    JobStatus,
    PredictionChunk,
    PredictionJob,
    TrainingRun,
)
from classifier.models.model_version import Architecture, ModelVersion
from classifier.models.predictions import NOT_ASSESSED_TEXT, HeatmapState, Label, Prediction
from classifier.models.reviews import Review

__all__ = [
    "Architecture",
    "ChunkStatus",
    "PredictionChunk",
    "HeatmapState",
    "JobStatus",
    "Label",
    "NOT_ASSESSED_TEXT",
    "ModelVersion",
    "Prediction",
    "PredictionJob",
    "Review",
    "TrainingRun",
]
