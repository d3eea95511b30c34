"""What the stages record for a round's cost (`nerloop.cost_records`), each where it reads it: the watch
stage keeps Comprehend's training times, the detect stage measures a new batch's detection input."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
from botocore.stub import ANY, Stubber

from nerloop.cost_records import InputMeasure, detection_inputs
from nerloop.state import Version

ARN = "arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/nerloop/version/v1"


def test_the_watch_stage_keeps_the_training_times_comprehend_reports(emulated, event, lambda_context):
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)
    emulated.state.versions.put(Version("v1", "TRAINING", arn=ARN))
    start, end = datetime(2026, 12, 5, 8, 0, tzinfo=UTC), datetime(2026, 12, 5, 8, 47, 30, tzinfo=UTC)
    with Stubber(comprehend) as stubber:
        stubber.add_response("describe_entity_recognizer", {"EntityRecognizerProperties": {
            "EntityRecognizerArn": ARN, "Status": "TRAINED", "TrainingStartTime": start, "TrainingEndTime": end}},
            {"EntityRecognizerArn": ARN})
        emulated.handler("WatchFunction")(event("watch"), lambda_context)

    version = emulated.state.versions.get("v1")
    kept = (datetime.fromisoformat(version.training_started_at), datetime.fromisoformat(version.training_ended_at))
    assert kept == (start, end)


def test_a_new_batch_s_detection_input_is_measured_in_comprehend_s_units(emulated, event, lambda_context):
    # Given an active version and a batch of a 39-character and a 350-character document
    texts = ["Amazon S3 adds a feature for everyone!!", "AWS Lambda " + "x" * 339]
    added = event("detect-documents-added")
    emulated.s3.put_object(Bucket=emulated.bucket, Key=added["detail"]["documentsKey"],
                           Body="".join(text + "\n" for text in texts).encode())
    emulated.state.versions.put(Version("v1", "TRAINED", arn=ARN))
    emulated.state.versions.activate("v1", 0.9)
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)
    with Stubber(comprehend) as stubber:
        stubber.add_response("start_entities_detection_job", {"JobId": "job-1", "JobStatus": "SUBMITTED"},
                             {"JobName": ANY, "EntityRecognizerArn": ARN, "LanguageCode": "en",
                              "DataAccessRoleArn": ANY, "InputDataConfig": ANY, "OutputDataConfig": ANY,
                              "ClientRequestToken": ANY})
        emulated.handler("DetectFunction")(added, lambda_context)

    job = emulated.state.jobs.get("job-1")
    # Then the job's input is measured document by document: 3 units (the minimum) + 4 units
    assert detection_inputs(emulated.state.table)[job.input_key] == InputMeasure(documents=2, characters=389, units=7)
