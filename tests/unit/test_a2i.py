"""A2I: loop names, the worker's input, starting loops with back-off, validating answers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from nerloop.a2i import (
    ALREADY_STARTED,
    MAX_INPUT_CONTENT_CHARS,
    STARTED,
    build_input_content,
    loop_name,
    start_human_loop,
)
from nerloop.comprehend_output import DetectedEntity
from nerloop.documents import Span, document_hash
from nerloop.errors import InvalidRecord
from nerloop.review_answers import input_text, parse_output, review_answer
from nerloop.review_consensus import ReviewersTied

TYPES = ("SERVICE", "VERSION")
FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review"
FILE = "s3://nerloop-databucket/reviews/loop/output.json"
NAME_RULE = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")
DOC = document_hash("Amazon S3 now supports things.")
FLOW_ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review"


# --- loop names -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "version", ["v1", "v12", "Version_2024.10", "V1", "x" * 63, "a-" * 31 + "a", "--v--"]
)
def test_a_loop_name_is_a_valid_a2i_name_for_any_version(version: str) -> None:
    name = loop_name(DOC, version)

    assert 1 <= len(name) <= 63
    assert NAME_RULE.match(name), name


@pytest.mark.parametrize("version", ["v1", "Version_2024.10", "x" * 63])
def test_a_scoped_loop_name_is_a_valid_a2i_name(version: str) -> None:
    name = loop_name(DOC, version, scope=FLOW_ARN)

    assert 1 <= len(name) <= 63
    assert NAME_RULE.match(name), name


def test_two_stacks_name_the_same_review_differently() -> None:
    other_stack = FLOW_ARN.replace("nerloop-review", "team-b-review")

    assert loop_name(DOC, "v1", scope=FLOW_ARN) != loop_name(DOC, "v1", scope=other_stack)
    assert loop_name(DOC, "v1", scope=FLOW_ARN) == loop_name(DOC, "v1", scope=FLOW_ARN)


def test_a_loop_name_is_the_same_for_the_same_document_and_version() -> None:
    assert loop_name(DOC, "v3") == loop_name(DOC, "v3")


def test_loop_names_differ_between_versions_and_documents() -> None:
    other = document_hash("Another document.")
    names = {
        loop_name(DOC, "v1"),
        loop_name(DOC, "v2"),
        loop_name(other, "v1"),
        loop_name(DOC, "V1"),
        loop_name(DOC, "x" * 62 + "a"),
        loop_name(DOC, "x" * 62 + "b"),
    }

    assert len(names) == 6


def test_a_loop_name_needs_a_document_hash() -> None:
    with pytest.raises(ValueError, match="not a document hash"):
        loop_name("Not-A-Hash", "v1")


# --- the worker's input ----------------------------------------------------------------------------


def detected(begin: int, end: int, score: float, type_: str = "SERVICE") -> DetectedEntity:
    return DetectedEntity(begin=begin, end=end, score=score, text="", type=type_)


def test_the_input_holds_text_labels_prefilled_spans_scores_and_the_document() -> None:
    text = "Amazon S3 now supports things."
    content = json.loads(
        build_input_content(DOC, text, [detected(0, 9, 0.55), detected(10, 13, 0.91, "VERSION")], "v2", TYPES)
    )

    assert content["text"] == text
    assert content["labels"] == [{"label": "SERVICE"}, {"label": "VERSION"}]
    assert content["initialValue"] == [
        {"label": "SERVICE", "startOffset": 0, "endOffset": 9},
        {"label": "VERSION", "startOffset": 10, "endOffset": 13},
    ]
    assert [p["score"] for p in content["predictions"]] == [0.55, 0.91]
    assert (content["document"], content["version"], content["lowestScore"]) == (DOC, "v2", 0.55)


def test_a_span_of_a_type_the_widget_does_not_offer_is_not_prefilled() -> None:
    content = json.loads(build_input_content(DOC, "abc def", [detected(0, 3, 0.5, "OLD_TYPE")], "v1", TYPES))

    assert content["initialValue"] == []
    assert content["predictions"][0]["label"] == "OLD_TYPE"


def test_an_input_larger_than_a2i_takes_is_refused() -> None:
    text = "x" * MAX_INPUT_CONTENT_CHARS

    with pytest.raises(InvalidRecord, match="A2I takes at most"):
        build_input_content(DOC, text, [], "v1", TYPES)


# --- starting loops --------------------------------------------------------------------------------


@pytest.fixture
def a2i() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("sagemaker-a2i-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expected(name: str = "v1-abc") -> dict[str, Any]:
    return {"HumanLoopName": name, "FlowDefinitionArn": FLOW, "HumanLoopInput": {"InputContent": "{}"}}


def started() -> dict[str, str]:
    return {"HumanLoopArn": "arn:aws:sagemaker:us-east-1:123456789012:human-loop/v1-abc"}


def test_a_loop_is_started_with_its_name_flow_and_input(a2i: tuple[Any, Stubber]) -> None:
    client, stubber = a2i
    stubber.add_response("start_human_loop", started(), expected())

    assert start_human_loop(client, "v1-abc", FLOW, "{}", sleep=pytest.fail) == STARTED


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 429), ("ServiceQuotaExceededException", 402)]
)
def test_throttling_and_quota_errors_are_retried_with_growing_delays(
    a2i: tuple[Any, Stubber], code: str, status: int
) -> None:
    client, stubber = a2i
    for _ in range(3):
        stubber.add_client_error(
            "start_human_loop", code, http_status_code=status, expected_params=expected()
        )
    stubber.add_response("start_human_loop", started(), expected())
    delays: list[float] = []

    outcome = start_human_loop(
        client, "v1-abc", FLOW, "{}", sleep=delays.append, jitter=lambda: 1.0, base_delay=0.5
    )

    assert outcome == STARTED
    assert delays == [0.5, 1.0, 2.0]


def test_jitter_keeps_each_delay_within_its_cap(a2i: tuple[Any, Stubber]) -> None:
    client, stubber = a2i
    for _ in range(5):
        stubber.add_client_error("start_human_loop", "ThrottlingException", http_status_code=429)
    stubber.add_response("start_human_loop", started())
    delays: list[float] = []

    start_human_loop(
        client, "v1-abc", FLOW, "{}", sleep=delays.append, jitter=lambda: 0.5, base_delay=1.0, max_delay=4.0
    )

    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]


def test_retries_are_bounded_and_the_last_error_is_raised(a2i: tuple[Any, Stubber]) -> None:
    client, stubber = a2i
    for _ in range(3):
        stubber.add_client_error("start_human_loop", "ThrottlingException", http_status_code=429)
    delays: list[float] = []

    with pytest.raises(ClientError) as caught:
        start_human_loop(client, "v1-abc", FLOW, "{}", max_attempts=3, sleep=delays.append)

    assert caught.value.response["Error"]["Code"] == "ThrottlingException"
    assert len(delays) == 2


def test_a_loop_that_already_exists_counts_as_started_before(a2i: tuple[Any, Stubber]) -> None:
    client, stubber = a2i
    stubber.add_client_error("start_human_loop", "ConflictException", http_status_code=409)

    assert start_human_loop(client, "v1-abc", FLOW, "{}", sleep=pytest.fail) == ALREADY_STARTED


def test_a_validation_error_is_not_retried(a2i: tuple[Any, Stubber]) -> None:
    client, stubber = a2i
    stubber.add_client_error("start_human_loop", "ValidationException", http_status_code=400)

    with pytest.raises(ClientError):
        start_human_loop(client, "v1-abc", FLOW, "{}", sleep=pytest.fail)


# --- answers ---------------------------------------------------------------------------------------

TEXT = "Amazon S3 and AWS Lambda 2.0 launched."


def output(
    *answers: list[dict[str, Any]], times: list[str] | None = None, text: str = TEXT, as_string: bool = False
) -> bytes:
    input_content: Any = {"text": text, "document": document_hash(text), "version": "v1"}
    if as_string:
        input_content = json.dumps(input_content)
    human_answers = [
        {
            "answerContent": {"crowd-entity-annotation": {"entities": entities}},
            "submissionTime": (times or [""] * len(answers))[i],
            "workerId": f"worker-{i}",
            "acceptanceTime": "2024-05-14T17:00:00.000Z",
            "timeSpentInSeconds": 12.5,
            "workerMetadata": {},
        }
        for i, entities in enumerate(answers)
    ]
    return json.dumps(
        {
            "flowDefinitionArn": FLOW,
            "humanLoopName": "v1-abc",
            "humanAnswers": human_answers,
            "inputContent": input_content,
        }
    ).encode("utf-8")


def span(label: str, start: int, end: int) -> dict[str, Any]:
    return {"label": label, "startOffset": start, "endOffset": end}


def reviewed_spans(raw: bytes, file: str, text: str, types: tuple[str, ...]) -> list[Span]:
    """The spans the merge stage keeps from an output file: parse_output, then review_answer."""
    return review_answer(parse_output(raw, file), file, text, types).spans


def test_the_reviewers_spans_are_returned_in_order() -> None:
    raw = output([span("VERSION", 25, 28), span("SERVICE", 0, 9), span("SERVICE", 14, 24)])

    assert reviewed_spans(raw, FILE, TEXT, TYPES) == [
        Span(0, 9, "SERVICE"),
        Span(14, 24, "SERVICE"),
        Span(25, 28, "VERSION"),
    ]


def test_an_answer_with_no_spans_says_the_document_has_no_entities() -> None:
    assert reviewed_spans(output([]), FILE, TEXT, TYPES) == []


def test_the_input_text_is_read_from_the_output_also_when_echoed_as_a_string() -> None:
    assert input_text(parse_output(output([], as_string=True), FILE), FILE) == TEXT


def test_three_reviewers_keep_the_spans_two_of_them_marked_and_say_so() -> None:
    # Given three workers (TaskCount 3): all mark 0..9, two mark 14..24, one alone marks 25..28
    raw = output(
        [span("SERVICE", 0, 9), span("SERVICE", 14, 24)],
        [span("SERVICE", 0, 9), span("SERVICE", 14, 24), span("VERSION", 25, 28)],
        [span("SERVICE", 0, 9)],
        times=["2024-05-14T17:05:00.000Z", "2024-05-14T18:00:00.000Z", "2024-05-14T17:30:00+00:00"],
    )

    answer = review_answer(parse_output(raw, FILE), FILE, TEXT, TYPES)

    assert answer.spans == [Span(0, 9, "SERVICE"), Span(14, 24, "SERVICE")]
    assert answer.worker == "worker-0,worker-1,worker-2"
    assert answer.submitted == "2024-05-14T18:00:00.000Z"
    assert any("3 answers from 3 workers" in note for note in answer.notes)
    assert any("VERSION 25..28: marked by 1 of 3 reviewers; dropped" in note for note in answer.notes)


def test_two_reviewers_who_disagree_tie_and_the_output_is_not_taken() -> None:
    raw = output([span("SERVICE", 0, 9)], [span("SERVICE", 0, 9), span("VERSION", 25, 28)])

    with pytest.raises(ReviewersTied) as caught:
        review_answer(parse_output(raw, FILE), FILE, TEXT, TYPES)

    assert caught.value.file == FILE and caught.value.line is None
    assert "VERSION 25..28" in caught.value.reason and "further review" in caught.value.reason


def test_a_bad_span_in_any_reviewer_s_answer_rejects_the_output_naming_the_worker() -> None:
    raw = output([span("SERVICE", 0, 9)], [span("SERVICE", 0, 60)], [span("SERVICE", 0, 9)])

    with pytest.raises(InvalidRecord, match=r"worker-1: span 0 .*outside the text"):
        review_answer(parse_output(raw, FILE), FILE, TEXT, TYPES)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"not json", "not an A2I output file"),
        (json.dumps({"humanLoopName": "x", "inputContent": {"text": TEXT}}).encode(), "no human answers"),
        (json.dumps({"humanAnswers": [], "inputContent": {"text": TEXT}}).encode(), "no human answers"),
        (
            json.dumps({"humanAnswers": [{"answerContent": {"other": {}}}]}).encode(),
            "crowd-entity-annotation",
        ),
        (output([span("SERVICE", 0, 60)]), "outside the text"),
        (output([span("SERVICE", 9, 0)]), "reversed offsets"),
        (output([span("SERVICE", -1, 3)]), "outside the text"),
        (output([span("SERVICE", 0, 9), span("PERSON", 14, 24)]), "label 'PERSON'"),
        (output([{"label": "SERVICE", "startOffset": "0", "endOffset": 9}]), "crowd-entity-annotation"),
    ],
)
def test_a_bad_answer_is_rejected_whole_naming_the_file(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidRecord) as caught:
        reviewed_spans(raw, FILE, TEXT, TYPES)

    assert caught.value.file == FILE
    assert reason in caught.value.reason


def test_white_space_around_a_span_is_trimmed_and_noted() -> None:
    text = "Try  Amazon S3 \n now."
    answer = review_answer(parse_output(output([span("SERVICE", 3, 16)], text=text), FILE), FILE, text, TYPES)

    assert answer.spans == [Span(5, 14, "SERVICE")]
    assert any("trimmed" in note for note in answer.notes)


def test_a_span_of_only_white_space_is_dropped() -> None:
    text = "Amazon S3    launched"
    assert reviewed_spans(output([span("SERVICE", 9, 13)], text=text), FILE, text, TYPES) == []


def test_overlapping_spans_keep_the_longest_and_duplicates_are_dropped() -> None:
    raw = output(
        [
            span("SERVICE", 14, 20),
            span("SERVICE", 14, 24),
            span("VERSION", 21, 28),
            span("SERVICE", 0, 9),
            span("SERVICE", 0, 9),
        ]
    )

    answer = review_answer(parse_output(raw, FILE), FILE, TEXT, TYPES)

    assert answer.spans == [Span(0, 9, "SERVICE"), Span(14, 24, "SERVICE")]
    assert len(answer.notes) == 3


def test_offsets_count_code_points_around_emoji() -> None:
    text = "🎉🎉 Amazon Comprehend 👍 launched"
    begin = text.index("Amazon")

    spans = reviewed_spans(output([span("SERVICE", begin, begin + 17)], text=text), FILE, text, TYPES)

    assert [text[s.begin : s.end] for s in spans] == ["Amazon Comprehend"]
