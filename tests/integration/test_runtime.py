"""The local runtime, built from template.yaml: rules and queues from the template, the pump's routing,
retries and dead letters, events shaped as AWS sends them, the stand-ins wired in, and the workspace
surviving a restart."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop import settings
from nerloop_local.emulator.deployment import LOCAL_PARAMETERS
from nerloop_local.emulator.event_pump import MOTO_S3_EVENT_ID, normalize_event
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.template import REPO
from nerloop_local.emulator.template import rules as template_rules
from nerloop_local.standins.groundtruth import label_attribute_of

QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
RECOGNIZER = "arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/nerloop"
SERVICES = ["Amazon S3", "AWS Lambda", "Amazon EC2", "AWS Glue", "Amazon SageMaker", "Amazon DynamoDB"]


def open_runtime(path: Path, stack: Stack, **options: Any) -> LocalRuntime:
    return LocalRuntime(path, stack=stack, environment=QUIET, **options).start()


@pytest.fixture(scope="module")
def stack() -> Stack:
    """template.yaml with local mode's parameters (a local workteam, so the review exists); read once."""
    return Stack.load(LOCAL_PARAMETERS)


@pytest.fixture
def runtime(tmp_path: Path, stack: Stack) -> Iterator[LocalRuntime]:
    started = open_runtime(tmp_path / "workspace", stack, autosave=False)
    try:
        yield started
    finally:
        started.close(save=False)


class Recorder:
    """A stand-in handler that keeps the events it gets (and can be told to fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        if self.fail:
            raise ValueError("the handler failed on purpose")
        return {"seen": len(self.events)}


def record(runtime: LocalRuntime, *functions: str, fail: bool = False) -> dict[str, Recorder]:
    recorders = {function: Recorder(fail) for function in functions}
    for function, recorder in recorders.items():
        runtime.override_handler(function, recorder)
    return recorders


def record_all(runtime: LocalRuntime) -> dict[str, Recorder]:
    return record(runtime, *runtime.functions)


def needs_handler(stage: str) -> None:
    if not (REPO / "functions" / stage / "app.py").exists():
        pytest.skip(f"functions/{stage}/app.py is not written yet")


# --- wiring from the template --------------------------------------------------------------------------------


def test_every_template_rule_exists_with_its_resolved_pattern(runtime: LocalRuntime) -> None:
    events = runtime.client("events")
    for function, function_events in template_rules(runtime.stack.template).items():
        patterns = [runtime.stack.resolve(spec["Properties"]["Pattern"]) for spec in function_events.values()
                    if spec["Type"] == "EventBridgeRule"]
        created = [json.loads(events.describe_rule(Name=rule)["EventPattern"])
                   for rule in runtime.wiring[function].rules]
        assert created == patterns, function


def test_rules_carry_the_templates_names(runtime: LocalRuntime) -> None:
    expected = runtime.stack.resolve(
        runtime.stack.resource("PreprocessFunction")["Properties"]["Events"]["RawTextCreated"]["Properties"]["RuleName"])
    assert runtime.wiring["PreprocessFunction"].rules == [expected]


def test_each_rule_targets_its_functions_queue(runtime: LocalRuntime) -> None:
    events = runtime.client("events")
    for function, wiring in runtime.wiring.items():
        for rule in wiring.rules:
            targets = events.list_targets_by_rule(Rule=rule)["Targets"]
            assert [target["Arn"] for target in targets] == [wiring.queue_arn], function


def test_schedule_rule_is_created_from_the_template(runtime: LocalRuntime, stack: Stack) -> None:
    (rule_arn,) = runtime.wiring["WatchFunction"].schedules
    rule = runtime.client("events").describe_rule(Name=rule_arn.rsplit("/", 1)[-1])
    assert rule["ScheduleExpression"] == stack.parameters["WatchSchedule"]


def test_failures_go_to_the_templates_destination_queue(runtime: LocalRuntime) -> None:
    config = runtime.stack.resolve(runtime.stack.resource("RouteFunction")["Properties"]["EventInvokeConfig"])
    assert runtime.wiring["RouteFunction"].dlq_arn == config["DestinationConfig"]["OnFailure"]["Destination"]


def test_state_table_comes_from_the_template(runtime: LocalRuntime, stack: Stack) -> None:
    # (The bucket's EventBridge notifications show in the routing tests: moto does not describe them.)
    dynamodb = runtime.client("dynamodb")
    props = stack.resolve(stack.resource("StateTable")["Properties"])
    table = dynamodb.describe_table(TableName=stack.physical_name("StateTable"))["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=stack.physical_name("StateTable"))["TimeToLiveDescription"]
    assert table["KeySchema"] == props["KeySchema"]
    assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"]


def test_flow_definition_is_made_by_the_custom_resource_handler(runtime: LocalRuntime) -> None:
    name = runtime.stack.names["FlowDefinition.Name"]
    described = runtime.client("sagemaker").describe_flow_definition(FlowDefinitionName=name)
    assert name.startswith("nerloop-review-")  # the handler's <name>-<hash of the settings>
    assert described["OutputConfig"]["S3OutputPath"] == f"s3://{runtime.bucket}/reviews/"
    assert runtime.function_environment("RouteFunction")["FLOW_DEFINITION_ARN"] == described["FlowDefinitionArn"]


def test_review_task_ui_comes_from_the_template(runtime: LocalRuntime) -> None:
    props = runtime.stack.resolve(runtime.stack.resource("ReviewTaskUi")["Properties"])
    described = runtime.client("sagemaker").describe_human_task_ui(HumanTaskUiName=props["HumanTaskUiName"])
    flow = runtime.client("sagemaker").describe_flow_definition(
        FlowDefinitionName=runtime.stack.names["FlowDefinition.Name"])
    assert flow["HumanLoopConfig"]["HumanTaskUiArn"] == described["HumanTaskUiArn"]


# --- routing ----------------------------------------------------------------------------------------------


def test_text_under_raw_reaches_only_the_preprocess_queue(runtime: LocalRuntime) -> None:
    runtime.put_text("raw/notes.txt", "Amazon S3 is here.")
    pending = runtime.pending()
    assert pending.pop("PreprocessFunction") == 1
    assert set(pending.values()) == {0}


def test_text_outside_raw_reaches_no_queue(runtime: LocalRuntime) -> None:
    runtime.put_text("elsewhere/notes.txt", "Amazon S3 is here.")
    assert set(runtime.pending().values()) == {0}


def test_own_event_is_routed_by_its_rule(runtime: LocalRuntime) -> None:
    recorders = record_all(runtime)
    runtime.put_event("nerloop", "Recognizer Status Change",
                      {"recognizerName": "nerloop", "versionName": "v1", "status": "TRAINED",
                       "recognizerArn": f"{RECOGNIZER}/version/v1"})
    runtime.put_event("nerloop", "Recognizer Status Change",
                      {"recognizerName": "nerloop", "versionName": "v2", "status": "TRAINING", "recognizerArn": "x"})
    runtime.cycle()
    assert [event["detail"]["versionName"] for event in recorders["DetectFunction"].events] == ["v1"]


def test_delivered_s3_event_has_aws_shape(runtime: LocalRuntime) -> None:
    recorders = record(runtime, "PreprocessFunction")
    etag = runtime.put_text("raw/two words+plus.txt", "text")
    runtime.put_text("raw/second.txt", "text")
    runtime.cycle()
    first, second = recorders["PreprocessFunction"].events
    obj = first["detail"]["object"]
    assert obj["key"] == "raw/two words+plus.txt"  # EventBridge carries the key unencoded (S3 user guide, ev-events)
    assert (obj["etag"], "eTag" in obj) == (etag.strip('"'), False)
    assert first["account"] == "123456789012"
    assert first["detail"]["reason"] == "PutObject"
    assert first["id"] != second["id"]


def test_delivered_put_events_event_has_an_account(runtime: LocalRuntime) -> None:
    recorders = record(runtime, "DetectFunction")
    runtime.put_event("nerloop", "Recognizer Status Change",
                      {"recognizerName": "nerloop", "versionName": "v1", "status": "IN_ERROR", "recognizerArn": "a"})
    runtime.cycle()
    assert recorders["DetectFunction"].events[0]["account"] == "123456789012"


def test_normalizing_twice_changes_nothing_more() -> None:
    event = {"source": "aws.s3", "detail-type": "Object Created", "id": MOTO_S3_EVENT_ID,
             "detail": {"object": {"key": "raw/a b.txt", "eTag": "e", "sequencer": "1"}, "reason": "ObjectCreated"}}
    once = normalize_event(event, 1)
    assert once["detail"]["object"] == {"key": "raw/a b.txt", "etag": "e", "sequencer": f"{1:018X}"}
    assert once["id"] != event["id"] and once["detail"]["reason"] == "PutObject"

    assert normalize_event(once, 1) == once
    # a later delivery's sequence moves the sequencer only
    assert normalize_event(once, 2) == {**once, "detail": {**once["detail"], "object": {
        **once["detail"]["object"], "sequencer": f"{2:018X}"}}}


# --- retries and dead letters ---------------------------------------------------------------------------------


def test_failing_handler_is_tried_three_times_then_dead_lettered(runtime: LocalRuntime) -> None:
    record(runtime, "PreprocessFunction", fail=True)
    runtime.put_text("raw/bad.txt", "text")
    result = runtime.run_until_idle(max_cycles=10)
    assert [(d.outcome, d.attempt) for d in result.deliveries if d.function == "PreprocessFunction"] == [
        ("retry", 1), ("retry", 2), ("dead-letter", 3)]
    (dead,) = runtime.dead_letters("PreprocessFunction")
    assert dead["event"]["detail"]["object"]["key"] == "raw/bad.txt"
    assert "failed on purpose" in dead["error"]
    assert result.idle


def test_retry_delivers_the_same_event(runtime: LocalRuntime) -> None:
    recorders = record(runtime, "PreprocessFunction", fail=True)
    runtime.put_text("raw/bad.txt", "text")
    runtime.run_until_idle(max_cycles=10)
    first, *rest = recorders["PreprocessFunction"].events
    assert rest == [first, first]


def test_retries_follow_the_templates_event_invoke_config(runtime: LocalRuntime) -> None:
    # The watch has MaximumRetryAttempts 0: a missed poll is made good by the next one.
    record(runtime, "WatchFunction", fail=True)
    runtime.fire_schedules()
    delivered = runtime.cycle()
    assert [(d.function, d.outcome) for d in delivered] == [("WatchFunction", "dead-letter")]
    (dead,) = runtime.dead_letters("WatchFunction")
    assert (dead["record"]["requestContext"]["condition"], dead["attempts"]) == ("RetriesExhausted", 1)


def test_interrupted_cycle_loses_no_event(runtime: LocalRuntime) -> None:
    def interrupt(event: dict[str, Any], context: Any) -> None:
        raise KeyboardInterrupt

    runtime.override_handler("PreprocessFunction", interrupt)
    runtime.put_text("raw/one.txt", "1")
    runtime.put_text("raw/two.txt", "2")
    with pytest.raises(KeyboardInterrupt):
        runtime.cycle()
    assert runtime.pending()["PreprocessFunction"] == 2
    recorders = record(runtime, "PreprocessFunction")
    runtime.cycle()  # both are visible again and delivered
    assert len(recorders["PreprocessFunction"].events) == 2


def test_handler_runs_with_its_own_template_environment(runtime: LocalRuntime) -> None:
    seen: dict[str, Any] = {}

    def handler(event: dict[str, Any], context: Any) -> None:
        seen["service"] = os.environ["POWERTOOLS_SERVICE_NAME"]
        seen["flow"] = settings.get_settings().flow_definition_arn
        seen["function"] = context.function_name

    runtime.override_handler("RouteFunction", handler)
    runtime.invoke("RouteFunction", {})
    assert seen == {"service": "nerloop-route", "flow": runtime.flow_definition_arn,
                    "function": "nerloop-RouteFunction"}
    assert "FLOW_DEFINITION_ARN" not in runtime.function_environment("PreprocessFunction")


# --- the stand-ins in the loop -----------------------------------------------------------------------------------


def test_watch_runs_while_training_and_once_after(runtime: LocalRuntime) -> None:
    recorders = record_all(runtime)
    runtime.run_until_idle(max_cycles=5)  # settle the start
    recorders["WatchFunction"].events.clear()
    documents = [f"Release: {SERVICES[n % len(SERVICES)]} version {n % 7}.{n % 3} is now available in many "
                 f"regions for every customer (item {n})." for n in range(60)]
    rows = ["File,Line,Begin Offset,End Offset,Type"]
    for line, text in enumerate(documents):
        service = SERVICES[line % len(SERVICES)]
        version = text.split(" version ")[1].split(" ")[0]
        rows.append(f"documents.txt,{line},9,{9 + len(service)},SERVICE")
        rows.append(f"documents.txt,{line},{text.index(version)},{text.index(version) + len(version)},VERSION")
    runtime.put_text("fixtures/documents.txt", "\n".join(documents) + "\n")
    runtime.put_text("fixtures/annotations.csv", "\n".join(rows) + "\n")
    arn = runtime.client("comprehend").create_entity_recognizer(
        RecognizerName="nerloop", VersionName="v1", DataAccessRoleArn="arn:aws:iam::123456789012:role/r",
        LanguageCode="en", InputDataConfig={
            "EntityTypes": [{"Type": "SERVICE"}, {"Type": "VERSION"}],
            "Documents": {"S3Uri": f"s3://{runtime.bucket}/fixtures/documents.txt", "InputFormat": "ONE_DOC_PER_LINE"},
            "Annotations": {"S3Uri": f"s3://{runtime.bucket}/fixtures/annotations.csv"}})["EntityRecognizerArn"]
    result = runtime.run_until_idle(max_cycles=10)
    watched = [d.cycle for d in result.deliveries if d.function == "WatchFunction"]
    assert len(watched) >= 3  # SUBMITTED, TRAINING, then once after TRAINED
    assert runtime.comprehend.recognizers[arn].status == "TRAINED"
    assert result.idle
    assert not [d for d in runtime.run_until_idle(max_cycles=3).deliveries if d.function == "WatchFunction"]


def test_reviewed_loop_event_reaches_the_merge_function(tmp_path: Path, stack: Stack) -> None:
    runtime = open_runtime(tmp_path / "ws", stack, reviewer=lambda name, content: [], autosave=False)
    try:
        recorders = record_all(runtime)
        runtime.client("sagemaker-a2i-runtime").start_human_loop(
            HumanLoopName="v1-abc", FlowDefinitionArn=runtime.flow_definition_arn,
            HumanLoopInput={"InputContent": json.dumps({"text": "Amazon S3"})})
        runtime.run_until_idle(max_cycles=5)
        (event,) = recorders["MergeFunction"].events
        assert (event["detail"]["humanLoopName"], event["detail"]["humanLoopStatus"]) == ("v1-abc", "Completed")
    finally:
        runtime.close(save=False)


def test_labeling_job_event_reaches_the_convert_function(runtime: LocalRuntime) -> None:
    recorders = record_all(runtime)
    manifest = json.dumps({"source": "Amazon S3", "gt-job": {"annotations": {"entities": []}},
                           "gt-job-metadata": {"type": "groundtruth/text-span"}}) + "\n"
    arn = runtime.label_with_manifest(manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-sample")
    runtime.cycle()
    (event,) = recorders["ConvertFunction"].events
    assert (event["resources"], event["detail"]) == ([arn], {"LabelingJobStatus": "Completed"})


def test_raw_text_is_preprocessed_by_the_real_handler(runtime: LocalRuntime) -> None:
    needs_handler("preprocess")
    runtime.put_text("raw/notes.txt", "Amazon S3 now supports version 2.0. AWS Lambda adds a feature.\n")
    result = runtime.run_until_idle(max_cycles=10)
    preprocess = [d for d in result.deliveries if d.function == "PreprocessFunction"]
    assert [d.outcome for d in preprocess] == ["ok"], [d.error for d in preprocess]
    assert runtime.list_keys("batches/")


def test_labeling_job_started_by_preprocess_completes_into_the_gold_set(runtime: LocalRuntime,
                                                                      sample_dir: Path) -> None:
    needs_handler("preprocess")
    needs_handler("convert")
    lines = (sample_dir / "aws-service-offerings.txt").read_text(encoding="utf-8").splitlines()[:20]
    runtime.put_text("raw/sample.txt", "\n".join(lines) + "\n")
    runtime.cycle()  # preprocess: a batch, and (with a workteam and no gold yet) a labeling job
    (job,) = runtime.groundtruth.pending_jobs()
    # The people's answer: the sample's labels, under this job's label attribute.
    manifest = (sample_dir / "output.manifest").read_text(encoding="utf-8")
    runtime.groundtruth.complete_job_from_manifest(
        job.name, manifest.replace(label_attribute_of(manifest), job.label_attribute))
    convert = [d for d in runtime.cycle() if d.function == "ConvertFunction"]
    assert [d.outcome for d in convert] == ["ok"], [d.error for d in convert]
    assert any(True for _ in runtime.state.gold.documents())


# --- the workspace -------------------------------------------------------------------------------------------------


# Every DynamoDB type, binary ones included, nested in maps and lists.
TYPED_ITEM: dict[str, Any] = {
    "pk": {"S": "TEST"}, "sk": {"S": "typed"}, "blob": {"B": b"\x00\xff"}, "set": {"SS": ["a", "b"]},
    "flag": {"BOOL": True}, "none": {"NULL": True},
    "map": {"M": {"list": {"L": [{"N": "1.5"}, {"B": b"z"}, {"BS": [b"x", b"y"]}]}}},
}


def test_workspace_survives_a_restart(tmp_path: Path, stack: Stack) -> None:
    workspace = tmp_path / "ws"
    first = open_runtime(workspace, stack)
    try:
        record(first, "PreprocessFunction", fail=True)
        objects = {"notes/a b+c.txt": "one", "notes/a": "two", "notes/a/b": "three"}
        for key, text in objects.items():
            first.put_text(key, text)
        first.state.counters.add("REVIEWS", 7)
        first.client("dynamodb").put_item(TableName=first.table_name, Item=TYPED_ITEM)
        first.run_until_idle(max_cycles=5)  # raw/ is empty: only the start settles
        first.put_text("raw/dead.txt", "x")
        first.run_until_idle(max_cycles=5)  # → a dead letter
        first.put_text("raw/waiting.txt", "y")  # left in the queue
        first.client("sagemaker-a2i-runtime").start_human_loop(
            HumanLoopName="loop-1", FlowDefinitionArn=first.flow_definition_arn,
            HumanLoopInput={"InputContent": "{}"})
        # A version of the recognizer: creating RecognizerCleanup again would now fail.
        first.client("comprehend").create_entity_recognizer(
            RecognizerName="nerloop", VersionName="v1", DataAccessRoleArn="arn:aws:iam::123456789012:role/r",
            LanguageCode="en", InputDataConfig={
                "EntityTypes": [{"Type": "SERVICE"}], "Documents": {"S3Uri": f"s3://{first.bucket}/none.txt"},
                "Annotations": {"S3Uri": f"s3://{first.bucket}/none.csv"}})
        flow_arn = first.flow_definition_arn
    finally:
        first.close()

    again = open_runtime(workspace, stack, autosave=False)
    try:
        assert again.restored
        assert {key: again.get_text(key) for key in objects} == objects
        assert again.state.counters.get("REVIEWS") == 7
        item_key = {"pk": TYPED_ITEM["pk"], "sk": TYPED_ITEM["sk"]}
        assert again.client("dynamodb").get_item(TableName=again.table_name, Key=item_key)["Item"] == TYPED_ITEM
        assert again.pending()["PreprocessFunction"] == 1  # restoring S3 fired no new events
        assert [d["event"]["detail"]["object"]["key"] for d in again.dead_letters()] == ["raw/dead.txt"]
        assert [loop.name for loop in again.a2i.pending_loops()] == ["loop-1"]
        assert again.flow_definition_arn == flow_arn  # the custom resources were not created again
    finally:
        again.close(save=False)


def test_restore_false_starts_empty(tmp_path: Path, stack: Stack) -> None:
    first = open_runtime(tmp_path / "ws", stack)
    first.put_text("notes/a.txt", "one")
    first.close()
    fresh = open_runtime(tmp_path / "ws", stack, restore=False, autosave=False)
    try:
        assert (fresh.restored, fresh.list_keys()) == (False, [])
    finally:
        fresh.close(save=False)


# --- the process is left as it was -------------------------------------------------------------------------------


def test_close_puts_back_environment_and_sockets(tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someone-real")
    connect = socket.socket.connect
    runtime = open_runtime(tmp_path / "ws", stack, autosave=False)
    inside = (os.environ.get("AWS_PROFILE"), socket.socket.connect is connect)
    runtime.close(save=False)
    assert inside == (None, False)
    assert (os.environ.get("AWS_PROFILE"), socket.socket.connect is connect) == ("someone-real", True)


def test_runtime_refuses_connections_off_this_machine(runtime: LocalRuntime) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock, pytest.raises(RuntimeError, match="local mode"):
        sock.connect(("192.0.2.1", 443))
