"""The stand-ins for what moto lacks, through real boto3 clients under mock_aws: status transitions,
output layouts and formats, events, and the errors the services send."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from nerloop.documents import Span
from nerloop_local.emulator.stack import EVENTS_DIR
from nerloop_local.standins import StandIns
from nerloop_local.standins.base import StandInContext, StandInService
from nerloop_local.standins.dispatch import StandInBug, claim, inject_fault, release
from nerloop_local.standins.groundtruth import label_attribute_of

BUCKET = "standins-test-bucket"
ROLE = "arn:aws:iam::123456789012:role/test"
SERVICES = ["Amazon S3", "AWS Lambda", "Amazon EC2", "Amazon Comprehend", "AWS Glue", "Amazon SageMaker",
            "Amazon DynamoDB", "AWS IoT Core"]
TYPES = ["SERVICE", "VERSION"]

# One session for the module: loading the SageMaker model again for every test would cost more than the
# tests themselves. Its clients reach moto and the stand-ins through botocore's built-in handlers.
_SESSION = boto3.session.Session(region_name="us-east-1")
_CLIENTS: dict[str, Any] = {}


def aws(service: str) -> Any:
    if service not in _CLIENTS:
        _CLIENTS[service] = _SESSION.client(service)  # type: ignore[call-overload]
    return _CLIENTS[service]


# --- fixtures and helpers ------------------------------------------------------------------------------------


@pytest.fixture
def standins() -> Iterator[StandIns]:
    """Stand-ins installed in a fresh moto account with one bucket (models in a temporary folder)."""
    with mock_aws():
        aws("s3").create_bucket(Bucket=BUCKET)
        with StandIns(StandInContext(session=_SESSION)).installed() as installed:
            yield installed


def corpus(count: int = 60) -> list[tuple[str, list[Span]]]:
    """Documents that meet Comprehend's minimums: 25+ spans of each type, 5 KB+ in all."""
    documents = []
    for index in range(count):
        service = SERVICES[index % len(SERVICES)]
        version = f"{1 + index % 4}.{index % 10}"
        text = (f"Release: {service} version {version} is now available in more regions, "
                f"with better performance for customers (note {index}).")
        begin = text.index(version)
        documents.append((text, [Span(9, 9 + len(service), "SERVICE"), Span(begin, begin + len(version), "VERSION")]))
    return documents


def put(key: str, body: str | bytes) -> str:
    aws("s3").put_object(Bucket=BUCKET, Key=key, Body=body.encode() if isinstance(body, str) else body)
    return f"s3://{BUCKET}/{key}"


def annotations_csv(documents: list[tuple[str, list[Span]]], file_name: str = "documents.txt") -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["File", "Line", "Begin Offset", "End Offset", "Type"])
    for line, (_, spans) in enumerate(documents):
        for span in spans:
            writer.writerow([file_name, line, span.begin, span.end, span.type])
    return out.getvalue()


def create_recognizer(documents: list[tuple[str, list[Span]]] | None = None, *, version: str = "v1",
                      annotations: str | None = None, types: list[str] | None = None) -> str:
    documents = corpus() if documents is None else documents
    documents_uri = put(f"training/{version}/documents.txt", "".join(text + "\n" for text, _ in documents))
    annotations_uri = put(f"training/{version}/annotations.csv",
                          annotations if annotations is not None else annotations_csv(documents))
    reply = aws("comprehend").create_entity_recognizer(
        RecognizerName="nerloop", VersionName=version, DataAccessRoleArn=ROLE, LanguageCode="en",
        InputDataConfig={
            "DataFormat": "COMPREHEND_CSV",
            "EntityTypes": [{"Type": name} for name in (types or TYPES)],
            "Documents": {"S3Uri": documents_uri, "InputFormat": "ONE_DOC_PER_LINE"},
            "Annotations": {"S3Uri": annotations_uri},
        },
    )
    return str(reply["EntityRecognizerArn"])


def describe(arn: str) -> dict[str, Any]:
    return aws("comprehend").describe_entity_recognizer(EntityRecognizerArn=arn)["EntityRecognizerProperties"]


def trained_recognizer(standins: StandIns) -> str:
    arn = create_recognizer()
    standins.tick()
    standins.tick()
    assert describe(arn)["Status"] == "TRAINED"
    return arn


def start_job(arn: str, lines: list[str], run: str = "r1") -> dict[str, Any]:
    input_uri = put(f"detection/input/{run}/documents.txt", "".join(line + "\n" for line in lines))
    return dict(aws("comprehend").start_entities_detection_job(
        JobName=run, EntityRecognizerArn=arn, LanguageCode="en", DataAccessRoleArn=ROLE,
        InputDataConfig={"S3Uri": input_uri.rsplit("/", 1)[0] + "/", "InputFormat": "ONE_DOC_PER_LINE"},
        OutputDataConfig={"S3Uri": f"s3://{BUCKET}/detection/output/"},
    ))


def describe_job(job_id: str) -> dict[str, Any]:
    return aws("comprehend").describe_entities_detection_job(JobId=job_id)["EntitiesDetectionJobProperties"]


def capture(detail_type: str) -> str:
    """An SQS queue that receives every event of `detail_type` from the default bus."""
    sqs, events = aws("sqs"), aws("events")
    url = sqs.create_queue(QueueName=re.sub(r"[^A-Za-z0-9]", "-", detail_type))["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="capture", EventPattern=json.dumps({"detail-type": [detail_type]}))
    events.put_targets(Rule="capture", Targets=[{"Id": "q", "Arn": arn}])
    return str(url)


def received(queue_url: str) -> list[dict[str, Any]]:
    messages = aws("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(message["Body"]) for message in messages]


def error_code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


FLOW_NAME = "review"


def create_flow() -> str:
    reply = aws("sagemaker").create_flow_definition(
        FlowDefinitionName=FLOW_NAME,
        HumanLoopConfig={"WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
                         "HumanTaskUiArn": "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/ui",
                         "TaskTitle": "t", "TaskDescription": "d", "TaskCount": 1},
        OutputConfig={"S3OutputPath": f"s3://{BUCKET}/reviews/"}, RoleArn=ROLE,
    )
    return str(reply["FlowDefinitionArn"])


def start_loop(flow_arn: str, name: str = "loop-1", content: dict[str, Any] | None = None) -> str:
    payload = json.dumps(content if content is not None else {"text": "Amazon S3 2.0", "labels": []})
    return str(aws("sagemaker-a2i-runtime").start_human_loop(
        HumanLoopName=name, FlowDefinitionArn=flow_arn, HumanLoopInput={"InputContent": payload})["HumanLoopArn"])


def describe_loop(name: str) -> dict[str, Any]:
    return dict(aws("sagemaker-a2i-runtime").describe_human_loop(HumanLoopName=name))


# --- the dispatcher ------------------------------------------------------------------------------------------


def test_uninstalled_stand_ins_leave_calls_to_moto() -> None:
    with mock_aws():
        aws("s3").create_bucket(Bucket=BUCKET)
        StandIns(StandInContext(session=_SESSION)).install().uninstall()
        arn = create_recognizer()
        # moto's own mock answers (AWS-FACTS: its recognizers are TRAINED at once); ours would say SUBMITTED.
        assert describe(arn)["Status"] == "TRAINED"


def test_installed_stand_in_answers_before_moto(standins: StandIns) -> None:
    arn = create_recognizer()
    assert describe(arn)["Status"] == "SUBMITTED"


def test_injected_fault_fails_the_next_call_only(standins: StandIns) -> None:
    flow_arn = create_flow()
    inject_fault("sagemaker-a2i-runtime", "StartHumanLoop", "ThrottlingException", status=429)
    with pytest.raises(ClientError) as exc_info:
        start_loop(flow_arn)
    assert error_code(exc_info) == "ThrottlingException"
    assert start_loop(flow_arn).endswith(":human-loop/loop-1")


def test_a_reply_the_service_never_sends_is_a_stand_in_bug(standins: StandIns) -> None:
    class Broken(StandInService):
        operations: ClassVar[dict[tuple[str, str], str]] = {("comprehend", "ListEndpoints"): "list_endpoints"}

        def list_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
            return {"NotAField": 1}

    broken = Broken(StandInContext()).bound_operations()
    claim(broken)
    try:
        with pytest.raises(StandInBug, match="NotAField"):
            aws("comprehend").list_endpoints()
    finally:
        release(broken)


# --- Comprehend: recognizers ----------------------------------------------------------------------------------


def test_recognizer_goes_submitted_training_trained_one_step_a_tick(standins: StandIns) -> None:
    arn = create_recognizer()
    statuses = []
    for _ in range(3):
        statuses.append(describe(arn)["Status"])
        standins.tick()
    assert statuses == ["SUBMITTED", "TRAINING", "TRAINED"]


def test_describe_does_not_move_the_clock(standins: StandIns) -> None:
    arn = create_recognizer()
    describe(arn)
    assert describe(arn)["Status"] == "SUBMITTED"


def test_recognizer_arn_names_the_version(standins: StandIns) -> None:
    assert create_recognizer(version="v7").endswith(":entity-recognizer/nerloop/version/v7")


def test_trained_recognizer_reports_metadata_as_comprehend_does(standins: StandIns) -> None:
    documents = corpus()
    arn = create_recognizer(documents)
    standins.tick()
    standins.tick()
    metadata = describe(arn)["RecognizerMetadata"]
    assert metadata["NumberOfTrainedDocuments"] + metadata["NumberOfTestDocuments"] == len(documents)
    assert metadata["NumberOfTestDocuments"] > 0  # 10 % held out without a test set
    assert set(metadata["EvaluationMetrics"]) == {"Precision", "Recall", "F1Score"}
    assert all(0 <= value <= 100 for value in metadata["EvaluationMetrics"].values())
    assert [item["Type"] for item in metadata["EntityTypes"]] == TYPES
    assert all(item["NumberOfTrainMentions"] > 0 for item in metadata["EntityTypes"])


def test_trained_model_finds_the_entities_it_was_taught(standins: StandIns) -> None:
    arn = trained_recognizer(standins)
    found = standins.comprehend.model(arn).detect("Release: Amazon S3 version 2.3 is now available in more regions.")
    assert ("Amazon S3", "SERVICE") in {(entity.text, entity.type) for entity in found}


def test_too_few_annotations_end_in_error_saying_which_type(standins: StandIns) -> None:
    documents = [(text, [span for span in spans if span.type == "SERVICE"]) for text, spans in corpus()]
    documents[0] = (documents[0][0], [*documents[0][1], corpus()[0][1][1]])  # one VERSION only
    arn = create_recognizer(documents)
    standins.tick()
    standins.tick()
    props = describe(arn)
    assert props["Status"] == "IN_ERROR"
    assert "VERSION has 1" in props["Message"]
    assert "25" in props["Message"]


def test_annotation_outside_its_line_ends_in_error_naming_the_row(standins: StandIns) -> None:
    documents = corpus()
    rows = annotations_csv(documents) + "documents.txt,0,5,999,SERVICE\n"
    arn = create_recognizer(documents, annotations=rows)
    standins.tick()
    standins.tick()
    props = describe(arn)
    assert props["Status"] == "IN_ERROR"
    assert f"row {len(rows.splitlines())}" in props["Message"]


def test_overlapping_annotations_end_in_error(standins: StandIns) -> None:
    documents = corpus()
    text, spans = documents[3]
    documents[3] = (text, [*spans, Span(spans[0].begin + 1, spans[0].end + 2, "VERSION")])
    arn = create_recognizer(documents)
    standins.tick()
    standins.tick()
    props = describe(arn)
    assert (props["Status"], "overlapping" in props["Message"]) == ("IN_ERROR", True)


def test_unknown_annotation_file_ends_in_error(standins: StandIns) -> None:
    documents = corpus()
    arn = create_recognizer(documents, annotations=annotations_csv(documents, file_name="train.csv"))
    standins.tick()
    standins.tick()
    props = describe(arn)
    assert props["Status"] == "IN_ERROR"
    assert "train.csv" in props["Message"]


def test_missing_documents_end_in_error(standins: StandIns) -> None:
    reply = aws("comprehend").create_entity_recognizer(
        RecognizerName="nerloop", VersionName="v1", DataAccessRoleArn=ROLE, LanguageCode="en",
        InputDataConfig={"EntityTypes": [{"Type": "SERVICE"}],
                         "Documents": {"S3Uri": f"s3://{BUCKET}/nothing/here.txt"},
                         "Annotations": {"S3Uri": f"s3://{BUCKET}/nothing/annotations.csv"}},
    )
    standins.tick()
    standins.tick()
    props = describe(reply["EntityRecognizerArn"])
    assert props["Status"] == "IN_ERROR"
    assert "No documents" in props["Message"]


def test_same_version_twice_is_resource_in_use(standins: StandIns) -> None:
    create_recognizer()
    with pytest.raises(ClientError) as exc_info:
        create_recognizer()
    assert error_code(exc_info) == "ResourceInUseException"


def test_version_name_breaking_the_pattern_is_refused(standins: StandIns) -> None:
    with pytest.raises(ClientError) as exc_info:
        create_recognizer(version="v_1")
    assert error_code(exc_info) == "ValidationException"


def test_type_name_with_a_space_is_refused(standins: StandIns) -> None:
    with pytest.raises(ClientError) as exc_info:
        create_recognizer(types=["SERVICE NAME"])
    assert error_code(exc_info) == "InvalidRequestException"


def test_unknown_recognizer_is_resource_not_found(standins: StandIns) -> None:
    client = aws("comprehend")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.describe_entity_recognizer(
            EntityRecognizerArn="arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/nerloop/version/v9")


def test_list_filters_by_status(standins: StandIns) -> None:
    first = create_recognizer(version="v1")
    standins.tick()
    second = create_recognizer(version="v2")
    listed = aws("comprehend").list_entity_recognizers(Filter={"Status": "SUBMITTED"})
    arns = [props["EntityRecognizerArn"] for props in listed["EntityRecognizerPropertiesList"]]
    assert (second in arns, first in arns) == (True, False)


def test_list_filters_by_name(standins: StandIns) -> None:
    create_recognizer()
    listed = aws("comprehend").list_entity_recognizers(Filter={"RecognizerName": "other"})
    assert listed["EntityRecognizerPropertiesList"] == []


def test_list_pages_through_every_recognizer(standins: StandIns) -> None:
    arns = [create_recognizer(version=f"v{n}") for n in range(1, 4)]
    pages = aws("comprehend").get_paginator("list_entity_recognizers").paginate(
        PaginationConfig={"PageSize": 2})
    listed = [props["EntityRecognizerArn"] for page in pages for props in page["EntityRecognizerPropertiesList"]]
    assert listed == arns


def test_deleted_recognizer_goes_deleting_then_away_with_its_model(standins: StandIns) -> None:
    arn = trained_recognizer(standins)
    model_files = list(standins.comprehend.models_dir.rglob("*.crf"))
    aws("comprehend").delete_entity_recognizer(EntityRecognizerArn=arn)
    assert describe(arn)["Status"] == "DELETING"
    standins.tick()
    with pytest.raises(ClientError) as exc_info:
        describe(arn)
    assert error_code(exc_info) == "ResourceNotFoundException"
    assert model_files and not any(path.exists() for path in model_files)


def test_recognizer_in_training_cannot_be_deleted(standins: StandIns) -> None:
    arn = create_recognizer()
    with pytest.raises(ClientError) as exc_info:
        aws("comprehend").delete_entity_recognizer(EntityRecognizerArn=arn)
    assert error_code(exc_info) == "ResourceInUseException"


def test_stopped_training_goes_stop_requested_then_stopped(standins: StandIns) -> None:
    arn = create_recognizer()
    aws("comprehend").stop_training_entity_recognizer(EntityRecognizerArn=arn)
    before = describe(arn)["Status"]
    standins.tick()
    assert (before, describe(arn)["Status"]) == ("STOP_REQUESTED", "STOPPED")


def test_training_data_past_comprehends_maxima_is_refused_as_in_error() -> None:
    from nerloop.constants import MAX_CORPUS_BYTES, MAX_DOCUMENT_BYTES, MAX_TRAINING_DOCUMENTS
    from nerloop_local.standins.comprehend_training_data import TrainingDataError, check_minimums

    too_many = [("Amazon S3", [])] * (MAX_TRAINING_DOCUMENTS + 1)
    with pytest.raises(TrainingDataError, match="at most 120000"):
        check_minimums(too_many, TYPES)
    too_large = [("x" * MAX_DOCUMENT_BYTES, [])] * (MAX_CORPUS_BYTES // MAX_DOCUMENT_BYTES + 1)
    with pytest.raises(TrainingDataError, match="at most 100000000"):
        check_minimums(too_large, TYPES)


def test_a_training_asked_to_warn_ends_trained_with_warning_and_can_detect(standins: StandIns) -> None:
    # ModelStatus TRAINED_WITH_WARNING (botocore model): a model, with a Message for people.
    standins.comprehend.warn_training("v1", "some annotations were ignored")
    arn = create_recognizer()
    standins.tick()
    standins.tick()
    props = describe(arn)
    assert (props["Status"], props["Message"]) == ("TRAINED_WITH_WARNING", "some annotations were ignored")
    job = start_job(arn, ["Amazon S3 version 2.0 is here."])
    assert job["JobStatus"] == "SUBMITTED"


# --- Comprehend: detection jobs ------------------------------------------------------------------------------------


def test_detection_job_goes_submitted_in_progress_completed(standins: StandIns) -> None:
    job = start_job(trained_recognizer(standins), ["Amazon S3 version 2.0 is here."])
    statuses = []
    for _ in range(3):
        statuses.append(describe_job(job["JobId"])["JobStatus"])
        standins.tick()
    assert statuses == ["SUBMITTED", "IN_PROGRESS", "COMPLETED"]


def test_detection_job_output_path_is_comprehends(standins: StandIns) -> None:
    job = start_job(trained_recognizer(standins), ["Amazon S3 version 2.0 is here."])
    standins.tick()
    standins.tick()
    uri = describe_job(job["JobId"])["OutputDataConfig"]["S3Uri"]
    assert uri == f"s3://{BUCKET}/detection/output/123456789012-NER-{job['JobId']}/output/output.tar.gz"
    aws("s3").head_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])


def test_detection_output_is_json_lines_in_a_tar_gz_member_named_output(standins: StandIns) -> None:
    lines = ["Release: AWS Glue version 3.1 is now available.", "", "Nothing to see here."]
    job = start_job(trained_recognizer(standins), lines)
    standins.tick()
    standins.tick()
    uri = describe_job(job["JobId"])["OutputDataConfig"]["S3Uri"]
    body = aws("s3").get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        assert archive.getnames() == ["output"]
        member = archive.extractfile("output")
        assert member is not None
        records = [json.loads(line) for line in member.read().decode().splitlines()]
    assert [(r["File"], r["Line"]) for r in records] == [("documents.txt", n) for n in range(len(lines))]
    for record, text in zip(records, lines, strict=True):
        for entity in record["Entities"]:
            assert set(entity) == {"BeginOffset", "EndOffset", "Score", "Text", "Type"}
            assert text[entity["BeginOffset"]:entity["EndOffset"]] == entity["Text"]
            assert 0 <= entity["Score"] <= 1
    assert records[0]["Entities"]


def test_detection_job_with_no_input_fails_with_a_message(standins: StandIns) -> None:
    arn = trained_recognizer(standins)
    job = aws("comprehend").start_entities_detection_job(
        EntityRecognizerArn=arn, LanguageCode="en", DataAccessRoleArn=ROLE,
        InputDataConfig={"S3Uri": f"s3://{BUCKET}/detection/input/none/", "InputFormat": "ONE_DOC_PER_LINE"},
        OutputDataConfig={"S3Uri": f"s3://{BUCKET}/detection/output/"},
    )
    standins.tick()
    standins.tick()
    props = describe_job(job["JobId"])
    assert (props["JobStatus"], "No input files" in props["Message"]) == ("FAILED", True)


def test_detection_with_an_untrained_recognizer_is_resource_unavailable(standins: StandIns) -> None:
    with pytest.raises(ClientError) as exc_info:
        start_job(create_recognizer(), ["text"])
    assert error_code(exc_info) == "ResourceUnavailableException"


def test_unknown_job_is_job_not_found(standins: StandIns) -> None:
    with pytest.raises(ClientError) as exc_info:
        describe_job("0" * 32)
    assert error_code(exc_info) == "JobNotFoundException"


def test_same_client_request_token_starts_one_job(standins: StandIns) -> None:
    arn = trained_recognizer(standins)
    put("detection/input/r1/documents.txt", "Amazon S3\n")
    params = {"EntityRecognizerArn": arn, "LanguageCode": "en", "DataAccessRoleArn": ROLE,
              "InputDataConfig": {"S3Uri": f"s3://{BUCKET}/detection/input/r1/", "InputFormat": "ONE_DOC_PER_LINE"},
              "OutputDataConfig": {"S3Uri": f"s3://{BUCKET}/detection/output/"}, "ClientRequestToken": "token-1"}
    client = aws("comprehend")
    first, second = (client.start_entities_detection_job(**params) for _ in range(2))
    assert first["JobId"] == second["JobId"]
    assert len(client.list_entities_detection_jobs()["EntitiesDetectionJobPropertiesList"]) == 1


def test_an_eleventh_concurrent_job_is_too_many_requests_until_one_ends(standins: StandIns) -> None:
    # Guidelines and quotas: at most 10 concurrent active jobs per job type.
    arn = trained_recognizer(standins)
    jobs = [start_job(arn, ["Amazon S3"], run=f"r{n}") for n in range(10)]
    with pytest.raises(ClientError) as exc_info:
        start_job(arn, ["Amazon S3"], run="r10")
    assert error_code(exc_info) == "TooManyRequestsException"
    aws("comprehend").stop_entities_detection_job(JobId=jobs[0]["JobId"])
    with pytest.raises(ClientError):  # STOP_REQUESTED is still active
        start_job(arn, ["Amazon S3"], run="r10")
    standins.tick()  # STOPPED frees the slot; the other nine, now IN_PROGRESS, still count
    assert start_job(arn, ["Amazon S3"], run="r10")["JobStatus"] == "SUBMITTED"


def test_stopped_detection_job_goes_stop_requested_then_stopped(standins: StandIns) -> None:
    job = start_job(trained_recognizer(standins), ["Amazon S3"])
    reply = aws("comprehend").stop_entities_detection_job(JobId=job["JobId"])
    standins.tick()
    assert (reply["JobStatus"], describe_job(job["JobId"])["JobStatus"]) == ("STOP_REQUESTED", "STOPPED")


def test_recognizer_a_detection_job_uses_cannot_be_deleted(standins: StandIns) -> None:
    # DeleteEntityRecognizer: "If an active inference job is using the model, a ResourceInUseException
    # will be returned."
    arn = trained_recognizer(standins)
    start_job(arn, ["Amazon S3"])
    with pytest.raises(ClientError) as refused:
        aws("comprehend").delete_entity_recognizer(EntityRecognizerArn=arn)
    assert error_code(refused) == "ResourceInUseException"


def test_stack_delete_stops_the_detection_job_using_a_version_and_deletes_it(standins: StandIns) -> None:
    # Given a trained version and a detection job that uses it, and time for one wait only
    from nerloop.aws import Aws
    from nerloop.custom_resources import POLL_SECONDS, Deadline, delete_recognizer_versions

    arn = trained_recognizer(standins)
    job = start_job(arn, ["Amazon S3"])
    now = [0.0]

    def sleep(seconds: float) -> None:  # time passes, and Comprehend moves on
        now[0] += seconds
        standins.tick()

    deadline = Deadline(until=POLL_SECONDS * 1.5, sleep=sleep, clock=lambda: now[0])

    # When the stack's cleanup deletes the recognizer's versions
    deleted = delete_recognizer_versions("nerloop", Aws("", overrides={"comprehend": aws("comprehend")}), deadline)

    # Then the job was stopped, and the version deleted after one wait
    assert describe_job(job["JobId"])["JobStatus"] == "STOPPED"
    assert deleted == [arn] and describe(arn)["Status"] == "DELETING"


# --- A2I -----------------------------------------------------------------------------------------------------------


def test_started_loop_is_in_progress(standins: StandIns) -> None:
    arn = start_loop(create_flow())
    loop = describe_loop("loop-1")
    assert (loop["HumanLoopStatus"], loop["HumanLoopArn"]) == ("InProgress", arn)
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:human-loop/loop-1"


def test_same_name_and_input_again_is_the_same_loop(standins: StandIns) -> None:
    flow_arn = create_flow()
    assert start_loop(flow_arn) == start_loop(flow_arn)
    assert len(standins.a2i.loops) == 1


def test_same_name_with_other_input_is_a_conflict(standins: StandIns) -> None:
    flow_arn = create_flow()
    start_loop(flow_arn)
    with pytest.raises(ClientError) as exc_info:
        start_loop(flow_arn, content={"text": "something else"})
    assert error_code(exc_info) == "ConflictException"


@pytest.mark.parametrize("name", ["Loop-1", "-loop", "loop_1", "a" * 64])
def test_loop_name_breaking_the_rules_is_refused(standins: StandIns, name: str) -> None:
    with pytest.raises(ClientError) as exc_info:
        start_loop(create_flow(), name=name)
    assert error_code(exc_info) == "ValidationException"


def test_input_content_over_the_limit_is_refused(standins: StandIns) -> None:
    with pytest.raises(ClientError) as exc_info:
        start_loop(create_flow(), content={"text": "x" * 3_145_728})
    assert error_code(exc_info) == "ValidationException"


def test_loop_of_an_unknown_flow_definition_is_not_found(standins: StandIns) -> None:
    with pytest.raises(ClientError) as exc_info:
        start_loop("arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nope")
    assert error_code(exc_info) == "ResourceNotFoundException"


def test_reviewer_answer_is_written_as_a2i_output_json(standins: StandIns) -> None:
    entities = [{"label": "SERVICE", "startOffset": 0, "endOffset": 9}]
    standins.a2i.reviewer = lambda name, content: entities
    content = {"text": "Amazon S3 2.0", "labels": [{"label": "SERVICE"}]}
    start_loop(create_flow(), content=content)
    standins.tick()
    loop = describe_loop("loop-1")
    uri = loop["HumanLoopOutput"]["OutputS3Uri"]
    created = loop["CreationTime"].strftime("%Y/%m/%d/%H/%M/%S")
    assert uri == f"s3://{BUCKET}/reviews/{FLOW_NAME}/{created}/loop-1/output.json"
    output = json.loads(aws("s3").get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read())
    assert output["humanLoopName"] == "loop-1"
    assert output["flowDefinitionArn"].endswith(f":flow-definition/{FLOW_NAME}")
    assert output["inputContent"] == content
    answer = output["humanAnswers"][0]
    assert answer["answerContent"] == {"crowd-entity-annotation": {"entities": entities}}
    assert {"submissionTime", "acceptanceTime", "timeSpentInSeconds", "workerId", "workerMetadata"} <= set(answer)
    assert loop["HumanLoopStatus"] == "Completed"


def test_finished_loop_publishes_a2i_status_event(standins: StandIns) -> None:
    queue = capture("SageMaker A2I HumanLoop Status Change")
    standins.a2i.reviewer = lambda name, content: []
    arn = start_loop(flow_arn := create_flow())
    standins.tick()
    (event,) = received(queue)
    assert (event["source"], event["resources"]) == ("aws.sagemaker", [arn])
    detail = event["detail"]
    assert (detail["humanLoopName"], detail["humanLoopStatus"], detail["flowDefinitionArn"]) == (
        "loop-1", "Completed", flow_arn)
    assert detail["humanLoopOutput"]["outputS3Uri"].endswith("/loop-1/output.json")


def test_unanswered_loop_waits_without_keeping_the_clock_busy(standins: StandIns) -> None:
    asked: list[str] = []
    standins.a2i.reviewer = lambda name, content: asked.append(name)  # returns None: no answer yet
    start_loop(create_flow())
    busy_before = standins.busy()
    standins.tick()
    assert (busy_before, standins.busy(), asked, describe_loop("loop-1")["HumanLoopStatus"]) == (
        True, False, ["loop-1"], "InProgress")
    assert [pending.name for pending in standins.a2i.pending_loops()] == ["loop-1"]


def test_stopped_loop_goes_stopping_then_stopped_with_an_event(standins: StandIns) -> None:
    queue = capture("SageMaker A2I HumanLoop Status Change")
    start_loop(create_flow())
    aws("sagemaker-a2i-runtime").stop_human_loop(HumanLoopName="loop-1")
    before = describe_loop("loop-1")["HumanLoopStatus"]
    standins.tick()
    assert (before, describe_loop("loop-1")["HumanLoopStatus"]) == ("Stopping", "Stopped")
    assert [event["detail"]["humanLoopStatus"] for event in received(queue)] == ["Stopped"]


def test_failed_loop_carries_its_failure_code(standins: StandIns) -> None:
    start_loop(create_flow())
    standins.a2i.fail_loop("loop-1", "Expired", "nobody answered")
    loop = describe_loop("loop-1")
    assert (loop["HumanLoopStatus"], loop["FailureCode"], loop["FailureReason"]) == ("Failed", "Expired",
                                                                                     "nobody answered")


def test_failed_loop_event_has_the_fields_of_the_failed_sample_event(standins: StandIns) -> None:
    # Given a loop nobody took, ended as A2I ends it
    queue = capture("SageMaker A2I HumanLoop Status Change")
    start_loop(create_flow())
    standins.a2i.fail_loop("loop-1", "Expired", "nobody answered")
    (event,) = received(queue)
    sample = json.loads((EVENTS_DIR / "merge-failed.json").read_text(encoding="utf-8"))
    # Then the stand-in and events/merge-failed.json agree: the same fields, no output (a failed loop
    # has no review results), a documented failure code
    assert set(event["detail"]) == set(sample["detail"])
    assert event["detail"]["humanLoopOutput"] is None and sample["detail"]["humanLoopOutput"] is None
    assert (event["detail"]["humanLoopStatus"], event["detail"]["failureCode"]) == ("Failed", "Expired")
    assert sample["detail"]["failureCode"] in ("ValidationError", "Expired", "InternalError")


def test_list_human_loops_newest_first(standins: StandIns) -> None:
    flow_arn = create_flow()
    for name in ("loop-a", "loop-b"):
        start_loop(flow_arn, name=name)
    summaries = aws("sagemaker-a2i-runtime").list_human_loops(FlowDefinitionArn=flow_arn)["HumanLoopSummaries"]
    assert [summary["HumanLoopName"] for summary in summaries] == ["loop-b", "loop-a"]


def test_finished_loop_can_be_deleted(standins: StandIns) -> None:
    start_loop(create_flow())
    standins.a2i.complete_loop("loop-1", [])
    aws("sagemaker-a2i-runtime").delete_human_loop(HumanLoopName="loop-1")
    with pytest.raises(ClientError) as exc_info:
        describe_loop("loop-1")
    assert error_code(exc_info) == "ResourceNotFoundException"


def test_loop_in_progress_cannot_be_deleted(standins: StandIns) -> None:
    start_loop(create_flow())
    with pytest.raises(ClientError) as exc_info:
        aws("sagemaker-a2i-runtime").delete_human_loop(HumanLoopName="loop-1")
    assert error_code(exc_info) == "ValidationException"


# --- flow definitions ------------------------------------------------------------------------------------------------


def test_flow_definition_is_described_as_created(standins: StandIns) -> None:
    arn = create_flow()
    described = aws("sagemaker").describe_flow_definition(FlowDefinitionName=FLOW_NAME)
    assert (described["FlowDefinitionArn"], described["FlowDefinitionStatus"],
            described["OutputConfig"]["S3OutputPath"]) == (arn, "Active", f"s3://{BUCKET}/reviews/")


def test_deleted_flow_definition_goes_deleting_then_is_not_found(standins: StandIns) -> None:
    create_flow()
    client = aws("sagemaker")
    client.delete_flow_definition(FlowDefinitionName=FLOW_NAME)
    status = client.describe_flow_definition(FlowDefinitionName=FLOW_NAME)["FlowDefinitionStatus"]
    standins.tick()
    with pytest.raises(ClientError) as exc_info:
        client.describe_flow_definition(FlowDefinitionName=FLOW_NAME)
    assert (status, error_code(exc_info)) == ("Deleting", "ResourceNotFound")


def test_deleting_a_flow_definition_stops_and_deletes_its_loops_in_progress(standins: StandIns) -> None:
    # Given a flow definition with a loop nobody has answered and one answered
    queue = capture("SageMaker A2I HumanLoop Status Change")
    flow_arn = create_flow()
    start_loop(flow_arn, name="open-loop")
    start_loop(flow_arn, name="done-loop")
    standins.a2i.complete_loop("done-loop", [])
    # When it is deleted
    aws("sagemaker").delete_flow_definition(FlowDefinitionName=FLOW_NAME)
    # Then, as A2I documents, the open loop is stopped (its event names the deleted flow definition)
    # and both loops are deleted; the flow definition goes once no loop is left
    events = [(event["detail"]["humanLoopName"], event["detail"]["humanLoopStatus"],
               event["detail"]["flowDefinitionArn"]) for event in received(queue)]
    assert events == [("done-loop", "Completed", flow_arn), ("open-loop", "Stopped", flow_arn)]
    for name in ("open-loop", "done-loop"):
        with pytest.raises(ClientError) as exc_info:
            describe_loop(name)
        assert error_code(exc_info) == "ResourceNotFoundException"
    assert standins.busy()
    standins.tick()
    assert aws("sagemaker").list_flow_definitions()["FlowDefinitionSummaries"] == []


def test_flow_definition_with_a_role_not_yet_propagated_is_refused_until_it_is(standins: StandIns) -> None:
    standins.flow_definitions.add_new_role(ROLE, refusals=1)
    with pytest.raises(ClientError) as refused:
        create_flow()
    assert error_code(refused) == "ValidationException"
    assert create_flow().endswith(f"flow-definition/{FLOW_NAME}")


def flow_definition_properties() -> Any:
    from nerloop.custom_resources import FlowDefinitionProperties

    return FlowDefinitionProperties.model_validate({
        "FlowDefinitionName": "nerloop-review", "RoleArn": ROLE, "OutputPath": f"s3://{BUCKET}/reviews/",
        "WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
        "HumanTaskUiArn": "arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/ui",
        "TaskTitle": "t", "TaskDescription": "d", "TaskCount": "1"})


def stack_deadline(standins: StandIns, naps: list[float], seconds: float = 900.0) -> Any:
    """A custom resource's Deadline on a clock that moves only when it sleeps (and the stand-ins with it)."""
    from nerloop.custom_resources import Deadline

    def sleep(delay: float) -> None:
        naps.append(delay)
        standins.tick()

    return Deadline(until=seconds, sleep=sleep, clock=lambda: sum(naps))


def test_stack_create_waits_for_the_new_review_role_to_propagate(standins: StandIns) -> None:
    # Given the review role CloudFormation created moments before: SageMaker refuses it twice
    from nerloop.aws import Aws
    from nerloop.custom_resources import RETRY_FIRST_SECONDS, create_flow_definition

    standins.flow_definitions.add_new_role(ROLE, refusals=2)
    naps: list[float] = []

    # When the custom resource creates the flow definition
    outcome = create_flow_definition(flow_definition_properties(), Aws("", overrides={"sagemaker": aws("sagemaker")}),
                                     stack_deadline(standins, naps))

    # Then it retried with back-off and the flow definition exists
    assert naps == [RETRY_FIRST_SECONDS, 2 * RETRY_FIRST_SECONDS]
    assert outcome.data["Arn"].endswith(f"flow-definition/{outcome.physical_id}")


def test_a_role_that_never_becomes_usable_fails_the_create_with_sagemaker_s_error(standins: StandIns) -> None:
    from nerloop.aws import Aws
    from nerloop.custom_resources import ROLE_PROPAGATION_SECONDS, create_flow_definition

    standins.flow_definitions.add_new_role(ROLE, refusals=1000)
    naps: list[float] = []
    with pytest.raises(ClientError) as refused:
        create_flow_definition(flow_definition_properties(), Aws("", overrides={"sagemaker": aws("sagemaker")}),
                               stack_deadline(standins, naps))
    assert error_code(refused) == "ValidationException"
    assert len(naps) > 3 and sum(naps) <= ROLE_PROPAGATION_SECONDS


def test_flow_definitions_are_listed(standins: StandIns) -> None:
    arn = create_flow()
    summaries = aws("sagemaker").list_flow_definitions()["FlowDefinitionSummaries"]
    assert [(item["FlowDefinitionArn"], item["FlowDefinitionStatus"]) for item in summaries] == [(arn, "Active")]


def test_human_task_ui_is_described_with_its_content_hash(standins: StandIns) -> None:
    content = "<crowd-entity-annotation name='crowd-entity-annotation'></crowd-entity-annotation>"
    arn = aws("sagemaker").create_human_task_ui(HumanTaskUiName="ui", UiTemplate={"Content": content})["HumanTaskUiArn"]
    described = aws("sagemaker").describe_human_task_ui(HumanTaskUiName="ui")
    assert (described["HumanTaskUiArn"], described["UiTemplate"]["ContentSha256"]) == (
        arn, hashlib.sha256(content.encode()).hexdigest())


def test_known_workteam_is_described_with_its_portal(standins: StandIns) -> None:
    standins.flow_definitions.add_workteam("arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team")
    workteam = aws("sagemaker").describe_workteam(WorkteamName="team")["Workteam"]
    assert (workteam["WorkteamName"], workteam["SubDomain"]) == ("team", "team.labeling.us-east-1.sagemaker.aws")


def test_unknown_workteam_is_not_found(standins: StandIns) -> None:
    with pytest.raises(ClientError) as exc_info:
        aws("sagemaker").describe_workteam(WorkteamName="nobody")
    assert error_code(exc_info) == "ResourceNotFound"


# --- Ground Truth ----------------------------------------------------------------------------------------------------

MANIFEST = (
    '{"source":"Amazon S3 2.0","job-a":{"annotations":{"entities":[{"startOffset":0,"endOffset":9,'
    '"label":"SERVICE"}],"labels":[{"label":"SERVICE"}]}},"job-a-metadata":{"entities":[{"confidence":0}],'
    '"job-name":"labeling-job/job-a","type":"groundtruth/text-span","human-annotated":"yes"}}\n'
)


def create_labeling_job(name: str = "nerloop-job", manifest_key: str | None = "labeling/in.manifest") -> str:
    if manifest_key:
        put(manifest_key, '{"source":"Amazon S3 2.0"}\n')
    return str(aws("sagemaker").create_labeling_job(
        LabelingJobName=name, LabelAttributeName="job-a",
        InputConfig={"DataSource": {"S3DataSource": {
            "ManifestS3Uri": f"s3://{BUCKET}/{manifest_key or 'labeling/missing.manifest'}"}}},
        OutputConfig={"S3OutputPath": f"s3://{BUCKET}/labeling/"}, RoleArn=ROLE,
        HumanTaskConfig={"WorkteamArn": "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
                         "UiConfig": {"UiTemplateS3Uri": f"s3://{BUCKET}/ui.html"},
                         "PreHumanTaskLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:PRE-NER",
                         "TaskTitle": "t", "TaskDescription": "d", "NumberOfHumanWorkersPerDataObject": 1,
                         "TaskTimeLimitInSeconds": 300,
                         "AnnotationConsolidationConfig": {
                             "AnnotationConsolidationLambdaArn": "arn:aws:lambda:us-east-1:432418664414:function:ACS"}},
    )["LabelingJobArn"])


def describe_labeling_job(name: str = "nerloop-job") -> dict[str, Any]:
    return dict(aws("sagemaker").describe_labeling_job(LabelingJobName=name))


def test_labeling_job_goes_initializing_then_in_progress(standins: StandIns) -> None:
    create_labeling_job()
    before = describe_labeling_job()["LabelingJobStatus"]
    standins.tick()
    assert (before, describe_labeling_job()["LabelingJobStatus"]) == ("Initializing", "InProgress")


def test_completed_job_holds_the_manifest_where_ground_truth_writes_it(standins: StandIns) -> None:
    create_labeling_job()
    uri = standins.groundtruth.complete_job_from_manifest("nerloop-job", MANIFEST)
    described = describe_labeling_job()
    assert uri == f"s3://{BUCKET}/labeling/nerloop-job/manifests/output/output.manifest"
    assert (described["LabelingJobStatus"], described["LabelingJobOutput"]["OutputDatasetS3Uri"],
            described["LabelAttributeName"]) == ("Completed", uri, "job-a")
    body = aws("s3").get_object(Bucket=BUCKET, Key=uri.split("/", 3)[3])["Body"].read().decode()
    assert body == MANIFEST
    assert described["LabelCounters"]["HumanLabeled"] == 1


def test_only_unfinished_jobs_are_pending(standins: StandIns) -> None:
    create_labeling_job("nerloop-done")
    create_labeling_job("nerloop-open", manifest_key="labeling/other.manifest")
    standins.groundtruth.complete_job_from_manifest("nerloop-done", MANIFEST)
    assert [job.name for job in standins.groundtruth.pending_jobs()] == ["nerloop-open"]


def test_completed_job_publishes_the_state_change_event(standins: StandIns) -> None:
    queue = capture("SageMaker Ground Truth Labeling Job State Change")
    arn = create_labeling_job()
    standins.groundtruth.complete_job_from_manifest("nerloop-job", MANIFEST)
    (event,) = received(queue)
    assert (event["source"], event["resources"], event["detail"]) == (
        "aws.sagemaker", [arn], {"LabelingJobStatus": "Completed"})


def test_labeling_jobs_are_listed_by_status(standins: StandIns) -> None:
    create_labeling_job("nerloop-done")
    create_labeling_job("nerloop-open", manifest_key="labeling/other.manifest")
    standins.groundtruth.complete_job_from_manifest("nerloop-done", MANIFEST)
    listed = aws("sagemaker").list_labeling_jobs(StatusEquals="Completed")["LabelingJobSummaryList"]
    assert [item["LabelingJobName"] for item in listed] == ["nerloop-done"]


def test_job_with_a_missing_input_manifest_fails(standins: StandIns) -> None:
    create_labeling_job(manifest_key=None)
    standins.tick()
    described = describe_labeling_job()
    assert (described["LabelingJobStatus"], "does not exist" in described["FailureReason"]) == ("Failed", True)


def test_same_labeling_job_name_twice_is_resource_in_use(standins: StandIns) -> None:
    create_labeling_job()
    with pytest.raises(ClientError) as exc_info:
        create_labeling_job()
    assert error_code(exc_info) == "ResourceInUse"


def test_label_attribute_is_the_key_with_a_metadata_twin() -> None:
    assert label_attribute_of(MANIFEST) == "job-a"


# --- saved state -----------------------------------------------------------------------------------------------------


def test_snapshot_restores_recognizers_models_and_loops(tmp_path: Path) -> None:
    with mock_aws():
        aws("s3").create_bucket(Bucket=BUCKET)
        first = StandIns(StandInContext(state_dir=tmp_path, session=_SESSION))
        with first.installed():
            arn = trained_recognizer(first)
            start_loop(create_flow())
            saved = json.loads(json.dumps(first.snapshot()))  # it must survive JSON
        again = StandIns(StandInContext(state_dir=tmp_path, session=_SESSION))
        again.restore(saved)
        with again.installed():
            assert describe(arn)["Status"] == "TRAINED"
            assert describe_loop("loop-1")["HumanLoopStatus"] == "InProgress"
            assert again.comprehend.model(arn).detect("Release: Amazon S3 version 2.3 is here.")


def create_with_test_set(test: list[tuple[str, list[Span]]]) -> str:
    """v1 trained on corpus() with `test` as its TestS3Uri data (test-documents.txt, test-annotations.csv)."""
    train = corpus()
    documents_uri = put("training/v1/documents.txt", "".join(text + "\n" for text, _ in train))
    annotations_uri = put("training/v1/annotations.csv", annotations_csv(train))
    test_documents_uri = put("training/v1/test-documents.txt", "".join(text + "\n" for text, _ in test))
    test_annotations_uri = put("training/v1/test-annotations.csv", annotations_csv(test, "test-documents.txt"))
    reply = aws("comprehend").create_entity_recognizer(
        RecognizerName="nerloop", VersionName="v1", DataAccessRoleArn=ROLE, LanguageCode="en",
        InputDataConfig={
            "DataFormat": "COMPREHEND_CSV", "EntityTypes": [{"Type": name} for name in TYPES],
            "Documents": {"S3Uri": documents_uri, "TestS3Uri": test_documents_uri, "InputFormat": "ONE_DOC_PER_LINE"},
            "Annotations": {"S3Uri": annotations_uri, "TestS3Uri": test_annotations_uri},
        },
    )
    return str(reply["EntityRecognizerArn"])


def test_a_test_set_is_what_the_version_is_scored_on_and_all_training_documents_train(standins: StandIns) -> None:
    test = corpus(72)[60:]  # twelve documents the model never trains on
    arn = create_with_test_set(test)
    standins.tick()
    standins.tick()
    props = describe(arn)
    metadata = props["RecognizerMetadata"]
    assert props["Status"] == "TRAINED"
    assert (metadata["NumberOfTrainedDocuments"], metadata["NumberOfTestDocuments"]) == (60, 12)
    # The call as made is kept: the test set's locations reach the recognizer's InputDataConfig.
    assert props["InputDataConfig"]["Documents"]["TestS3Uri"].endswith("/training/v1/test-documents.txt")
    assert props["InputDataConfig"]["Annotations"]["TestS3Uri"].endswith("/training/v1/test-annotations.csv")


def test_a_test_set_without_an_annotation_of_each_type_ends_in_error(standins: StandIns) -> None:
    test = [(text, [span for span in spans if span.type == "SERVICE"]) for text, spans in corpus(72)[60:]]
    arn = create_with_test_set(test)
    standins.tick()
    standins.tick()
    props = describe(arn)
    assert props["Status"] == "IN_ERROR" and "VERSION" in props["Message"]
