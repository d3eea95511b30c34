"""Each stage's EventBridge rules, as template.yaml declares them, match their sample events in
events/ and reject their near misses (another bucket, key, status, source, flow definition ...).

Functions map to sample events by folder name: functions/<stage>/ <-> events/<stage>.json and
events/<stage>-*.json. A function may have several rules (detect: a finished training, or new
documents): every sample then matches at least one of them, and every rule at least one sample.
moto's EventPattern is a real EventBridge pattern matcher.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from nerloop.event_catalog import ScheduledEvent
from nerloop_local.emulator.stack import EVENTS_DIR, Stack
from nerloop_local.emulator.template import rules

# With a workteam, so that the flow definition (and the merge rule's ARN) exists.
WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/nerloop-reviewers"
STACK = Stack.load({"WorkteamArn": WORKTEAM})
RULES = rules(STACK.template)


def stage_of(function: str) -> str:
    """functions/<stage>/ -> <stage>."""
    return Path(STACK.functions()[function]["Properties"]["CodeUri"]).name


def sample_events(stage: str) -> list[Path]:
    return sorted([*EVENTS_DIR.glob(f"{stage}.json"), *EVENTS_DIR.glob(f"{stage}-*.json")])


def pattern_rules() -> list[tuple[str, str]]:
    return [(function, name) for function, events in RULES.items() for name, event in events.items()
            if event["Type"] == "EventBridgeRule"]


def pattern_of(function: str, event_name: str) -> dict[str, Any]:
    return STACK.resolve(RULES[function][event_name]["Properties"]["Pattern"])


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return bool(EventPattern.load(json.dumps(pattern)).matches_event(event))  # type: ignore[arg-type]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def constrained_fields(pattern: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], list[Any]]]:
    """The event fields the pattern constrains, each with its list of allowed values or matchers."""
    if isinstance(pattern, dict):
        return [found for key, value in pattern.items() for found in constrained_fields(value, (*path, key))]
    return [(path, pattern)]


def breaking_changes(allowed: list[Any]) -> list[str]:
    """Which alterations of a matching value every alternative in `allowed` must refuse.

    An exact value refuses both a new prefix and a new suffix; {"prefix": p} only a new prefix;
    {"suffix": s} only a new suffix; a wildcard what its fixed start and end pin down.
    """
    def refuses(matcher: Any, change: str) -> bool:
        if isinstance(matcher, str):
            return True
        if "prefix" in matcher:
            return change == "prefix"
        if "suffix" in matcher:
            return change == "suffix"
        if "wildcard" in matcher:
            return not matcher["wildcard"].startswith("*") if change == "prefix" else (
                not matcher["wildcard"].endswith("*"))
        return False

    return [change for change in ("prefix", "suffix") if all(refuses(m, change) for m in allowed)]


def mutated(event: dict[str, Any], path: tuple[str, ...], change: str) -> dict[str, Any]:
    """A copy of `event` whose field at `path` (each element, for a list) gets a prefix or a suffix."""
    near = copy.deepcopy(event)
    parent = near
    for key in path[:-1]:
        parent = parent[key]

    def alter(value: Any) -> Any:
        return f"zz-{value}" if change == "prefix" else f"{value}-zz"

    value = parent[path[-1]]
    parent[path[-1]] = [alter(item) for item in value] if isinstance(value, list) else alter(value)
    return near


# --- every function has a rule and sample events --------------------------------------------------------


@pytest.mark.parametrize("function", sorted(RULES))
def test_every_rule_has_sample_events(function):
    stage = stage_of(function)
    assert sample_events(stage), (
        f"{function} has a rule but no sample event: add events/{stage}.json (or events/{stage}-<case>.json) "
        "with a real event of the kind its rule routes")


def test_every_stage_function_has_a_rule():
    custom_resource_functions = {
        resource["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
        for resource in STACK.template["Resources"].values()
        if resource["Type"].startswith("Custom::")
    }
    assert set(STACK.functions()) - custom_resource_functions == set(RULES)


# --- patterns match their samples and reject near misses ----------------------------------------------


@pytest.mark.parametrize(("function", "event_name"), pattern_rules())
def test_the_rule_matches_a_sample_event(function, event_name):
    pattern = pattern_of(function, event_name)
    samples = sample_events(stage_of(function))
    assert any(matches(pattern, load(path)) for path in samples), (
        f"{function}.{event_name} matches none of {[path.name for path in samples]}: {pattern}")


@pytest.mark.parametrize("function", sorted({function for function, _ in pattern_rules()}))
def test_every_sample_event_matches_one_of_its_functions_rules(function):
    names = [name for owner, name in pattern_rules() if owner == function]
    for path in sample_events(stage_of(function)):
        matched = [name for name in names if matches(pattern_of(function, name), load(path))]
        assert len(matched) == 1, f"{path.name} matches {matched or 'none'} of {function}'s rules {names}"


def near_misses() -> list[Any]:
    cases = []
    for function, event_name in pattern_rules():
        pattern = pattern_of(function, event_name)
        for sample in sample_events(stage_of(function)):  # none: test_every_rule_has_sample_events fails
            if not matches(pattern, load(sample)):
                continue  # a sample of the function's other rule
            for field, allowed in constrained_fields(pattern):
                for change in breaking_changes(allowed):
                    cases.append(pytest.param(function, event_name, sample, field, change,
                                              id=f"{sample.stem}-{'.'.join(field)}-{change}"))
    return cases


@pytest.mark.parametrize(("function", "event_name", "sample", "field", "change"), near_misses())
def test_the_rule_rejects_a_near_miss(function, event_name, sample, field, change):
    # Given the sample event with one constrained field altered at its start or its end
    near = mutated(load(sample), field, change)
    # Then the rule no longer matches: every constraint is exact where it has to be
    assert not matches(pattern_of(function, event_name), near), (
        f"{function}.{event_name} matches {sample.name} with {'.'.join(field)} = {near_value(near, field)!r}")


def near_value(event: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        event = event[key]
    return event


def test_the_s3_rules_take_only_their_own_key_shapes():
    raw_text = {"detail-type": "Object Created", "source": "aws.s3",
                "detail": {"bucket": {"name": STACK.physical_name("DataBucket")}, "object": {"key": ""}}}

    def routed(key: str) -> set[str]:
        event = copy.deepcopy(raw_text)
        event["detail"]["object"]["key"] = key
        return {function for function, name in pattern_rules() if matches(pattern_of(function, name), event)}

    assert routed("raw/notes.txt") == {"PreprocessFunction"}
    assert routed("raw/notes.csv") == set()
    assert routed("training/v3/annotations.csv") == {"TrainFunction"}
    assert routed("training/v3/documents.txt") == set()
    assert routed("detection/output/123456789012-NER-abc/output/output.tar.gz") == {"RouteFunction"}
    assert routed("detection/input/run-1/documents.txt") == set()
    assert routed("quarantine/preprocess/notes.jsonl") == set()


def test_convert_takes_only_completed_jobs_of_its_prefix():
    pattern = pattern_of("ConvertFunction", "LabelingJobCompleted")
    event = load(EVENTS_DIR / "convert.json")
    job_arn = event["resources"][0]
    prefix = STACK.labeling_job_prefix()
    other_job = job_arn.replace(f"labeling-job/{prefix}", "labeling-job/other-team")
    assert matches(pattern, event)
    assert not matches(pattern, {**event, "resources": [other_job]})
    for status in ("Failed", "Stopped", "InProgress"):
        assert not matches(pattern, {**event, "detail": {"LabelingJobStatus": status}}), status


def test_detect_takes_every_end_of_a_training_of_its_recognizer_and_nothing_else():
    from nerloop.recognizer_versions import TRAINING_END_STATUSES

    pattern = pattern_of("DetectFunction", "RecognizerFinished")
    event = load(EVENTS_DIR / "detect.json")
    # Every ModelStatus (botocore's comprehend model) and nerloop's own DELETED.
    statuses = ("SUBMITTED", "TRAINING", "DELETING", "STOP_REQUESTED", "STOPPED", "IN_ERROR", "TRAINED",
                "TRAINED_WITH_WARNING", "DELETED")
    for status in statuses:
        changed = {**event, "detail": {**event["detail"], "status": status}}
        assert matches(pattern, changed) is (status in TRAINING_END_STATUSES), status
    assert {"TRAINED_WITH_WARNING", "STOPPED"} <= set(TRAINING_END_STATUSES)


def test_detect_takes_new_documents_from_the_loop_only():
    pattern = pattern_of("DetectFunction", "DocumentsAdded")
    event = load(EVENTS_DIR / "detect-documents-added.json")
    assert matches(pattern, event)
    assert not matches(pattern, {**event, "source": "someone.else"})
    assert not matches(pattern_of("DetectFunction", "RecognizerFinished"), event)


def test_merge_takes_every_way_a_loop_ends_and_no_other_flow_definition():
    pattern = pattern_of("MergeFunction", "HumanLoopFinished")
    event = load(EVENTS_DIR / "merge.json")
    for status, expected in (("Completed", True), ("Failed", True), ("Stopped", True), ("InProgress", False)):
        changed = {**event, "detail": {**event["detail"], "humanLoopStatus": status}}
        assert matches(pattern, changed) is expected, status
    other = event["detail"]["flowDefinitionArn"].replace("nerloop-review", "someone-elses-review")
    assert not matches(pattern, {**event, "detail": {**event["detail"], "flowDefinitionArn": other}})


def test_every_s3_sample_of_the_versioned_bucket_names_the_object_version():
    # S3's EventBridge events carry detail.object.version-id when the bucket is versioned
    # (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html); DataBucket is.
    assert STACK.resource("DataBucket")["Properties"]["VersioningConfiguration"]["Status"] == "Enabled"
    samples = [load(path) for path in sorted(EVENTS_DIR.glob("*.json"))]
    ours = [event for event in samples if event["source"] == "aws.s3"
            and event["detail"]["bucket"]["name"] == STACK.physical_name("DataBucket")]
    assert ours
    assert [event["detail"]["object"]["key"] for event in ours
            if not event["detail"]["object"].get("version-id")] == []


# --- the schedule ----------------------------------------------------------------------------------------


def test_the_watch_sample_is_the_scheduled_event_of_its_rule():
    (poll,) = RULES["WatchFunction"].values()
    assert poll["Type"] == "Schedule"
    rule_name = STACK.resolve(poll["Properties"]["Name"])
    (path,) = sample_events("watch")
    event = ScheduledEvent.model_validate(load(path))
    assert event.resources == [f"arn:aws:events:us-east-1:123456789012:rule/{rule_name}"]
    assert STACK.resolve(poll["Properties"]["Schedule"]).startswith(("rate(", "cron("))
