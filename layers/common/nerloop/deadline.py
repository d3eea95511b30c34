"""How long a stage may keep working in this invocation.

Lambda stops a function at its timeout whatever it is doing; the context object tells the time left
(`get_remaining_time_in_millis`, "Using the Lambda context object to retrieve Python function
information": https://docs.aws.amazon.com/lambda/latest/dg/python-context.html). A stage that may
outrun it checks `expired()` between batches and, once true, checkpoints and continues in a fresh
invocation (`nerloop.continuation`) while the reserve still covers writing that checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Time kept back to write a checkpoint (a few S3 PUTs, one of up to ~24 MB for a million-line
# manifest's repeat table) and publish the continuation event.
RESERVE_MS = 30_000


class Deadline:
    """The time left in this invocation, less a reserve to stop cleanly."""

    def __init__(self, remaining_ms: Callable[[], int] | None, reserve_ms: int = RESERVE_MS) -> None:
        self._remaining_ms = remaining_ms
        self.reserve_ms = reserve_ms

    @classmethod
    def of(cls, context: Any, reserve_ms: int = RESERVE_MS) -> Deadline:
        """The deadline of the Lambda invocation `context` describes (never, without a context)."""
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return cls(remaining, reserve_ms) if callable(remaining) else cls.never()

    @classmethod
    def never(cls) -> Deadline:
        """No deadline: for callers without a Lambda context (the CLI, tests of the effect alone)."""
        return cls(None, 0)

    def remaining_ms(self) -> int | None:
        """Milliseconds left before the reserve; None without a deadline."""
        if self._remaining_ms is None:
            return None
        return int(self._remaining_ms()) - self.reserve_ms

    def expired(self) -> bool:
        """True once the time left is under the reserve: stop, checkpoint, continue elsewhere."""
        left = self.remaining_ms()
        return left is not None and left <= 0
