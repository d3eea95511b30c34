"""The EventBridge envelope every event model extends."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Envelope(BaseModel):
    """The EventBridge envelope. `account` is optional: events sent with PutEvents under moto lack it."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    account: str = ""
    region: str = ""
    time: datetime
    # A plain [] rather than default_factory=list: pydantic copies it for each event all the same, and
    # default_factory=list made it read list's signature, which compiles tokenize's large regular
    # expression at cold start (~2 ms).
    resources: list[str] = []
