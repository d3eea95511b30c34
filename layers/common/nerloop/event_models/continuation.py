"""nerloop's own `Stage Continued` event: a stage that ran short of time continues from a checkpoint."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nerloop.event_models.envelope import Envelope


class ContinuationDetail(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stage: Literal["convert", "route"]
    key: dict[str, str]  # the business key of the run being continued (its original event's)
    sequence: int = Field(ge=1)  # 1 for the first continuation, then 2, ...
    checkpoint: str = Field(pattern=r"^checkpoints/[a-z]+/.+/state\.json$")


class StageContinued(Envelope):
    source: Literal["nerloop"]
    detail_type: Literal["Stage Continued"] = Field(alias="detail-type")
    detail: ContinuationDetail

