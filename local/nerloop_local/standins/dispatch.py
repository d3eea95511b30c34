"""How a call reaches a stand-in, and the faults a test can queue on it.

Botocore emits `before-call.<service-id>.<Operation>` just before
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
"""

from __future__ import annotations

import copy
import threading
import uuid
from typing import Any

from botocore import handlers as botocore_handlers
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.validate import ParamValidator

from nerloop_local.emulator.isolation import REGION
from nerloop_local.standins.base import Operation, StandInError

_PARAMS_KEY = "nerloop_fake_params"


class StandInBug(RuntimeError):
    """A stand-in answered with something the real service never sends (a bug here, not in the caller)."""


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
