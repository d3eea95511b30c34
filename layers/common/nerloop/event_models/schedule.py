"""EventBridge Scheduler / scheduled rule events."""

from typing import Literal

from pydantic import Field

from nerloop.event_models.envelope import Envelope


class ScheduledEvent(Envelope):
    source: Literal["aws.events"]
    detail_type: Literal["Scheduled Event"] = Field(alias="detail-type")
