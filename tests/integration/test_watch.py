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
