"""Stage 7 — merge, from events/merge.json and events/merge-failed.json to the gold set and counters."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from nerloop import settings as nerloop_settings
from nerloop.a2i import loop_name
from nerloop.documents import Span, document_hash
from nerloop.errors import UnknownJob
from nerloop.retrain import REVIEWS
from nerloop.state import GOLD, IN_REVIEW, WAITING, GoldDocument, Loop
from nerloop_local.emulator.stack import load_event

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review"
VERSION = "v1"
TEXT = "Amazon Comprehend custom entity recognition now supports Spanish documents."
OTHER_TEXT = "AWS Lambda 2.0 adds response streaming."
COMPLETED = load_event("merge")
FAILED = load_event("merge-failed")
NAME = COMPLETED["detail"]["humanLoopName"]


def event_for(text: str, status_event: dict[str, Any] = COMPLETED) -> dict[str, Any]:
    """The sample event, renamed for the loop reviewing `text`."""
    name = loop_name(document_hash(text), VERSION)
    event = copy.deepcopy(status_event)
    detail = event["detail"]
    for field in ("humanLoopName", "humanLoopArn"):
        detail[field] = detail[field].replace(NAME, name)
    if detail["humanLoopOutput"]:  # a failed loop has no output
        detail["humanLoopOutput"]["outputS3Uri"] = detail["humanLoopOutput"]["outputS3Uri"].replace(NAME, name)
    event["resources"] = [detail["humanLoopArn"]]
    return event


def answer(text: str, entities: list[tuple[str, str]], name: str) -> bytes:
    spans = []
    for part, label in entities:
        begin = text.index(part)
        spans.append({"label": label, "startOffset": begin, "endOffset": begin + len(part)})
    return json.dumps(
        {
            "flowDefinitionArn": FLOW,
            "humanLoopName": name,
            "humanAnswers": [
                {
                    "acceptanceTime": "2026-11-28T09:30:02.113Z",
                    "answerContent": {"crowd-entity-annotation": {"entities": spans}},
                    "submissionTime": "2026-11-28T09:40:58.870Z",
                    "timeSpentInSeconds": 656.757,
                    "workerId": "a1b2c3d4e5f6a7b8",
                    "workerMetadata": {
                        "identityData": {
                            "identityProviderType": "Cognito",
                            "issuer": "https://x",
                            "sub": "c0ffee00-0000-4000-8000-000000000001",
                        }
                    },
                }
            ],
            "inputContent": {
                "document": document_hash(text),
                "version": VERSION,
                "text": text,
                "labels": [{"label": "SERVICE"}, {"label": "VERSION"}],
            },
        }
    ).encode("utf-8")


def given_a_loop_in_review(
    emulated: Any, text: str, entities: list[tuple[str, str]] | None = None, output: bytes | None = None
) -> dict[str, Any]:
    """A pool document in review, its LOOP item, and the reviewer's output.json where the event says."""
    event = event_for(text)
    name = event["detail"]["humanLoopName"]
    doc = document_hash(text)
    state = emulated.state
    state.pool.add(doc, text, "batch-1")
    state.loops.put(Loop(name, doc, VERSION, "InProgress"))
    state.pool.mark(doc, IN_REVIEW, loop=name, seen_by=VERSION)
    key = event["detail"]["humanLoopOutput"]["outputS3Uri"].split("/", 3)[3]
    body = output if output is not None else answer(text, entities or [], name)
    emulated.s3.put_object(Bucket=emulated.bucket, Key=key, Body=body)
    return event


def merge(emulated: Any, lambda_context: Any, event: dict[str, Any], **environment: str) -> dict[str, Any]:
    emulated.use_environment("MergeFunction")
    for name, value in environment.items():
        emulated.monkeypatch.setenv(name, value)
    nerloop_settings.get_settings.cache_clear()
    return emulated.stack.load_handler("MergeFunction")(event, lambda_context)  # type: ignore[no-any-return]


def training_keys(emulated: Any) -> list[str]:
    listing = emulated.s3.list_objects_v2(Bucket=emulated.bucket, Prefix="training/")
    # The training files only: a snapshot's test files (nerloop.test_set) come and go with its gold set.
    return sorted(item["Key"] for item in listing.get("Contents", []) if "/test-" not in item["Key"])


def test_the_sample_events_name_the_loop_of_their_document() -> None:
    assert event_for(TEXT) == COMPLETED
    assert event_for(TEXT, FAILED) == FAILED


def test_a_completed_review_becomes_the_documents_gold_labels(emulated: Any, lambda_context: Any) -> None:
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])

    result = merge(emulated, lambda_context, event)

    gold = emulated.state.gold.get(document_hash(TEXT))
    assert gold is not None
    assert (gold.text, gold.spans, gold.origin) == (TEXT, [Span(0, 17, "SERVICE")], f"review:{NAME}")
    assert emulated.state.pool.get(document_hash(TEXT)).status == GOLD
    assert emulated.state.loops.get(NAME).status == "Completed"
    assert (result["merged"], result["spans"], result["reviews"]) == (True, 1, 1)


def test_a_review_replaces_earlier_labels_of_the_document(emulated: Any, lambda_context: Any) -> None:
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    emulated.state.gold.put(
        GoldDocument(document_hash(TEXT), TEXT, [Span(0, 6, "SERVICE")], "labeling:job-1")
    )

    merge(emulated, lambda_context, event)

    gold = emulated.state.gold.get(document_hash(TEXT))
    assert gold is not None and (gold.spans, gold.origin) == ([Span(0, 17, "SERVICE")], f"review:{NAME}")


def test_each_review_is_counted_once(emulated: Any, lambda_context: Any) -> None:
    first = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    second = given_a_loop_in_review(emulated, OTHER_TEXT, [("AWS Lambda", "SERVICE"), ("2.0", "VERSION")])

    merge(emulated, lambda_context, first)
    merge(emulated, lambda_context, second)

    assert emulated.state.counters.get(REVIEWS) == 2


def test_a_redelivered_completion_merges_nothing_twice(emulated: Any, lambda_context: Any) -> None:
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    first = merge(emulated, lambda_context, event)

    second = merge(emulated, lambda_context, event)

    assert second == first
    assert emulated.state.counters.get(REVIEWS) == 1


def test_a_completion_redelivered_after_the_idempotency_record_is_gone_changes_nothing(
    emulated: Any, lambda_context: Any
) -> None:
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    merge(emulated, lambda_context, event)
    for item in emulated.state.table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "IDEMPOTENCY"}
    )["Items"]:
        emulated.state.table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})

    result = merge(emulated, lambda_context, event)

    assert (result["merged"], result["already_finished"]) == (False, "Completed")
    assert emulated.state.counters.get(REVIEWS) == 1


def test_a_full_batch_writes_one_training_snapshot(emulated: Any, lambda_context: Any) -> None:
    events = [
        given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")]),
        given_a_loop_in_review(emulated, OTHER_TEXT, [("AWS Lambda", "SERVICE"), ("2.0", "VERSION")]),
    ]

    results = [merge(emulated, lambda_context, event, RETRAIN_BATCH_SIZE="2") for event in events]
    for event in events:  # every event delivered twice
        merge(emulated, lambda_context, event, RETRAIN_BATCH_SIZE="2")

    assert [r["snapshot"] for r in results] == [None, "v1"]
    assert training_keys(emulated) == ["training/v1/annotations.csv", "training/v1/documents.txt"]
    documents = emulated.s3.get_object(Bucket=emulated.bucket, Key="training/v1/documents.txt")["Body"].read()
    assert sorted(documents.decode().splitlines()) == sorted([TEXT, OTHER_TEXT])


def test_a_failed_loop_sends_the_document_back_to_waiting(emulated: Any, lambda_context: Any) -> None:
    given_a_loop_in_review(emulated, TEXT)

    result = merge(emulated, lambda_context, FAILED)

    loop = emulated.state.loops.get(NAME)
    assert (loop.status, loop.failure) == (
        "Failed",
        "Expired: The human loop expired before a worker completed the task.",
    )
    pool = emulated.state.pool.get(document_hash(TEXT))
    assert (pool.status, pool.loop) == (WAITING, "")
    assert emulated.state.gold.get(document_hash(TEXT)) is None
    assert (result["merged"], result["requeued"]) == (False, True)


def test_a_stopped_loop_is_recorded_stopped(emulated: Any, lambda_context: Any) -> None:
    given_a_loop_in_review(emulated, TEXT)
    event = copy.deepcopy(FAILED)
    event["detail"].update(humanLoopStatus="Stopped", failureCode=None, failureReason=None)

    merge(emulated, lambda_context, event)

    assert emulated.state.loops.get(NAME).status == "Stopped"
    assert emulated.state.pool.get(document_hash(TEXT)).status == WAITING


def test_a_redelivered_failure_changes_nothing(emulated: Any, lambda_context: Any) -> None:
    given_a_loop_in_review(emulated, TEXT)
    first = merge(emulated, lambda_context, FAILED)

    second = merge(emulated, lambda_context, FAILED)

    assert second == first


def test_an_answer_with_an_unknown_label_is_quarantined_and_the_loop_failed(
    emulated: Any, lambda_context: Any
) -> None:
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "PRODUCT")])

    result = merge(emulated, lambda_context, event)

    assert result["merged"] is False
    loop = emulated.state.loops.get(NAME)
    assert loop.status == "Failed" and "PRODUCT" in loop.failure
    assert emulated.state.pool.get(document_hash(TEXT)).status == WAITING
    assert emulated.state.gold.get(document_hash(TEXT)) is None
    assert emulated.state.counters.get(REVIEWS) == 0
    report = emulated.s3.get_object(Bucket=emulated.bucket, Key=f"quarantine/merge/{NAME}.jsonl")
    row = json.loads(report["Body"].read().decode().splitlines()[0])
    assert row["file"] == COMPLETED["detail"]["humanLoopOutput"]["outputS3Uri"] and "PRODUCT" in row["reason"]


def test_an_answer_about_another_text_is_rejected(emulated: Any, lambda_context: Any) -> None:
    name = COMPLETED["detail"]["humanLoopName"]
    event = given_a_loop_in_review(
        emulated, TEXT, output=answer(OTHER_TEXT, [("AWS Lambda", "SERVICE")], name)
    )

    result = merge(emulated, lambda_context, event)

    assert result["merged"] is False
    assert "not document" in emulated.state.loops.get(NAME).failure
    assert emulated.state.gold.get(document_hash(TEXT)) is None


def test_an_unknown_loop_is_refused(emulated: Any, lambda_context: Any) -> None:
    with pytest.raises(UnknownJob, match=NAME):
        merge(emulated, lambda_context, COMPLETED)


def test_the_last_open_loop_failing_starts_a_retrain_of_the_reviews_pending(emulated: Any, lambda_context: Any) -> None:
    # Given two loops of one routing, far fewer than a batch (RetrainBatchSize 25): one is answered
    answered = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    given_a_loop_in_review(emulated, OTHER_TEXT)
    first = merge(emulated, lambda_context, answered)
    assert first["snapshot"] is None  # a loop is still open: more reviews may come

    # When the other one expires (its event delivered twice)
    expired = event_for(OTHER_TEXT, FAILED)
    results = [merge(emulated, lambda_context, expired) for _ in range(2)]

    # Then the one review pending is trained on, once
    assert [r["snapshot"] for r in results] == ["v1", "v1"]
    assert training_keys(emulated) == ["training/v1/annotations.csv", "training/v1/documents.txt"]
    documents = emulated.s3.get_object(Bucket=emulated.bucket, Key="training/v1/documents.txt")["Body"].read()
    assert documents.decode().splitlines() == [TEXT]
    assert emulated.state.training_lock.holder() == "v1"


def test_a_failure_redelivered_after_its_record_expired_starts_nothing_more(emulated: Any, lambda_context: Any) -> None:
    given_a_loop_in_review(emulated, TEXT)
    answered = given_a_loop_in_review(emulated, OTHER_TEXT, [("AWS Lambda", "SERVICE")])
    merge(emulated, lambda_context, answered)
    assert merge(emulated, lambda_context, FAILED)["snapshot"] == "v1"
    for item in emulated.state.table.query(
        KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "IDEMPOTENCY"}
    )["Items"]:
        emulated.state.table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})

    again = merge(emulated, lambda_context, FAILED)

    assert (again["already_finished"], again["snapshot"]) == ("Failed", None)
    assert training_keys(emulated) == ["training/v1/annotations.csv", "training/v1/documents.txt"]


def test_a_failed_last_loop_with_no_review_pending_starts_nothing(emulated: Any, lambda_context: Any) -> None:
    given_a_loop_in_review(emulated, TEXT)

    assert merge(emulated, lambda_context, FAILED)["snapshot"] is None
    assert training_keys(emulated) == []
