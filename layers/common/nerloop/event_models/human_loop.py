"""A2I human loop status changes."""

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nerloop.event_models.envelope import Envelope


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
    def completed_has_output(self) -> Self:
        """A completed loop's answer is only found through humanLoopOutput.outputS3Uri."""
        if self.humanLoopStatus == "Completed" and not (self.humanLoopOutput and self.humanLoopOutput.outputS3Uri):
            raise ValueError("a Completed human loop needs humanLoopOutput.outputS3Uri")
        return self


class HumanLoopStatusChange(Envelope):
    source: Literal["aws.sagemaker"]
    detail_type: Literal["SageMaker A2I HumanLoop Status Change"] = Field(alias="detail-type")
    detail: HumanLoopDetail
