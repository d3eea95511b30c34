"""Every parser model (one per event shape a rule delivers, see AWS-FACTS.md), which one an event
is, and what is wrong with a rejected one.

The models live in nerloop.event_models, one module per event source: handlers import their own
from there (a cold start then creates two to five model classes, not eighteen). This module gathers
them all for the local mode, the bench and the tests. The Literal values repeat nerloop.constants;
tests/unit/test_shared_names.py keeps them in step.
"""

from typing import Any

from pydantic import ValidationError

from nerloop.event_models.continuation import ContinuationDetail, StageContinued
from nerloop.event_models.detection_job import DetectionJobStatusChange, DetectionJobStatusDetail
from nerloop.event_models.envelope import Envelope
from nerloop.event_models.human_loop import HumanLoopDetail, HumanLoopOutput, HumanLoopStatusChange
from nerloop.event_models.labeling import ConvertTrigger, LabelingJobDetail, LabelingJobStateChange
from nerloop.event_models.loop import (
    DetectTrigger,
    DocumentsAdded,
    DocumentsAddedDetail,
    RecognizerStatusChange,
    RecognizerStatusDetail,
)
from nerloop.event_models.s3 import S3Bucket, S3Object, S3ObjectCreated, S3ObjectDetail
from nerloop.event_models.schedule import ScheduledEvent

__all__ = [
    "ContinuationDetail",
    "ConvertTrigger",
    "DetectTrigger",
    "DetectionJobStatusChange",
    "DetectionJobStatusDetail",
    "DocumentsAdded",
    "DocumentsAddedDetail",
    "Envelope",
    "HumanLoopDetail",
    "HumanLoopOutput",
    "HumanLoopStatusChange",
    "LabelingJobDetail",
    "LabelingJobStateChange",
    "RecognizerStatusChange",
    "RecognizerStatusDetail",
    "S3Bucket",
    "S3Object",
    "S3ObjectCreated",
    "S3ObjectDetail",
    "ScheduledEvent",
    "StageContinued",
    "describe_event_error",
    "model_for",
]

_MODELS: dict[tuple[str, str], type[Envelope]] = {
    ("aws.s3", "Object Created"): S3ObjectCreated,
    ("aws.sagemaker", "SageMaker Ground Truth Labeling Job State Change"): LabelingJobStateChange,
    ("aws.sagemaker", "SageMaker A2I HumanLoop Status Change"): HumanLoopStatusChange,
    ("nerloop", "Recognizer Status Change"): RecognizerStatusChange,
    ("nerloop", "Documents Added"): DocumentsAdded,
    ("nerloop", "Detection Job Status Change"): DetectionJobStatusChange,
    ("aws.events", "Scheduled Event"): ScheduledEvent,
    ("nerloop", "Stage Continued"): StageContinued,  # issue 13: a stage going on from a checkpoint
}


def model_for(event: dict[str, Any]) -> type[Envelope] | None:
    """The parser model of an event, from its source and detail-type, or else the one model that
    either alone points to (so the model can say which field is wrong); None when no rule takes it."""
    source, detail_type = str(event.get("source")), str(event.get("detail-type"))
    exact = _MODELS.get((source, detail_type))
    if exact is not None:
        return exact
    for position, value in ((0, source), (1, detail_type)):
        candidates = {model for key, model in _MODELS.items() if key[position] == value}
        if len(candidates) == 1:
            return candidates.pop()
    return None


def describe_event_error(exc: ValidationError) -> str:
    """One line per problem of a rejected event: the field's path and what is wrong with it."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "event"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)
