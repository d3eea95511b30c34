"""Comprehend recognizer versions: the version-name rule and the metrics the service reports."""

from __future__ import annotations

import re
from typing import Any

VERSION_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def _fraction(value: Any) -> float | None:
    """Plain-text recognizers report precision, recall and F1 on a 0-100 scale (the API reference's
    EntityRecognizerEvaluationMetrics); the loop keeps 0-1 throughout."""
    if value is None:
        return None
    return float(value) / 100.0


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
