"""The review page with several reviewers per document (ReviewersPerDocument=2 → TaskCount 2): each
worker sees the loops it has not answered, and a loop completes with both workers' answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop.a2i import build_input_content, loop_name
from nerloop.comprehend_output import DetectedEntity
from nerloop.documents import document_hash
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.review.desk import ReviewDesk, ReviewError
from nerloop_local.standins.a2i import A2I

TYPES = ["SERVICE", "VERSION"]
TEXT = "Amazon Athena 3.0 queries S3."


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[ReviewDesk]:
    runtime = LocalRuntime(tmp_path / "workspace", {"ReviewersPerDocument": "2"},
                           environment={"POWERTOOLS_METRICS_DISABLED": "true"}).start()
    try:
        yield ReviewDesk(runtime)
    finally:
        runtime.close(save=False)


def start_loop(runtime: Any) -> str:
    doc = document_hash(TEXT)
    name = loop_name(doc, "v1")
    begin = TEXT.index("Amazon Athena")
    entity = DetectedEntity(begin=begin, end=begin + len("Amazon Athena"), score=0.4, text="Amazon Athena",
                            type="SERVICE")
    runtime.client(A2I).start_human_loop(
        HumanLoopName=name, FlowDefinitionArn=runtime.flow_definition_arn,
        HumanLoopInput={"InputContent": build_input_content(doc, TEXT, [entity], "v1", TYPES)})
    return name


def test_a_loop_waits_for_two_workers_and_each_sees_it_until_it_answered(desk: ReviewDesk) -> None:
    name = start_loop(desk.runtime)
    [listed] = desk.queue("ana")
    assert (listed["name"], listed["reviewers"]) == (name, {"needed": 2, "answered": 0})

    first = desk.answer(name, {"entities": [], "worker": "ana"})

    assert first["queued"] is False
    assert desk.queue("ana") == []
    assert [(e["name"], e["reviewers"]["answered"]) for e in desk.queue("ben")] == [(name, 1)]
    with pytest.raises(ReviewError) as again:
        desk.answer(name, {"entities": [], "worker": "ana"})
    assert again.value.status == 409

    desk.answer(name, {"entities": [{"label": "SERVICE", "startOffset": 0, "endOffset": 13}], "worker": "ben"})

    described = desk.runtime.client(A2I).describe_human_loop(HumanLoopName=name)
    assert described["HumanLoopStatus"] == "Completed"
    output = json.loads(desk.runtime.get_bytes(described["HumanLoopOutput"]["OutputS3Uri"].split("/", 3)[3]))
    assert [answer["workerId"] for answer in output["humanAnswers"]] == ["ana", "ben"]
    assert desk.queue("cy") == []
