"""Transient AWS faults for the local runtime: a share of the handlers' calls to S3, DynamoDB,
Comprehend and A2I fail as the services fail (throttling, 5xx, timeouts), from a seeded RNG.

Where the faults go in, and why there:

- S3 and DynamoDB (served by moto) fail BELOW botocore's retry layer: moto answers requests at
  `before-send`, once per HTTP attempt, inside the endpoint's retry loop; the injector stands in
  front of moto there. A fault is then what the network or the service would hand the client, and
  the clients' own retry policy (nerloop.aws.RETRY_CONFIG, as deployed) decides what is retried and
  how often, exactly as on AWS. Injecting above it would test a client nobody deploys (no retries)
  and make 20 % unsurvivable: a handler making 30 calls would fail 99.9 % of the time.
- Comprehend and A2I (the local stand-ins) answer at `before-call`, above the retry layer, so no
  botocore retry ever sees them. The injector answers first there and plays the retry layer's part
  itself: each attempt fails with the same probability, up to the client's `total_max_attempts`,
  and the call fails only when every attempt did (all the injected kinds are retryable in botocore's
  standard and adaptive modes: throttling codes, 5xx, connection timeouts).

`outage_rate` is the share of calls whose fault lasts longer than the client's retries (a brownout):
those failures reach the handler, the delivery fails, and the runtime's own retries, dead-letter
queues and the stages' idempotency have to carry the run.

Kinds (codes the services really send): DynamoDB ProvisionedThroughputExceededException,
ThrottlingException, InternalServerError (500); S3 SlowDown (503), InternalError (500),
ServiceUnavailable (503); Comprehend ThrottlingException, TooManyRequestsException,
InternalServerException (500); A2I ThrottlingException, InternalServerException (500); and for
every service ReadTimeoutError and ConnectTimeoutError. A timeout fails before the service applied
the request (a reply lost AFTER the service applied a write is a different fault, not injected here:
see `nerloop_local.commands.chaos` for why).

Time is compressed while installed: botocore's back-off delays and the adaptive mode's client-side
rate limiting wait 0 s (what they would have waited is added up in `backoff_seconds`); which errors
are retried, and how many times, stays botocore's decision.

Only calls made while the injector is `armed` fail (the runtime arms it around each delivery to a
handler), so the harness's own calls (seeding the bucket, the queues, saving the workspace) and the
stand-ins' internal work are never faulted.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore import handlers as botocore_handlers
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ConnectTimeoutError, ReadTimeoutError
from botocore.retries import adaptive, standard
from moto.core.botocore_stubber import BotocoreStubber, MockRawResponse

S3 = "s3"
DYNAMODB = "dynamodb"
COMPREHEND = "comprehend"
A2I = "sagemaker-a2i-runtime"
SERVICES = (S3, DYNAMODB, COMPREHEND, A2I)
# Served by the local stand-ins at before-call (above botocore's retry layer).
STAND_IN_SERVICES = (COMPREHEND, A2I)

READ_TIMEOUT = "ReadTimeoutError"
CONNECT_TIMEOUT = "ConnectTimeoutError"


@dataclass(frozen=True)
class FaultKind:
    code: str
    status: int  # 0 for a timeout (no response at all)


# What each service answers when it is throttled or broken (codes from the services' documentation).
KINDS: dict[str, tuple[FaultKind, ...]] = {
    DYNAMODB: (FaultKind("ProvisionedThroughputExceededException", 400), FaultKind("ThrottlingException", 400),
               FaultKind("InternalServerError", 500)),
    S3: (FaultKind("SlowDown", 503), FaultKind("InternalError", 500), FaultKind("ServiceUnavailable", 503)),
    COMPREHEND: (FaultKind("ThrottlingException", 400), FaultKind("TooManyRequestsException", 400),
                 FaultKind("InternalServerException", 500)),
    A2I: (FaultKind("ThrottlingException", 400), FaultKind("InternalServerException", 500)),
}
TIMEOUTS = (FaultKind(READ_TIMEOUT, 0), FaultKind(CONNECT_TIMEOUT, 0))
# A permanent failure (`deny`): what a missing IAM permission answers; never retried.
DENIED = {S3: FaultKind("AccessDenied", 403)}
ACCESS_DENIED = FaultKind("AccessDeniedException", 400)
# Wire form of an error per protocol: DynamoDB, Comprehend and A2I speak JSON, S3 speaks REST-XML.
_JSON_TYPE_PREFIX = {DYNAMODB: "com.amazonaws.dynamodb.v20120810#", COMPREHEND: "", A2I: ""}
_CONTEXT_KEY = "nerloop_faults"


@dataclass
class ServiceFigures:
    """What happened to one service's calls while armed."""

    calls: int = 0  # API calls made by handlers (each may take several HTTP attempts)
    faults: Counter[str] = field(default_factory=Counter)  # injected failures by code (one per attempt)
    retries: int = 0  # attempts made again after a failure (botocore's count, or the emulated one)
    surfaced: int = 0  # calls whose failure reached the caller (an outage, or retries exhausted)
    denied: int = 0  # calls refused by a `deny` (permanent failures)

    @property
    def injected(self) -> int:
        return sum(self.faults.values())

    def to_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "faults": dict(sorted(self.faults.items())), "injected": self.injected,
                "retries": self.retries, "surfaced": self.surfaced, "denied": self.denied}


class FaultInjector:
    """Fail `rate` of the handlers' HTTP attempts to `services`, reproducibly from `seed`.

        injector = FaultInjector(rate=0.2, seed=7)
        with LocalRuntime(folder, faults=injector) as runtime: ...   # installs and arms it per delivery
        injector.figures["dynamodb"].faults   # Counter of the codes injected
    """

    def __init__(self, rate: float = 0.2, seed: int = 0, services: tuple[str, ...] = SERVICES,
                 outage_rate: float = 0.0) -> None:
        if not 0 <= rate < 1 or not 0 <= outage_rate <= 1:
            raise ValueError("rate must be in [0, 1) and outage_rate in [0, 1]")
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"no faults for {sorted(unknown)}; known: {', '.join(SERVICES)}")
        self.rate = rate
        self.outage_rate = outage_rate
        self.services = tuple(services)
        self.seed = seed
        self.figures: dict[str, ServiceFigures] = defaultdict(ServiceFigures)
        self.backoff_seconds = 0.0
        self._random = random.Random(seed)  # nosec B311 # fault injection, not secrets
        self._lock = threading.Lock()
        self._armed = 0
        self._function = ""
        self._denied: dict[tuple[str, str], str | None] = {}

    # --- life cycle ---------------------------------------------------------------------------------------

    def install(self) -> FaultInjector:
        """Make this the process's injector (disarmed until `armed()`); one at a time."""
        global _ACTIVE
        with _INSTALL_LOCK:
            if _ACTIVE is not None and _ACTIVE is not self:
                raise RuntimeError("another FaultInjector is installed")
            _patch_botocore()
            _ACTIVE = self
        return self

    def uninstall(self) -> None:
        global _ACTIVE
        with _INSTALL_LOCK:
            if _ACTIVE is self:
                _ACTIVE = None
                _unpatch_botocore()

    @contextmanager
    def armed(self, function: str = "") -> Iterator[None]:
        """Inject faults into the calls made inside the block (from any thread: s3transfer's too),
        made by `function` (for `deny`)."""
        with self._lock:
            self._armed += 1
            previous, self._function = self._function, function
        try:
            yield
        finally:
            with self._lock:
                self._armed -= 1
                self._function = previous

    def deny(self, service: str, operation: str, function: str | None = None) -> None:
        """Make every call of `service`.`operation` (by `function`, default: by any) fail for good, as
        a missing IAM permission does (AccessDenied / AccessDeniedException, which no client retries),
        until `allow`."""
        if service not in SERVICES:
            raise ValueError(f"no faults for {service!r}; known: {', '.join(SERVICES)}")
        self._denied[(service, operation)] = function

    def allow(self, service: str | None = None, operation: str | None = None) -> None:
        """Lift `deny` (all of them by default): the permission was granted."""
        for key in list(self._denied):
            if (service is None or key[0] == service) and (operation is None or key[1] == operation):
                del self._denied[key]

    @property
    def is_armed(self) -> bool:
        return self._armed > 0

    # --- figures ------------------------------------------------------------------------------------------

    @property
    def injected(self) -> int:
        return sum(f.injected for f in self.figures.values())

    @property
    def retries(self) -> int:
        return sum(f.retries for f in self.figures.values())

    @property
    def surfaced(self) -> int:
        return sum(f.surfaced for f in self.figures.values())

    def to_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "outage_rate": self.outage_rate, "seed": self.seed,
                "backoff_seconds": round(self.backoff_seconds, 1),
                "services": {name: self.figures[name].to_dict() for name in self.services}}

    # --- decisions ----------------------------------------------------------------------------------------

    def _wants(self, service: str) -> bool:
        return self._armed > 0 and (service in self.services or any(s == service for s, _ in self._denied))

    def _denial(self, service: str, operation: str) -> FaultKind | None:
        key = (service, operation)
        if key not in self._denied or self._denied[key] not in (None, self._function):
            return None
        with self._lock:
            self.figures[service].denied += 1
        return DENIED.get(service, ACCESS_DENIED)

    def _draw(self) -> float:
        with self._lock:
            return self._random.random()

    def _pick(self, service: str) -> FaultKind:
        kinds = KINDS[service] + TIMEOUTS
        with self._lock:
            return self._random.choice(kinds)

    def _count_fault(self, service: str, kind: FaultKind) -> None:
        with self._lock:
            self.figures[service].faults[kind.code] += 1

    def fail_attempt(self, service: str, context: dict[str, Any]) -> FaultKind | None:
        """Decide one HTTP attempt of a call (its botocore request context keeps the call's outage)."""
        if service not in self.services:
            return None
        state = context.setdefault(_CONTEXT_KEY, {})
        if "outage" not in state:
            state["outage"] = self.outage_rate > 0 and self._draw() < self.outage_rate
            state["kind"] = self._pick(service) if state["outage"] else None
        if state["outage"]:
            kind: FaultKind = state["kind"]
        elif self.rate > 0 and self._draw() < self.rate:
            kind = self._pick(service)
        else:
            return None
        state["failed"] = state.get("failed", 0) + 1
        state["last"] = kind.code
        self._count_fault(service, kind)
        return kind

    def emulate_retries(self, service: str, context: dict[str, Any]) -> FaultKind | None:
        """For a stand-in's call: run the attempts botocore would make; the fault that reaches the
        caller when every attempt failed, else None (the stand-in answers; earlier failures were retried)."""
        attempts = total_attempts(context.get("client_config"))
        failure = None
        for attempt in range(attempts):
            failure = self.fail_attempt(service, context)
            if failure is None:
                return None
            if attempt < attempts - 1:
                with self._lock:
                    self.figures[service].retries += 1
        return failure

    def record_call(self, service: str, context: dict[str, Any], retries: int, error: str | None) -> None:
        """Count a finished call: its client retries, and whether it failed with the fault injected
        into its last attempt (`error`: the code or exception name it failed with, None on success)."""
        state = context.setdefault(_CONTEXT_KEY, {})
        if state.get("recorded"):
            return  # the hooks are on the client twice (a session's built-in ones and `hook_client`)
        state["recorded"] = True
        with self._lock:
            figures = self.figures[service]
            figures.calls += 1
            if service not in STAND_IN_SERVICES:
                figures.retries += retries
            if error is not None and (context.get(_CONTEXT_KEY) or {}).get("last") == error:
                figures.surfaced += 1


def total_attempts(config: Any) -> int:
    """Attempts a client makes for one call (first + retries), as botocore computes them."""
    retries = dict(getattr(config, "retries", None) or {})
    if "total_max_attempts" in retries:
        return max(1, int(retries["total_max_attempts"]))
    if "max_attempts" in retries:
        return int(retries["max_attempts"]) + 1
    return 3  # botocore's default (legacy and standard modes alike)


# --- the hooks ------------------------------------------------------------------------------------------

_ACTIVE: FaultInjector | None = None
_INSTALL_LOCK = threading.Lock()
_PATCHED: dict[str, Any] = {}


def _error_response(service: str, kind: FaultKind, url: str) -> AWSResponse:
    """An HTTP error response as `service` sends it (botocore parses the code from it)."""
    message = f"injected by nerloop chaos: {kind.code}"
    if service == S3:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{kind.code}</Code>'
                f"<Message>{message}</Message><RequestId>CHAOS</RequestId></Error>").encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/xml"
    else:
        body = json.dumps({"__type": _JSON_TYPE_PREFIX.get(service, "") + kind.code, "message": message}).encode()
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
    return AWSResponse(url, kind.status, headers, MockRawResponse(body))  # type: ignore[arg-type]


def _timeout(kind: FaultKind, url: str) -> Exception:
    error = "injected by nerloop chaos"
    if kind.code == READ_TIMEOUT:
        return ReadTimeoutError(endpoint_url=url, error=error)
    return ConnectTimeoutError(endpoint_url=url, error=error)


def _service_of(event_name: str) -> str:
    parts = event_name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _faulty_stubber_call(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
    """moto's before-send handler, with the injector in front of it (one call per HTTP attempt)."""
    injector = _ACTIVE
    service = _service_of(event_name)
    if injector is not None and stubber.enabled and injector._wants(service):
        context = request.context if isinstance(getattr(request, "context", None), dict) else {}
        operation = event_name.split(".")[2] if event_name.count(".") >= 2 else ""
        kind = injector._denial(service, operation) or injector.fail_attempt(service, context)
        if kind is not None:
            if kind.status == 0:
                raise _timeout(kind, request.url)
            return _error_response(service, kind, request.url)
    return _PATCHED["stubber_call"](stubber, event_name, request, **kwargs)


def _before_stand_in_call(model: Any, params: Any = None, context: dict[str, Any] | None = None,
                          **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
    """before-call for the stand-ins' services (registered on the service, so it runs before the
    stand-ins' own handler on the generic event)."""
    injector = _ACTIVE
    service = model.service_model.service_id.hyphenize()
    if injector is None or not injector._wants(service) or context is None:
        return None
    state = context.setdefault(_CONTEXT_KEY, {})
    if state.get("decided"):
        return None  # the hook is on the client twice: the call was decided already
    state["decided"] = True
    kind = injector._denial(service, model.name) or injector.emulate_retries(service, context)
    if kind is None:
        return None
    url = f"https://{model.service_model.endpoint_prefix}.us-east-1.amazonaws.com/"
    if kind.status == 0:
        # Raised here, the call never reaches after-call or after-call-error: count it now.
        injector.record_call(service, context, 0, kind.code)
        raise _timeout(kind, url)
    parsed = {"Error": {"Code": kind.code, "Message": f"injected by nerloop chaos: {kind.code}"},
              "ResponseMetadata": {"HTTPStatusCode": kind.status, "RetryAttempts": total_attempts(
                  context.get("client_config")) - 1}}
    return AWSResponse(url, kind.status, HTTPHeaders(), None), parsed  # type: ignore[arg-type]


def _after_call(model: Any, http_response: Any = None, parsed: Any = None, context: dict[str, Any] | None = None,
                **_: Any) -> None:
    injector = _ACTIVE
    service = model.service_model.service_id.hyphenize()
    if injector is None or not injector._wants(service):
        return
    metadata = (parsed or {}).get("ResponseMetadata") or {}
    error = ((parsed or {}).get("Error") or {}).get("Code")
    injector.record_call(service, context or {}, int(metadata.get("RetryAttempts") or 0), error)


def _after_call_error(exception: Any = None, context: dict[str, Any] | None = None, event_name: str = "",
                      **_: Any) -> None:
    injector = _ACTIVE
    service = _service_of(event_name)  # botocore sends this event without the operation model
    if injector is None or not injector._wants(service):
        return
    attempts = int(((context or {}).get(_CONTEXT_KEY) or {}).get("failed", 1))
    injector.record_call(service, context or {}, max(0, attempts - 1), type(exception).__name__)


def _delay_amount(backoff: Any, context: Any) -> float:
    """botocore's exponential back-off, counted but not waited (time is compressed)."""
    delay = float(_PATCHED["delay_amount"](backoff, context))
    injector = _ACTIVE
    if injector is not None and injector.is_armed:
        injector.backoff_seconds += delay
        return 0.0
    return delay


def _on_sending_request(limiter: Any, request: Any, **kwargs: Any) -> None:
    injector = _ACTIVE
    if injector is not None and injector.is_armed:
        return None  # the adaptive mode's client-side rate limit would only wait: time is compressed
    _PATCHED["on_sending_request"](limiter, request, **kwargs)
    return None


def _patch_botocore() -> None:
    """Put the injector in front of moto and compress botocore's waits (undone by `_unpatch_botocore`)."""
    if _PATCHED:
        return
    _PATCHED["stubber_call"] = BotocoreStubber.__call__
    _PATCHED["delay_amount"] = standard.ExponentialBackoff.delay_amount
    _PATCHED["on_sending_request"] = adaptive.ClientRateLimiter.on_sending_request
    BotocoreStubber.__call__ = _faulty_stubber_call  # type: ignore[method-assign,assignment]
    standard.ExponentialBackoff.delay_amount = _delay_amount  # type: ignore[method-assign,assignment]
    adaptive.ClientRateLimiter.on_sending_request = _on_sending_request  # type: ignore[method-assign,assignment]


def _unpatch_botocore() -> None:
    if not _PATCHED:
        return
    BotocoreStubber.__call__ = _PATCHED.pop("stubber_call")  # type: ignore[method-assign]
    standard.ExponentialBackoff.delay_amount = _PATCHED.pop("delay_amount")  # type: ignore[method-assign]
    adaptive.ClientRateLimiter.on_sending_request = _PATCHED.pop("on_sending_request")  # type: ignore[method-assign]


# Every botocore session made after this import carries the hooks (inert until an injector is
# installed and armed): the runtime imports this module before any session exists, as moto and the
# stand-ins do with their own handlers.
_HOOKS = (
    *((f"before-call.{service}", _before_stand_in_call) for service in STAND_IN_SERVICES),
    *((f"after-call.{service}", _after_call) for service in SERVICES),
    *((f"after-call-error.{service}", _after_call_error) for service in SERVICES),
)
for _event, _handler in _HOOKS:
    if not any(spec[0] == _event and spec[1] is _handler for spec in botocore_handlers.BUILTIN_HANDLERS):
        botocore_handlers.BUILTIN_HANDLERS.append((_event, _handler))


def hook_client(client: Any) -> Any:
    """Give a client made before this module was imported the injector's hooks too."""
    for event, handler in _HOOKS:
        client.meta.events.register(event, handler, unique_id=f"nerloop-faults-{event}")
    return client


__all__ = [
    "A2I",
    "COMPREHEND",
    "DYNAMODB",
    "KINDS",
    "S3",
    "SERVICES",
    "TIMEOUTS",
    "FaultInjector",
    "FaultKind",
    "ServiceFigures",
    "hook_client",
    "total_attempts",
]
