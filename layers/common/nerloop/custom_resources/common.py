"""What both custom resources share: the request, its outcome, the deadline, retries, errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from nerloop.errors import NerloopError
from nerloop.observability import logger

SUCCESS = "SUCCESS"
FAILED = "FAILED"

# The physical id of a resource whose Create failed or that created nothing: its Delete is a no-op.
NOTHING_CREATED = "nothing-created"

POLL_SECONDS = 15.0
# Time kept back from the Lambda timeout to send the response.
RESPONSE_MARGIN_SECONDS = 20.0
# CloudFormation shows at most this much of a failure's reason (the whole response is at most 4 KB).
MAX_REASON_CHARS = 1000


class CustomResourceError(NerloopError):
    """The request cannot be carried out; the message becomes the FAILED response's reason."""


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


# --- requests and their properties -----------------------------------------------------------------

CustomResourceRequest = (
    CloudFormationCustomResourceCreateModel
    | CloudFormationCustomResourceUpdateModel
    | CloudFormationCustomResourceDeleteModel
)


@dataclass
class Outcome:
    """What a Create or Update made: the physical id and the attributes (GetAtt) of the resource."""

    physical_id: str
    data: dict[str, str] = field(default_factory=dict)


# --- time ------------------------------------------------------------------------------------------


@dataclass
class Deadline:
    """Waiting within the Lambda's time, keeping enough back to answer CloudFormation."""

    until: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_seconds: float = POLL_SECONDS

    @classmethod
    def from_context(cls, context: LambdaContextLike,
                     sleep: Callable[[float], None] | None = None) -> Deadline:
        remaining = context.get_remaining_time_in_millis() / 1000.0 - RESPONSE_MARGIN_SECONDS
        return cls(until=time.monotonic() + remaining, sleep=sleep or time.sleep, poll_seconds=POLL_SECONDS)

    def wait(self, what: str) -> None:
        """Sleep one poll interval, or raise CustomResourceError saying `what` when time is up."""
        if self.clock() + self.poll_seconds > self.until:
            raise CustomResourceError(f"gave up waiting: {what}")
        self.sleep(self.poll_seconds)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# IAM is eventually consistent: a role created seconds before may not yet be usable by the service it
# is passed to, and AWS advises waiting for the change to propagate:
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
# SageMaker does not name the error it then answers; it reports input it finds invalid as a validation
# error, so that is retried for a bounded time, with the transient common errors (throttling, 503, 500):
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html
TRANSIENT_CREATE_ERRORS = frozenset({
    "ValidationException", "ValidationError", "ThrottlingException", "ServiceUnavailable", "InternalFailure"})
RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 30.0
# How long a refusal is retried before the stack fails with it (a genuinely invalid request fails this late).
ROLE_PROPAGATION_SECONDS = 180.0


def retry_while_roles_propagate(call: Callable[[], Any], deadline: Deadline) -> Any:
    """`call()`, retried with exponential back-off while it fails with a transient error.

    Gives up, raising the last error, after ROLE_PROPAGATION_SECONDS of waiting or at the deadline.
    """
    delay, waited = RETRY_FIRST_SECONDS, 0.0
    while True:
        try:
            return call()
        except ClientError as exc:
            code = error_code(exc)
            if (code not in TRANSIENT_CREATE_ERRORS or waited + delay > ROLE_PROPAGATION_SECONDS
                    or deadline.clock() + delay > deadline.until):
                raise
            logger.warning("request refused, retrying (new roles may not have propagated yet)", error=code,
                           retry_in_seconds=delay)
        deadline.sleep(delay)
        waited += delay
        delay = min(delay * 2, RETRY_MAX_SECONDS)



def parse_properties(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise CustomResourceError(f"invalid properties: {problems}") from exc
