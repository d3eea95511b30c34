"""The latency rows' arithmetic: the design's request minimums, the targets section's shape, the
harness that re-invokes a stage that continues, and the Timeout read from template.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import at_latency
from bench.inputs import QUICK, Row
from bench.invocations import BenchContext, ContinuationNotWired, function_timeout, invoke_until_done
from bench.minimums import convert_minimum, merge_minimum, requests_target, route_minimum, time_target
from nerloop_local.emulator.stack import Stack


def test_convert_needs_a_batch_write_per_25_documents_and_a_pool_read_per_100() -> None:
    parts = convert_minimum(documents=1000, repeated=150, snapshot_pages=3)
    assert parts["gold writes (BatchWriteItem of 25)"] == 40
    assert parts["pool look-ups (BatchGetItem of 100)"] == 10
    assert parts["repeats read back (BatchGetItem of 100)"] == 2  # 150 repeats: 2 requests of up to 100
    assert sum(parts.values()) == 40 + 10 + 2 + 4 + 3 + 4


def test_route_needs_one_start_per_loop_and_batches_for_the_rest() -> None:
    parts = route_minimum(records=1000, decided=990, loops=100)
    assert parts == {"pool reads (BatchGetItem of 100)": 10, "pool status writes (transactions of 100)": 10,
                     "loop records (transactions of 50 loops)": 2, "StartHumanLoop (one a loop)": 100,
                     "once per output (job, input, archive, summary, quarantine)": 5}


def test_merge_needs_four_requests_a_review_plus_its_snapshots() -> None:
    assert sum(merge_minimum(reviews=1000, snapshot_pages=0, snapshots=0).values()) == 4000
    assert sum(merge_minimum(reviews=25, snapshot_pages=2, snapshots=1).values()) == 100 + 2 + 4
    # a review whose answer was repaired writes its quarantine report: one PutObject more
    assert sum(merge_minimum(reviews=25, snapshot_pages=2, snapshots=1, repaired=3).values()) == 100 + 2 + 4 + 3


def test_a_requests_target_is_met_within_1_2_times_the_minimum() -> None:
    minimum = {"a": 100}
    met = requests_target("route", "documents", 1000, {"x.one": 60, "x.two": 60}, minimum)
    assert met["measured_per_1000"] == 120 and met["minimum_per_1000"] == 100
    assert met["ratio"] == pytest.approx(1.2) and met["met"] is True
    assert requests_target("route", "documents", 1000, {"x.one": 121}, minimum)["met"] is False


def test_a_time_target_wants_2x_margin_in_one_invocation_or_a_continuation_within_the_timeout() -> None:
    assert time_target("convert", "1M", 300, [150])["met"] is True
    assert time_target("convert", "1M", 300, [151])["met"] is False
    continued = time_target("convert", "1M", 300, [290, 290, 40])
    assert continued["met"] is True and continued["invocations"] == 3 and continued["wall_seconds"] == 620
    assert time_target("convert", "1M", 300, [290, 301])["met"] is False


def test_a_continued_run_that_ends_elsewhere_than_a_one_invocation_run_misses_its_target() -> None:
    assert time_target("route", "100k", 300, [290, 40], same_end_state=True)["met"] is True
    missed = time_target("route", "100k", 300, [290, 40], same_end_state=False)
    assert missed["met"] is False and missed["same_end_state"] is False


def test_a_continued_size_is_run_again_in_one_invocation_and_their_end_states_compared() -> None:
    ran: list[tuple[int, bool]] = []

    def run(size: int, one_invocation: bool = False) -> dict[str, Any]:
        ran.append((size, one_invocation))
        return {"end_state": {"gold": 90, "loops_started": 10}, "invocation_seconds": [1.5]}

    continued = {"size": 100, "invocations": 3, "end_state": {"gold": 90, "loops_started": 12}}
    at_latency._compare_with_one_invocation(continued, run)
    assert ran == [(100, True)] and continued["same_end_state"] is False
    assert continued["one_invocation"] == {"end_state": {"gold": 90, "loops_started": 10}, "seconds": 1.5}
    once = {"size": 100, "invocations": 1, "end_state": {}}
    at_latency._compare_with_one_invocation(once, run)  # nothing to compare: it did not continue
    assert ran == [(100, True)] and "same_end_state" not in once


def test_the_timeout_comes_from_the_template() -> None:
    stack = Stack.load()
    for function in ("ConvertFunction", "RouteFunction", "MergeFunction"):
        assert function_timeout(function, stack) == int(stack.function_setting(function, "Timeout"))


class FakeDeadline:
    def __init__(self, context: BenchContext) -> None:
        self.context = context

    @classmethod
    def of(cls, context: BenchContext) -> FakeDeadline:
        return cls(context)


def test_a_stage_that_continues_is_invoked_again_with_what_it_carries() -> None:
    seen: list[dict[str, Any]] = []

    def stage(deadline: FakeDeadline | None = None, continuation: dict[str, Any] | None = None) -> dict[str, Any]:
        assert deadline is not None and deadline.context.get_remaining_time_in_millis() > 0
        seen.append(continuation or {})
        offset = (continuation or {}).get("offset", 0) + 10
        return {"done": offset} if offset >= 30 else {"continued": {"offset": offset}}

    invocations = invoke_until_done(stage, 300, deadline_class=FakeDeadline)
    assert invocations.count == 3 and invocations.deadline_given
    assert seen == [{}, {"offset": 10}, {"offset": 20}]
    assert invocations.result == {"done": 30}


def test_a_stage_without_the_keywords_runs_once_without_a_deadline() -> None:
    invocations = invoke_until_done(lambda: {"lines": 1}, 300, deadline_class=FakeDeadline)
    assert invocations.count == 1 and not invocations.deadline_given


def test_a_continuation_the_stage_cannot_take_is_a_clear_error() -> None:
    with pytest.raises(ContinuationNotWired, match="continuation"):
        invoke_until_done(lambda: {"continued": {"offset": 1}}, 300)


def test_the_context_counts_down_from_the_timeout() -> None:
    assert 0 < BenchContext(2).get_remaining_time_in_millis() <= 2000
    assert BenchContext(0).get_remaining_time_in_millis() == 0


def test_sizes_predicted_over_the_limit_are_extrapolated_from_the_last_run() -> None:
    ran: list[int] = []

    def run(size: int) -> dict[str, Any]:
        ran.append(size)
        return {"invocation_seconds": [size / 100], "requests": {"t.get": size}}

    entries = at_latency._ascending([100, 1000, 10_000], run, limit=50)
    assert ran == [100, 1000]  # 10,000 would take about 100 s
    assert entries[2]["extrapolated_from"] == 1000 and entries[2]["wall_seconds"] == pytest.approx(100)
    assert entries[2]["requests"] == {"t.get": 10_000}


def test_the_targets_section_holds_each_target_with_its_measure(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    # Given workloads that answer as the stages do (their shapes, tiny figures)
    def workload(name: str, params: dict[str, Any], timeout: float = 0) -> dict[str, Any]:
        assert params["latency"] == "aws"
        if name == "convert_stage":
            return {"invocation_seconds": [0.5], "result": {"documents": 900, "repeated": 100}, "end_state": {},
                    "table_calls": {"query": 1}, "requests": {"table.batch_write_item": 40, "s3.get_object": 1}}
        if name == "route_stage":
            return {"invocation_seconds": [2.0], "end_state": {},
                    "result": {"records": 1000, "skipped": 0, "quarantined": 0, "loops_started": 100,
                               "loops_existing": 0},
                    "requests": {"a2i.start_human_loop": 100, "table.transact_write_items": 12}}
        return {"max_ms": 300.0, "p50_ms": 100.0, "p99_ms": 250.0, "snapshots": 1, "table_calls": {"query": 1},
                "gold_pages": 1, "repaired": 2,
                "requests": {"table.get_item": 300, "s3.get_object": 30}}

    monkeypatch.setattr(at_latency, "run_workload", workload)
    monkeypatch.setattr(at_latency, "_label_attribute", lambda: "label")
    monkeypatch.setattr(at_latency, "manifest", lambda config, lines: tmp_path / "m")
    monkeypatch.setattr(at_latency, "detection", lambda config, documents: {"state": "s"})
    monkeypatch.setattr(at_latency, "gold_state", lambda config, documents: tmp_path / "g")
    results: dict[str, Any] = {}
    rows: list[Row] = []
    # When the latency rows run
    at_latency.bench_latency(QUICK, results, rows)
    # Then every target is there with what was measured, its threshold and whether it is met
    targets = results["targets"]
    assert targets["latency_profile"] == "aws"
    for name in ("convert_time", "route_time", "merge_time"):
        assert {"target", "timeout_seconds", "wall_seconds", "margin", "threshold", "invocations", "met"} <= set(
            targets[name])
    for name in ("convert_requests", "route_requests", "merge_requests"):
        target = targets[name]
        wanted = {"target", "measured_per_1000", "minimum_per_1000", "ratio", "threshold", "met", "minimum"}
        assert wanted <= set(target)
        assert target["threshold"] == 1.2 and isinstance(target["met"], bool)
    assert targets["route_requests"]["measured_per_1000"] == pytest.approx(112)
    assert targets["route_requests"]["minimum_per_1000"] == pytest.approx(127)
    assert results["latency"]["table"] and any(row.benchmark == "route at AWS latency" for row in rows)
