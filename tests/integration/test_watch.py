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
    emulated.state.versions.put(Version("v1", "SUBMITTED", arn=arn))
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
    assert emulated.state.versions.get("v1").status == "TRAINED"


def test_detection_job_changes_are_published_and_recorded(emulated, event, lambda_context):
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)
    emulated.state.jobs.put(Job("job-1", "SUBMITTED", "v1", "detection/input/v1-x/documents.txt", 3))
    with Stubber(comprehend) as stubber:
        stubber.add_response("describe_entities_detection_job", {"EntitiesDetectionJobProperties": {
            "JobId": "job-1", "JobStatus": "FAILED", "Message": "access denied to the input prefix",
            "JobArn": "arn:aws:comprehend:us-east-1:123456789012:entities-detection-job/job-1"}},
            {"JobId": "job-1"})
        result = emulated.handler("WatchFunction")(event("watch"), lambda_context)

    assert result["changes"] == [{"job": "job-1", "status": "FAILED"}]
    assert emulated.state.jobs.get("job-1").status == "FAILED"


def given_reviews_pending_and_a_loop_open(emulated, monkeypatch, merged_at: int) -> None:
    """Two reviews merged at `merged_at`, far fewer than a batch, while another loop is still open."""
    from nerloop import retrain
    from nerloop.documents import document_hash
    from nerloop.state import GoldDocument, Loop

    monkeypatch.setattr(retrain, "epoch_seconds", lambda: merged_at)
    state = emulated.state
    for number, text in enumerate(("Amazon S3 adds a feature.", "AWS Lambda 2.0 is out.")):
        loop = Loop(f"v1-review-{number}", document_hash(text), "v1", "InProgress")
        state.loops.put(loop)
        assert retrain.merge_review_counted(state, loop.name,
                                            GoldDocument(loop.doc, text, [], origin=f"review:{loop.name}"))
    state.loops.put(Loop("v1-still-open", "doc", "v1", "InProgress"))


def watch_at(emulated, event, lambda_context, monkeypatch, when: int, **environment: str) -> dict:
    from nerloop import retrain

    monkeypatch.setattr(retrain, "epoch_seconds", lambda: when)
    return emulated.handler("WatchFunction", **environment)(event("watch"), lambda_context)


def test_reviews_pending_past_the_time_limit_start_one_retrain(emulated, event, lambda_context, monkeypatch):
    merged_at = 1_800_000_000
    given_reviews_pending_and_a_loop_open(emulated, monkeypatch, merged_at)
    limit = {"RETRAIN_MAX_WAIT_MINUTES": "60", "TEST_SHARE": "0"}  # no test set: the listing is the training files

    # A minute short of the hour nothing starts; at the hour the watch writes the snapshot, once
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 59 * 60, **limit)["snapshot"] is None
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 60 * 60, **limit)["snapshot"] == "v1"
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 61 * 60, **limit)["snapshot"] is None
    listing = emulated.s3.list_objects_v2(Bucket=emulated.bucket, Prefix="training/")
    assert sorted(item["Key"] for item in listing["Contents"]) == ["training/v1/annotations.csv",
                                                                   "training/v1/documents.txt"]
    assert emulated.state.training_lock.holder() == "v1"


def test_the_template_default_waits_a_day_and_zero_never_retrains_by_time(emulated, event, lambda_context,
                                                                          monkeypatch):
    merged_at = 1_800_000_000
    given_reviews_pending_and_a_loop_open(emulated, monkeypatch, merged_at)
    a_week = merged_at + 7 * 24 * 3600

    assert watch_at(emulated, event, lambda_context, monkeypatch, a_week, RETRAIN_MAX_WAIT_MINUTES="0")[
        "snapshot"] is None
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 23 * 3600)["snapshot"] is None
    assert watch_at(emulated, event, lambda_context, monkeypatch, merged_at + 24 * 3600)["snapshot"] == "v1"


# --- reading only what is in flight; jobs that vanish; jobs queued for a slot ---------------------------------

JOB_ARN = "arn:aws:comprehend:us-east-1:123456789012:entities-detection-job/{}"


def items_read_by(emulated, call) -> int:
    """How many DynamoDB items `call()` made the handlers read (Query, Scan, BatchGetItem)."""
    from nerloop import aws as nerloop_aws

    client = nerloop_aws.dynamodb_table(emulated.table_name).meta.client
    read = []

    def count(parsed, **_):
        read.append(len(parsed.get("Items", [])) + sum(len(v) for v in (parsed.get("Responses") or {}).values()))

    for operation in ("Query", "Scan", "BatchGetItem"):
        client.meta.events.register(f"after-call.dynamodb.{operation}", count)
    try:
        call()
    finally:
        for operation in ("Query", "Scan", "BatchGetItem"):
            client.meta.events.unregister(f"after-call.dynamodb.{operation}", count)
    return sum(read)


def test_the_watch_reads_only_the_jobs_in_flight(emulated, event, lambda_context):
    # Given 300 detection jobs that ended long ago and one still running
    for number in range(300):
        emulated.state.jobs.put(Job(f"old-{number}", "COMPLETED", "v1", "detection/input/x/documents.txt", 1))
    emulated.state.jobs.put(Job("job-live", "IN_PROGRESS", "v1", "detection/input/y/documents.txt", 1,
                               arn=JOB_ARN.format("job-live")))
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)
    handler = emulated.handler("WatchFunction")

    # When the schedule fires and the running job has completed
    with Stubber(comprehend) as stubber:
        stubber.add_response("describe_entities_detection_job", {"EntitiesDetectionJobProperties": {
            "JobId": "job-live", "JobStatus": "COMPLETED"}}, {"JobId": "job-live"})
        read = items_read_by(emulated, lambda: handler(event("watch"), lambda_context))

    # Then it asked about that job alone and read a handful of items, not the 300 ended jobs
    assert 0 < read < 20
    assert emulated.state.jobs.get("job-live").status == "COMPLETED"
    assert emulated.state.jobs.in_flight() == []


def test_a_job_comprehend_no_longer_knows_is_recorded_once_and_not_asked_about_again(emulated, event,
                                                                                      lambda_context):
    emulated.state.jobs.put(Job("job-gone", "IN_PROGRESS", "v1", "detection/input/y/documents.txt", 1))
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)
    handler = emulated.handler("WatchFunction")

    with Stubber(comprehend) as stubber:  # one answer: a second question would fail the poll
        stubber.add_client_error("describe_entities_detection_job", "JobNotFoundException",
                                 "Could not find specified job", expected_params={"JobId": "job-gone"})
        first = handler(event("watch"), lambda_context)
        second = handler(event("watch"), lambda_context)

    assert first["changes"] == [{"job": "job-gone", "status": "NOT_FOUND"}]
    assert second["changes"] == []
    assert emulated.state.jobs.get("job-gone").status == "NOT_FOUND"


def queued_request(emulated, token: str = "t" * 40) -> None:
    from nerloop.state import DetectionRequest

    arn = "arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/nerloop/version/v1"
    emulated.state.versions.put(Version("v1", "TRAINED", arn=arn))
    request = DetectionRequest(token, "v1", "detection/input/v1-batch/documents.txt", 4)
    emulated.state.jobs.record_request(request)
    emulated.state.jobs.queue(request)


def test_a_queued_detection_starts_when_comprehend_has_a_slot_and_waits_while_it_has_none(
        emulated, event, lambda_context):
    queued_request(emulated)
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)
    handler = emulated.handler("WatchFunction")

    with Stubber(comprehend) as stubber:
        # Jobs of another application hold every slot on the first poll; one has ended by the second
        stubber.add_client_error("start_entities_detection_job", "TooManyRequestsException",
                                 "The number of requests exceeds the limit.")
        stubber.add_response("start_entities_detection_job",
                             {"JobId": "job-9", "JobArn": JOB_ARN.format("job-9"), "JobStatus": "SUBMITTED"})
        first = handler(event("watch"), lambda_context)
        assert (first["started"], len(emulated.state.jobs.queued())) == ([], 1)
        second = handler(event("watch"), lambda_context)

    assert second["started"] == ["job-9"]
    assert emulated.state.jobs.queued() == []
    job = emulated.state.jobs.get("job-9")
    assert (job.version, job.documents, job.status) == ("v1", 4, "SUBMITTED")
    assert [j.job_id for j in emulated.state.jobs.in_flight()] == ["job-9"]


def test_a_queued_detection_waits_while_the_loops_own_jobs_fill_every_slot(emulated, event, lambda_context):
    from nerloop.constants import MAX_CONCURRENT_DETECTION_JOBS

    queued_request(emulated)
    for number in range(MAX_CONCURRENT_DETECTION_JOBS):
        emulated.state.jobs.put(Job(f"running-{number}", "IN_PROGRESS", "v1", "detection/input/x/documents.txt", 1))
    comprehend = boto3.client("comprehend")
    emulated.override_client("comprehend", comprehend)

    with Stubber(comprehend) as stubber:  # every running job still runs; no start may be asked for
        for number in range(MAX_CONCURRENT_DETECTION_JOBS):
            stubber.add_response("describe_entities_detection_job", {"EntitiesDetectionJobProperties": {
                "JobId": f"running-{number}", "JobStatus": "IN_PROGRESS"}})
        result = emulated.handler("WatchFunction")(event("watch"), lambda_context)

    assert result["started"] == []
    assert len(emulated.state.jobs.queued()) == 1
