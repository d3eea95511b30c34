"""Stage 3 — train: from the sample snapshot event to CreateEntityRecognizer and the state table."""

from __future__ import annotations

import json

import boto3

from nerloop.comprehend_training import write_training_files
from nerloop.documents import Span


def put_snapshot(emulated, version: str, documents: list[tuple[str, list[Span]]]) -> None:
    import io

    docs, notes = io.StringIO(), io.StringIO()
    write_training_files(documents, docs, notes, documents_file_name="documents.txt")
    emulated.s3.put_object(Bucket=emulated.bucket, Key=f"training/{version}/documents.txt", Body=docs.getvalue())
    emulated.s3.put_object(Bucket=emulated.bucket, Key=f"training/{version}/annotations.csv", Body=notes.getvalue())


def enough_documents(count: int = 30) -> list[tuple[str, list[Span]]]:
    # Each document carries a tail of plain words so the corpus passes Comprehend's 5 KB minimum.
    tail = " It ships in more regions, with lower prices and a longer free tier for everyone." * 2
    return [(f"Amazon Service{i} adds version {i}.0 today" + tail,
             [Span(0, 6 + 1 + len(f"Service{i}"), "SERVICE"),
              Span(8 + len(f"Service{i}") + 13, 8 + len(f"Service{i}") + 13 + len(f"{i}.0"), "VERSION")])
            for i in range(count)]


def test_a_valid_snapshot_starts_training_once(emulated, event, lambda_context):
    # Given a snapshot with 30 documents and 30 annotations of each type
    put_snapshot(emulated, "v1", enough_documents())
    handler = emulated.handler("TrainFunction")

    # When its annotations CSV event arrives twice
    first = handler(event("train"), lambda_context)
    second = handler(event("train"), lambda_context)

    # Then one recognizer version is created and recorded
    assert first["status"] == "SUBMITTED" and second == first
    recognizers = boto3.client("comprehend").list_entity_recognizers()["EntityRecognizerPropertiesList"]
    assert [r["VersionName"] for r in recognizers] == ["v1"]
    assert recognizers[0]["InputDataConfig"]["Annotations"]["S3Uri"].endswith("training/v1/annotations.csv")
    version = emulated.state.versions.get("v1")
    assert version is not None and version.status == "SUBMITTED" and version.arn == first["arn"]
    assert emulated.state.training_lock.holder() == "v1"


def test_a_short_snapshot_is_reported_not_trained(emulated, event, lambda_context):
    put_snapshot(emulated, "v1", enough_documents(10))
    result = emulated.handler("TrainFunction")(event("train"), lambda_context)

    assert result["status"] == "REJECTED"
    assert any("SERVICE: 10 annotations" in problem and "15 short" in problem for problem in result["problems"])
    report = json.loads(emulated.s3.get_object(Bucket=emulated.bucket, Key=result["report"])["Body"].read())
    assert report["problems"] == result["problems"]
    assert boto3.client("comprehend").list_entity_recognizers()["EntityRecognizerPropertiesList"] == []
    assert emulated.state.versions.get("v1").status == "REJECTED"
    assert emulated.state.training_lock.holder() is None


def test_annotations_outside_their_document_are_named_by_row(emulated, event, lambda_context):
    docs = enough_documents()
    put_snapshot(emulated, "v1", docs)
    body = emulated.s3.get_object(Bucket=emulated.bucket, Key="training/v1/annotations.csv")["Body"].read().decode()
    body += "documents.txt,2,0,500,SERVICE\ndocuments.txt,99,0,3,SERVICE\n"
    emulated.s3.put_object(Bucket=emulated.bucket, Key="training/v1/annotations.csv", Body=body)

    result = emulated.handler("TrainFunction")(event("train"), lambda_context)

    assert result["status"] == "REJECTED"
    rows = body.count("\n")
    assert f"training/v1/annotations.csv:{rows - 1}: offsets 0-500 are outside line 2" in result["problems"][0]
    assert f"training/v1/annotations.csv:{rows}: Line 99 is outside the documents file (30 lines)" in (
        result["problems"][1])
