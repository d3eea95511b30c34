"""The latency rows' "no repeated effect" check, for real: convert and route given a Timeout that leaves
them a tenth of a second an invocation (Deadline keeps 30 s back) continue across invocations, at AWS's
latency, and end in the state one uninterrupted invocation leaves."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from bench.inputs import QUICK, _label_attribute, detection, manifest
from bench.measure import run_workload
from nerloop.deadline import RESERVE_MS

SHORT_TIMEOUT = RESERVE_MS / 1000 + 0.1


@pytest.fixture
def config(tmp_path: Path) -> Any:
    return dataclasses.replace(QUICK, cache=tmp_path / "cache")


def both_ways(workload: str, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    continued = run_workload(workload, {**params, "latency": "aws", "timeout_seconds": SHORT_TIMEOUT}, timeout=600)
    once = run_workload(workload, {**params, "latency": "none", "one_invocation": True}, timeout=600)
    return continued, once


def test_a_conversion_continued_across_invocations_ends_as_one_invocation_does(config: Any) -> None:
    continued, once = both_ways("convert_stage", {"manifest": str(manifest(config, 1_000)),
                                                  "label_attribute": _label_attribute()})

    assert continued["invocations"] > 1 and once["invocations"] == 1
    assert continued["end_state"]["gold"] > 0
    assert continued["end_state"] == once["end_state"]


def test_routing_continued_across_invocations_starts_each_loop_once(config: Any) -> None:
    continued, once = both_ways("route_stage", {**detection(config, 1_000), "review_budget": 100})

    assert continued["invocations"] > 1 and once["invocations"] == 1
    assert continued["end_state"]["loops_started"] == 100
    assert continued["end_state"] == once["end_state"]
