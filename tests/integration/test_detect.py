"""Stage 5 — detect: a version's TRAINED / IN_ERROR event → metrics, activation, detection job."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from nerloop.documents import document_hash
from nerloop.state import Version

ARN = "arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/nerloop/version/{}"


def metadata(f1: float) -> dict:
    # Comprehend reports plain-text metrics on a 0-100 scale.
    return {
        "NumberOfTrainedDocuments": 90, "NumberOfTestDocuments": 10,
        "EvaluationMetrics": {"Precision": f1 * 100, "Recall": f1 * 100, "F1Score": f1 * 100},
        "EntityTypes": [
            {"Type": "SERVICE", "EvaluationMetrics": {"Precision": 95.0, "Recall": 90.0, "F1Score": 92.4},
             "NumberOfTrainMentions": 300},
            {"Type": "VERSION", "EvaluationMetrics": {"Precision": 80.0, "Recall": 70.0, "F1Score": 74.7},
             "NumberOfTrainMentions": 280},
        ],
    }


@pytest.fixture
def comprehend(emulated):
    client = boto3.client("comprehend")
    stubber = Stubber(client)
    emulated.override_client("comprehend", client)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


def expect_describe(comprehend, version: str, f1: float, **properties: object) -> None:
    comprehend.add_response(
        "describe_entity_recognizer",
        {"EntityRecognizerProperties": {"EntityRecognizerArn": ARN.format(version), "Status": "TRAINED",
                                        "RecognizerMetadata": metadata(f1), **properties}},
        {"EntityRecognizerArn": ARN.format(version)},
    )


def seed_pool(emulated, texts: list[str]) -> None:
    from nerloop.documents import document_hash

    for text in texts:
        emulated.state.pool.add(document_hash(text), text, batch="sample")


def test_trained_version_becomes_active_and_detects_waiting_documents(emulated, event, lambda_context, comprehend):
    # Given a submitted v1 and three documents waiting
    emulated.state.versions.put(Version("v1", "TRAINING", arn=ARN.format("v1")))
    emulated.state.training_lock.acquire("v1")
    seed_pool(emulated, ["Amazon S3 adds a feature.", "AWS Lambda 2.0 is out.", "Nothing here."])
    expect_describe(comprehend, "v1", 0.85)
    comprehend.add_response(
        "start_entities_detection_job",
        {"JobId": "job-1", "JobArn": "arn:aws:comprehend:us-east-1:123456789012:entities-detection-job/job-1",
         "JobStatus": "SUBMITTED"},
        {"JobName": ANY, "EntityRecognizerArn": ARN.format("v1"), "LanguageCode": "en", "DataAccessRoleArn": ANY,
         "InputDataConfig": {"S3Uri": ANY, "InputFormat": "ONE_DOC_PER_LINE"},
         "OutputDataConfig": {"S3Uri": f"s3://{emulated.bucket}/detection/output/"}, "ClientRequestToken": ANY},
    )

    # When the TRAINED event arrives (twice: the second is a redelivery)
    handler = emulated.handler("DetectFunction")
    result = handler(event("detect"), lambda_context)
    assert handler(event("detect"), lambda_context) == result

    # Then v1 is active with its metrics, the lock is free, and a job covers the three documents
    assert result["active"] == "v1" and result["detection_job"] == "job-1"
    assert emulated.state.versions.active() == ("v1", pytest.approx(0.85))
    stored = emulated.state.versions.get("v1")
    assert stored.status == "TRAINED"
    assert stored.metrics["per_type"]["VERSION"]["f1"] == pytest.approx(0.747)
    assert emulated.state.training_lock.holder() is None
    job = emulated.state.jobs.get("job-1")
    assert job.version == "v1" and job.documents == 3
    lines = emulated.s3.get_object(Bucket=emulated.bucket, Key=job.input_key)["Body"].read().decode().splitlines()
    assert sorted(lines) == sorted(["Amazon S3 adds a feature.", "AWS Lambda 2.0 is out.", "Nothing here."])


def test_a_trained_version_keeps_when_its_training_started_and_ended(emulated, event, lambda_context, comprehend):
    emulated.state.versions.put(Version("v1", "TRAINING", arn=ARN.format("v1")))
    started, ended = datetime(2026, 12, 1, 9, 0, tzinfo=UTC), datetime(2026, 12, 1, 9, 42, 30, tzinfo=UTC)
    expect_describe(comprehend, "v1", 0.85, TrainingStartTime=started, TrainingEndTime=ended)

    emulated.handler("DetectFunction")(event("detect"), lambda_context)

    stored = emulated.state.versions.get("v1").metrics
    assert (stored["training_started_at"], stored["training_ended_at"]) == (started.isoformat(), ended.isoformat())
    assert stored["f1"] == pytest.approx(0.85)


def test_a_version_without_a_usable_test_set_is_activated_at_once(emulated, event, lambda_context, comprehend):
    # Two F1 figures from Comprehend's own hold-outs (different documents) cannot be paired: with no
    # usable test set the gate has nothing to compare, and the new version, trained on more, goes live.
    emulated.state.versions.put(Version("v0", "TRAINED", arn=ARN.format("v0")))
    emulated.state.versions.activate("v0", 0.90)
    emulated.state.versions.put(Version("v1", "TRAINING", arn=ARN.format("v1")))
    expect_describe(comprehend, "v1", 0.80)  # no documents wait

    result = emulated.handler("DetectFunction")(event("detect"), lambda_context)

    assert result["active"] == "v1" and not result["gate_pending"]
    assert emulated.state.versions.active()[0] == "v1"
    gate = emulated.state.versions.get("v1").metrics["gate"]
    assert gate["status"] == "ACTIVATED" and gate["reason"] == "the version's test set is not usable yet"


def given_the_gate_waits_for(emulated, comprehend, version: str, active: str) -> None:
    """`version` trains on a snapshot with a usable test set while `active` has test results: its
    evaluation job starts and its activation waits for it."""
    emulated.state.versions.update(version, metrics={"test_set": {"documents": 12, "usable": True}})
    # the snapshot's test documents, as the train stage found them (the evaluation job reads them)
    emulated.s3.put_object(Bucket=emulated.bucket, Key=f"training/{version}/test-documents.txt",
                           Body="".join(f"Amazon S3 test document {n}.\n" for n in range(12)).encode())
    emulated.state.versions.update(active, metrics={"test_results": {"documents": 12}})
    comprehend.add_response(
        "start_entities_detection_job", {"JobId": "eval-1", "JobStatus": "SUBMITTED"},
        {"JobName": f"evaluate-{version}", "EntityRecognizerArn": ARN.format(version), "LanguageCode": "en",
         "DataAccessRoleArn": ANY,
         "InputDataConfig": {"S3Uri": f"s3://{emulated.bucket}/training/{version}/test-documents.txt",
                             "InputFormat": "ONE_DOC_PER_LINE"},
         "OutputDataConfig": {"S3Uri": f"s3://{emulated.bucket}/evaluation/output/"}, "ClientRequestToken": ANY},
    )


def test_in_error_is_recorded_with_its_message(emulated, event, lambda_context, comprehend):
    emulated.state.versions.put(Version("v1", "TRAINING", arn=ARN.format("v1")))
    emulated.state.training_lock.acquire("v1")

    result = emulated.handler("DetectFunction")(event("detect-in-error"), lambda_context)

    assert result["status"] == "IN_ERROR"
    stored = emulated.state.versions.get("v1")
    assert stored.status == "IN_ERROR" and "VERSION: found 12" in stored.message
    assert emulated.state.versions.active() is None
    assert emulated.state.training_lock.holder() is None


def test_a_retrain_that_fell_due_during_a_training_starts_when_it_ends(emulated, event, lambda_context, comprehend):
    from nerloop.retrain import RetrainPolicy, maybe_start_retrain, merge_review_counted
    from nerloop.snapshots import SNAPSHOT_COUNTER
    from nerloop.state import GoldDocument, Loop

    # Given v1 training (it holds the lock), and meanwhile two reviews merged and every loop ended
    state = emulated.state
    state.versions.put(Version("v1", "TRAINING", arn=ARN.format("v1")))
    state.counters.set(SNAPSHOT_COUNTER, 1)
    state.training_lock.acquire("v1")
    for number, text in enumerate(("Amazon S3 adds a feature.", "AWS Lambda 2.0 is out.")):
        loop = Loop(f"v1-review-{number}", document_hash(text), "v1", "InProgress")
        state.loops.put(loop)
        assert merge_review_counted(state, loop.name, GoldDocument(loop.doc, text, [], origin=f"review:{loop.name}"))
    policy = RetrainPolicy(batch_size=25)
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, policy) is None  # the lock is taken

    # When v1's training ends
    result = emulated.handler("DetectFunction")(event("detect-in-error"), lambda_context)

    # Then the lock passes to the retrain that was due
    assert result["snapshot"] == "v2"
    assert state.training_lock.holder() == "v2"


def test_versions_beyond_retention_are_deleted_but_never_the_active_one(emulated, event, lambda_context,
                                                                        comprehend):
    # Given v1 (active) and v2..v4 trained, retention 3, and v5 finishing now
    for number in range(1, 5):
        emulated.state.versions.put(Version(f"v{number}", "TRAINED", arn=ARN.format(f"v{number}")))
    emulated.state.versions.activate("v1", 0.99)
    emulated.state.versions.put(Version("v5", "TRAINING", arn=ARN.format("v5")))
    expect_describe(comprehend, "v5", 0.50)
    given_the_gate_waits_for(emulated, comprehend, "v5", active="v1")
    comprehend.add_response("delete_entity_recognizer", {}, {"EntityRecognizerArn": ARN.format("v2")})

    event_v5 = event("detect")
    event_v5["detail"].update(versionName="v5", recognizerArn=ARN.format("v5"))
    result = emulated.handler("DetectFunction")(event_v5, lambda_context)

    # Then the newest three (v5, v4, v3) stay, v1 stays because it is active, v2 goes
    assert result["deleted_versions"] == ["v2"]
    assert emulated.state.versions.get("v2").status == "DELETED"
    assert emulated.state.versions.get("v1").status == "TRAINED"


# --- new documents -------------------------------------------------------------------------------

BATCH_EVENT = "detect-documents-added"


def given_a_batch(emulated, event, texts: list[str]) -> dict:
    """The batch the sample Documents Added event names, pooled and written as preprocess does."""
    from nerloop.documents import document_hash

    added = event(BATCH_EVENT)
    detail = added["detail"]
    for text in texts:
        emulated.state.pool.add(document_hash(text), text, batch=detail["batch"])
    emulated.s3.put_object(Bucket=emulated.bucket, Key=detail["documentsKey"],
                           Body="".join(text + "\n" for text in texts).encode())
    return added


def test_new_documents_are_detected_at_once_by_the_active_version(emulated, event, lambda_context, comprehend):
    texts = ["Amazon S3 adds a feature.", "AWS Lambda 2.0 is out."]
    added = given_a_batch(emulated, event, texts)
    emulated.state.versions.put(Version("v2", "TRAINED", arn=ARN.format("v2")))
    emulated.state.versions.activate("v2", 0.9)
    comprehend.add_response(
        "start_entities_detection_job",
        {"JobId": "job-7", "JobStatus": "SUBMITTED"},
        {"JobName": f"v2-{added['detail']['batch']}", "EntityRecognizerArn": ARN.format("v2"), "LanguageCode": "en",
         "DataAccessRoleArn": ANY,
         "InputDataConfig": {"S3Uri": ANY, "InputFormat": "ONE_DOC_PER_LINE"},
         "OutputDataConfig": {"S3Uri": f"s3://{emulated.bucket}/detection/output/"}, "ClientRequestToken": ANY},
    )
    handler = emulated.handler("DetectFunction")

    result = handler(added, lambda_context)
    assert handler(added, lambda_context) == result  # a redelivery starts no second job

    assert (result["detection_job"], result["version"]) == ("job-7", "v2")
    job = emulated.state.jobs.get("job-7")
    assert (job.version, job.documents) == ("v2", 2)
    assert job.input_key.startswith("detection/input/")  # where Comprehend's role may read
    body = emulated.s3.get_object(Bucket=emulated.bucket, Key=job.input_key)["Body"].read().decode()
    assert body.splitlines() == texts


def test_new_documents_wait_for_the_first_version(emulated, event, lambda_context, comprehend):
    added = given_a_batch(emulated, event, ["Amazon S3 adds a feature."])

    result = emulated.handler("DetectFunction")(added, lambda_context)

    assert result["detection_job"] is None and result["skipped"] == "no active version yet"
    assert emulated.state.jobs.list() == []


def test_a_documents_added_event_with_a_key_outside_batches_is_refused(emulated, event, lambda_context):
    from aws_lambda_powertools.utilities.parser import ValidationError

    added = event(BATCH_EVENT)
    added["detail"]["documentsKey"] = "training/v1/documents.txt"

    with pytest.raises(ValidationError, match="documentsKey"):
        emulated.handler("DetectFunction")(added, lambda_context)


def test_a_start_retried_after_a_failure_reuses_the_first_attempts_token_and_input(
    emulated, event, lambda_context, comprehend, monkeypatch
):
    from nerloop.stages.detect import detection_token
    from nerloop.state.jobs import JobRepository

    emulated.state.versions.put(Version("v1", "TRAINING", arn=ARN.format("v1")))
    seed_pool(emulated, ["Amazon S3 adds a feature.", "AWS Lambda 2.0 is out."])
    token = detection_token(f"trained|{ARN.format('v1')}")
    for _attempt in range(2):
        expect_describe(comprehend, "v1", 0.85)
        comprehend.add_response(
            "start_entities_detection_job", {"JobId": "job-1", "JobStatus": "SUBMITTED"},
            {"JobName": ANY, "EntityRecognizerArn": ARN.format("v1"), "LanguageCode": "en", "DataAccessRoleArn": ANY,
             "InputDataConfig": {"S3Uri": ANY, "InputFormat": "ONE_DOC_PER_LINE"},
             "OutputDataConfig": {"S3Uri": ANY}, "ClientRequestToken": token},
        )
    real_put_job = JobRepository.put
    failures = iter([RuntimeError("DynamoDB went away after the job started")])

    def put_job_failing_once(self, job):
        for failure in failures:
            raise failure
        return real_put_job(self, job)

    monkeypatch.setattr(JobRepository, "put", put_job_failing_once)
    handler = emulated.handler("DetectFunction")

    # When the first attempt fails after Comprehend started the job, and text arrives before the retry
    with pytest.raises(RuntimeError, match="went away"):
        handler(event("detect"), lambda_context)
    seed_pool(emulated, ["Amazon EC2 adds an instance type."])
    result = handler(event("detect"), lambda_context)

    # Then the retry names the same job (same token), and the job's input is what that job read
    assert result["detection_job"] == "job-1"
    job = emulated.state.jobs.get("job-1")
    body = emulated.s3.get_object(Bucket=emulated.bucket, Key=job.input_key)["Body"].read().decode()
    assert job.documents == 2 and "Amazon EC2" not in body


def test_new_documents_are_queued_while_every_job_slot_is_taken(emulated, event, lambda_context, comprehend):
    from nerloop.constants import MAX_CONCURRENT_DETECTION_JOBS
    from nerloop.state import Job

    # Given the active v2 and Comprehend's 10 job slots held by the loop's own running jobs
    added = given_a_batch(emulated, event, ["Amazon S3 adds a feature.", "AWS Lambda 2.0 is out."])
    emulated.state.versions.put(Version("v2", "TRAINED", arn=ARN.format("v2")))
    emulated.state.versions.activate("v2", 0.9)
    for number in range(MAX_CONCURRENT_DETECTION_JOBS):
        emulated.state.jobs.put(Job(f"running-{number}", "IN_PROGRESS", "v2", "detection/input/x/documents.txt", 1))

    # When the batch arrives (no StartEntitiesDetectionJob answer is stubbed: asking would fail)
    result = emulated.handler("DetectFunction")(added, lambda_context)

    # Then its request waits in the queue for the watch stage, with the input it will read
    assert (result["detection_job"], result["detection_queued"]) == (None, True)
    (request,) = emulated.state.jobs.queued()
    assert (request.version, request.documents) == ("v2", 2)
    emulated.s3.head_object(Bucket=emulated.bucket, Key=request.input_key)


def test_a_start_comprehend_refuses_for_lack_of_a_slot_is_queued_not_failed(emulated, event, lambda_context,
                                                                             comprehend):
    added = given_a_batch(emulated, event, ["Amazon S3 adds a feature."])
    emulated.state.versions.put(Version("v2", "TRAINED", arn=ARN.format("v2")))
    emulated.state.versions.activate("v2", 0.9)
    comprehend.add_client_error("start_entities_detection_job", "TooManyRequestsException",
                                "The number of requests exceeds the limit. Resubmit your request later.")

    result = emulated.handler("DetectFunction")(added, lambda_context)

    assert (result["detection_job"], result["detection_queued"]) == (None, True)
    assert len(emulated.state.jobs.queued()) == 1


def test_a_version_a_queued_request_needs_is_not_deleted(emulated, event, lambda_context, comprehend):
    from nerloop.state import DetectionRequest

    # Given v1..v4 trained, retention 3, v1 active, and a detection request for v2 queued for a slot
    for number in range(1, 5):
        emulated.state.versions.put(Version(f"v{number}", "TRAINED", arn=ARN.format(f"v{number}")))
    emulated.state.versions.activate("v1", 0.99)
    emulated.state.jobs.queue(DetectionRequest("t" * 40, "v2", "detection/input/v2-b/documents.txt", 3))
    emulated.state.versions.put(Version("v5", "TRAINING", arn=ARN.format("v5")))
    expect_describe(comprehend, "v5", 0.50)
    given_the_gate_waits_for(emulated, comprehend, "v5", active="v1")

    event_v5 = event("detect")
    event_v5["detail"].update(versionName="v5", recognizerArn=ARN.format("v5"))
    result = emulated.handler("DetectFunction")(event_v5, lambda_context)

    # Then v2, beyond the retention count, stays: the queued job will run with it
    assert result["deleted_versions"] == []
    assert emulated.state.versions.get("v2").status == "TRAINED"
