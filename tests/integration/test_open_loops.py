"""Open human loops, as the retrain triggers read them: a marker item per loop InProgress, written and
deleted in the same transaction as the loop's status, so one read answers "is any loop open?"."""

from __future__ import annotations

import boto3

from nerloop.state import Loop, StateTable


def table(emulated) -> StateTable:
    return StateTable(boto3.resource("dynamodb").Table(emulated.table_name))


def test_open_loops_are_known_with_one_read_and_follow_every_way_a_loop_ends(emulated):
    state = table(emulated)
    assert state.loops.any_open() is False
    assert state.loops.put_many([Loop(f"v1-{i}", f"doc-{i}", "v1", "InProgress") for i in range(120)]) == [True] * 120
    # A retried routing records nothing twice (its transaction is cancelled; each loop alone, then)
    assert state.loops.put_many([Loop("v1-0", "doc-0", "v1", "InProgress"),
                                Loop("v1-new", "doc-new", "v1", "InProgress")]) == [False, True]
    assert state.loops.any_open() is True

    for i in range(0, 121, 3):
        name = f"v1-{i}" if i < 120 else "v1-new"
        assert state.loops.complete_counted(name, "REVIEWS") is True
        assert state.loops.complete_counted(name, "REVIEWS") is False  # a redelivery
    for i in range(120):
        if i % 3:
            ended = state.loops.finish(f"v1-{i}", "Failed" if i % 2 else "Stopped", failure="Expired: x")
            assert ended is True and state.loops.finish(f"v1-{i}", "Failed") is False
        assert state.loops.any_open() is (i < 119)

    assert state.counters.get("REVIEWS") == 41
    assert state.loops.list(("InProgress",)) == []


def test_a_loop_recorded_before_open_loop_markers_existed_still_ends(emulated):
    state = table(emulated)
    state.table.put_item(Item={"pk": "LOOP", "sk": "v1-old", "doc": "d", "version": "v1", "status": "InProgress",
                               "failure": "", "started_at": "2026-01-01T00:00:00Z"})
    assert state.loops.any_open() is False  # not counted as open: it can only make a retrain come early
    assert state.loops.finish("v1-old", "Failed") is True
