"""The state table's item families as dataclasses, their status names, and how items read back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from nerloop.documents import Span
from nerloop.state._table import now

IDEMPOTENCY_PK = "IDEMPOTENCY"

# Pool statuses.
WAITING = "waiting"  # not yet seen by the active version, or sent back after a failed loop
IN_REVIEW = "in_review"  # a human loop is open for it
ACCEPTED = "accepted"  # every predicted entity was confident
GOLD = "gold"  # labelled by people

LOOP_OPEN = "InProgress"  # a human loop's status until A2I reports it Completed, Failed or Stopped
OPEN_LOOP_PK = "OPEN-LOOP"
JOB_IN_FLIGHT_PK = "JOB-IN-FLIGHT"
DETECTION_QUEUE_PK = "DETECT-QUEUE"
COUNTER_FIRST = "first_epoch"  # on a counter item: when its first count since the last restamp was made

RECOGNIZER_IN_FLIGHT = ("SUBMITTED", "TRAINING", "STOP_REQUESTED", "DELETING")
JOB_IN_FLIGHT = ("SUBMITTED", "IN_PROGRESS", "STOP_REQUESTED")


@dataclass
class GoldDocument:
    """A document with the spans people agreed on."""

    doc: str
    text: str
    spans: list[Span]
    origin: str
    updated_at: str = field(default_factory=now)


@dataclass
class PoolDocument:
    """A document waiting for the model, accepted, in review or gold (`status`)."""

    doc: str
    text: str
    status: str
    seen_by: str = ""  # the version that detected it last
    loop: str = ""
    batch: str = ""
    detected_at: str = ""  # when that detection was routed
    uncertain_by: str = ""  # the last version that found it uncertain (kept when a later one accepts it)
    updated_at: str = ""


@dataclass
class Version:
    """A recognizer version: its status, ARN, training snapshot and metrics."""

    version: str
    status: str
    arn: str = ""
    snapshot: str = ""
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    training_started_at: str = ""  # Comprehend's TrainingStartTime / TrainingEndTime (nerloop.cost_records)
    training_ended_at: str = ""


@dataclass
class Job:
    """A detection job: the version it runs and the input it reads."""

    job_id: str
    status: str
    version: str
    input_key: str
    documents: int = 0
    arn: str = ""


@dataclass
class DetectionRequest:
    """A detection job about to start: its idempotency token and the input it reads."""

    token: str
    version: str
    input_key: str
    documents: int


@dataclass
class Loop:
    """A human loop: the document it reviews, under which version, and how it ended."""

    name: str
    doc: str
    version: str
    status: str
    failure: str = ""
    started_at: str = ""  # when the route stage recorded it (`now()`); read back, never written from here
    finished_at: str = ""  # when it left InProgress


def gold_item_of(gold: GoldDocument) -> dict[str, Any]:
    """The item a gold document is stored as."""
    return {"pk": "GOLD", "sk": gold.doc, "text": gold.text, "spans": json.dumps(gold.spans),
            "origin": gold.origin, "updated_at": gold.updated_at}


def gold_from_item(item: dict[str, Any]) -> GoldDocument:
    return GoldDocument(
        doc=item["sk"],
        text=item["text"],
        spans=list(map(Span._make, json.loads(item["spans"]))),  # written by json.dumps of Spans
        origin=item.get("origin", ""),
        updated_at=item.get("updated_at", ""),
    )


def pool_from_item(item: dict[str, Any]) -> PoolDocument:
    return PoolDocument(doc=item["sk"], text=item["text"], status=item["status"],
                        seen_by=item.get("seen_by", ""), loop=item.get("loop", ""),
                        batch=item.get("batch", ""), detected_at=item.get("detected_at", ""),
                        uncertain_by=item.get("uncertain_by", ""), updated_at=item.get("updated_at", ""))


def version_from_item(item: dict[str, Any]) -> Version:
    return Version(version=item["sk"], status=item["status"], arn=item.get("arn", ""),
                   snapshot=item.get("snapshot", ""), message=item.get("message", ""),
                   metrics=json.loads(item.get("metrics") or "{}"), created_at=item.get("created_at", ""),
                   training_started_at=item.get("training_started_at", ""),
                   training_ended_at=item.get("training_ended_at", ""))


def job_from_item(item: dict[str, Any]) -> Job:
    return Job(job_id=item["sk"], status=item["status"], version=item["version"],
               input_key=item["input_key"], documents=int(item.get("documents", 0)),
               arn=item.get("arn", ""))


def request_from_item(item: dict[str, Any]) -> DetectionRequest:
    return DetectionRequest(token=str(item["sk"]), version=str(item["version"]), input_key=str(item["input_key"]),
                            documents=int(item["documents"]))


def loop_from_item(item: dict[str, Any]) -> Loop:
    return Loop(name=item["sk"], doc=item["doc"], version=item["version"], status=item["status"],
                failure=item.get("failure", ""), started_at=item.get("started_at", ""),
                finished_at=item.get("finished_at", ""))
