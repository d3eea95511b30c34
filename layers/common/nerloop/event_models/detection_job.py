"""The watch stage's detection job status changes. No function takes them yet (the route stage starts
from the job's output in S3), so they live apart from nerloop.event_models.loop, whose models the detect
function builds at cold start."""

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


class DetectionJobStatusChange(Envelope):
    source: Literal["nerloop"]
    detail_type: Literal["Detection Job Status Change"] = Field(alias="detail-type")
    detail: DetectionJobStatusDetail
