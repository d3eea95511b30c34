"""Finding a deployed stack's resources and reading its dead letters, without AWS: which queue is whose
from template.yaml, the two documented dead-letter formats, the errors a person meets (no region, no
credentials, a stack of more than 100 resources), with botocore's Stubber in place of CloudFormation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from nerloop_local.cli import main
from nerloop_local.commands.stack_redrive import EVENTBRIDGE_EVENT, LAMBDA_RECORD, UNKNOWN, read_dead_letter
from nerloop_local.commands.stack_resources import DESCRIBE_LIMIT, StackError, dead_letter_queues, open_stack
from nerloop_local.emulator.template import load_template

STAGES = ("Preprocess", "Convert", "Train", "Watch", "Detect", "Route", "Merge")
EVENT = {"version": "0", "id": "e1", "detail-type": "Object Created", "source": "aws.s3", "account": "1",
         "time": "2026-12-05T08:00:00Z", "region": "us-east-1", "resources": [],
         "detail": {"bucket": {"name": "b"}, "object": {"key": "raw/a.txt"}}}
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/prod/5b1f0e70-ad1c-11ef-9c8b-0affd3c2a1b1"


def test_each_stage_function_has_its_own_dead_letter_queue() -> None:
    assert dead_letter_queues(load_template()) == {f"{stage}Function": f"{stage}DeadLetterQueue" for stage in STAGES}


def test_a_function_with_two_failure_queues_is_refused() -> None:
    template = load_template()
    events = template["Resources"]["MergeFunction"]["Properties"]["Events"]
    next(iter(events.values()))["Properties"]["DeadLetterConfig"] = {"Arn": {"Fn::GetAtt": ["RouteDeadLetterQueue",
                                                                                             "Arn"]}}
    with pytest.raises(ValueError, match="MergeFunction sends failures to several queues"):
        dead_letter_queues(template)


# --- the dead-letter formats ----------------------------------------------------------------------------------


def test_a_lambda_invocation_record_carries_the_event() -> None:
    record = {"version": "1.0", "timestamp": "2026-12-05T08:00:00.000Z",
              "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:us-east-1:1:function:f:$LATEST",
                                 "condition": "RetriesExhausted", "approximateInvokeCount": 3},
              "requestPayload": EVENT, "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
              "responsePayload": {"errorMessage": "boom\nat line 3", "errorType": "RuntimeError"}}
    letter = read_dead_letter("PreprocessFunction", {"MessageId": "m", "ReceiptHandle": "h",
                                                     "Body": json.dumps(record)})
    assert (letter.kind, letter.event, letter.attempts) == (LAMBDA_RECORD, EVENT, 3)
    assert letter.summary() == {"event": "raw/a.txt", "attempts": 3, "error": "boom"}


def test_an_event_a_rule_could_not_deliver_is_the_body() -> None:
    attributes = {"RULE_ARN": "arn:rule", "TARGET_ARN": "arn:function", "ERROR_CODE": "NO_PERMISSIONS",
                  "ERROR_MESSAGE": "denied", "EXHAUSTED_RETRY_CONDITION": "MaximumRetryAttempts",
                  "RETRY_ATTEMPTS": "185"}
    letter = read_dead_letter("PreprocessFunction", {
        "MessageId": "m", "ReceiptHandle": "h", "Body": json.dumps(EVENT),
        "MessageAttributes": {key: {"StringValue": value, "DataType": "String"} for key, value in attributes.items()}})
    assert (letter.kind, letter.event, letter.attempts, letter.error) == (
        EVENTBRIDGE_EVENT, EVENT, 186, "NO_PERMISSIONS: denied")


@pytest.mark.parametrize("body", ["not json", "[1, 2]", json.dumps({"requestContext": {}, "requestPayload": "x"}),
                                  json.dumps({"detail": {}})])
def test_anything_else_is_no_event(body: str) -> None:
    letter = read_dead_letter("RouteFunction", {"MessageId": "m", "ReceiptHandle": "h", "Body": body})
    assert (letter.kind, letter.event) == (UNKNOWN, None)


# --- finding the stack ----------------------------------------------------------------------------------------


def no_aws_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, credentials: bool,
                         region: bool) -> None:
    """An environment where boto3's default chain finds only what is asked for (no profile, no metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance role to ask for
    for name in ("POWERTOOLS_TRACE_DISABLED", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL",
                 "POWERTOOLS_METRICS_DISABLED"):  # `main` sets these: put back after the test
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])
        else:
            monkeypatch.delenv(name, raising=False)
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    if region:
        monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")


def test_no_region_says_how_to_give_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    no_aws_configuration(monkeypatch, tmp_path, credentials=True, region=False)
    with pytest.raises(StackError, match="no AWS region: pass --region R, or set AWS_DEFAULT_REGION"):
        open_stack("prod")


def test_no_credentials_is_said_on_one_line_with_exit_status_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               capsys: Any) -> None:
    no_aws_configuration(monkeypatch, tmp_path, credentials=False, region=True)
    # `main` leaves the caller's credential chain alone when given --stack (it sets fake ones otherwise)
    assert main(["status", "--stack", "prod"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nerloop: no AWS credentials: boto3's default chain found none")


def stubbed_session(answers: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> Any:
    """A session whose CloudFormation client answers `answers` (operation, response, expected params) in turn."""
    client = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(client)
    for operation, response, params in answers:
        stubber.add_response(operation, response, params)
    stubber.activate()

    class Session:
        region_name = "us-east-1"

        def __init__(self, **_: Any) -> None:
            pass

        def get_credentials(self) -> object:
            return object()

        def client(self, service: str, **_: Any) -> Any:
            assert service == "cloudformation"
            return client

    return Session


def resource(logical_id: str, physical_id: str, kind: str = "AWS::SQS::Queue") -> dict[str, Any]:
    return {"LogicalResourceId": logical_id, "PhysicalResourceId": physical_id, "ResourceType": kind,
            "Timestamp": "2026-12-05T08:00:00Z", "ResourceStatus": "CREATE_COMPLETE"}


def test_a_stack_of_more_than_100_resources_is_asked_for_the_rest_by_name() -> None:
    # Given a stack whose first 100 resources (all DescribeStackResources returns) do not include the table
    template = load_template()
    functions = [name for name, res in template["Resources"].items() if res["Type"] == "AWS::Serverless::Function"]
    first = [resource("DataBucket", "prod-databucket-1", "AWS::S3::Bucket")]
    first += [resource(name, f"prod-{name}", "AWS::Lambda::Function") for name in functions]
    first += [resource(f"{stage}DeadLetterQueue", f"https://sqs/{stage}") for stage in STAGES]
    first += [resource(f"Other{index}", f"other-{index}", "AWS::IAM::Role")
              for index in range(DESCRIBE_LIMIT - len(first))]
    session = stubbed_session([
        ("describe_stacks", {"Stacks": [{"StackName": "prod", "StackId": STACK_ID, "CreationTime": "2026-12-05",
                                         "StackStatus": "UPDATE_COMPLETE",
                                         "Parameters": [{"ParameterKey": "EntityTypes", "ParameterValue": "A,B"}]}]},
         {"StackName": "prod"}),
        ("describe_stack_resources", {"StackResources": first}, {"StackName": "prod"}),
        ("describe_stack_resources", {"StackResources": [resource("StateTable", "prod-table", "AWS::DynamoDB::Table")]},
         {"StackName": "prod", "LogicalResourceId": "StateTable"}),
    ])
    # When it is opened
    stack = open_stack("prod", "us-east-1", session_factory=session, template=template)
    # Then the table came from the second question, the rest from the first
    assert (stack.table, stack.bucket, stack.status) == ("prod-table", "prod-databucket-1", "UPDATE_COMPLETE")
    assert stack.dead_letter_queues["MergeFunction"] == "https://sqs/Merge"
    assert stack.parameters == {"EntityTypes": "A,B"}
