"""Custom resources — the A2I flow definition and the recognizer cleanup: a CloudFormation request,
built from template.yaml, to the SageMaker / Comprehend calls and the response sent back.

moto has no flow definitions and no A2I runtime, so the calls are checked at the client boundary with
botocore's Stubber, and the response is captured instead of PUT to the (fake) ResponseURL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from nerloop import aws as nerloop_aws
from nerloop import custom_resources
from nerloop.aws import Aws
from nerloop.custom_resources import FAILED, NOTHING_CREATED, SUCCESS, FlowDefinitionProperties, handle_request
from nerloop_local.emulator.stack import Stack

WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/nerloop-reviewers"
WITH_WORKTEAM = Stack.load({"WorkteamArn": WORKTEAM})
WITHOUT_WORKTEAM = Stack.load()
RESPONSE_URL = "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws/signed?X-Amz-Signature=abc"
ACCOUNT_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012"
RECOGNIZER = f"arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/{WITH_WORKTEAM.parameters['RecognizerName']}"


def as_cloudformation_sends(value: Any) -> Any:
    """CloudFormation hands custom resources every scalar property as a string."""
    if isinstance(value, dict):
        return {key: as_cloudformation_sends(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_cloudformation_sends(item) for item in value]
    return str(value)


def properties(stack: Stack, logical_id: str, **changes: str) -> dict[str, Any]:
    return {**as_cloudformation_sends(stack.resolve(stack.resource(logical_id)["Properties"])), **changes}


def request(logical_id: str, props: dict[str, Any], request_type: str = "Create", physical_id: str | None = None,
            old_props: dict[str, Any] | None = None, stack: Stack = WITH_WORKTEAM) -> dict[str, Any]:
    event = {
        "RequestType": request_type,
        "ServiceToken": props.get("ServiceToken", "arn:aws:lambda:us-east-1:123456789012:function:x"),
        "ResponseURL": RESPONSE_URL,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/nerloop/5b1f0e70-ad1c-11ef-9c8b-0affd3c2a1b1",
        "RequestId": "8f3c1a52-6d3e-4f0b-9b51-1f0e7c2d9a44",
        "LogicalResourceId": logical_id,
        "ResourceType": stack.resource(logical_id)["Type"],
        "ResourceProperties": props,
    }
    if physical_id is not None:
        event["PhysicalResourceId"] = physical_id
    if old_props is not None:
        event["OldResourceProperties"] = old_props
    return event


class Sent:
    """A stand-in for the PUT to ResponseURL."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, url: str, body: dict[str, Any]) -> None:
        json.dumps(body)  # what is sent must be JSON
        self.responses.append((url, body))

    @property
    def only(self) -> dict[str, Any]:
        (url, body), = self.responses
        assert url == RESPONSE_URL
        return body


class Clients:
    """Stubbed SageMaker, A2I runtime, Comprehend and CloudFormation clients in an Aws bundle."""

    def __init__(self) -> None:
        self.sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        self.a2i = boto3.client("sagemaker-a2i-runtime", region_name="us-east-1")
        self.comprehend = boto3.client("comprehend", region_name="us-east-1")
        self.cloudformation = boto3.client("cloudformation", region_name="us-east-1")
        self.stubs = {name: Stubber(getattr(self, name))
                      for name in ("sagemaker", "a2i", "comprehend", "cloudformation")}
        self.aws = Aws("", overrides={"sagemaker": self.sagemaker, "sagemaker-a2i-runtime": self.a2i,
                                      "comprehend": self.comprehend, "cloudformation": self.cloudformation})

    def __getattr__(self, name: str) -> Stubber:
        if name.endswith("_stub"):
            return self.stubs[name.removesuffix("_stub")]
        raise AttributeError(name)

    def __enter__(self) -> Clients:
        for stub in self.stubs.values():
            stub.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        for stub in self.stubs.values():
            stub.deactivate()

    def assert_all_called(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


@pytest.fixture
def clients():
    with Clients() as made:
        yield made


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def naps() -> list[float]:
    return []


def handle(event: dict[str, Any], clients: Clients, sent: Sent, naps: list[float], context: Any) -> dict[str, Any]:
    result = handle_request(event, context, clients.aws, send=sent, sleep=naps.append)
    clients.assert_all_called()
    assert result == sent.only
    return sent.only


def flow_definition_description(name: str, status: str, reason: str = "") -> dict[str, Any]:
    described = {
        "FlowDefinitionArn": f"{ACCOUNT_PREFIX}:flow-definition/{name}", "FlowDefinitionName": name,
        "FlowDefinitionStatus": status, "CreationTime": datetime(2026, 11, 27, tzinfo=UTC),
        "OutputConfig": {"S3OutputPath": "s3://bucket/reviews/"},
        "RoleArn": "arn:aws:iam::123456789012:role/nerloop-ReviewExecutionRole",
    }
    if reason:
        described["FailureReason"] = reason
    return described


def workteam(**extra: str) -> dict[str, Any]:
    members = [{"CognitoMemberDefinition": {"UserPool": "us-east-1_abc", "UserGroup": "reviewers", "ClientId": "c"}}]
    return {"Workteam": {"WorkteamName": "nerloop-reviewers", "MemberDefinitions": members, "WorkteamArn": WORKTEAM,
                         "Description": "reviewers", **extra}}


def flow_name(props: dict[str, Any]) -> str:
    return FlowDefinitionProperties.model_validate(props).physical_name()


STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/nerloop/5b1f0e70-ad1c-11ef-9c8b-0affd3c2a1b1"


def flow_arn(name: str) -> str:
    return f"{ACCOUNT_PREFIX}:flow-definition/{name}"


def family(*flows: tuple[str, str]) -> dict[str, Any]:
    """ListFlowDefinitions' answer: (name, status) of each flow definition in the account."""
    created = datetime(2026, 11, 27, tzinfo=UTC)
    return {"FlowDefinitionSummaries": [
        {"FlowDefinitionName": name, "FlowDefinitionArn": flow_arn(name), "FlowDefinitionStatus": status,
         "CreationTime": created} for name, status in flows]}


def loops(*statuses: str) -> dict[str, Any]:
    created = datetime(2026, 11, 27, tzinfo=UTC)
    return {"HumanLoopSummaries": [{"HumanLoopName": f"v1-{index}", "HumanLoopStatus": status,
                                    "CreationTime": created} for index, status in enumerate(statuses)]}


def stack_in(clients: Clients, status: str) -> None:
    clients.cloudformation_stub.add_response("describe_stacks", {"Stacks": [{
        "StackId": STACK_ID, "StackName": "nerloop", "CreationTime": datetime(2026, 11, 1, tzinfo=UTC),
        "StackStatus": status}]}, {"StackName": STACK_ID})


# --- the flow definition ----------------------------------------------------------------------------------


def test_create_makes_the_flow_definition_from_the_template_and_returns_its_attributes(
        clients, sent, naps, lambda_context):
    # Given the FlowDefinition properties of template.yaml, deployed with a workteam
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    name = flow_name(props)
    clients.sagemaker_stub.add_response("create_flow_definition", {"FlowDefinitionArn": f"{ACCOUNT_PREFIX}:x"}, {
        "FlowDefinitionName": name,
        "HumanLoopConfig": {
            "WorkteamArn": WORKTEAM, "HumanTaskUiArn": props["HumanTaskUiArn"], "TaskTitle": props["TaskTitle"],
            "TaskDescription": props["TaskDescription"], "TaskCount": 1,
        },
        "OutputConfig": {"S3OutputPath": f"s3://{WITH_WORKTEAM.physical_name('DataBucket')}/reviews/"},
        "RoleArn": props["RoleArn"],
    })
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(name, "Initializing"),
                                        {"FlowDefinitionName": name})
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(name, "Active"),
                                        {"FlowDefinitionName": name})
    clients.sagemaker_stub.add_response("describe_workteam", workteam(
        SubDomain="abc123xyz.labeling.us-east-1.sagemaker.aws"), {"WorkteamName": "nerloop-reviewers"})
    clients.sagemaker_stub.add_response("list_flow_definitions", family((name, "Active"), ("other-review", "Active")))

    # When CloudFormation asks to create it
    body = handle(request("FlowDefinition", props), clients, sent, naps, lambda_context)

    # Then it is created, awaited until Active, and its ARN and portal come back as attributes
    assert body["Status"] == SUCCESS and body["PhysicalResourceId"] == name
    assert name.startswith("nerloop-review-") and len(name) <= 63
    assert body["Data"] == {"Arn": flow_arn(name), "Arns": flow_arn(name), "Name": name,
                            "WorkerPortalUrl": "https://abc123xyz.labeling.us-east-1.sagemaker.aws"}
    assert body["RequestId"] == "8f3c1a52-6d3e-4f0b-9b51-1f0e7c2d9a44" and body["LogicalResourceId"] == "FlowDefinition"
    assert naps == [custom_resources.POLL_SECONDS]


def test_without_a_workteam_nothing_is_created_and_the_arn_is_empty(clients, sent, naps, lambda_context):
    props = properties(WITHOUT_WORKTEAM, "FlowDefinition")

    body = handle(request("FlowDefinition", props, stack=WITHOUT_WORKTEAM), clients, sent, naps, lambda_context)

    assert body["Status"] == SUCCESS
    assert body["Data"] == {"Arn": "", "Arns": "", "Name": "", "WorkerPortalUrl": ""}


def test_a_flow_definition_that_fails_is_reported_with_its_reason(clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    name = flow_name(props)
    clients.sagemaker_stub.add_response("create_flow_definition", {"FlowDefinitionArn": f"{ACCOUNT_PREFIX}:x"})
    clients.sagemaker_stub.add_response(
        "describe_flow_definition", flow_definition_description(name, "Failed", "the role cannot be assumed"))

    body = handle(request("FlowDefinition", props), clients, sent, naps, lambda_context)

    assert body["Status"] == FAILED
    assert f"flow definition {name} is Failed: the role cannot be assumed" in body["Reason"]
    # The rollback's Delete gets the name, so a half-made flow definition is removed too.
    assert body["PhysicalResourceId"] == name


def test_an_update_with_the_same_settings_keeps_the_flow_definition(clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    name = flow_name(props)
    clients.sagemaker_stub.add_response("list_flow_definitions", family((name, "Active")))
    clients.sagemaker_stub.add_client_error("create_flow_definition", "ResourceInUse", "exists")
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(name, "Active"))
    clients.sagemaker_stub.add_response("describe_workteam", workteam())
    clients.sagemaker_stub.add_response("list_flow_definitions", family((name, "Active")))

    body = handle(request("FlowDefinition", props, "Update", physical_id=name, old_props=props),
                  clients, sent, naps, lambda_context)

    assert body["Status"] == SUCCESS and body["PhysicalResourceId"] == name
    assert body["Data"]["Arn"].endswith(f"flow-definition/{name}") and body["Data"]["WorkerPortalUrl"] == ""


def test_an_update_with_other_settings_makes_a_new_flow_definition(clients, sent, naps, lambda_context):
    old = properties(WITH_WORKTEAM, "FlowDefinition")
    new = {**old, "TaskTitle": "Review entities in release notes"}
    new_name = flow_name(new)
    assert new_name != flow_name(old)
    clients.sagemaker_stub.add_response("list_flow_definitions", family((flow_name(old), "Active")))
    clients.sagemaker_stub.add_response("create_flow_definition", {"FlowDefinitionArn": f"{ACCOUNT_PREFIX}:x"})
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(new_name, "Active"))
    clients.sagemaker_stub.add_client_error("describe_workteam", "AccessDeniedException", "no")
    clients.sagemaker_stub.add_response("list_flow_definitions", family((flow_name(old), "Active"),
                                                                        (new_name, "Active")))

    body = handle(request("FlowDefinition", new, "Update", physical_id=flow_name(old), old_props=old),
                  clients, sent, naps, lambda_context)

    # A new physical id: CloudFormation then deletes the old flow definition. Until then (and while
    # loops are in flight in it) its loops' events go to the merge rule too: Arns lists both.
    assert body["Status"] == SUCCESS and body["PhysicalResourceId"] == new_name
    assert body["Data"]["Arns"] == f"{flow_arn(new_name)},{flow_arn(flow_name(old))}"


def test_an_update_deletes_the_flow_definitions_retired_earlier_whose_loops_have_ended(
        clients, sent, naps, lambda_context):
    # Given the flow definition in use, and two retired by earlier updates: one with a loop still open
    old = properties(WITH_WORKTEAM, "FlowDefinition")
    new = {**old, "TaskTitle": "Review entities in release notes"}
    current, new_name = flow_name(old), flow_name(new)
    idle, busy = f"{old['FlowDefinitionName']}-0000aaaa", f"{old['FlowDefinitionName']}-0000bbbb"
    clients.sagemaker_stub.add_response("list_flow_definitions", family(
        (current, "Active"), (idle, "Active"), (busy, "Active"), ("someone-elses-review-0000cccc", "Active")))
    clients.a2i_stub.add_response("list_human_loops", loops("Completed", "Failed"),
                                  {"FlowDefinitionArn": flow_arn(idle)})
    clients.sagemaker_stub.add_response("delete_flow_definition", {}, {"FlowDefinitionName": idle})
    clients.a2i_stub.add_response("list_human_loops", loops("Completed", "Stopping"),
                                  {"FlowDefinitionArn": flow_arn(busy)})
    clients.sagemaker_stub.add_response("create_flow_definition", {"FlowDefinitionArn": flow_arn(new_name)})
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(new_name, "Active"))
    clients.sagemaker_stub.add_response("describe_workteam", workteam())
    clients.sagemaker_stub.add_response("list_flow_definitions", family(
        (current, "Active"), (idle, "Deleting"), (busy, "Active"), (new_name, "Active")))

    # When an update replaces the one in use
    body = handle(request("FlowDefinition", new, "Update", physical_id=current, old_props=old),
                  clients, sent, naps, lambda_context)

    # Then the idle retired one is deleted, the busy one kept (and merged), the replaced one left to the cleanup
    assert body["Status"] == SUCCESS
    assert body["Data"]["Arns"].split(",") == [flow_arn(new_name), flow_arn(current), flow_arn(idle), flow_arn(busy)]


def test_an_update_s_cleanup_keeps_the_replaced_flow_definition_while_loops_are_in_flight(
        clients, sent, naps, lambda_context):
    # Given a flow definition an update replaced, with one loop nobody has answered yet
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    name = flow_name(props)
    stack_in(clients, "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS")
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(name, "Active"))
    clients.a2i_stub.add_response("list_human_loops", loops("Completed", "InProgress"),
                                  {"FlowDefinitionArn": flow_arn(name)})

    # When CloudFormation deletes it in the update's cleanup
    body = handle(request("FlowDefinition", props, "Delete", physical_id=name), clients, sent, naps, lambda_context)

    # Then it is kept (deleting it would stop the loop, and the review with it): no delete call at all
    assert body["Status"] == SUCCESS and body["PhysicalResourceId"] == name


@pytest.mark.parametrize("status", ["UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
                                    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"])
def test_an_update_s_cleanup_deletes_the_replaced_flow_definition_once_idle(
        status, clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    name = flow_name(props)
    stack_in(clients, status)
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(name, "Active"))
    clients.a2i_stub.add_response("list_human_loops", loops("Completed", "Stopped"),
                                  {"FlowDefinitionArn": flow_arn(name)})
    clients.sagemaker_stub.add_response("delete_flow_definition", {}, {"FlowDefinitionName": name})

    body = handle(request("FlowDefinition", props, "Delete", physical_id=name), clients, sent, naps, lambda_context)

    assert body["Status"] == SUCCESS


def test_delete_removes_the_flow_definition(clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    name = flow_name(props)
    retired = f"{props['FlowDefinitionName']}-0000aaaa"
    stack_in(clients, "DELETE_IN_PROGRESS")
    clients.sagemaker_stub.add_response("delete_flow_definition", {}, {"FlowDefinitionName": name})
    clients.sagemaker_stub.add_response("list_flow_definitions", family(
        (name, "Deleting"), (retired, "Active"), ("someone-elses-review-0000aaaa", "Active")))
    clients.sagemaker_stub.add_response("delete_flow_definition", {}, {"FlowDefinitionName": retired})

    # When the stack is deleted
    body = handle(request("FlowDefinition", props, "Delete", physical_id=name), clients, sent, naps, lambda_context)

    # Then its flow definition goes, and so does one an earlier update retired (no other)
    assert body["Status"] == SUCCESS and body["PhysicalResourceId"] == name


def test_delete_of_a_flow_definition_already_gone_succeeds(clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    stack_in(clients, "DELETE_IN_PROGRESS")
    clients.sagemaker_stub.add_client_error("delete_flow_definition", "ResourceNotFound", "gone")
    clients.sagemaker_stub.add_response("list_flow_definitions", family())

    body = handle(request("FlowDefinition", props, "Delete", physical_id=flow_name(props)),
                  clients, sent, naps, lambda_context)

    assert body["Status"] == SUCCESS


def test_delete_stops_the_loops_still_in_progress_then_deletes(clients, sent, naps, lambda_context):
    # Given a flow definition with one loop in progress and one completed
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    name = flow_name(props)
    arn = f"{ACCOUNT_PREFIX}:flow-definition/{name}"
    stack_in(clients, "DELETE_IN_PROGRESS")
    clients.sagemaker_stub.add_client_error("delete_flow_definition", "ResourceInUse", "loops in progress")
    clients.sagemaker_stub.add_response("describe_flow_definition", flow_definition_description(name, "Active"))
    created = datetime(2026, 11, 27, tzinfo=UTC)
    clients.a2i_stub.add_response("list_human_loops", {"HumanLoopSummaries": [
        {"HumanLoopName": "v1-aaaa", "HumanLoopStatus": "InProgress", "CreationTime": created},
        {"HumanLoopName": "v1-bbbb", "HumanLoopStatus": "Completed", "CreationTime": created},
    ]}, {"FlowDefinitionArn": arn})
    clients.a2i_stub.add_response("stop_human_loop", {}, {"HumanLoopName": "v1-aaaa"})
    clients.sagemaker_stub.add_response("delete_flow_definition", {}, {"FlowDefinitionName": name})
    clients.sagemaker_stub.add_response("list_flow_definitions", family((name, "Deleting")))

    # When the stack is deleted
    body = handle(request("FlowDefinition", props, "Delete", physical_id=name), clients, sent, naps, lambda_context)

    # Then only the loop in progress is stopped, and the flow definition is deleted on the next try
    assert body["Status"] == SUCCESS
    assert len(naps) == 1


@pytest.mark.parametrize("physical_id", [NOTHING_CREATED, "2024/11/27/[$LATEST]0123456789abcdef"])
def test_delete_after_a_failed_create_touches_nothing(physical_id, clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "FlowDefinition")

    body = handle(request("FlowDefinition", props, "Delete", physical_id=physical_id),
                  clients, sent, naps, lambda_context)

    assert body["Status"] == SUCCESS and body["PhysicalResourceId"] == physical_id


# --- the recognizer ---------------------------------------------------------------------------------------


def recognizer_versions(*versions: tuple[str, str]) -> dict[str, Any]:
    return {"EntityRecognizerPropertiesList": [
        {"EntityRecognizerArn": f"{RECOGNIZER}/version/{version}", "Status": status} for version, status in versions]}


LIST_FILTER = {"Filter": {"RecognizerName": WITH_WORKTEAM.parameters["RecognizerName"]}}


def test_create_claims_a_recognizer_name_nobody_uses(clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "RecognizerCleanup")
    clients.comprehend_stub.add_response("list_entity_recognizers", recognizer_versions(), LIST_FILTER)

    body = handle(request("RecognizerCleanup", props), clients, sent, naps, lambda_context)

    assert body["Status"] == SUCCESS and body["PhysicalResourceId"] == props["RecognizerName"]
    assert body["Data"] == {"RecognizerName": props["RecognizerName"]}


def test_create_refuses_a_recognizer_name_with_versions_and_its_rollback_deletes_nothing(
        clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "RecognizerCleanup")
    clients.comprehend_stub.add_response("list_entity_recognizers", recognizer_versions(("v7", "TRAINED")))

    body = handle(request("RecognizerCleanup", props), clients, sent, naps, lambda_context)

    assert body["Status"] == FAILED and "already has 1 version" in body["Reason"]
    assert body["PhysicalResourceId"] == NOTHING_CREATED
    # The rollback's Delete for that id must not delete the other owner's versions: no call at all.
    rollback = Sent()
    handle_request(request("RecognizerCleanup", props, "Delete", physical_id=NOTHING_CREATED), lambda_context,
                   clients.aws, send=rollback, sleep=naps.append)
    assert rollback.only["Status"] == SUCCESS


def test_delete_stops_training_and_deletes_every_version(clients, sent, naps, lambda_context):
    # Given v1 trained, v2 still training and v0 already being deleted
    props = properties(WITH_WORKTEAM, "RecognizerCleanup")
    stub = clients.comprehend_stub
    stub.add_response("list_entity_recognizers", recognizer_versions(
        ("v0", "DELETING"), ("v1", "TRAINED"), ("v2", "TRAINING")), LIST_FILTER)
    stub.add_response("delete_entity_recognizer", {}, {"EntityRecognizerArn": f"{RECOGNIZER}/version/v1"})
    stub.add_response("stop_training_entity_recognizer", {}, {"EntityRecognizerArn": f"{RECOGNIZER}/version/v2"})
    # then v2 has stopped
    stub.add_response("list_entity_recognizers", recognizer_versions(
        ("v0", "DELETING"), ("v1", "DELETING"), ("v2", "STOPPED")), LIST_FILTER)
    stub.add_response("delete_entity_recognizer", {}, {"EntityRecognizerArn": f"{RECOGNIZER}/version/v2"})

    # When the stack is deleted
    body = handle(request("RecognizerCleanup", props, "Delete", physical_id=props["RecognizerName"]),
                  clients, sent, naps, lambda_context)

    # Then training was stopped once, both versions deleted, and the stack may go
    assert body["Status"] == SUCCESS
    assert len(naps) == 1


def test_delete_of_a_recognizer_already_gone_succeeds(clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "RecognizerCleanup")
    clients.comprehend_stub.add_response("list_entity_recognizers", recognizer_versions(), LIST_FILTER)

    body = handle(request("RecognizerCleanup", props, "Delete", physical_id=props["RecognizerName"]),
                  clients, sent, naps, lambda_context)

    assert body["Status"] == SUCCESS and naps == []


def detection_jobs(*jobs: tuple[str, str, str]) -> dict[str, Any]:
    """ListEntitiesDetectionJobs' answer: (job id, status, recognizer ARN) each."""
    return {"EntitiesDetectionJobPropertiesList": [
        {"JobId": job_id, "JobStatus": status, "EntityRecognizerArn": recognizer}
        for job_id, status, recognizer in jobs]}


def test_delete_stops_the_detection_jobs_that_use_a_version_then_deletes_it(clients, sent, naps, lambda_context):
    # Given v3, which a running detection job uses (Comprehend refuses to delete it), and another
    # stack's job that must be left alone
    props = properties(WITH_WORKTEAM, "RecognizerCleanup")
    stub = clients.comprehend_stub
    v3 = f"{RECOGNIZER}/version/v3"
    stub.add_response("list_entity_recognizers", recognizer_versions(("v3", "TRAINED")), LIST_FILTER)
    stub.add_client_error("delete_entity_recognizer", "ResourceInUseException", "in use",
                          expected_params={"EntityRecognizerArn": v3})
    stub.add_response("list_entities_detection_jobs", detection_jobs(("queued", "SUBMITTED", v3)),
                      {"Filter": {"JobStatus": "SUBMITTED"}})
    stub.add_response("stop_entities_detection_job", {"JobId": "queued", "JobStatus": "STOPPED"},
                      {"JobId": "queued"})
    other = "arn:aws:comprehend:us-east-1:123456789012:entity-recognizer/someone-else/version/v1"
    stub.add_response("list_entities_detection_jobs", detection_jobs(
        ("running", "IN_PROGRESS", v3), ("theirs", "IN_PROGRESS", other)), {"Filter": {"JobStatus": "IN_PROGRESS"}})
    stub.add_response("stop_entities_detection_job", {"JobId": "running", "JobStatus": "STOP_REQUESTED"},
                      {"JobId": "running"})
    # then the jobs have stopped
    stub.add_response("list_entity_recognizers", recognizer_versions(("v3", "TRAINED")), LIST_FILTER)
    stub.add_response("delete_entity_recognizer", {}, {"EntityRecognizerArn": v3})

    # When the stack is deleted
    body = handle(request("RecognizerCleanup", props, "Delete", physical_id=props["RecognizerName"]),
                  clients, sent, naps, lambda_context)

    # Then the stack's jobs were stopped, v3 deleted after one wait, and the delete succeeds
    assert body["Status"] == SUCCESS
    assert len(naps) == 1


def test_a_version_still_in_use_when_time_runs_out_fails_the_delete_naming_it(clients, sent, naps, lambda_context):
    # Given a version a detection job still uses, and less time left than one poll
    props = properties(WITH_WORKTEAM, "RecognizerCleanup")
    clients.comprehend_stub.add_response("list_entity_recognizers", recognizer_versions(("v3", "TRAINED")))
    clients.comprehend_stub.add_client_error("delete_entity_recognizer", "ResourceInUseException", "in use")
    for status in ("SUBMITTED", "IN_PROGRESS"):  # the job that used it ended meanwhile
        clients.comprehend_stub.add_response("list_entities_detection_jobs", detection_jobs(),
                                             {"Filter": {"JobStatus": status}})
    lambda_context.get_remaining_time_in_millis = lambda: 25_000

    body = handle(request("RecognizerCleanup", props, "Delete", physical_id=props["RecognizerName"]),
                  clients, sent, naps, lambda_context)

    # Then CloudFormation hears in time which version is left (and can retry the delete)
    assert body["Status"] == FAILED
    assert f"{RECOGNIZER}/version/v3 (in use)" in body["Reason"]
    assert naps == []


# --- every request gets an answer ---------------------------------------------------------------------------


def test_a_malformed_request_is_answered_failed(clients, sent, naps, lambda_context):
    props = {k: v for k, v in properties(WITH_WORKTEAM, "FlowDefinition").items() if k != "OutputPath"}

    body = handle(request("FlowDefinition", props), clients, sent, naps, lambda_context)

    assert body["Status"] == FAILED and "OutputPath" in body["Reason"]


def test_an_unexpected_error_is_answered_failed(clients, sent, naps, lambda_context):
    props = properties(WITH_WORKTEAM, "FlowDefinition")
    clients.sagemaker_stub.add_client_error("create_flow_definition", "ResourceLimitExceeded", "too many")

    body = handle(request("FlowDefinition", props), clients, sent, naps, lambda_context)

    assert body["Status"] == FAILED and "ResourceLimitExceeded" in body["Reason"]


def test_the_response_is_put_as_json_with_no_content_type(monkeypatch):
    seen = []

    class Reply:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return b""

    def fake_urlopen(req, timeout):
        seen.append((req, timeout))
        return Reply()

    monkeypatch.setattr(custom_resources.urllib.request, "urlopen", fake_urlopen)
    custom_resources.send_response(RESPONSE_URL, {"Status": SUCCESS, "Data": {"Arn": "a"}})

    (req, timeout), = seen
    assert req.get_method() == "PUT" and req.full_url == RESPONSE_URL and timeout > 0
    assert req.get_header("Content-type") == ""
    assert json.loads(req.data) == {"Status": SUCCESS, "Data": {"Arn": "a"}}


def test_the_response_goes_only_to_an_https_url():
    with pytest.raises(ValueError, match="not https"):
        custom_resources.send_response("http://169.254.169.254/latest", {"Status": SUCCESS})


def test_the_deployed_handler_answers_through_the_template_s_function(monkeypatch, clients, sent, lambda_context):
    # Given the FlowDefinitionFunction as template.yaml declares it, its clients stubbed
    handler = WITH_WORKTEAM.load_handler("FlowDefinitionFunction")
    services = {"sagemaker": clients.sagemaker, "comprehend": clients.comprehend,
                "sagemaker-a2i-runtime": clients.a2i}
    monkeypatch.setattr(nerloop_aws, "client", lambda service: services[service])
    monkeypatch.setattr(custom_resources, "send_response", sent)
    props = properties(WITH_WORKTEAM, "RecognizerCleanup")
    clients.comprehend_stub.add_response("list_entity_recognizers", recognizer_versions(), LIST_FILTER)

    # When CloudFormation invokes it
    result = handler(request("RecognizerCleanup", props), lambda_context)

    # Then the response went to the ResponseURL
    assert result == sent.only and result["Status"] == SUCCESS
    clients.assert_all_called()
