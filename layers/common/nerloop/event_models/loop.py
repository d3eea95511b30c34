"""The project's own events that start detection: published by the watch and preprocess stages, taken
by the detect function."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerloop.event_models.detection_job import DetectionJobStatusChange
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


# The detect function reacts to the loop's events that can start detection: a training's end, new
# documents, and the end of the gate's evaluation job (nerloop.evaluation).
DetectTrigger = Annotated[RecognizerStatusChange | DocumentsAdded | DetectionJobStatusChange,
                          Field(discriminator="detail_type")]
