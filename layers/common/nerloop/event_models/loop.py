"""The project's own events that start detection: published by the watch and preprocess stages, taken
by the detect function (a detection job's end: only the gate's evaluation jobs, whose input is under
training/; the route stage starts from a pool job's output in S3)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerloop.event_models.envelope import Envelope


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


class DetectionJobStatusDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    jobId: str
    jobArn: str = ""
    versionName: str
    status: str
    previousStatus: str = ""
    message: str = ""
    outputS3Uri: str = ""
    inputKey: str = ""


class DetectionJobStatusChange(Envelope):
    source: Literal["nerloop"]
    detail_type: Literal["Detection Job Status Change"] = Field(alias="detail-type")
    detail: DetectionJobStatusDetail


# The detect function reacts to the loop's events that can start detection: a training's end, new
# documents, and the end of the gate's evaluation job (nerloop.evaluation).
DetectTrigger = Annotated[RecognizerStatusChange | DocumentsAdded | DetectionJobStatusChange,
                          Field(discriminator="detail_type")]
