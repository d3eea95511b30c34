"""Invoking a function of the stack as Lambda would: its environment from the template (Globals merged with
its own variables, plus what Lambda sets), its settings re-read, a fake `LambdaContext` counting down from
the function's Timeout, and Powertools' metrics cleared after each invocation. One invocation, no retries:
retries are the event pump's."""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from nerloop import aws as nerloop_aws
from nerloop import idempotency, settings
from nerloop.observability import logger, metrics
from nerloop_local.emulator.isolation import ACCOUNT, REGION
from nerloop_local.emulator.stack import Stack

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """What Powertools and handlers read from the Lambda context object."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_seconds: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


@functools.cache
def shared_session() -> boto3.session.Session:
    """One boto3 session for every runtime of this process: it keeps the service models it has loaded
    (SageMaker's alone takes a noticeable fraction of a second), so a second runtime starts fast. It is
    made after moto and the stand-ins registered their botocore handlers, and only ever sees the fake
    credentials the runtime sets."""
    return boto3.session.Session(region_name=REGION)


@contextmanager
def temporary_environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a block, then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def reset_shared_caches() -> None:
    """Forget clients, settings and idempotency stores made for another emulated account."""
    nerloop_aws.reset_clients()
    idempotency.forget_persistence()
    settings.get_settings.cache_clear()


class Invoker:
    """Runs the stack's functions' handlers in process, each in its own environment."""

    def __init__(self, stack: Stack, environment: Mapping[str, str]) -> None:
        """stack: whose functions these are; environment: variables set over every function's own."""
        self.stack = stack
        self.environment = environment
        self._handlers: dict[str, Handler] = {}
        self._overrides: dict[str, Handler] = {}

    def function_environment(self, function: str) -> dict[str, str]:
        """The variables `function` runs with: its template environment, the runtime's overrides, and
        what Lambda itself sets."""
        physical = self.stack.physical_name(function)
        return {
            **self.stack.function_environment(function),
            "AWS_LAMBDA_FUNCTION_NAME": physical,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.stack.function_setting(function, "MemorySize", 128)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{physical}",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            **self.environment,
        }

    def override_handler(self, function: str, handler: Handler) -> ExitStack:
        """Use `handler` instead of the function's own code (see LocalRuntime.override_handler)."""
        self._overrides[function] = handler
        self._handlers[function] = handler
        restore = ExitStack()
        restore.callback(self._overrides.pop, function, None)
        restore.callback(self._handlers.pop, function, None)
        return restore

    def forget_handlers(self) -> None:
        """Drop the loaded handlers (a restart loads the functions' code again); overrides stay."""
        self._handlers = dict(self._overrides)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Call `function`'s handler once with `event`, in its own environment (no retries)."""
        env = self.function_environment(function)
        with temporary_environment(env):
            settings.get_settings.cache_clear()
            try:
                handler = self._handlers.get(function)
                if handler is None:
                    handler = self._handlers[function] = self.stack.load_handler(function)
                logger.append_keys(service=env.get("POWERTOOLS_SERVICE_NAME", function))
                return handler(event, self.lambda_context(function))
            finally:
                settings.get_settings.cache_clear()
                # Each Lambda invocation starts with no metrics; with metrics disabled Powertools never
                # flushes them, so they would pile up across invocations here.
                metrics.clear_metrics()

    def lambda_context(self, function: str) -> LambdaContext:
        """A fresh context for one invocation of `function`, counting down from its Timeout."""
        physical = self.stack.physical_name(function)
        return LambdaContext(
            function_name=physical,
            memory_limit_in_mb=int(self.stack.function_setting(function, "MemorySize", 128)),
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=int(self.stack.function_setting(function, "Timeout", 3)),
            log_group_name=f"/aws/lambda/{physical}",
        )
