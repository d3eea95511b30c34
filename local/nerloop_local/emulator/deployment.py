"""Deploying template.yaml's resources into the emulated account, as CloudFormation would: DataBucket and
StateTable; the AWS::SageMaker::HumanTaskUi resources; the custom resources, each created by invoking its
ServiceToken function's own handler with a CloudFormation request (Create, Update when its properties
changed since the workspace was saved, Delete in the update's cleanup for what an update replaced), the
answer PUT to the ResponseURL caught in process; the functions' event wiring (rules → an SQS queue per
function, and its on-failure destination queue); and what DescribeStacks would answer about the stack."""

from __future__ import annotations

import contextlib
import email.message
import io
import json
import urllib.request
import urllib.response
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from nerloop_local.emulator.isolation import ACCOUNT, REGION
from nerloop_local.emulator.queues import FunctionWiring
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.template import rules as template_rules
from nerloop_local.standins import StandIns

LOCAL_WORKTEAM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/nerloop-local"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/nerloop/00000000-0000-4000-8000-000000000000"
# What local mode sets unless told otherwise: a workteam, so the review (flow definition) exists.
LOCAL_PARAMETERS = {"WorkteamArn": LOCAL_WORKTEAM}
DEFAULT_RETRIES = 2  # Lambda retries a failed asynchronous invocation twice unless configured


def create_stack_resources(stack: Stack, *, notifications: bool = True) -> tuple[str, str]:
    """Create DataBucket and StateTable as template.yaml declares them; return (bucket, table)."""
    bucket = stack.physical_name("DataBucket")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    if notifications:
        enable_bucket_notifications(stack)
    table = stack.physical_name("StateTable")
    props = stack.resolve(stack.resource("StateTable")["Properties"])
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(TableName=table, KeySchema=props["KeySchema"],
                          AttributeDefinitions=props["AttributeDefinitions"],
                          BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"))
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
    return bucket, table


def enable_bucket_notifications(stack: Stack) -> None:
    """Turn on the bucket's EventBridge notifications when the template does."""
    props = stack.resolve(stack.resource("DataBucket")["Properties"])
    config = (props.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
    if config.get("EventBridgeEnabled") in (True, "true", "True"):
        boto3.client("s3", region_name=REGION).put_bucket_notification_configuration(
            Bucket=stack.physical_name("DataBucket"),
            NotificationConfiguration={"EventBridgeConfiguration": {}},
        )


def wire_functions(stack: Stack, sqs: Any, events: Any, max_attempts: int | None) -> dict[str, FunctionWiring]:
    """For every function with rules, in template order: its event queue and on-failure destination
    queue (EventInvokeConfig.DestinationConfig.OnFailure, else <function>-dlq), and its rules (the
    template's RuleName / Name, resolved patterns) targeting the event queue. `max_attempts` overrides
    EventInvokeConfig.MaximumRetryAttempts + 1."""
    wiring: dict[str, FunctionWiring] = {}
    for function, function_events in template_rules(stack.template).items():
        physical = stack.physical_name(function)
        props = stack.functions()[function].get("Properties", {})
        invoke_config = stack.resolve(props.get("EventInvokeConfig") or {})
        queue_url, queue_arn = _queue(sqs, f"{physical}-events")
        destination = ((invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        dlq_name = str(destination).rsplit(":", 1)[-1] if str(destination or "").startswith("arn:aws:sqs:") \
            else f"{physical}-dlq"
        dlq_url, dlq_arn = _queue(sqs, dlq_name)
        retries = int(invoke_config.get("MaximumRetryAttempts", DEFAULT_RETRIES))
        attempts = max_attempts if max_attempts is not None else retries + 1
        wired = FunctionWiring(function, physical, queue_url, queue_arn, dlq_url, dlq_arn, attempts)
        for event_name, spec in function_events.items():
            event_props = stack.resolve(spec.get("Properties") or {})
            rule = str(event_props.get("RuleName") or event_props.get("Name") or f"{physical}-{event_name}")[:64]
            if spec["Type"] == "EventBridgeRule":
                events.put_rule(Name=rule, EventPattern=json.dumps(event_props["Pattern"]), State="ENABLED")
                wired.rules.append(rule)
                events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
            else:
                # Schedule / ScheduleV2: the rule is created as on AWS, but without its target:
                # moto never fires schedules and would match every event against a rule that has
                # no pattern. The pump fires it (EventPump.fire_schedules).
                expression = event_props.get("Schedule") or event_props.get("ScheduleExpression")
                arn = events.put_rule(Name=rule, ScheduleExpression=expression, State="ENABLED")["RuleArn"]
                wired.schedules.append(arn)
        wiring[function] = wired
    return wiring


def _queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return str(url), str(arn)


class Deployment:
    """The template's human task UIs and custom resources in the emulated account, and the stack as
    CloudFormation describes it. The custom resources' outcomes ({"physical_id", "data", "properties"} by
    logical id) are what the workspace saves; their physical ids and `Fn::GetAtt` values go into the
    stack's names, which the functions' environments and the rules' patterns resolve."""

    def __init__(self, stack: Stack, invoke: Callable[[str, dict[str, Any]], Any]) -> None:
        self.stack = stack
        self.invoke = invoke
        self.custom_resources: dict[str, dict[str, Any]] = {}
        # Resources an update replaced, deleted in its cleanup: (logical id, type, what was saved).
        self._replaced: list[tuple[str, str, dict[str, Any]]] = []

    def condition_holds(self, resource: dict[str, Any]) -> bool:
        """Whether a resource's (or output's) Condition holds for this stack's parameters."""
        condition = resource.get("Condition")
        return condition is None or bool(self.stack.names.get(f"Condition:{condition}"))

    def deploy_resources(self, standins: StandIns, sagemaker: Any, saved: dict[str, dict[str, Any]]) -> None:
        """Create the human task UIs and the custom resources, in template order (an update of those in
        `saved`, the outcomes the workspace holds)."""
        stack = standins.stack
        stack.stack_id, stack.name = STACK_ID, str(self.stack.names["AWS::StackName"])
        stack.status = "UPDATE_IN_PROGRESS" if saved else "CREATE_IN_PROGRESS"
        self._replaced = []
        for logical_id, resource in self.stack.template["Resources"].items():
            if not self.condition_holds(resource):
                continue
            kind = resource["Type"]
            if kind == "AWS::SageMaker::HumanTaskUi":
                self._create_task_ui(standins, sagemaker, logical_id, resource)
            elif kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
                outcome = self._custom_resource(logical_id, resource, saved.get(logical_id))
                self.custom_resources[logical_id] = outcome
                self.stack.names[logical_id] = outcome["physical_id"]
                for attribute, value in outcome["data"].items():
                    self.stack.names[f"{logical_id}.{attribute}"] = value

    def _create_task_ui(self, standins: StandIns, sagemaker: Any, logical_id: str, resource: dict[str, Any]) -> None:
        props = self.stack.resolve(resource.get("Properties") or {})
        name = props["HumanTaskUiName"]
        uis = standins.flow_definitions.task_uis
        if name not in uis:
            sagemaker.create_human_task_ui(HumanTaskUiName=name, UiTemplate=props["UiTemplate"])
        self.stack.names[logical_id] = self.stack.names[f"{logical_id}.HumanTaskUiArn"] = uis[name].arn

    def _custom_resource(self, logical_id: str, resource: dict[str, Any],
                         previous: dict[str, Any] | None) -> dict[str, Any]:
        """Run a custom resource's Create (or Update) through its function's handler, as CloudFormation
        would, and return {"physical_id", "data", "properties"}; RuntimeError when it answers FAILED."""
        properties = _as_cloudformation_strings(self.stack.resolve(resource.get("Properties") or {}))
        if previous is not None and previous.get("properties") == properties:
            return previous
        outcome = self._send_custom_resource_request(logical_id, resource["Type"], properties, previous)
        if previous is not None and previous["physical_id"] != outcome["physical_id"]:
            # A new physical id replaced the old resource: CloudFormation deletes the old one once
            # the whole update is done, in its cleanup (`clean_up_replaced`).
            self._replaced.append((logical_id, resource["Type"], previous))
        return outcome

    def clean_up_replaced(self, standins: StandIns) -> None:
        """The update's cleanup: Delete requests for the resources it replaced, then the stack is complete
        (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-monitor-stack.html)."""
        stack = standins.stack
        if self._replaced:
            stack.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
            for logical_id, kind, previous in self._replaced:
                self._send_custom_resource_request(logical_id, kind, previous["properties"], previous, delete=True)
            self._replaced = []
        stack.status = "UPDATE_COMPLETE" if stack.status != "CREATE_IN_PROGRESS" else "CREATE_COMPLETE"

    def publish_stack(self, standins: StandIns, enqueue: Callable[[str, dict[str, Any]], bool]) -> None:
        """What CloudFormation would answer about this stack (DescribeStacks' parameters, DescribeStackResources'
        logical → physical ids), and Lambda's asynchronous Invoke of its functions (`enqueue`): `nerloop ...
        --stack` finds and drives the local stack as it would a deployed one."""
        standins.stack.parameters = dict(self.stack.parameters)
        standins.stack.resources = {
            logical_id: (str(self.stack.names[logical_id]), resource["Type"])
            for logical_id, resource in self.stack.template["Resources"].items()
            if self.condition_holds(resource) and logical_id in self.stack.names}
        standins.stack.outputs = {}
        for key, output in (self.stack.template.get("Outputs") or {}).items():
            if self.condition_holds(output):
                with contextlib.suppress(KeyError):  # a value made of what only AWS knows
                    standins.stack.outputs[key] = str(self.stack.resolve(output["Value"]))
        standins.functions.enqueue = enqueue

    def _send_custom_resource_request(self, logical_id: str, kind: str, properties: dict[str, Any],
                                      previous: dict[str, Any] | None, *, delete: bool = False) -> dict[str, Any]:
        token = properties["ServiceToken"]
        function = next((name for name in self.stack.functions()
                         if self.stack.names.get(f"{name}.Arn") == token), None)
        if function is None:
            raise RuntimeError(f"custom resource {logical_id}: no function of the template has ServiceToken {token}")
        request_id = str(uuid.uuid4())
        response_url = (f"https://cloudformation-custom-resource-response-{REGION.replace('-', '')}"
                        f".s3.amazonaws.com/local/{logical_id}/{request_id}")
        request_type = "Delete" if delete else ("Update" if previous is not None else "Create")
        event: dict[str, Any] = {
            "RequestType": request_type, "ServiceToken": token, "ResponseURL": response_url,
            "StackId": STACK_ID, "RequestId": request_id, "LogicalResourceId": logical_id,
            "ResourceType": kind, "ResourceProperties": properties,
        }
        if previous is not None:
            event["PhysicalResourceId"] = previous["physical_id"]
            if request_type == "Update":
                event["OldResourceProperties"] = previous["properties"]
        with _cloudformation_responses() as responses:
            self.invoke(function, event)
        answer = responses.get(response_url)
        if answer is None:
            raise RuntimeError(f"custom resource {logical_id}: {function} sent no response to CloudFormation")
        if answer.get("Status") != "SUCCESS":
            raise RuntimeError(f"custom resource {logical_id} failed ({request_type}): {answer.get('Reason')}")
        return {"physical_id": str(answer["PhysicalResourceId"]), "data": dict(answer.get("Data") or {}),
                "properties": properties}


def _as_cloudformation_strings(value: Any) -> Any:
    """Property values as CloudFormation hands them to a custom resource: every scalar a string."""
    if isinstance(value, dict):
        return {key: _as_cloudformation_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_cloudformation_strings(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class _ResponseCatcher(urllib.request.BaseHandler):
    """Answers the handler's PUT to the ResponseURL in process (nothing leaves the machine)."""

    handler_order = 100

    def __init__(self) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}

    def https_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:
        url = request.full_url
        if ".s3.amazonaws.com/local/" not in url or not request.data:
            raise RuntimeError(f"the local runtime refuses to open {url}")
        data = request.data if isinstance(request.data, bytes) else bytes(request.data)  # type: ignore[arg-type]
        self.bodies[url] = json.loads(data)
        return urllib.response.addinfourl(io.BytesIO(b""), email.message.Message(), url, 200)


@contextmanager
def _cloudformation_responses() -> Iterator[dict[str, dict[str, Any]]]:
    """Catch custom resource responses sent with urllib while the block runs: {ResponseURL: body}."""
    catcher = _ResponseCatcher()
    opener = urllib.request.OpenerDirector()
    opener.add_handler(catcher)
    previous = urllib.request._opener  # type: ignore[attr-defined]
    urllib.request.install_opener(opener)
    try:
        yield catcher.bodies
    finally:
        urllib.request._opener = previous  # type: ignore[attr-defined]
