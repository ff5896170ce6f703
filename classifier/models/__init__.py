from classifier.models.jobs import JobStatus, PredictionJob, TrainingRun
from classifier.models.model_version import Architecture, ModelVersion
from classifier.models.predictions import NOT_ASSESSED_TEXT, Label, Prediction
from classifier.models.reviews import Review

__all__ = [
    "Architecture",
    "JobStatus",
    "Label",
    "NOT_ASSESSED_TEXT",
    "ModelVersion",
    "Prediction",
    "PredictionJob",
    "Review",
    "TrainingRun",
]
