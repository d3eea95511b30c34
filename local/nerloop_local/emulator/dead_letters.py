"""Dead letters: Lambda's invocation record for an event that failed every attempt (what the pump sends a
function's on-failure destination queue), reading them back, and redriving them to their functions."""

from __future__ import annotations

import json
import time
import traceback
import uuid
from collections.abc import Mapping
from typing import Any

from nerloop_local.emulator.isolation import ACCOUNT, REGION
from nerloop_local.emulator.queues import (
    NORMALIZED_ATTRIBUTE,
    REDRIVEN_ATTRIBUTE,
    FunctionWiring,
    attributes,
    peek_all,
    receive_all,
    release,
)


def invocation_record(event: dict[str, Any], error: BaseException, function: str, attempts: int) -> dict[str, Any]:
    """What Lambda sends an on-failure destination when an asynchronous invocation ran out of retries."""
    request_id = str(uuid.uuid4())
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {"requestId": request_id,
                           "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__, "requestId": request_id,
                            "stackTrace": traceback.format_exception(type(error), error, error.__traceback__)[-5:]},
    }


def dead_letters(sqs: Any, wiring: Mapping[str, FunctionWiring], function: str | None = None) -> list[dict[str, Any]]:
    """Events that failed every attempt, from the failure destinations (left in place):
    {"function", "event", "error", "attempts", "record"} where record is Lambda's invocation record."""
    found: list[dict[str, Any]] = []
    for name, wired in wiring.items():
        if function is not None and name != function:
            continue
        for message in peek_all(sqs, wired.dlq_url):
            record = json.loads(message["body"])
            found.append({"function": name, "event": record.get("requestPayload"),
                          "error": (record.get("responsePayload") or {}).get("errorMessage", ""),
                          "attempts": (record.get("requestContext") or {}).get("approximateInvokeCount", 0),
                          "record": record})
    return found


def redrive(sqs: Any, wiring: Mapping[str, FunctionWiring], function: str | None = None, *,
            keep: bool = False) -> list[dict[str, Any]]:
    """Put each dead letter's original event back on its function's event queue as a first attempt
    (see LocalRuntime.redrive); return [{"function", "event", "error", "attempts"}] for what was requeued."""
    if function is not None and function not in wiring:
        raise KeyError(f"no function {function!r} with a dead-letter queue; known: {', '.join(wiring)}")
    requeued: list[dict[str, Any]] = []
    for name, wired in wiring.items():
        if function is not None and name != function:
            continue
        messages = receive_all(sqs, wired.dlq_url)
        for message in messages:
            record = json.loads(message["Body"])
            event = record.get("requestPayload")
            if not isinstance(event, dict):
                continue  # not an invocation record: left in the queue for a person
            sqs.send_message(QueueUrl=wired.queue_url, MessageBody=json.dumps(event),
                             MessageAttributes=attributes({NORMALIZED_ATTRIBUTE: "1", REDRIVEN_ATTRIBUTE: "1"}))
            requeued.append({"function": name, "event": event,
                             "error": (record.get("responsePayload") or {}).get("errorMessage", ""),
                             "attempts": (record.get("requestContext") or {}).get("approximateInvokeCount", 0)})
            if not keep:
                sqs.delete_message(QueueUrl=wired.dlq_url, ReceiptHandle=message["ReceiptHandle"])
        if keep:
            release(sqs, wired.dlq_url, messages)
        else:
            release(sqs, wired.dlq_url, [m for m in messages
                                         if not isinstance(json.loads(m["Body"]).get("requestPayload"), dict)])
    return requeued
