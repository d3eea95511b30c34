"""Starting many A2I human loops: a few at a time, at a bounded pace, stopping at the account's quota.

A detection over a whole pool may send thousands of documents to review; one StartHumanLoop after
another, at a round trip each, can outlast the function's timeout. The calls are independent (each
names its own loop), so a small thread pool makes them `LOOP_STARTERS` at a time, never faster than
`LOOP_STARTS_PER_SECOND` together. boto3 clients are safe to share between threads.

A2I's quotas (StartHumanLoop's request rate, human loops in progress per account) are listed on
"Amazon Augmented AI endpoints and quotas" (https://docs.aws.amazon.com/general/latest/gr/a2i.html);
past them A2I answers `ThrottlingException` or `ServiceQuotaExceededException` (botocore's
sagemaker-a2i-runtime model), which `nerloop.a2i.start_human_loop` retries with back-off. When the
quota on loops in progress still refuses a loop after those retries, no further loop of the batch is
tried (each would be refused too): their documents keep waiting for a later version, and the review
budget in use stays within what the account allows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from nerloop.a2i import start_human_loop

LOOP_STARTERS = 4  # StartHumanLoop calls in flight at once
# A fixed pace for all threads together, in calls a second; None: none beyond what A2I asks for. The
# quotas page's figure for StartHumanLoop could not be read when this was written, so no number is
# assumed here: the A2I client runs botocore's adaptive retry mode (nerloop.aws.RETRY_CONFIG), which
# rate-limits on the client once the service throttles ("Retries", adaptive mode:
# https://docs.aws.amazon.com/boto3/latest/guide/retries.html). Set it once the quota is confirmed.
LOOP_STARTS_PER_SECOND: float | None = None
QUOTA_EXCEEDED = "ServiceQuotaExceededException"
NOT_TRIED = "not tried"  # the outcome of a loop left unstarted once the quota refused one


class Pace:
    """At most `rate` calls a second across every thread that calls `wait` before its call (no
    limit when `rate` is None)."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.clock = clock
        self.sleep = sleep
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Wait for this call's slot (slots are `1 / rate` seconds apart, handed out in order)."""
        if not self.interval:
            return
        with self._lock:
            slot = max(self._next, self.clock())
            self._next = slot + self.interval
        delay = slot - self.clock()
        if delay > 0:
            self.sleep(delay)


def start_loops(a2i: Any, flow_definition_arn: str, loops: Sequence[tuple[str, str]], *,
                workers: int | None = None, pace: Pace | None = None,
                quota_reached: threading.Event | None = None) -> list[str | ClientError]:
    """Start each (name, input content) loop; the outcome of each, in order: `STARTED`,
    `ALREADY_STARTED`, the ClientError A2I ended with (after `start_human_loop`'s retries), or
    NOT_TRIED for a loop not tried once the quota on loops refused one (`quota_reached` is then set;
    pass the same event and `pace` to every batch of one run). Other errors are raised."""
    workers = LOOP_STARTERS if workers is None else workers
    pace = pace or Pace(LOOP_STARTS_PER_SECOND)
    quota_reached = quota_reached or threading.Event()

    def start(name: str, content: str) -> str | ClientError:
        if quota_reached.is_set():
            return NOT_TRIED
        pace.wait()
        try:
            return start_human_loop(a2i, name, flow_definition_arn, content)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == QUOTA_EXCEEDED:
                quota_reached.set()
            return exc

    if workers <= 1 or len(loops) < 2:
        return [start(name, content) for name, content in loops]
    with ThreadPoolExecutor(max_workers=min(workers, len(loops)), thread_name_prefix="loop-starter") as pool:
        return list(pool.map(lambda loop: start(*loop), loops))
