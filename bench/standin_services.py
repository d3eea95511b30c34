"""Stand-ins for the services a benchmarked stage makes a few calls of (bench/standins.py has the
table and S3, the clock and the latency model every stand-in call goes through):

- `StandInA2I`: start_human_loop that checks the name and the input size and counts loops.
- `StandInSageMaker`: describe_labeling_job naming the manifest.
- `StandInEventBridge`: put_events that keeps the entries (a stage's continuation event among them).
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError

from bench.standins import stand_in
from nerloop.a2i import MAX_INPUT_CONTENT_CHARS, NAME_PATTERN


class StandInA2I:
    """start_human_loop: checks what A2I checks (name pattern, input size) and counts the loops.

    Names are not kept (memory would grow with them): nerloop's names are unique per document and
    version, and a repeat is what the route benchmark never sends. `most_at_once` is the largest number
    of calls that were in flight together (a thread pool's bound shows there).
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.started = 0
        self.in_flight = 0
        self.most_at_once = 0

    def start_human_loop(self, HumanLoopName: str, FlowDefinitionArn: str,
                         HumanLoopInput: dict[str, str], **kwargs: Any) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.most_at_once = max(self.most_at_once, self.in_flight)
        try:
            return self._start(HumanLoopName, FlowDefinitionArn, HumanLoopInput, **kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1

    @stand_in("a2i.StartHumanLoop", counted_as="start_human_loop")
    def _start(self, HumanLoopName: str, FlowDefinitionArn: str,
               HumanLoopInput: dict[str, str], **_: Any) -> dict[str, Any]:
        if not NAME_PATTERN.match(HumanLoopName) or len(HumanLoopName) > 63:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad name"}}, "StartHumanLoop")
        if len(HumanLoopInput["InputContent"]) > MAX_INPUT_CONTENT_CHARS:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "too big"}}, "StartHumanLoop")
        with self.lock:
            self.started += 1
        return {"HumanLoopArn": f"{FlowDefinitionArn.replace(':flow-definition/', ':human-loop/')}/{HumanLoopName}"}


class StandInSageMaker:
    """describe_labeling_job for one completed job."""

    def __init__(self, manifest_uri: str, label_attribute: str) -> None:
        self.manifest_uri = manifest_uri
        self.label_attribute = label_attribute
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    @stand_in("sagemaker.DescribeLabelingJob")
    def describe_labeling_job(self, LabelingJobName: str) -> dict[str, Any]:
        return {"LabelingJobName": LabelingJobName, "LabelingJobStatus": "Completed",
                "LabelAttributeName": self.label_attribute,
                "LabelingJobOutput": {"OutputDatasetS3Uri": self.manifest_uri}}


class StandInEventBridge:
    """put_events: keeps every entry (1 to 10 a request, as PutEvents takes: botocore `events`
    PutEventsRequestEntryList) and accepts them all."""

    MAX_ENTRIES = 10

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []

    @stand_in("events.PutEvents")
    def put_events(self, Entries: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        if not 1 <= len(Entries) <= self.MAX_ENTRIES:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "1 to 10 entries"}}, "PutEvents")
        with self.lock:
            self.entries.extend(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in Entries]}
