"""Reading the loop's records from the stack's table and bucket (moto, resources from template.yaml): a review's
model spans, workers and merged answer; what cannot be read is named and left out, never fatal."""

from __future__ import annotations

import json
from typing import Any

import boto3

from nerloop.documents import Span, document_hash
from nerloop.review_consensus import TIED_REASON
from nerloop.state import GoldDocument, Loop, Version
from nerloop_local.report.live_figures import agreement
from nerloop_local.report.loop_records import read_records

TEXT = "Amazon S3 and AWS Lambda 2.0"
LABELS = [{"label": "SERVICE"}, {"label": "VERSION"}]
PREDICTIONS = [{"label": "SERVICE", "startOffset": 0, "endOffset": 9, "score": 0.97},
               {"label": "SERVICE", "startOffset": 14, "endOffset": 24, "score": 0.41},
               {"label": "OTHER", "startOffset": 25, "endOffset": 28, "score": 0.5}]  # not offered: not shown


def answer(worker: str, spans: list[tuple[int, int, str]], minute: int) -> dict[str, Any]:
    return {"answerContent": {"crowd-entity-annotation": {"entities": [
        {"label": label, "startOffset": begin, "endOffset": end} for begin, end, label in spans]}},
        "submissionTime": f"2026-12-04T10:{minute:02d}:00.000Z", "workerId": worker}


def put_output(emulated: Any, loop: str, body: Any) -> None:
    key = f"reviews/nerloop-review/2026/12/04/10/00/00/{loop}/output.json"
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    emulated.s3.put_object(Bucket=emulated.bucket, Key=key, Body=data)


def output(loop: str, answers: list[dict[str, Any]], text: str = TEXT) -> dict[str, Any]:
    return {"flowDefinitionArn": "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review",
            "humanLoopName": loop, "humanAnswers": answers,
            "inputContent": {"document": document_hash(text), "version": "v1", "text": text, "labels": LABELS,
                             "initialValue": [], "predictions": PREDICTIONS}}


def records(emulated: Any) -> Any:
    return read_records(boto3.resource("dynamodb").Table(emulated.table_name), emulated.s3, emulated.bucket)


def test_a_review_holds_the_models_spans_each_worker_and_the_merged_answer(emulated) -> None:
    doc = document_hash(TEXT)
    emulated.state.loops.put(Loop("v1-a", doc, "v1", "InProgress"))
    emulated.state.loops.finish("v1-a", "Completed")
    put_output(emulated, "v1-a", output("v1-a", [answer("alice", [(0, 9, "SERVICE")], 1),
                                                 answer("bob", [(0, 9, "SERVICE"), (25, 28, "VERSION")], 2)]))
    emulated.state.gold.put(GoldDocument(doc, TEXT, [Span(0, 9, "SERVICE")], origin="review:v1-a"))

    [review] = records(emulated).reviews

    assert [(s.begin, s.end, s.type, s.score) for s in review.model] == [(0, 9, "SERVICE", 0.97),
                                                                         (14, 24, "SERVICE", 0.41)]
    assert [(a.worker, len(a.spans)) for a in review.answers] == [("alice", 1), ("bob", 2)]
    assert review.consolidated == (Span(0, 9, "SERVICE"),)  # what the merge wrote to the gold set
    assert review.started is not None and review.finished is not None and review.finished >= review.started


def test_a_document_labelled_again_since_is_read_with_the_merges_own_reading_of_the_answer(emulated) -> None:
    doc = document_hash(TEXT)
    emulated.state.loops.put(Loop("v1-b", doc, "v1", "InProgress"))
    emulated.state.loops.finish("v1-b", "Completed")
    put_output(emulated, "v1-b", output("v1-b", [answer("alice", [(14, 24, "SERVICE")], 1)]))
    emulated.state.gold.put(GoldDocument(doc, TEXT, [], origin="labeling:later-job"))

    [review] = records(emulated).reviews

    assert review.consolidated == (Span(14, 24, "SERVICE"),)


def test_what_cannot_be_read_is_named_and_left_out(emulated) -> None:
    for name in ("v1-missing", "v1-broken", "v1-badworker", "v1-failed"):
        emulated.state.loops.put(Loop(name, document_hash(TEXT), "v1", "InProgress"))
    for name in ("v1-missing", "v1-broken", "v1-badworker"):
        emulated.state.loops.finish(name, "Completed")
    emulated.state.loops.finish("v1-failed", "Failed", "Expired: nobody took it")
    put_output(emulated, "v1-broken", b"{not json")
    put_output(emulated, "v1-badworker", output("v1-badworker", [answer("alice", [(0, 9, "SERVICE")], 1),
                                                                 answer("mallory", [(0, 9, "PERSON")], 2)]))
    # Which answer the merge took is its rule's business: the gold set says what it wrote.
    emulated.state.gold.put(GoldDocument(document_hash(TEXT), TEXT, [Span(0, 9, "SERVICE")], "review:v1-badworker"))

    found = records(emulated)

    assert [review.loop for review in found.reviews] == ["v1-badworker"], found.problems
    assert [a.worker for a in found.reviews[0].answers] == ["alice"]
    problems = "\n".join(found.problems)
    assert "human loop v1-missing: Completed, but no output.json" in problems
    assert "v1-broken/output.json:1: not an A2I output file: invalid JSON" in problems
    assert "label 'PERSON' is not one of" in problems and "(worker mallory; left out)" in problems
    assert len(found.problems) == 3
    assert {loop.name: loop.status for loop in found.loops}["v1-failed"] == "Failed"


def test_a_versions_snapshot_counts_the_reviews_merged_before_it(emulated) -> None:
    reviewed, seed = "Amazon S3 and AWS Lambda 2.0", "Amazon EC2 adds a type"
    emulated.state.loops.put(Loop("v1-c", document_hash(reviewed), "v1", "InProgress"))
    emulated.state.loops.finish("v1-c", "Completed")
    emulated.s3.put_object(Bucket=emulated.bucket, Key="training/v2/documents.txt",
                           Body=f"{seed}\n{reviewed}\n".encode())
    emulated.state.versions.put(Version("v2", "TRAINED", snapshot="training/v2/", created_at="2999-01-01T00:00:00Z"))
    emulated.state.versions.put(Version("v3", "SUBMITTED", snapshot="training/v3/"))  # its file is gone
    emulated.state.versions.activate("v2", 0.9)

    versions = {entry.version.version: entry for entry in records(emulated).versions}

    assert versions["v2"].reviews_trained_on == 1 and versions["v2"].active
    assert versions["v3"].reviews_trained_on is None


def test_reviewers_who_tied_count_for_agreement_but_not_for_what_was_done_to_the_model(emulated) -> None:
    # Given a loop two workers answered differently: the merge stage found them tied and recorded it Failed
    doc = document_hash(TEXT)
    emulated.state.loops.put(Loop("v1-tie", doc, "v1", "InProgress"))
    emulated.state.loops.finish("v1-tie", "Failed", f"invalid answer: {TIED_REASON}: 2 answers, ...")
    put_output(emulated, "v1-tie", output("v1-tie", [answer("alice", [(0, 9, "SERVICE")], 1),
                                                     answer("bob", [(14, 24, "SERVICE")], 2)]))

    found = records(emulated)

    # Then its answers are read for agreement, nothing of it counts as a review of the model's spans
    assert found.reviews == [] and [review.loop for review in found.tied] == ["v1-tie"]
    assert found.tied[0].consolidated == ()
    measured = agreement(found, ["SERVICE", "VERSION"])
    assert measured.documents == 1 and measured.overall == 0.0
    assert [d.review.loop for d in measured.worst] == ["v1-tie"]
