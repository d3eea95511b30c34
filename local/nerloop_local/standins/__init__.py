"""Stand-ins for the AWS APIs moto lacks: Comprehend custom entity recognizers and detection jobs,
the A2I runtime (human loops), SageMaker flow definitions, human task UIs, Ground Truth
labeling jobs, CloudFormation's DescribeStacks and DescribeStackResources for the local stack, and
Lambda's asynchronous Invoke of its functions.

How a call reaches a stand-in: botocore emits `before-call.<service-id>.<Operation>` just before
it would send a request (botocore/client.py `_make_api_call`), and the first handler that returns
`(http_response, parsed)` answers the call instead. This module puts two handlers on every
botocore session (`botocore.handlers.BUILTIN_HANDLERS`, as moto does for `before-send`):

- `before-parameter-build` (registered last, after botocore filled idempotency tokens) keeps a copy
  of the caller's parameters in the request context;
- `before-call` (registered first) answers the operations an installed stand-in claims.

So the handlers' ordinary boto3 clients reach the stand-ins, botocore still validates parameters
against the service model, errors come back as the service's modeled exceptions (a real
`ClientError` with `Error.Code`), and moto never sees the claimed calls (moto hooks `before-send`,
which comes later). Every reply is checked against the operation's output shape, so a stand-in
cannot answer with a field the real service does not have.

Time: a stand-in never moves on by itself. `StandIns.tick()` advances every piece of in-flight work
by one step (SUBMITTED → TRAINING → TRAINED, a detection job's SUBMITTED → IN_PROGRESS →
COMPLETED, a human loop asked of the reviewer ...). The local runtime ticks once per pump cycle;
tests tick by hand. Reads (Describe, List) never change anything, as on AWS.

Only one set of stand-ins answers at a time (like moto's single mock): `StandIns.install()` claims the
operations process-wide and `StandIns.uninstall()` releases them.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import boto3
from botocore import handlers as botocore_handlers
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.validate import ParamValidator

from nerloop import s3_uri
from nerloop_local.emulator.isolation import ACCOUNT, REGION

if TYPE_CHECKING:
    from nerloop_local.standins.a2i import A2IStandIn, FlowDefinitionsStandIn
    from nerloop_local.standins.cloudformation import FunctionsStandIn, StackStandIn
    from nerloop_local.standins.comprehend import ComprehendStandIn
    from nerloop_local.standins.groundtruth import GroundTruthStandIn


_PARAMS_KEY = "nerloop_fake_params"


class StandInError(Exception):
    """An error a stand-in answers with, as the service would: `code` becomes `Error.Code`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


class StandInBug(RuntimeError):
    """A stand-in answered with something the real service never sends (a bug here, not in the caller)."""


# --- the dispatcher ---------------------------------------------------------------------------------

Operation = Callable[[dict[str, Any]], dict[str, Any]]

_lock = threading.RLock()
_operations: dict[tuple[str, str], Operation] = {}
_faults: dict[tuple[str, str], list[StandInError]] = {}
_validator = ParamValidator()


def _operation_key(model: Any) -> tuple[str, str]:
    return model.service_model.service_id.hyphenize(), model.name


def _remember_params(params: dict[str, Any], model: Any, context: dict[str, Any] | None = None,
                     **_: Any) -> None:
    """before-parameter-build: keep the caller's parameters for `_answer` (it only sees the wire form)."""
    if context is not None and _operations and _operation_key(model) in _operations:
        context[_PARAMS_KEY] = copy.deepcopy(params)


def _answer(model: Any, params: dict[str, Any], context: dict[str, Any] | None = None,
            **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    """before-call: answer the call when a stand-in claims it; None lets it go on to moto."""
    key = _operation_key(model)
    with _lock:
        operation = _operations.get(key)
        if operation is None:
            return None
        queued = _faults.get(key)
        fault = queued.pop(0) if queued else None
    request_id = str(uuid.uuid4())
    if fault is not None:
        return _error_response(fault, request_id)
    api_params = (context or {}).get(_PARAMS_KEY, {})
    try:
        with _lock:
            result = operation(api_params)
    except StandInError as error:
        return _error_response(error, request_id)
    report = _validator.validate(result, model.output_shape) if model.output_shape is not None else None
    if report is not None and report.has_errors():
        raise StandInBug(f"the {key[0]} stand-in answered {key[1]} with a shape the service never "
                         f"sends:\n{report.generate_report()}")
    parsed = {**result, "ResponseMetadata": _metadata(request_id, 200)}
    return AWSResponse(f"https://{key[0]}.{REGION}.amazonaws.com/", 200, HTTPHeaders(), None), parsed


def _metadata(request_id: str, status: int) -> dict[str, Any]:
    return {"RequestId": request_id, "HTTPStatusCode": status,
            "HTTPHeaders": {"x-amzn-requestid": request_id, "content-type": "application/x-amz-json-1.1"},
            "RetryAttempts": 0}


def _error_response(error: StandInError, request_id: str) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {"Error": {"Code": error.code, "Message": error.message}, "Message": error.message,
              "ResponseMetadata": _metadata(request_id, error.status)}
    return AWSResponse("https://localhost/", error.status, HTTPHeaders(), None), parsed


_BEFORE_PARAMETER_BUILD_ID = "nerloop-fakes-remember-params"
_BEFORE_CALL_ID = "nerloop-fakes-answer"

# Every botocore session made from now on carries the two handlers (sessions copy this list when
# they are created, so this import must come before the clients are made: the runtime does that).
if not any(spec[1] is _answer for spec in botocore_handlers.BUILTIN_HANDLERS):
    botocore_handlers.BUILTIN_HANDLERS.append(
        ("before-parameter-build", _remember_params, botocore_handlers.REGISTER_LAST))
    botocore_handlers.BUILTIN_HANDLERS.append(("before-call", _answer, botocore_handlers.REGISTER_FIRST))


def patch_client(client: Any) -> Any:
    """Make a client created before this module was imported reach the stand-ins too."""
    events = client.meta.events
    events.register_last("before-parameter-build", _remember_params, unique_id=_BEFORE_PARAMETER_BUILD_ID)
    events.register_first("before-call", _answer, unique_id=_BEFORE_CALL_ID)
    return client


def claim(operations: dict[tuple[str, str], Operation]) -> None:
    """Answer these (service id, operation) pairs from now on; fails if another stand-in has one."""
    with _lock:
        taken = sorted(f"{s}.{o}" for s, o in operations if (s, o) in _operations)
        if taken:
            raise RuntimeError(f"operations already answered by other stand-ins: {', '.join(taken)}")
        _operations.update(operations)


def release(operations: dict[tuple[str, str], Operation]) -> None:
    with _lock:
        for key in operations:
            _operations.pop(key, None)
            _faults.pop(key, None)


def inject_fault(service: str, operation: str, code: str, message: str = "injected by a test",
                 *, status: int = 400, times: int = 1) -> None:
    """The next `times` calls of `service`.`operation` fail with `code` (e.g. ThrottlingException, 429)."""
    with _lock:
        if (service, operation) not in _operations:
            raise KeyError(f"no stand-in answers {service}.{operation}")
        _faults.setdefault((service, operation), []).extend(
            StandInError(code, message, status) for _ in range(times))


# --- what the stand-ins share ------------------------------------------------------------------------


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime | None) -> str | None:
    """A timestamp as stored in a snapshot (ISO 8601, UTC)."""
    return moment.astimezone(UTC).isoformat() if moment else None


def from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def iso_millis(moment: datetime) -> str:
    """The form AWS puts in event details and output files: 2020-06-24T01:26:53.625Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """An object's or a prefix's URI → (bucket, key); StandInError, as a service answers, when it is not an S3 URI."""
    try:
        return s3_uri.split_s3_uri(uri, prefix=True)
    except s3_uri.InvalidS3Uri as exc:
        raise StandInError("ValidationException", str(exc)) from exc


def join_s3_uri(prefix_uri: str, *parts: str) -> str:
    """s3://b/out + a/b → s3://b/out/a/b (one slash between parts, whatever the prefix ends with)."""
    return "/".join([prefix_uri.rstrip("/"), *(part.strip("/") for part in parts)])


def paginate(items: Sequence[Any], params: dict[str, Any], default_max: int = 100) -> tuple[list[Any], str | None]:
    """One page of `items` for MaxResults / NextToken; the token is opaque to callers."""
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StandInError("InvalidRequestException", "the pagination token is not valid") from exc
    size = int(params.get("MaxResults") or default_max)
    page = list(items[start : start + size])
    following = start + size
    next_token = base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(items) else None
    return page, next_token


def drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


@dataclass
class StandInContext:
    """What the stand-ins need from the emulated account: its S3 and its event bus (both moto)."""

    account: str = ACCOUNT
    region: str = REGION
    state_dir: Path | None = None  # where model files live; a temporary folder when None
    session: Any = None  # a boto3 Session to make clients from (default: boto3's default session)

    def __post_init__(self) -> None:
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            maker = self.session or boto3
            self._clients[service] = maker.client(service, region_name=self.region)
        return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    def read_s3(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def write_s3(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def list_s3(self, uri: str) -> list[str]:
        """Keys of the objects at `uri`: the object itself if it exists, else all under it as a prefix."""
        bucket, key = split_s3_uri(uri)
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
        return [key] if key in keys else keys

    def publish(self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        """Put an event on the emulated default bus, as the service would."""
        reply = self.client("events").put_events(Entries=[{
            "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "Resources": resources,
        }])
        if reply.get("FailedEntryCount"):
            raise RuntimeError(f"the emulated bus refused a {detail_type} event: {reply['Entries']}")


class StandInService:
    """Base of a stand-in: the operations it answers, its clock, its saved state."""

    operations: ClassVar[dict[tuple[str, str], str]] = {}  # (service id, Operation) → method name

    def __init__(self, context: StandInContext) -> None:
        self.context = context
        self.changes = 0  # bumped on every status change (the runtime's watch schedule reads it)

    def bound_operations(self) -> dict[tuple[str, str], Operation]:
        return {key: getattr(self, name) for key, name in self.operations.items()}

    def tick(self) -> None:
        """Advance in-flight work by one step."""

    def busy(self) -> bool:
        """True while something will change on a later tick without anyone's input."""
        return False

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, data: dict[str, Any]) -> None:
        """Load what `snapshot` returned."""


# (loop name, the loop's input content with the asked worker's id added under "workerId") -> the
# worker's entities, or None while unanswered. A flow definition's TaskCount asks that many workers.
Reviewer = Callable[[str, dict[str, Any]], "list[dict[str, Any]] | None"]


class StandIns:
    """All the stand-ins of one emulated account, installed together."""

    def __init__(self, context: StandInContext | None = None, reviewer: Reviewer | None = None) -> None:
        from nerloop_local.standins.a2i import A2IStandIn, FlowDefinitionsStandIn
        from nerloop_local.standins.cloudformation import FunctionsStandIn, StackStandIn
        from nerloop_local.standins.comprehend import ComprehendStandIn
        from nerloop_local.standins.comprehend_flywheel import FlywheelsStandIn
        from nerloop_local.standins.groundtruth import GroundTruthStandIn

        self.context = context or StandInContext()
        self.comprehend: ComprehendStandIn = ComprehendStandIn(self.context)
        self.flywheels: FlywheelsStandIn = FlywheelsStandIn(self.context, self.comprehend)
        self.flow_definitions: FlowDefinitionsStandIn = FlowDefinitionsStandIn(self.context)
        self.a2i: A2IStandIn = A2IStandIn(self.context, self.flow_definitions, reviewer)
        self.groundtruth: GroundTruthStandIn = GroundTruthStandIn(self.context)
        self.stack: StackStandIn = StackStandIn(self.context)
        self.functions: FunctionsStandIn = FunctionsStandIn(self.context)
        self._installed = False

    @property
    def services(self) -> dict[str, StandInService]:
        return {"comprehend": self.comprehend, "flywheels": self.flywheels,
                "flow_definitions": self.flow_definitions, "a2i": self.a2i,
                "groundtruth": self.groundtruth, "stack": self.stack, "functions": self.functions}

    def _all_operations(self) -> dict[tuple[str, str], Operation]:
        merged: dict[tuple[str, str], Operation] = {}
        for service in self.services.values():
            merged.update(service.bound_operations())
        return merged

    def install(self) -> StandIns:
        if not self._installed:
            claim(self._all_operations())
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            release(self._all_operations())
            self._installed = False

    @contextmanager
    def installed(self) -> Iterator[StandIns]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def tick(self) -> None:
        """One step of every stand-in's clock."""
        for service in self.services.values():
            service.tick()

    def busy(self) -> bool:
        return any(service.busy() for service in self.services.values())

    def snapshot(self) -> dict[str, Any]:
        return {name: service.snapshot() for name, service in self.services.items()}

    def restore(self, data: dict[str, Any]) -> None:
        for name, service in self.services.items():
            if name in data:
                service.restore(data[name])


__all__ = [
    "ACCOUNT",
    "REGION",
    "Reviewer",
    "StandInBug",
    "StandInContext",
    "StandInError",
    "StandInService",
    "StandIns",
    "inject_fault",
    "patch_client",
]
