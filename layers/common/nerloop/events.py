"""Parser models: one pydantic model per event shape a rule delivers (see AWS-FACTS.md).

The Literal values repeat nerloop.constants; tests/unit/test_events.py keeps them in step.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote_plus

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class Envelope(BaseModel):
    """The EventBridge envelope. `account` is optional: events sent with PutEvents under moto lack it."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    account: str = ""
    region: str = ""
    time: datetime
    resources: list[str] = Field(default_factory=list)


# --- S3 "Object Created" (bucket with EventBridge notifications on) -----------------------------


class S3Bucket(BaseModel):
    name: str = Field(min_length=1)


class S3Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    key: str = Field(min_length=1)
    size: int = 0
    # AWS sends "etag"; moto sends "eTag".
    etag: str = Field(default="", validation_alias=AliasChoices("etag", "eTag"))
    version_id: str = Field(default="", validation_alias=AliasChoices("version-id", "versionId"))

    @property
    def decoded_key(self) -> str:
        """The object key: S3 events carry it URL-encoded (a space arrives as '+')."""
        return unquote_plus(self.key)


class S3ObjectDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bucket: S3Bucket
    object: S3Object
    reason: str = ""


class S3ObjectCreated(Envelope):
    source: Literal["aws.s3"]
    detail_type: Literal["Object Created"] = Field(alias="detail-type")
    detail: S3ObjectDetail

    def business_key(self) -> dict[str, str]:
        """What identifies this write: the same object version redelivered gives the same key."""
        obj = self.detail.object
        return {"bucket": self.detail.bucket.name, "key": obj.decoded_key,
                "etag": obj.etag, "version": obj.version_id}


# --- SageMaker Ground Truth labeling job ---------------------------------------------------------


_LABELING_JOB_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]+:\d{12}:labeling-job/[^/]+$")


class LabelingJobDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    LabelingJobStatus: Literal["Completed", "Failed", "Stopped", "InProgress", "Initializing", "Stopping"]


class LabelingJobStateChange(Envelope):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Ground Truth Labeling Job State Change"] = Field(alias="detail-type")
    detail: LabelingJobDetail

    @field_validator("resources")
    @classmethod
    def names_a_labeling_job(cls, resources: list[str]) -> list[str]:
        """The job's ARN is the only place the event names the job: without it there is nothing to do."""
        if not resources or not _LABELING_JOB_ARN.match(resources[0]):
            raise ValueError(f"resources[0] must be the labeling job's ARN "
                             f"(arn:aws:sagemaker:<region>:<account>:labeling-job/<name>), got {resources[:1]}")
        return resources

    @property
    def job_arn(self) -> str:
        """The detail carries no ARN or name: the job's ARN is the event's only resource."""
        return self.resources[0]

    @property
    def job_name(self) -> str:
        return self.job_arn.rsplit("/", 1)[-1]


# --- A2I human loop ------------------------------------------------------------------------------


class HumanLoopOutput(BaseModel):
    outputS3Uri: str = Field(min_length=1)


class HumanLoopDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    humanLoopName: str
    humanLoopArn: str = ""
    flowDefinitionArn: str = ""
    humanLoopStatus: Literal["Completed", "Failed", "Stopped", "InProgress", "Stopping"]
    humanLoopOutput: HumanLoopOutput | None = None
    failureCode: str | None = None
    failureReason: str | None = None
    creationTime: str | None = None

    @model_validator(mode="after")
    def completed_has_output(self) -> HumanLoopDetail:
        """A completed loop's answer is only found through humanLoopOutput.outputS3Uri."""
        if self.humanLoopStatus == "Completed" and not (self.humanLoopOutput and self.humanLoopOutput.outputS3Uri):
            raise ValueError("a Completed human loop needs humanLoopOutput.outputS3Uri")
        return self


class HumanLoopStatusChange(Envelope):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker A2I HumanLoop Status Change"] = Field(alias="detail-type")
    detail: HumanLoopDetail


# --- the project's own events (published by the watch stage) -----------------------------------


class RecognizerStatusDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    recognizerName: str
    versionName: str
    recognizerArn: str
    status: str
    previousStatus: str = ""
    message: str = ""


class RecognizerStatusChange(Envelope):
    source: Literal["nerloop"]
    detail_type: Literal["Recognizer Status Change"] = Field(alias="detail-type")
    detail: RecognizerStatusDetail


class DocumentsAddedDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    batch: str = Field(min_length=1)
    documents: int = Field(ge=1)
    documentsKey: str = Field(pattern=r"^batches/[^/]+/documents\.txt$")


class DocumentsAdded(Envelope):
    source: Literal["nerloop"]
    detail_type: Literal["Documents Added"] = Field(alias="detail-type")
    detail: DocumentsAddedDetail


# The detect function reacts to both of the loop's events that can start detection.
DetectTrigger = Annotated[RecognizerStatusChange | DocumentsAdded, Field(discriminator="detail_type")]


class DetectionJobStatusDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    jobId: str
    jobArn: str = ""
    versionName: str
    status: str
    previousStatus: str = ""
    message: str = ""


class DetectionJobStatusChange(Envelope):
    source: Literal["nerloop"]
    detail_type: Literal["Detection Job Status Change"] = Field(alias="detail-type")
    detail: DetectionJobStatusDetail


class ScheduledEvent(Envelope):
    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")


# --- which model an event is, and what is wrong with it -----------------------------------------

_MODELS: dict[tuple[str, str], type[Envelope]] = {
    ("aws.s3", "Object Created"): S3ObjectCreated,
    ("aws.sagemaker", "SageMaker Ground Truth Labeling Job State Change"): LabelingJobStateChange,
    ("aws.sagemaker", "SageMaker A2I HumanLoop Status Change"): HumanLoopStatusChange,
    ("nerloop", "Recognizer Status Change"): RecognizerStatusChange,
    ("nerloop", "Documents Added"): DocumentsAdded,
    ("nerloop", "Detection Job Status Change"): DetectionJobStatusChange,
    ("aws.events", "Scheduled Event"): ScheduledEvent,
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
