"""A stage run as Lambda runs it: a context whose time left follows the function's Timeout, and a stage
that stops early re-invoked until it is done.

The hook for stages that continue (issue 13, part 2): a stage given `deadline=` (a `nerloop.deadline.
Deadline` made from the context, when that module exists and the stage takes the keyword) may stop
before its work is done; its result then holds `"continued": {...}`, what the continuation event it
published carries. The harness invokes the stage again, in a fresh context, with that payload as the
keyword `continuation=` (`CONTINUATION_KEYWORD`), and counts the invocations and each one's wall time.
"""

from __future__ import annotations

import importlib
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nerloop_local.emulator.stack import Stack

# Lambda's default timeout when a function sets none: 3 seconds
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html).
LAMBDA_DEFAULT_TIMEOUT = 3
CONTINUATION_KEYWORD = "continuation"
MAX_INVOCATIONS = 1000


def function_timeout(function: str, stack: Stack | None = None) -> int:
    """The function's Timeout in seconds from template.yaml (its own, else Globals', else Lambda's default)."""
    stack = stack or Stack.load()
    return int(stack.function_setting(function, "Timeout", LAMBDA_DEFAULT_TIMEOUT))


class BenchContext:
    """The part of Lambda's context a deadline reads: the milliseconds left of `timeout_seconds`,
    counted from when the context was made (the invocation's start)."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds
        self.started = time.monotonic()

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


def _deadline_class() -> Any:
    """`nerloop.deadline.Deadline` once part 2 has landed; None before."""
    try:
        return importlib.import_module("nerloop.deadline").Deadline
    except ModuleNotFoundError:
        return None


def _takes(stage: Callable[..., Any], keyword: str) -> bool:
    parameters = inspect.signature(stage).parameters
    return keyword in parameters or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


class ContinuationNotWired(RuntimeError):
    """A stage said it continued but takes no `continuation` keyword to be re-invoked with."""


@dataclass
class Invocations:
    """What running a stage to its end took: the last invocation's result, each invocation's seconds."""

    result: dict[str, Any]
    seconds: list[float] = field(default_factory=list)
    deadline_given: bool = False

    @property
    def count(self) -> int:
        return len(self.seconds)

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds)


def invoke_until_done(stage: Callable[..., dict[str, Any]], timeout_seconds: float,
                      deadline_class: Any = None, max_invocations: int = MAX_INVOCATIONS) -> Invocations:
    """Call `stage(**keywords)` as Lambda would, again for as long as its result holds `"continued"`.

    Each invocation gets `deadline=` (from a fresh BenchContext of `timeout_seconds`) when `deadline_class`
    (default: nerloop.deadline.Deadline, if present) exists and the stage takes it; a continued one also gets
    `continuation=` the previous result's `continued`. Raises ContinuationNotWired when the stage continued but
    cannot be given its continuation, RuntimeError after `max_invocations`."""
    deadline_class = deadline_class or _deadline_class()
    with_deadline = deadline_class is not None and _takes(stage, "deadline")
    seconds: list[float] = []
    continuation: dict[str, Any] | None = None
    while len(seconds) < max_invocations:
        keywords: dict[str, Any] = {}
        context = BenchContext(timeout_seconds)
        if with_deadline:
            keywords["deadline"] = deadline_class.of(context)
        if continuation is not None:
            if not _takes(stage, CONTINUATION_KEYWORD):
                raise ContinuationNotWired(
                    f"the stage returned 'continued' ({sorted(continuation)}) but takes no "
                    f"{CONTINUATION_KEYWORD!r} keyword: wire its re-invocation in bench/workloads.py")
            keywords[CONTINUATION_KEYWORD] = continuation
        started = time.perf_counter()
        result = stage(**keywords)
        seconds.append(time.perf_counter() - started)
        continuation = result.get("continued") or None
        if continuation is None:
            return Invocations(result, seconds, with_deadline)
    raise RuntimeError(f"the stage was still continuing after {max_invocations} invocations")
