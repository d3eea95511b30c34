"""Issue 13: human loops start a few at a time, never more than the bound in flight nor faster than
the pace, and a loop quota reached leaves the rest untried."""

from __future__ import annotations

import threading
import time
from typing import Any

from botocore.exceptions import ClientError

from nerloop import a2i
from nerloop.a2i import ALREADY_STARTED, STARTED
from nerloop.loop_starter import NOT_TRIED, QUOTA_EXCEEDED, Pace, start_loops

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop"


class SlowA2I:
    """An A2I client that takes `seconds` a call and records how many calls overlap, and when each began."""

    def __init__(self, seconds: float = 0.02, refuse: dict[str, str] | None = None) -> None:
        self.seconds = seconds
        self.refuse = refuse or {}
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.began: list[float] = []
        self.names: list[str] = []

    def start_human_loop(self, HumanLoopName: str, **_: Any) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.began.append(time.monotonic())
            self.names.append(HumanLoopName)
        try:
            time.sleep(self.seconds)
            if HumanLoopName in self.refuse:
                code = self.refuse[HumanLoopName]
                raise ClientError({"Error": {"Code": code, "Message": code}}, "StartHumanLoop")
            return {"HumanLoopArn": f"arn:aws:sagemaker:us-east-1:123456789012:human-loop/{HumanLoopName}"}
        finally:
            with self.lock:
                self.in_flight -= 1


def loops(count: int) -> list[tuple[str, str]]:
    return [(f"loop-{index}", "{}") for index in range(count)]


def test_loops_start_concurrently_but_never_more_than_the_bound_at_once():
    client = SlowA2I()

    outcomes = start_loops(client, FLOW, loops(24), workers=4)

    assert outcomes == [STARTED] * 24
    assert sorted(client.names) == sorted(name for name, _ in loops(24))
    assert client.most_in_flight == 4  # parallel (one at a time took 24 round trips), within the bound


def test_loops_start_no_faster_than_the_pace():
    client = SlowA2I(seconds=0.0)
    rate = 50.0

    start_loops(client, FLOW, loops(20), workers=4, pace=Pace(rate))

    began = sorted(client.began)
    for index, at in enumerate(began):
        # the n-th call waits for its slot, n / rate seconds after the first (clock granularity aside)
        assert at - began[0] >= index / rate - 0.005, index
    # and in any one second window no more than `rate` calls
    assert all(sum(1 for t in began if start <= t < start + 1) <= rate for start in began)


def test_the_pace_hands_out_slots_in_order_on_a_fake_clock():
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))

    pace = Pace(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pace.wait()

    assert slept == [0.25, 0.5]  # the first goes at once, the next two a quarter second apart


def test_a_loop_quota_reached_leaves_the_rest_untried(monkeypatch):
    monkeypatch.setattr(a2i, "backoff_sleep", lambda seconds: None)
    client = SlowA2I(seconds=0.0, refuse={"loop-2": QUOTA_EXCEEDED, "loop-1": "ConflictException"})

    outcomes = start_loops(client, FLOW, loops(6), workers=1)

    assert outcomes[:2] == [STARTED, ALREADY_STARTED]
    assert isinstance(outcomes[2], ClientError)
    assert outcomes[3:] == [NOT_TRIED] * 3
    assert "loop-3" not in client.names
