"""The watch stage's detection job status changes. The detect function takes those of the gate's
evaluation jobs (output under evaluation/output/); the route stage starts from a pool job's output in S3."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nerloop.event_models.envelope import Envelope


class DetectionJobStatusDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    jobId: str
    jobArn: str = ""
    versionName: str
    status: str
    previousStatus: str = ""
    message: str = ""
    outputS3Uri: str = ""


class DetectionJobStatusChange(Envelope):
    source: Literal["nerloop"]
    detail_type: Literal["Detection Job Status Change"] = Field(alias="detail-type")
    detail: DetectionJobStatusDetail
