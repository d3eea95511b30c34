"""The stable test set and the gate, under moto: snapshots split by document hash, a version's evaluation
job's output scored and judged against the active version, then the pool detected by the active one."""

from __future__ import annotations

import io
import json
import tarfile

import boto3
import pytest
from botocore.stub import ANY, Stubber

from nerloop.documents import Span, document_hash
from nerloop.evaluation import record_pending, record_scored, save_results
from nerloop.gate import score_document
from nerloop.snapshots import snapshot_test_keys, write_snapshot
from nerloop.state import GoldDocument, Version
from nerloop.test_set import gold_fingerprint, is_test_document

ARN = "arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/nerloop/version/{}"


def texts(start: int, stop: int) -> list[str]:
    return [f"Amazon S3 release {n} is out." for n in range(start, stop)]


def add_gold(emulated, documents: list[str], label: str = "SERVICE") -> None:
    for text in documents:
        emulated.state.gold.put(GoldDocument(document_hash(text), text, [Span(0, 9, label)], origin="review:x"))


def lines_of(emulated, key: str) -> list[str]:
    return emulated.s3.get_object(Bucket=emulated.bucket, Key=key)["Body"].read().decode().splitlines()


# --- the split in the snapshots -------------------------------------------------------------------


def test_a_document_never_moves_between_train_and_test_as_the_gold_set_grows(emulated):
    # Given a gold set of 60 documents, snapshotted; then 140 more and a review that relabels one
    add_gold(emulated, texts(0, 60))
    first = write_snapshot(emulated.state, emulated.s3, emulated.bucket, "v1", test_share=0.2)
    add_gold(emulated, texts(60, 200))
    add_gold(emulated, texts(0, 1), label="VERSION")  # relabelled by a review: same text, new labels
    second = write_snapshot(emulated.state, emulated.s3, emulated.bucket, "v2", test_share=0.2)

    train_1, train_2 = set(lines_of(emulated, first.documents_key)), set(lines_of(emulated, second.documents_key))
    test_1 = set(lines_of(emulated, snapshot_test_keys("v1")[0]))
    test_2 = set(lines_of(emulated, snapshot_test_keys("v2")[0]))

    # Then each side only grew, the sides never share a document, and the side is the hash's
    assert train_1 <= train_2 and test_1 <= test_2
    assert not train_2 & test_2 and len(train_2 | test_2) == 200
    assert all(is_test_document(document_hash(text), 0.2) for text in test_2)
    assert (first.test.documents, second.test.documents) == (len(test_1), len(test_2)) and len(test_2) > len(test_1)
    assert lines_of(emulated, snapshot_test_keys("v2")[1])[0] == "File,Line,Begin Offset,End Offset,Type"
    assert all(row.startswith("test-documents.txt,") for row in lines_of(emulated, snapshot_test_keys("v2")[1])[1:])


# --- the gate's evaluation ------------------------------------------------------------------------


@pytest.fixture
def comprehend(emulated):
    client = boto3.client("comprehend")
    stubber = Stubber(client)
    emulated.override_client("comprehend", client)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def archive(records: list[dict]) -> bytes:
    content = ("\n".join(json.dumps(record) for record in records) + "\n").encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("output")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def given_v2_evaluated_against_active_v1(emulated, event, v2_finds_services: bool) -> dict:
    """v1 active and scored right on 12 test documents; v2 trained, waiting for the gate; v2's evaluation
    output (entities found, or none); one pool document waiting. Returns the evaluation's event."""
    state = emulated.state
    test_texts = texts(0, 12)
    for version in ("v1", "v2"):
        state.versions.put(Version(version, "TRAINED", arn=ARN.format(version), metrics={"f1": 0.9}))
    state.versions.activate("v1", 0.9)
    gold = [Span(0, 9, "SERVICE")]
    save_results(emulated.s3, emulated.bucket, "v1", {
        document_hash(text): score_document(gold, gold, gold_fingerprint(gold)) for text in test_texts})
    record_scored(state, "v1", len(test_texts))
    record_pending(state, "v2")
    documents_key, annotations_key = snapshot_test_keys("v2")
    emulated.s3.put_object(Bucket=emulated.bucket, Key=documents_key, Body="".join(t + "\n" for t in test_texts))
    emulated.s3.put_object(Bucket=emulated.bucket, Key=annotations_key, Body="File,Line,Begin Offset,End Offset,Type\n"
                           + "".join(f"test-documents.txt,{n},0,9,SERVICE\n" for n in range(12)))
    found = [{"BeginOffset": 0, "EndOffset": 9, "Score": 0.9, "Text": "Amazon S3", "Type": "SERVICE"}]
    output_key = "evaluation/output/123456789012-NER-eval-1/output/output.tar.gz"
    emulated.s3.put_object(Bucket=emulated.bucket, Key=output_key, Body=archive([
        {"File": "test-documents.txt", "Line": n, "Entities": found if v2_finds_services else []} for n in range(12)]))
    state.pool.add(document_hash("AWS Lambda 2.0 is out."), "AWS Lambda 2.0 is out.", batch="b")
    evaluated = event("detect-evaluated")
    evaluated["detail"].update(versionName="v2", outputS3Uri=f"s3://{emulated.bucket}/{output_key}")
    return evaluated


def expect_pool_detection_with(comprehend, emulated, version: str) -> None:
    comprehend.add_response(
        "start_entities_detection_job", {"JobId": "job-9", "JobStatus": "SUBMITTED"},
        {"JobName": ANY, "EntityRecognizerArn": ARN.format(version), "LanguageCode": "en", "DataAccessRoleArn": ANY,
         "InputDataConfig": {"S3Uri": ANY, "InputFormat": "ONE_DOC_PER_LINE"},
         "OutputDataConfig": {"S3Uri": f"s3://{emulated.bucket}/detection/output/"}, "ClientRequestToken": ANY})


def test_a_version_worse_on_the_shared_test_set_stays_inactive(emulated, event, lambda_context, comprehend):
    # Given v2 finding none of the 12 test entities v1 finds
    evaluated = given_v2_evaluated_against_active_v1(emulated, event, v2_finds_services=False)
    expect_pool_detection_with(comprehend, emulated, "v1")

    # When its evaluation job's end arrives (twice: the second is a redelivery)
    handler = emulated.handler("DetectFunction")
    result = handler(evaluated, lambda_context)
    assert handler(evaluated, lambda_context) == result

    # Then v1 stays active and detects the pool; v2's results and the decision are kept
    assert (result["activated"], result["scored_documents"], result["detection_job"]) == (False, 12, "job-9")
    assert emulated.state.versions.active()[0] == "v1"
    gate = emulated.state.versions.get("v2").metrics["gate"]
    assert gate["status"] == "KEPT_INACTIVE" and (gate["worse_documents"], gate["better_documents"]) == (12, 0)
    assert emulated.state.versions.get("v2").metrics["test_results"]["documents"] == 12
    assert emulated.state.jobs.get("job-9").version == "v1"


def test_a_version_as_good_on_the_shared_test_set_is_activated(emulated, event, lambda_context, comprehend):
    evaluated = given_v2_evaluated_against_active_v1(emulated, event, v2_finds_services=True)
    expect_pool_detection_with(comprehend, emulated, "v2")

    result = emulated.handler("DetectFunction")(evaluated, lambda_context)

    assert result["activated"] and emulated.state.versions.active()[0] == "v2"
    assert emulated.state.versions.get("v2").metrics["gate"]["reason"] == "not worse on the shared test documents"


def test_a_decision_whose_detection_failed_to_start_is_made_again_on_the_retry(emulated, event, lambda_context,
                                                                               comprehend):
    # Given v2's evaluation done, and Comprehend failing the pool's detection start once
    evaluated = given_v2_evaluated_against_active_v1(emulated, event, v2_finds_services=False)
    comprehend.add_client_error("start_entities_detection_job", service_error_code="InternalServerException",
                                http_status_code=500)
    expect_pool_detection_with(comprehend, emulated, "v1")
    handler = emulated.handler("DetectFunction")

    # When the first delivery fails and the event is delivered again
    with pytest.raises(Exception, match="InternalServerException"):
        handler(evaluated, lambda_context)
    assert emulated.state.versions.get("v2").metrics["gate"]["status"] == "PENDING"  # nothing recorded yet
    result = handler(evaluated, lambda_context)

    # Then the retry decides again and starts the pool's detection
    assert (result["activated"], result["detection_job"]) == (False, "job-9")
    assert emulated.state.versions.get("v2").metrics["gate"]["status"] == "KEPT_INACTIVE"
