"""Comprehend recognizer versions: the name rule and the metrics the service reports."""

from __future__ import annotations

import re
from typing import Any

# Comprehend's rule for RecognizerName, VersionName, FlywheelName and DatasetName (botocore comprehend model,
# ComprehendArnName / VersionName: 1-63 characters of this pattern). The one copy: the settings, the custom
# resources and the Comprehend stand-in import it.
NAME_PATTERN = r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
MAX_NAME_LENGTH = 63
VERSION_NAME = re.compile(NAME_PATTERN)

# Where a version's training ends (botocore comprehend model, ModelStatus; API reference,
# EntityRecognizerProperties.Status). TRAINED_WITH_WARNING is trained: the version can detect.
# STOPPED follows StopTrainingEntityRecognizer and, like IN_ERROR, yields no model. DELETED is
# nerloop's own: the watch stage found the version gone (ResourceNotFoundException) while in flight.
TRAINED_STATUSES = ("TRAINED", "TRAINED_WITH_WARNING")
UNTRAINED_END_STATUSES = ("IN_ERROR", "STOPPED", "DELETED")
TRAINING_END_STATUSES = TRAINED_STATUSES + UNTRAINED_END_STATUSES


def _fraction(value: Any) -> float | None:
    """Plain-text recognizers report precision, recall and F1 on a 0-100 scale (the API reference's
    EntityRecognizerEvaluationMetrics); the loop keeps 0-1 throughout."""
    if value is None:
        return None
    return float(value) / 100.0


def training_times(properties: dict[str, Any]) -> dict[str, str]:
    """When the version's training started and ended (EntityRecognizerProperties' TrainingStartTime and
    TrainingEndTime, timestamps: botocore's comprehend model and
    https://docs.aws.amazon.com/comprehend/latest/APIReference/API_EntityRecognizerProperties.html), as
    ISO 8601 text, for those Comprehend reports."""
    times = {"training_started_at": properties.get("TrainingStartTime"),
             "training_ended_at": properties.get("TrainingEndTime")}
    return {name: value.isoformat() if hasattr(value, "isoformat") else str(value)
            for name, value in times.items() if value is not None}


def metrics_from_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """Overall and per-type precision / recall / F1 (0-1) from DescribeEntityRecognizer's metadata."""
    overall = metadata.get("EvaluationMetrics") or {}
    per_type = {
        entry["Type"]: {
            "precision": _fraction((entry.get("EvaluationMetrics") or {}).get("Precision")),
            "recall": _fraction((entry.get("EvaluationMetrics") or {}).get("Recall")),
            "f1": _fraction((entry.get("EvaluationMetrics") or {}).get("F1Score")),
            "train_mentions": entry.get("NumberOfTrainMentions"),
        }
        for entry in metadata.get("EntityTypes") or []
    }
    return {
        "precision": _fraction(overall.get("Precision")),
        "recall": _fraction(overall.get("Recall")),
        "f1": _fraction(overall.get("F1Score")),
        "per_type": per_type,
        "trained_documents": metadata.get("NumberOfTrainedDocuments"),
        "test_documents": metadata.get("NumberOfTestDocuments"),
    }
