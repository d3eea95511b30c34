"""The SQS queues between the rules and the handlers: each function's wiring (its event queue, its
on-failure destination, its rules), the message attributes the pump marks events with,
and reading a whole queue (to deliver it, peek at it, or save it) without losing a message."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

ATTEMPT_ATTRIBUTE = "nerloop-attempt"
NORMALIZED_ATTRIBUTE = "nerloop-normalized"
DUPLICATE_ATTRIBUTE = "nerloop-duplicate"  # a second delivery made by `duplicate_events`
REDRIVEN_ATTRIBUTE = "nerloop-redriven"  # put back from the dead-letter queue by `redrive`


@dataclass
class FunctionWiring:
    """A function's event plumbing in the emulated account."""

    logical_id: str
    physical_name: str
    queue_url: str
    queue_arn: str
    dlq_url: str  # the on-failure destination
    dlq_arn: str
    max_attempts: int
    rules: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)  # schedule rule ARNs, fired by the pump


def receive_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message visible in the queue now (hidden while being handled)."""
    messages: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=900, MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return messages
        messages.extend(batch)


def release(sqs: Any, queue_url: str, messages: list[dict[str, Any]]) -> None:
    """Make received messages visible again, in the queue as they were."""
    for message in messages:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                      VisibilityTimeout=0)


def peek_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Read every message of a queue and leave them there: {"body", "attributes"}."""
    messages = receive_all(sqs, queue_url)
    release(sqs, queue_url, messages)
    return [{"body": m["Body"], "attributes": {name: value["StringValue"] for name, value in
                                               (m.get("MessageAttributes") or {}).items()}} for m in messages]


def message_attributes(message: Mapping[str, Any]) -> dict[str, str]:
    """A received message's string attributes: {name: value}."""
    return {name: value["StringValue"] for name, value in (message.get("MessageAttributes") or {}).items()}


def attributes(values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """String attributes as SendMessage takes them."""
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}
