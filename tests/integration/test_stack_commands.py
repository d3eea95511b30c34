"""`nerloop status|report|redrive --stack NAME`: a stack's resources found through CloudFormation's
DescribeStackResources, against the local runtime (template.yaml's resources created in moto, the
stand-ins answering CloudFormation and Lambda's asynchronous Invoke), never AWS."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop.state import Loop
from nerloop_local.commands import redrive, report, status
from nerloop_local.commands.stack_resources import StackError, open_stack
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.stack import load_event
from nerloop_local.report.status import collect_status
from nerloop_local.usage import UsageError

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")

STACK = ["--stack", "nerloop", "--region", "us-east-1"]
PLACE_KEYS = ("workspace", "saved_at", "stack", "region", "stack_status")
# What only a workspace records (the emulator's own queues and delivery log); empty for a stack.
WORKSPACE_ONLY = ("events_pending", "deliveries")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    for module in (status, report, redrive):
        module.add_commands(commands)
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse(argv)
    return int(args.run(args))


def broken(event: dict[str, Any], context: Any) -> None:
    raise RuntimeError("a bug in this version of the handler")


def dead_letter_a_merge(runtime: LocalRuntime) -> str:
    """A completed loop's event that the merge function failed every attempt at: its dead letter."""
    failed = load_event("merge-failed")
    name = str(failed["detail"]["humanLoopName"])
    runtime.state.loops.put(Loop(name, "doc", "v1", "InProgress"))
    detail = {**failed["detail"], "flowDefinitionArn": runtime.flow_definition_arn}  # the rule's pattern
    with runtime.override_handler("MergeFunction", broken):
        runtime.put_event(failed["source"], failed["detail-type"], detail, failed["resources"])
        runtime.run_until_idle()
    return name


def dead_letter_a_preprocess(runtime: LocalRuntime) -> None:
    """A raw file's event that the preprocess function failed every attempt at."""
    with runtime.override_handler("PreprocessFunction", broken):
        runtime.put_text("raw/failed.txt", "Amazon Comprehend finds entities.\n")
        runtime.run_until_idle()


def table_items(runtime: LocalRuntime) -> list[dict[str, Any]]:
    table = runtime.state.table
    items, kwargs = [], {}
    while True:
        page = table.scan(ConsistentRead=True, **kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda item: (item["pk"], item["sk"]))
        kwargs = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def dlq_url(runtime: LocalRuntime, function: str) -> str:
    return runtime.wiring[function].dlq_url


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    with LocalRuntime(tmp_path / "ws", environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as started:
        yield started


# --- resolution ---------------------------------------------------------------------------------------------


def test_the_stack_resources_are_the_ones_the_runtime_created(runtime: LocalRuntime) -> None:
    stack = open_stack("nerloop", "us-east-1")
    assert (stack.table, stack.bucket) == (runtime.table_name, runtime.bucket)
    assert stack.functions == {name: wiring.physical_name for name, wiring in runtime.wiring.items()} | {
        name: runtime.stack.physical_name(name) for name in stack.functions if name not in runtime.wiring}
    # every stage's dead-letter queue, by the URL the runtime's own pump dead-letters into
    assert stack.dead_letter_queues == {name: wiring.dlq_url for name, wiring in runtime.wiring.items()}
    assert stack.parameters["RetrainBatchSize"] == runtime.stack.parameters["RetrainBatchSize"]


def test_an_unknown_stack_is_named_with_its_region(runtime: LocalRuntime) -> None:
    with pytest.raises(StackError, match=r"no stack other in us-east-1 .*check --stack and --region"):
        open_stack("other", "us-east-1")


def test_a_stack_without_a_resource_nerloop_needs_says_which(runtime: LocalRuntime) -> None:
    del runtime.standins.stack.resources["StateTable"]  # e.g. a stack of another template
    with pytest.raises(StackError, match=r"stack nerloop .* has no resource StateTable: it is not a nerloop stack"):
        open_stack("nerloop", "us-east-1")


def test_a_failed_resource_is_not_used(runtime: LocalRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    describe = runtime.standins.stack.describe_stack_resources

    def with_a_failed_bucket(params: dict[str, Any]) -> dict[str, Any]:
        answer = describe(params)
        for item in answer["StackResources"]:
            if item["LogicalResourceId"] == "DataBucket":
                item.update(ResourceStatus="CREATE_FAILED", ResourceStatusReason="bucket name taken")
        return answer

    runtime.standins.uninstall()
    monkeypatch.setattr(runtime.standins.stack, "describe_stack_resources", with_a_failed_bucket)
    runtime.standins.install()
    with pytest.raises(StackError, match=r"resource DataBucket is CREATE_FAILED \(bucket name taken\)"):
        open_stack("nerloop", "us-east-1")


# --- status -------------------------------------------------------------------------------------------------


def test_status_of_the_stack_is_the_workspace_status(runtime: LocalRuntime, capsys: Any) -> None:
    # Given a loop with documents in its pool, a labeling job waiting and a dead letter
    runtime.put_text("raw/batch.txt", "Amazon S3 stores objects.\nAWS Lambda runs code.\n")
    runtime.run_until_idle()
    dead_letter_a_preprocess(runtime)
    # When its status is read through the stack
    assert run(["status", *STACK, "--json"]) == 0
    from_stack = json.loads(capsys.readouterr().out)
    # Then it is what the workspace form says, but for where it was read
    from_workspace = collect_status(runtime)
    assert from_workspace["pool"]["total"] == 2 and from_workspace["labeling_jobs_waiting"]
    assert from_workspace["dead_letters"]["PreprocessFunction"]
    assert {k: v for k, v in from_stack.items() if k not in PLACE_KEYS + WORKSPACE_ONLY} == {
        k: v for k, v in from_workspace.items() if k not in PLACE_KEYS + WORKSPACE_ONLY}
    assert (from_stack["stack"], from_stack["region"], from_stack["stack_status"]) == (
        "nerloop", "us-east-1", "CREATE_COMPLETE")
    assert (from_stack["events_pending"], from_stack["deliveries"]) == ({}, {})


def test_status_text_of_a_stack(runtime: LocalRuntime, capsys: Any) -> None:
    dead_letter_a_merge(runtime)
    assert run(["status", *STACK]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "stack nerloop (us-east-1, CREATE_COMPLETE)"
    assert "  MergeFunction: 1" in lines
    # reading left the dead letter where it was
    assert len(runtime.dead_letters("MergeFunction")) == 1


def test_region_needs_a_stack(runtime: LocalRuntime) -> None:
    with pytest.raises(UsageError, match="--region goes with --stack NAME"):
        run(["status", "--region", "us-east-1"])


# --- redrive ------------------------------------------------------------------------------------------------


def test_redrive_sends_a_dead_letter_back_with_no_second_effect(runtime: LocalRuntime, capsys: Any) -> None:
    # Given the merge function's dead letter, and the handler fixed
    name = dead_letter_a_merge(runtime)
    (letter,) = runtime.standins.context.client("sqs").receive_message(
        QueueUrl=dlq_url(runtime, "MergeFunction"), VisibilityTimeout=0)["Messages"]
    assert runtime.state.loops.get(name).status == "InProgress"
    # When it is redriven through the stack, and Lambda runs the invocation it queued
    assert run(["redrive", *STACK]) == 0
    out = capsys.readouterr().out
    assert "redriven: MergeFunction" in out and "1 redriven, 0 dead letter(s) left" in out
    assert runtime.dead_letters() == []
    runtime.run_until_idle()
    # Then the event had its effect
    assert runtime.state.loops.get(name).status == "Failed"
    after_once = table_items(runtime)
    # When the same letter comes back (as after a delete that failed once the invoke was made) and is redriven
    runtime.standins.context.client("sqs").send_message(QueueUrl=dlq_url(runtime, "MergeFunction"),
                                                    MessageBody=letter["Body"])
    assert run(["redrive", *STACK, "--function", "MergeFunction"]) == 0
    runtime.run_until_idle()
    # Then nothing changed a second time, and nothing is left
    assert table_items(runtime) == after_once
    assert runtime.dead_letters() == []
    assert run(["redrive", *STACK]) == 0
    assert capsys.readouterr().out.rstrip().endswith("no dead letters")


def test_redrive_sends_an_event_a_rule_could_not_deliver(runtime: LocalRuntime, capsys: Any) -> None:
    # Given an event in the merge function's queue as EventBridge leaves one (the event as the body)
    failed = load_event("merge-failed")
    name = str(failed["detail"]["humanLoopName"])
    runtime.state.loops.put(Loop(name, "doc", "v1", "InProgress"))
    event = {**failed, "detail": {**failed["detail"], "flowDefinitionArn": runtime.flow_definition_arn}}
    attributes = {"ERROR_CODE": "NO_PERMISSIONS", "ERROR_MESSAGE": "not allowed to invoke", "RETRY_ATTEMPTS": "0"}
    runtime.standins.context.client("sqs").send_message(
        QueueUrl=dlq_url(runtime, "MergeFunction"), MessageBody=json.dumps(event),
        MessageAttributes={key: {"DataType": "String", "StringValue": value} for key, value in attributes.items()})
    # When it is redriven
    assert run(["redrive", *STACK, "--dry-run"]) == 1
    assert "NO_PERMISSIONS: not allowed to invoke" in capsys.readouterr().out
    assert run(["redrive", *STACK]) == 0
    runtime.run_until_idle()
    # Then the merge function ran on it
    assert runtime.state.loops.get(name).status == "Failed"


def test_a_letter_that_is_not_an_event_stays(runtime: LocalRuntime, capsys: Any) -> None:
    runtime.standins.context.client("sqs").send_message(QueueUrl=dlq_url(runtime, "RouteFunction"),
                                                    MessageBody="not json")
    assert run(["redrive", *STACK]) == 1
    out = capsys.readouterr().out
    assert "left: RouteFunction" in out and "0 redriven, 1 dead letter(s) left" in out
    # it is visible again at once, for a person
    assert run(["redrive", *STACK, "--dry-run"]) == 1


# --- report -------------------------------------------------------------------------------------------------


def test_report_of_a_stack_reads_its_table_and_bucket(runtime: LocalRuntime, tmp_path: Path, capsys: Any,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def build(table: Any, s3: Any, bucket: str, out: Path, **options: Any) -> Path:
        seen.update(table=table.name, bucket=bucket, out=out, **options)
        return out / "index.html"

    monkeypatch.setattr("nerloop_local.commands.report.build_stack_report", build)
    assert run(["report", *STACK, "--out", str(tmp_path / "page")]) == 0
    assert seen == {"table": runtime.table_name, "bucket": runtime.bucket, "out": tmp_path / "page",
                    "source": "stack nerloop (us-east-1)", "target": 0.95,
                    "threshold": float(runtime.stack.parameters["ConfidenceThreshold"])}
    assert capsys.readouterr().out.strip() == str(tmp_path / "page" / "index.html")


def test_report_page_of_a_stack(runtime: LocalRuntime, tmp_path: Path, capsys: Any) -> None:
    runtime.put_text("raw/batch.txt", "Amazon S3 stores objects.\n")
    runtime.run_until_idle()
    assert run(["report", *STACK, "--out", str(tmp_path / "page")]) == 0
    page = (tmp_path / "page" / "index.html").read_text(encoding="utf-8")
    assert "stack nerloop (us-east-1)" in page
