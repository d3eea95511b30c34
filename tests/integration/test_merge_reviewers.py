"""Stage 7 — merge with several reviewers per document (the flow definition's TaskCount): A2I's
output.json lists one answer per worker, and the merge stage keeps what a majority marked."""

from __future__ import annotations

import copy
import json
from typing import Any

from nerloop import settings as nerloop_settings
from nerloop.a2i import loop_name
from nerloop.documents import Span, document_hash
from nerloop.retrain import REVIEWS
from nerloop.state import GOLD, IN_REVIEW, WAITING, Loop
from nerloop_local.emulator.stack import load_event

VERSION = "v1"
TEXT = "Amazon Comprehend 2.0 and AWS Lambda now support Spanish documents."
COMPLETED = load_event("merge")
SAMPLE_NAME = COMPLETED["detail"]["humanLoopName"]
NAME = loop_name(document_hash(TEXT), VERSION)
COMPREHEND, LAMBDA, VERSION_SPAN = ("Amazon Comprehend", "SERVICE"), ("AWS Lambda", "SERVICE"), ("2.0", "VERSION")


def worker_answer(worker: str, entities: list[tuple[str, str]], minute: int) -> dict[str, Any]:
    spans = [{"label": label, "startOffset": TEXT.index(part), "endOffset": TEXT.index(part) + len(part)}
             for part, label in entities]
    return {"acceptanceTime": "2026-12-05T08:00:00.000Z",
            "answerContent": {"crowd-entity-annotation": {"entities": spans}},
            "submissionTime": f"2026-12-05T08:{minute:02d}:00.000Z", "timeSpentInSeconds": 60.0,
            "workerId": worker,
            "workerMetadata": {"identityData": {"identityProviderType": "Cognito", "issuer": "https://x",
                                                "sub": f"sub-{worker}"}}}


def given_reviewed_by(emulated: Any, *answers: dict[str, Any]) -> dict[str, Any]:
    """A loop in review whose output.json holds `answers` (one per worker, as A2I writes them)."""
    event = copy.deepcopy(COMPLETED)
    detail = event["detail"]
    for field in ("humanLoopName", "humanLoopArn"):
        detail[field] = detail[field].replace(SAMPLE_NAME, NAME)
    detail["humanLoopOutput"]["outputS3Uri"] = detail["humanLoopOutput"]["outputS3Uri"].replace(SAMPLE_NAME, NAME)
    event["resources"] = [detail["humanLoopArn"]]
    doc = document_hash(TEXT)
    emulated.state.pool.add(doc, TEXT, "batch-1")
    emulated.state.loops.put(Loop(NAME, doc, VERSION, "InProgress"))
    emulated.state.pool.mark(doc, IN_REVIEW, loop=NAME, seen_by=VERSION)
    output = {"flowDefinitionArn": detail["flowDefinitionArn"], "humanLoopName": NAME, "humanAnswers": list(answers),
              "inputContent": {"document": doc, "version": VERSION, "text": TEXT,
                               "labels": [{"label": "SERVICE"}, {"label": "VERSION"}]}}
    key = detail["humanLoopOutput"]["outputS3Uri"].split("/", 3)[3]
    emulated.s3.put_object(Bucket=emulated.bucket, Key=key, Body=json.dumps(output).encode())
    return event


def merge(emulated: Any, lambda_context: Any, event: dict[str, Any]) -> dict[str, Any]:
    emulated.use_environment("MergeFunction")
    nerloop_settings.get_settings.cache_clear()
    return emulated.stack.load_handler("MergeFunction")(event, lambda_context)  # type: ignore[no-any-return]


def spans_of(*entities: tuple[str, str]) -> list[Span]:
    return sorted(Span(TEXT.index(part), TEXT.index(part) + len(part), label) for part, label in entities)


def test_three_reviewers_two_of_whom_agree_give_the_majority_s_spans(emulated: Any, lambda_context: Any) -> None:
    # Given three workers: all mark Amazon Comprehend; two mark AWS Lambda; one marks 2.0 alone
    event = given_reviewed_by(emulated,
                              worker_answer("w1", [COMPREHEND, LAMBDA], 1),
                              worker_answer("w2", [COMPREHEND, VERSION_SPAN], 2),
                              worker_answer("w3", [COMPREHEND, LAMBDA], 3))

    result = merge(emulated, lambda_context, event)

    gold = emulated.state.gold.get(document_hash(TEXT))
    assert gold is not None and gold.spans == spans_of(COMPREHEND, LAMBDA)
    assert (result["merged"], result["worker"], result["reviews"]) == (True, "w1,w2,w3", 1)
    assert emulated.state.counters.get(REVIEWS) == 1  # one document reviewed, however many reviewers
    notes = emulated.s3.get_object(Bucket=emulated.bucket, Key=f"quarantine/merge/{NAME}.jsonl")["Body"].read()
    assert b"VERSION 18..21: marked by 1 of 3 reviewers; dropped" in notes


def test_two_reviewers_who_disagree_send_the_document_to_a_further_review(emulated: Any, lambda_context: Any) -> None:
    event = given_reviewed_by(emulated, worker_answer("w1", [COMPREHEND, LAMBDA], 1),
                              worker_answer("w2", [COMPREHEND], 2))

    result = merge(emulated, lambda_context, event)
    again = merge(emulated, lambda_context, event)  # every event may arrive twice

    doc = document_hash(TEXT)
    assert result["merged"] is False and again == result
    loop = emulated.state.loops.get(NAME)
    assert loop.status == "Failed" and "reviewers tied" in loop.failure and "SERVICE 26..36" in loop.failure
    assert emulated.state.pool.get(doc).status == WAITING  # a later version routes it again
    assert emulated.state.gold.get(doc) is None
    assert emulated.state.counters.get(REVIEWS) == 0


def test_two_reviewers_who_agree_are_merged(emulated: Any, lambda_context: Any) -> None:
    event = given_reviewed_by(emulated, worker_answer("w1", [LAMBDA, COMPREHEND], 1),
                              worker_answer("w2", [COMPREHEND, LAMBDA], 2))

    merge(emulated, lambda_context, event)

    assert emulated.state.gold.get(document_hash(TEXT)).spans == spans_of(COMPREHEND, LAMBDA)
    assert emulated.state.pool.get(document_hash(TEXT)).status == GOLD
