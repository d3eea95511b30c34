"""Parser models: one pydantic model per event shape a rule delivers (see AWS-FACTS.md).

The Literal values repeat nerloop.constants; tests/unit/test_events.py keeps them in step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import unquote_plus

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


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
    name: str


class S3Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    key: str
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


class LabelingJobDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    LabelingJobStatus: Literal["Completed", "Failed", "Stopped", "InProgress", "Initializing", "Stopping"]


class LabelingJobStateChange(Envelope):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker Ground Truth Labeling Job State Change"] = Field(alias="detail-type")
    detail: LabelingJobDetail

    @property
    def job_arn(self) -> str:
        """The detail carries no ARN or name: the job's ARN is the event's only resource."""
        return self.resources[0]

    @property
    def job_name(self) -> str:
        return self.job_arn.rsplit("/", 1)[-1]


# --- A2I human loop ------------------------------------------------------------------------------


class HumanLoopOutput(BaseModel):
    outputS3Uri: str


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

