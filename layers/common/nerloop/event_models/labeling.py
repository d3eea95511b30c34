"""SageMaker Ground Truth labeling job state changes."""

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nerloop.event_models.continuation import StageContinued
from nerloop.event_models.envelope import Envelope

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


# The convert function starts on a completed job, and goes on where a run that ran short of time stopped.
ConvertTrigger = Annotated[LabelingJobStateChange | StageContinued, Field(discriminator="detail_type")]
