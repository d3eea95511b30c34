"""TrainingMode Flywheel: the loop's versions trained and served through an Amazon Comprehend flywheel.

In this mode a training snapshot does not become a CreateEntityRecognizer call. Instead (Comprehend
developer guide, "Flywheel overview", "Configuring datasets", "Flywheel iterations"; botocore's
comprehend model for every operation, field and status named here):
1. the train stage makes the snapshot a TRAIN dataset of the stack's flywheel (CreateDataset,
   COMPREHEND_CSV, EntityRecognizerInputDataConfig) and its stable test set a TEST dataset;
2. the watch stage polls the datasets (DescribeDataset: CREATING, COMPLETED, FAILED) and, once all
   are COMPLETED, starts an iteration (StartFlywheelIteration: "uses any new datasets to train a new
   model version"); then polls the iteration (DescribeFlywheelIteration: TRAINING, EVALUATING,
   COMPLETED, FAILED, STOP_REQUESTED, STOPPED) and publishes nerloop's own Recognizer Status Change
   for it, with the iteration's TrainedModelArn once it has one, so the detect stage is the same in
   both modes;
3. the detect stage applies the same gate (nerloop.evaluation: a detection job with the trained
   model's ARN over the stable test set, compared document by document with the active version's).
   The iteration's own EvaluatedModelMetrics / TrainedModelMetrics are kept beside it for people:
   they are aggregate F1 figures on the same test data, which cannot tell a difference from noise;
4. a version the gate activates is promoted with UpdateFlywheel(ActiveModelArn) before the loop
   records it active; the pool's detection jobs then name the flywheel (StartEntitiesDetectionJob
   FlywheelArn: "Amazon Comprehend runs the analysis using the flywheel's active model version",
   "Using flywheels for analysis").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from nerloop.aws import Aws
from nerloop.observability import logger
from nerloop.settings import Settings
from nerloop.state import StateTable, Version

FLYWHEEL_MODE = "Flywheel"

# DatasetStatus and FlywheelIterationStatus (botocore comprehend model).
DATASET_COMPLETED = "COMPLETED"
DATASET_FAILED = "FAILED"
# How an iteration's status reads as the loop's version status (nerloop.recognizer_versions' ModelStatus
# values): in flight while it trains or evaluates, IN_ERROR when it failed, STOPPED when stopped.
# COMPLETED reads as the trained model's own status (TRAINED or TRAINED_WITH_WARNING).
ITERATION_AS_VERSION_STATUS = {
    "TRAINING": "TRAINING",
    "EVALUATING": "TRAINING",
    "STOP_REQUESTED": "STOP_REQUESTED",
    "FAILED": "IN_ERROR",
    "STOPPED": "STOPPED",
}

def flywheel_mode(settings: Settings) -> bool:
    return settings.training_mode == FLYWHEEL_MODE


@dataclass(frozen=True)
class FlywheelPoll:
    """What one look at a flywheel version found: its status as the loop's (None: unchanged, or
    still waiting for its datasets), the message, the trained model's ARN once there is one, and
    what to keep on the version."""

    status: str | None
    message: str = ""
    model_arn: str = ""
    flywheel: dict[str, Any] | None = None


def request_token(*parts: str) -> str:
    """A ClientRequestToken (1-64 of [a-zA-Z0-9-]) from the business key: a retried call makes nothing twice."""
    return hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:64]


def dataset_name(version: str, kind: str) -> str:
    """`v3-train`, `v3-test` (DatasetName: at most 63 of ^[a-zA-Z0-9](-*[a-zA-Z0-9])*$; a version
    name is at most 63 too, so it is cut to leave room)."""
    return f"{version[:57]}-{kind.lower()}"


def create_datasets(aws: Aws, settings: Settings, bucket: str, version: str, documents_key: str,
                    annotations_key: str, test_keys: tuple[str, str] | None) -> list[str]:
    """The snapshot as a TRAIN dataset, its test set as a TEST dataset; returns their ARNs. Each
    carries a ClientRequestToken of the version and kind, so a redelivered event finds the same ones."""
    wanted = [("TRAIN", documents_key, annotations_key)]
    if test_keys is not None:
        wanted.append(("TEST", *test_keys))
    arns = []
    for kind, documents, labels in wanted:
        name = dataset_name(version, kind)
        try:
            reply = aws.comprehend.create_dataset(
                FlywheelArn=settings.flywheel_arn, DatasetName=name, DatasetType=kind,
                ClientRequestToken=request_token(settings.flywheel_arn, version, kind),
                InputDataConfig={
                    "DataFormat": "COMPREHEND_CSV",
                    "EntityRecognizerInputDataConfig": {
                        "Documents": {"S3Uri": f"s3://{bucket}/{documents}", "InputFormat": "ONE_DOC_PER_LINE"},
                        "Annotations": {"S3Uri": f"s3://{bucket}/{labels}"},
                    },
                })
            arns.append(str(reply["DatasetArn"]))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            # Made by an earlier attempt that failed before recording it: the ARN is the flywheel's
            # ARN and the name (CreateDataset's example answer, AWS CLI reference).
            arns.append(f"{settings.flywheel_arn}/dataset/{name}")
    return arns


def poll_version(aws: Aws, settings: Settings, version: Version) -> FlywheelPoll:
    """Look at a flywheel version in flight: its datasets until they are ingested (then start its
    iteration, once), then its iteration."""
    flywheel = dict(version.metrics.get("flywheel") or {})
    if not flywheel.get("iteration"):
        for arn in flywheel.get("datasets", []):
            props = aws.comprehend.describe_dataset(DatasetArn=arn)["DatasetProperties"]
            if props["Status"] == DATASET_FAILED:
                return FlywheelPoll("IN_ERROR", f"dataset {arn} failed: {props.get('Message', '')}")
            if props["Status"] != DATASET_COMPLETED:
                return FlywheelPoll(None)
        reply = aws.comprehend.start_flywheel_iteration(
            FlywheelArn=settings.flywheel_arn,
            ClientRequestToken=request_token(settings.flywheel_arn, version.version, "iteration"))
        flywheel["iteration"] = str(reply["FlywheelIterationId"])
        logger.info("flywheel iteration started", version=version.version, iteration=flywheel["iteration"])
        return FlywheelPoll("TRAINING", flywheel=flywheel)
    props = aws.comprehend.describe_flywheel_iteration(
        FlywheelArn=settings.flywheel_arn, FlywheelIterationId=flywheel["iteration"])["FlywheelIterationProperties"]
    flywheel.update(iteration_metrics(props))
    model_arn = str(props.get("TrainedModelArn") or "")
    message = str(props.get("Message") or "")
    if props["Status"] != "COMPLETED":
        return FlywheelPoll(ITERATION_AS_VERSION_STATUS[props["Status"]], message, model_arn, flywheel)
    model = aws.comprehend.describe_entity_recognizer(EntityRecognizerArn=model_arn)["EntityRecognizerProperties"]
    return FlywheelPoll(str(model["Status"]), str(model.get("Message") or message), model_arn, flywheel)


def iteration_metrics(props: dict[str, Any]) -> dict[str, Any]:
    """The iteration's own figures (FlywheelModelEvaluationMetrics, F1 and the rest as Comprehend
    reports them): the active model it evaluated and the model it trained, on the same test data."""
    return {"evaluated_model": props.get("EvaluatedModelArn"),
            "evaluated_model_metrics": props.get("EvaluatedModelMetrics"),
            "trained_model_metrics": props.get("TrainedModelMetrics")}


def promote(state: StateTable, aws: Aws, settings: Settings, version: str, f1: float) -> None:
    """Make `version` the active one: in flywheel mode the flywheel's active model first (so a
    retry after a failure in between does both), then the loop's record."""
    if flywheel_mode(settings):
        found = state.versions.get(version)
        if found is None or not found.arn:
            raise ValueError(f"version {version} has no model ARN to make the flywheel's active model")
        aws.comprehend.update_flywheel(FlywheelArn=settings.flywheel_arn, ActiveModelArn=found.arn)
        logger.info("flywheel active model updated", version=version, model_arn=found.arn)
    state.versions.activate(version, f1)


def detection_model(settings: Settings, version: Version, active: str | None) -> dict[str, str]:
    """StartEntitiesDetectionJob's model argument: the flywheel (its active model) when the job is
    for the active version in flywheel mode, else the version's own ARN (an evaluation job, a queued
    request of a version no longer active, or recognizer mode)."""
    if flywheel_mode(settings) and version.version == active:
        return {"FlywheelArn": settings.flywheel_arn}
    return {"EntityRecognizerArn": version.arn}
