"""The loop's own events on the default EventBridge bus (source `nerloop`)."""

from __future__ import annotations

import json
from typing import Any

from nerloop.aws import Aws
from nerloop.constants import EVENT_SOURCE


class EventRefused(RuntimeError):
    """EventBridge accepted the call but not the entry (throttled or malformed): retry the stage."""


def publish(aws: Aws, detail_type: str, detail: dict[str, Any], resource: str = "") -> None:
    """Put one event; raises EventRefused when EventBridge refuses the entry."""
    reply = aws.events.put_events(Entries=[{
        "Source": EVENT_SOURCE, "DetailType": detail_type, "Resources": [resource] if resource else [],
        "Detail": json.dumps(detail),
    }])
    if reply.get("FailedEntryCount"):
        raise EventRefused(f"EventBridge refused the {detail_type} event: {reply['Entries']}")
