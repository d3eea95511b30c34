"""Stage 4 — watch: poll in-flight versions and jobs, publish nerloop status events on changes."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from nerloop.state import Job, Version


def create_version(version: str) -> str:
    return boto3.client("comprehend").create_entity_recognizer(
        RecognizerName="nerloop", VersionName=version, LanguageCode="en",
        DataAccessRoleArn="arn:aws:iam::123456789012:role/comprehend",
        InputDataConfig={"EntityTypes": [{"Type": "SERVICE"}],
                         "Documents": {"S3Uri": "s3://b/training/v1/documents.txt"},
                         "Annotations": {"S3Uri": "s3://b/training/v1/annotations.csv"}},
    )["EntityRecognizerArn"]


def test_a_finished_training_is_published_once_for_the_detect_rule(emulated, event, lambda_context):
    # Given v1 recorded as SUBMITTED while Comprehend (moto) already says TRAINED
    arn = create_version("v1")
    emulated.state.put_version(Version("v1", "SUBMITTED", arn=arn))
    queue = emulated.capture_rule("DetectFunction", "RecognizerFinished")
    handler = emulated.handler("WatchFunction")

    # When the schedule fires twice
    first = handler(event("watch"), lambda_context)
    second = handler(event("watch"), lambda_context)

    # Then one event reaches the detect rule, and the state table follows the service
    assert first["changes"] == [{"version": "v1", "status": "TRAINED"}]
    assert second["changes"] == []
    events = emulated.received(queue)
    assert len(events) == 1
    assert events[0]["detail"] == {"recognizerName": "nerloop", "versionName": "v1", "recognizerArn": arn,
                                   "status": "TRAINED", "previousStatus": "SUBMITTED", "message": ""}
    assert emulated.state.get_version("v1").status == "TRAINED"


def test_detection_job_changes_are_published_and_recorded(emulated, event, lambda_context):
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)
    emulated.state.put_job(Job("job-1", "SUBMITTED", "v1", "detection/input/v1-x/documents.txt", 3))
    with Stubber(comprehend) as stubber:
        stubber.add_response("describe_entities_detection_job", {"EntitiesDetectionJobProperties": {
            "JobId": "job-1", "JobStatus": "FAILED", "Message": "access denied to the input prefix",
            "JobArn": "arn:aws:comprehend:us-east-1:123456789012:entities-detection-job/job-1"}},
            {"JobId": "job-1"})
        result = emulated.handler("WatchFunction")(event("watch"), lambda_context)

    assert result["changes"] == [{"job": "job-1", "status": "FAILED"}]
    assert emulated.state.get_job("job-1").status == "FAILED"


def given_reviews_pending_and_a_loop_open(emulated, monkeypatch, merged_at: int) -> None:
    """Two reviews merged at `merged_at`, far fewer than a batch, while another loop is still open."""
    from nerloop import retrain
    from nerloop.documents import document_hash
    from nerloop.state import GoldDocument, Loop

    monkeypatch.setattr(retrain, "epoch_seconds", lambda: merged_at)
    state = emulated.state
    for text in ("Amazon S3 adds a feature.", "AWS Lambda 2.0 is out."):
        state.put_gold(GoldDocument(document_hash(text), text, [], origin="review:x"))
        retrain.count_review(state)
    state.put_loop(Loop("v1-still-open", "doc", "v1", "InProgress"))


def watch_at(emulated, event, lambda_context, monkeypatch, when: int, **environment: str) -> dict:
    from nerloop import retrain

    monkeypatch.setattr(retrain, "epoch_seconds", lambda: when)
    return emulated.handler("WatchFunction", **environment)(event("watch"), lambda_context)


def test_reviews_pending_past_the_time_limit_start_one_retrain(emulated, event, lambda_context, monkeypatch):
    merged_at = 1_800_000_000
    given_reviews_pending_and_a_loop_open(emulated, monkeypatch, merged_at)
    limit = {"RETRAIN_MAX_WAIT_MINUTES": "60"}

    # A minute short of the hour nothing starts; at the hour the watch writes the snapshot, once
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 59 * 60, **limit)["snapshot"] is None
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 60 * 60, **limit)["snapshot"] == "v1"
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 61 * 60, **limit)["snapshot"] is None
    listing = emulated.s3.list_objects_v2(Bucket=emulated.bucket, Prefix="training/")
    assert sorted(item["Key"] for item in listing["Contents"]) == ["training/v1/annotations.csv",
                                                                   "training/v1/documents.txt"]
    assert emulated.state.training_lock_holder() == "v1"


def test_the_template_default_waits_a_day_and_zero_never_retrains_by_time(emulated, event, lambda_context,
                                                                          monkeypatch):
    merged_at = 1_800_000_000
    given_reviews_pending_and_a_loop_open(emulated, monkeypatch, merged_at)
    a_week = merged_at + 7 * 24 * 3600

    assert watch_at(emulated, event, lambda_context, monkeypatch, a_week, RETRAIN_MAX_WAIT_MINUTES="0")[
        "snapshot"] is None
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 23 * 3600)["snapshot"] is None
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 24 * 3600)["snapshot"] == "v1"
