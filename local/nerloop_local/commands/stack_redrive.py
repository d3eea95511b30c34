"""A deployed stack's dead letters: read them (`nerloop status --stack`) and send them back to their
functions (`nerloop redrive --stack`).

Each stage function has one SQS dead-letter queue (template.yaml), which receives two kinds of message:

- Lambda's invocation record, from the function's `OnFailure` destination once an asynchronous
  invocation ran out of retries: JSON with `requestContext` (`functionArn`, `condition`,
  `approximateInvokeCount`), `requestPayload` (the original event) and `responsePayload` (the error)
  (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-retain-records.html);
- EventBridge's undelivered event, from the rule's `DeadLetterConfig` when the rule could not invoke
  the function at all: the body is the event itself, and the message attributes say why
  (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`, `ERROR_MESSAGE`, `EXHAUSTED_RETRY_CONDITION`,
  `RETRY_ATTEMPTS`; https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html).

Either way the event goes back as the rule would have sent it: Lambda's Invoke (IAM action
`lambda:InvokeFunction`) with `InvocationType` Event and the event as the payload. Lambda answers 202
once it has queued the event, then runs it with the function's retries and dead-letters it again if
it fails again (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html). Only then
`sqs:DeleteMessage`; a message whose invoke failed stays in its queue. While a redrive works, the
messages it took are hidden from others (the receive's visibility timeout), so two redrives at once do
not both send a letter; if one is still sent twice (a delete that failed after the invoke),
the stages' business-key idempotency gives it no second effect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from nerloop_local.commands.stack_resources import StackResources
from nerloop_local.emulator.event_pump import summarize_event

LAMBDA_RECORD = "lambda"  # an OnFailure invocation record
EVENTBRIDGE_EVENT = "eventbridge"  # an event a rule could not deliver
UNKNOWN = "unknown"  # neither: left in the queue for a person
# How long a letter being redriven stays hidden from other readers (seconds): long enough for an invoke.
REDRIVE_VISIBILITY = 120
PEEK_ROUNDS = 10  # receives of 10 messages when reading a queue without taking its messages


@dataclass(frozen=True)
class DeadLetter:
    """One message of a function's dead-letter queue, read."""

    function: str  # the template's logical id
    kind: str
    event: dict[str, Any] | None
    error: str
    attempts: int
    message_id: str
    receipt_handle: str

    def summary(self) -> dict[str, Any]:
        """As `nerloop status` shows a dead letter, on a workspace or a stack."""
        return {"event": summarize_event(self.event or {}), "attempts": self.attempts,
                "error": self.error.splitlines()[0] if self.error else ""}


def read_dead_letter(function: str, message: dict[str, Any]) -> DeadLetter:
    """What an SQS message (from ReceiveMessage, with its MessageAttributes) of `function`'s queue holds."""
    attributes = {name: str(value.get("StringValue", "")) for name, value in
                  (message.get("MessageAttributes") or {}).items()}
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        body = None
    kind, event, error, attempts = UNKNOWN, None, "the message is neither a Lambda invocation record nor an event", 0
    if isinstance(body, dict) and isinstance(body.get("requestContext"), dict) and isinstance(
            body.get("requestPayload"), dict):
        response: dict[str, Any] = body["responsePayload"] if isinstance(body.get("responsePayload"), dict) else {}
        kind, event = LAMBDA_RECORD, body["requestPayload"]
        error = str(response.get("errorMessage") or body["requestContext"].get("condition") or "")
        attempts = int(body["requestContext"].get("approximateInvokeCount") or 0)
    elif isinstance(body, dict) and "detail-type" in body and "source" in body:
        kind, event = EVENTBRIDGE_EVENT, body
        error = ": ".join(part for part in (attributes.get("ERROR_CODE"), attributes.get("ERROR_MESSAGE")) if part)
        attempts = int(attributes.get("RETRY_ATTEMPTS") or 0) + 1  # retries after the first attempt
    return DeadLetter(function, kind, event, error, attempts, str(message.get("MessageId", "")),
                      str(message.get("ReceiptHandle", "")))


def _receive(sqs: Any, queue_url: str, visibility: int) -> list[dict[str, Any]]:
    return list(sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                    VisibilityTimeout=visibility, MessageAttributeNames=["All"]
                                    ).get("Messages", []))


def peek_dead_letters(resources: StackResources, function: str | None = None) -> list[DeadLetter]:
    """The dead letters of every function (or one), left where they are: received with a visibility timeout
    of 0, so they stay visible to everyone else (a short poll samples SQS's servers, and the same messages
    can come back: reading stops after PEEK_ROUNDS receives or when one brings nothing new, so a queue of
    more than a hundred letters may show fewer than it holds)."""
    sqs = resources.client("sqs")
    found: list[DeadLetter] = []
    for name, queue_url in resources.dead_letter_queues.items():
        if function is not None and name != function:
            continue
        seen: dict[str, DeadLetter] = {}
        for _ in range(PEEK_ROUNDS):
            fresh = [message for message in _receive(sqs, queue_url, 0) if message["MessageId"] not in seen]
            if not fresh:
                break
            seen.update({message["MessageId"]: read_dead_letter(name, message) for message in fresh})
        found.extend(seen.values())
    return found


@dataclass(frozen=True)
class Redriven:
    """What became of one dead letter."""

    letter: DeadLetter
    sent: bool
    problem: str = ""


def redrive_stack(resources: StackResources, function: str | None = None) -> list[Redriven]:
    """Send every dead letter (of one function, or all) back to its function as an asynchronous invocation,
    then delete it; a letter that cannot be sent stays in its queue, with the reason."""
    if function is not None and function not in resources.dead_letter_queues:
        raise KeyError(function)
    sqs, lambda_ = resources.client("sqs"), resources.client("lambda")
    outcomes: list[Redriven] = []
    for name, queue_url in resources.dead_letter_queues.items():
        if function is not None and name != function:
            continue
        kept: list[DeadLetter] = []  # hidden until every other letter of the queue was taken
        while batch := _receive(sqs, queue_url, REDRIVE_VISIBILITY):
            for message in batch:
                outcome = _redrive_one(sqs, lambda_, queue_url, resources.functions[name],
                                       read_dead_letter(name, message))
                outcomes.append(outcome)
                if not outcome.sent:
                    kept.append(outcome.letter)
        for letter in kept:
            _release(sqs, queue_url, letter)
    return outcomes


def _redrive_one(sqs: Any, lambda_: Any, queue_url: str, function_name: str, letter: DeadLetter) -> Redriven:
    """Invoke, then delete; a letter that could not be sent is left to the caller (still hidden)."""
    if letter.event is None:
        return Redriven(letter, False, "not an event or an invocation record: left in the queue")
    try:
        answer = lambda_.invoke(FunctionName=function_name, InvocationType="Event",
                                Payload=json.dumps(letter.event).encode("utf-8"))
    except (ClientError, BotoCoreError) as exc:
        return Redriven(letter, False, f"Invoke of {function_name} failed: {exc}")
    # 202 for an Event invocation (botocore's lambda model, InvocationResponse.StatusCode)
    if answer.get("StatusCode") != 202:
        return Redriven(letter, False, f"Invoke of {function_name} answered {answer.get('StatusCode')}")
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle)
    return Redriven(letter, True)


def _release(sqs: Any, queue_url: str, letter: DeadLetter) -> None:
    """Make a letter visible again at once (it was hidden for the redrive)."""
    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0)


__all__ = [
    "DeadLetter",
    "Redriven",
    "peek_dead_letters",
    "read_dead_letter",
    "redrive_stack",
]
