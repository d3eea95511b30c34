"""Reviews in flight, through the local runtime: replacing the flow definition mid-review (the custom
resource's Update and the update's cleanup run as CloudFormation would, A2I's stand-in deletes a flow
definition as A2I documents, the merge rule comes from template.yaml), and loops whose end never
reached the merge stage (the watch ends them from DescribeHumanLoop)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from nerloop import loop_reconcile
from nerloop.a2i import build_input_content, loop_name, start_human_loop
from nerloop.documents import document_hash
from nerloop.state import GOLD, IN_REVIEW, WAITING, Loop
from nerloop_local.emulator.deployment import LOCAL_PARAMETERS
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.stack import Stack

QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
TEXTS = ("Amazon S3 adds a storage class.", "AWS Lambda 2.0 is out.")


def stack_with_title(title: str | None = None) -> Stack:
    """template.yaml as local mode deploys it; with another task title, a new flow definition."""
    stack = Stack.load(LOCAL_PARAMETERS)
    if title is not None:
        stack.template["Resources"]["FlowDefinition"]["Properties"]["TaskTitle"] = title
    return stack


def open_runtime(workspace: Path, stack: Stack) -> LocalRuntime:
    return LocalRuntime(workspace, stack=stack, environment=QUIET, autosave=False).start()


def route_for_review(runtime: LocalRuntime, text: str) -> str:
    """What the route stage does for one document: record the loop, start it, mark the document."""
    doc = document_hash(text)
    flow = runtime.flow_definition_arn
    name = loop_name(doc, "v1", scope=flow)
    state = runtime.state
    state.pool.add(doc, text, "batch-1")
    state.loops.put(Loop(name, doc, "v1", "InProgress"))
    types = runtime.function_environment("MergeFunction")["ENTITY_TYPES"].split(",")
    start_human_loop(runtime.client("sagemaker-a2i-runtime"), name, flow,
                     build_input_content(doc, text, [], "v1", types))
    state.pool.mark(doc, IN_REVIEW, loop=name, seen_by="v1")
    return name


def pool_status(runtime: LocalRuntime, text: str) -> Any:
    return runtime.state.pool.get(document_hash(text)).status


def test_reviews_in_flight_survive_a_new_flow_definition_and_are_merged(tmp_path: Path) -> None:
    # Given two documents in review on the stack's flow definition
    workspace = tmp_path / "ws"
    first = open_runtime(workspace, stack_with_title())
    try:
        names = [route_for_review(first, text) for text in TEXTS]
        old_flow = first.flow_definition_arn
    finally:
        first.close()

    # When an update changes the flow definition's settings (a new one replaces it), and afterwards
    # one review is answered on the old flow definition while the other expires
    second = open_runtime(workspace, stack_with_title("Review entities in release notes"))
    try:
        assert second.flow_definition_arn != old_flow
        old_name = old_flow.rsplit("/", 1)[-1]
        kept = second.client("sagemaker").describe_flow_definition(FlowDefinitionName=old_name)
        assert kept["FlowDefinitionStatus"] == "Active"
        assert [loop.name for loop in second.a2i.pending_loops()] == sorted(names, key=names.index)
        second.a2i.complete_loop(names[0], [])
        second.a2i.fail_loop(names[1], "Expired", "The human loop expired")
        second.run_until_idle()

        # Then both events reach the merge stage: the answered document is gold, the expired one
        # waits for the next version, and no document is left in review
        assert (pool_status(second, TEXTS[0]), pool_status(second, TEXTS[1])) == (GOLD, WAITING)
        assert [second.state.loops.get(name).status for name in names] == ["Completed", "Failed"]
        assert second.state.loops.any_open() is False
        assert second.dead_letters() == []
    finally:
        second.close(save=False)


def test_a_replaced_flow_definition_without_loops_in_flight_is_deleted(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    first = open_runtime(workspace, stack_with_title())
    old_flow = first.flow_definition_arn
    first.close()

    second = open_runtime(workspace, stack_with_title("Review entities in release notes"))
    try:
        second.standins.tick()  # A2I finishes deleting it
        listed = second.client("sagemaker").list_flow_definitions()["FlowDefinitionSummaries"]
        assert [flow["FlowDefinitionArn"] for flow in listed] == [second.flow_definition_arn]
        assert old_flow != second.flow_definition_arn
    finally:
        second.close(save=False)


# --- no document stays in review without a live loop ---------------------------------------------------


def later(monkeypatch: Any) -> None:
    """Move the watch's clock past the time a loop may stay open before A2I is asked about it."""
    monkeypatch.setattr(loop_reconcile, "clock", lambda: time.time() + loop_reconcile.RECHECK_SECONDS + 60)


def watch_now(runtime: LocalRuntime) -> None:
    runtime.fire_schedules()
    runtime.run_until_idle()


def test_a_completed_loop_whose_event_was_lost_is_merged_by_the_watch(tmp_path: Path, monkeypatch: Any) -> None:
    # Given a review answered while its status event never reached the merge stage
    runtime = open_runtime(tmp_path / "ws", stack_with_title())
    try:
        name = route_for_review(runtime, TEXTS[0])
        with runtime.override_handler("MergeFunction", lambda event, context: None):
            runtime.a2i.complete_loop(name, [])
            runtime.run_until_idle()
        assert pool_status(runtime, TEXTS[0]) == IN_REVIEW

        # When the watch runs after the loop has been open a while
        later(monkeypatch)
        watch_now(runtime)

        # Then it finds the loop Completed in A2I and merges the answer
        assert (pool_status(runtime, TEXTS[0]), runtime.state.loops.get(name).status) == (GOLD, "Completed")
        assert runtime.state.loops.any_open() is False
    finally:
        runtime.close(save=False)


def test_a_loop_a2i_deleted_sends_its_document_back_to_waiting(tmp_path: Path, monkeypatch: Any) -> None:
    # Given a loop stopped and deleted in A2I, its Stopped event lost
    runtime = open_runtime(tmp_path / "ws", stack_with_title())
    try:
        name = route_for_review(runtime, TEXTS[0])
        with runtime.override_handler("MergeFunction", lambda event, context: None):
            a2i = runtime.client("sagemaker-a2i-runtime")
            a2i.stop_human_loop(HumanLoopName=name)
            runtime.run_until_idle()
            a2i.delete_human_loop(HumanLoopName=name)

        later(monkeypatch)
        watch_now(runtime)

        # Then its document waits for the next version instead of staying in review for ever
        loop = runtime.state.loops.get(name)
        assert (pool_status(runtime, TEXTS[0]), loop.status) == (WAITING, "Stopped")
        assert "no longer exists" in loop.failure
    finally:
        runtime.close(save=False)


def test_a_loop_still_open_in_a2i_stays_in_review(tmp_path: Path, monkeypatch: Any) -> None:
    runtime = open_runtime(tmp_path / "ws", stack_with_title())
    try:
        name = route_for_review(runtime, TEXTS[0])
        later(monkeypatch)
        watch_now(runtime)
        assert (pool_status(runtime, TEXTS[0]), runtime.state.loops.get(name).status) == (IN_REVIEW, "InProgress")
        # and, found open just now, the next runs do not ask A2I about it again for a while
        due = loop_reconcile._stamp(loop_reconcile.clock() - loop_reconcile.RECHECK_SECONDS)
        assert runtime.state.loops.open_unchecked_since(due, 10) == []
    finally:
        runtime.close(save=False)
