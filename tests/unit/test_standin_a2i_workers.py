"""The A2I stand-in with several workers per loop (the flow definition's TaskCount): a loop completes
once that many distinct workers answered, and output.json lists one humanAnswers entry per worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from nerloop_local.standins import StandIns
from nerloop_local.standins.base import StandInContext

BUCKET = "standins-workers-bucket"
ROLE = "arn:aws:iam::123456789012:role/test"
_SESSION = boto3.session.Session(region_name="us-east-1")


@pytest.fixture
def standins() -> Iterator[StandIns]:
    with mock_aws():
        _SESSION.client("s3").create_bucket(Bucket=BUCKET)
        with StandIns(StandInContext(session=_SESSION)).installed() as installed:
            yield installed


def start_loop(task_count: int, name: str = "loop-1") -> None:
    flow = _SESSION.client("sagemaker").create_flow_definition(
        FlowDefinitionName=f"review-{task_count}",
        HumanLoopConfig={"WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
                         "HumanTaskUiArn": "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/ui",
                         "TaskTitle": "t", "TaskDescription": "d", "TaskCount": task_count},
        OutputConfig={"S3OutputPath": f"s3://{BUCKET}/reviews/"}, RoleArn=ROLE)
    _SESSION.client("sagemaker-a2i-runtime").start_human_loop(
        HumanLoopName=name, FlowDefinitionArn=flow["FlowDefinitionArn"],
        HumanLoopInput={"InputContent": json.dumps({"text": "Amazon S3 2.0", "labels": []})})


def output_of(standins: StandIns, name: str) -> dict[str, Any]:
    uri = standins.a2i.loops[name].output_uri
    assert uri is not None
    key = uri.split("/", 3)[3]
    return dict(json.loads(_SESSION.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def entity(start: int, end: int, label: str = "SERVICE") -> dict[str, Any]:
    return {"label": label, "startOffset": start, "endOffset": end}


def test_a_loop_of_three_workers_completes_with_the_third_answer(standins: StandIns) -> None:
    start_loop(3)

    assert standins.a2i.complete_loop("loop-1", [entity(0, 9)], worker_id="ana") is None
    assert standins.a2i.complete_loop("loop-1", [], worker_id="ben") is None
    [pending] = standins.a2i.pending_loops()
    assert (pending.task_count, pending.answered_by) == (3, ("ana", "ben"))
    uri = standins.a2i.complete_loop("loop-1", [entity(0, 9)], worker_id="cy")

    assert uri is not None and standins.a2i.loops["loop-1"].status == "Completed"
    answers = output_of(standins, "loop-1")["humanAnswers"]
    assert [a["workerId"] for a in answers] == ["ana", "ben", "cy"]
    assert [a["answerContent"]["crowd-entity-annotation"]["entities"] for a in answers] == [
        [entity(0, 9)], [], [entity(0, 9)]]
    assert standins.a2i.pending_loops() == []


def test_a_worker_cannot_answer_the_same_loop_twice(standins: StandIns) -> None:
    start_loop(2)
    standins.a2i.complete_loop("loop-1", [], worker_id="ana")

    with pytest.raises(ValueError, match="answered human loop loop-1 already"):
        standins.a2i.complete_loop("loop-1", [entity(0, 9)], worker_id="ana")
    assert standins.a2i.loops["loop-1"].status == "InProgress"


def test_the_simulated_reviewer_is_asked_once_per_worker_with_its_id(standins: StandIns) -> None:
    start_loop(3)
    asked: list[str] = []

    def reviewer(name: str, content: dict[str, Any]) -> list[dict[str, Any]]:
        asked.append(content["workerId"])
        return [entity(0, 9)]

    standins.a2i.reviewer = reviewer
    standins.a2i.tick()

    assert asked == ["local-reviewer", "local-reviewer-2", "local-reviewer-3"]
    assert len(output_of(standins, "loop-1")["humanAnswers"]) == 3


def test_answers_in_waiting_survive_a_save_and_restore(standins: StandIns) -> None:
    start_loop(2)
    standins.a2i.complete_loop("loop-1", [entity(0, 9)], worker_id="ana")
    saved = json.loads(json.dumps(standins.a2i.snapshot(), default=str))

    standins.a2i.restore(saved)

    assert standins.a2i.pending_loops()[0].answered_by == ("ana",)
    assert standins.a2i.complete_loop("loop-1", [entity(0, 9)], worker_id="ben") is not None
