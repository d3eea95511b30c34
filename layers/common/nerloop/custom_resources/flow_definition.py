"""Custom::FlowDefinition: the A2I flow definition, named by its settings, retired while its loops
are in flight (see nerloop.custom_resources)."""

from __future__ import annotations

import hashlib
import json
import re

from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from nerloop.aws import Aws
from nerloop.custom_resources.common import (
    CustomResourceError,
    CustomResourceRequest,
    Deadline,
    Outcome,
    error_code,
    parse_properties,
    retry_while_roles_propagate,
)
from nerloop.observability import logger

FLOW_DEFINITION_TYPE = "Custom::FlowDefinition"
# The attributes (Fn::GetAtt) each resource type returns.
FLOW_DEFINITION_ATTRIBUTES = ("Arn", "Arns", "Name", "WorkerPortalUrl")

# A flow definition name: 1-63 characters of [a-z0-9-] (the API's FlowDefinitionName pattern).
FLOW_DEFINITION_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
_HASH_CHARS = 8
MAX_BASE_NAME = 63 - 1 - _HASH_CHARS

# Human loop statuses (A2I HumanLoopStatus) of a loop that can still be answered: Stopping lasts while
# a worker who started the task finishes it (https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-delete-human-loop.html).
LOOPS_IN_FLIGHT = frozenset({"InProgress", "Stopping"})
# The stack statuses in which CloudFormation deletes what an update (or its rollback) replaced
# (botocore cloudformation StackStatus; https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html).
CLEANUP_STATUSES = frozenset({"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"})


class FlowDefinitionProperties(BaseModel):
    """The properties of a Custom::FlowDefinition (CloudFormation sends every value as a string)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    flow_definition_name: str = Field(alias="FlowDefinitionName", min_length=1, max_length=MAX_BASE_NAME)
    workteam_arn: str = Field(alias="WorkteamArn", default="")
    human_task_ui_arn: str = Field(alias="HumanTaskUiArn", default="")
    role_arn: str = Field(alias="RoleArn", default="")
    output_path: str = Field(alias="OutputPath", pattern=r"^s3://")
    task_title: str = Field(alias="TaskTitle", min_length=1, max_length=128)
    task_description: str = Field(alias="TaskDescription", min_length=1, max_length=255)
    task_count: int = Field(alias="TaskCount", default=1, ge=1, le=3)

    @property
    def enabled(self) -> bool:
        """A flow definition needs a workteam; without one nothing is created."""
        return bool(self.workteam_arn)

    def physical_name(self) -> str:
        """`<FlowDefinitionName>-<hash>`: other settings, another name (flow definitions are immutable)."""
        settings = self.model_dump(exclude={"flow_definition_name"})
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()
        name = f"{self.flow_definition_name}-{digest[:_HASH_CHARS]}"
        if not FLOW_DEFINITION_NAME.match(name):
            raise CustomResourceError(
                f"flow definition name {name!r} is invalid: lower-case letters, digits and hyphens only "
                "(use a lower-case stack name)")
        return name

    def is_family(self, name: str) -> bool:
        """Whether `name` is a flow definition this resource could have made (any settings)."""
        base = re.escape(self.flow_definition_name)
        return re.fullmatch(rf"{base}-[0-9a-f]{{{_HASH_CHARS}}}", name) is not None



def create_flow_definition(props: FlowDefinitionProperties, aws: Aws, deadline: Deadline) -> Outcome:
    """Create the flow definition (or find it made by an earlier attempt) and wait until it is Active.

    Without a workteam nothing is created: the attributes are empty.
    """
    name = props.physical_name()
    if not props.enabled:
        logger.info("no workteam: no flow definition is created", flow_definition=name)
        return Outcome(name, dict.fromkeys(FLOW_DEFINITION_ATTRIBUTES, ""))
    arn = _create_and_wait(name, props, aws, deadline)
    portal = worker_portal_url(props.workteam_arn, aws)
    others = [other_arn for other, other_arn, status in list_family(props, aws) if other != name and status != "Failed"]
    return Outcome(name, {"Arn": arn, "Arns": ",".join([arn, *others]), "Name": name, "WorkerPortalUrl": portal})


def _create_and_wait(name: str, props: FlowDefinitionProperties, aws: Aws, deadline: Deadline) -> str:
    try:
        retry_while_roles_propagate(lambda: aws.sagemaker.create_flow_definition(
            FlowDefinitionName=name,
            HumanLoopConfig={
                "WorkteamArn": props.workteam_arn,
                "HumanTaskUiArn": props.human_task_ui_arn,
                "TaskTitle": props.task_title,
                "TaskDescription": props.task_description,
                "TaskCount": props.task_count,
            },
            OutputConfig={"S3OutputPath": props.output_path},
            RoleArn=props.role_arn,
        ), deadline)
        logger.info("flow definition created", flow_definition=name)
    except ClientError as exc:
        if error_code(exc) != "ResourceInUse":
            raise
        logger.info("flow definition exists already", flow_definition=name)
    return _wait_until_active(name, aws, deadline)


def list_family(props: FlowDefinitionProperties, aws: Aws) -> list[tuple[str, str, str]]:
    """(name, ARN, status) of every flow definition of this resource's family, whatever its settings."""
    found: list[tuple[str, str, str]] = []
    for page in aws.sagemaker.get_paginator("list_flow_definitions").paginate():
        for summary in page.get("FlowDefinitionSummaries", []):
            if props.is_family(str(summary["FlowDefinitionName"])):
                found.append((str(summary["FlowDefinitionName"]), str(summary["FlowDefinitionArn"]),
                               str(summary["FlowDefinitionStatus"])))
    return found


def loops_in_flight(flow_definition_arn: str, aws: Aws) -> int:
    """How many human loops of the flow definition can still be answered (InProgress or Stopping)."""
    count = 0
    try:
        for page in aws.a2i.get_paginator("list_human_loops").paginate(FlowDefinitionArn=flow_definition_arn):
            count += sum(1 for loop in page.get("HumanLoopSummaries", [])
                         if loop.get("HumanLoopStatus") in LOOPS_IN_FLIGHT)
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFoundException":
            raise
    return count


def retire_flow_definition(name: str, arn: str, aws: Aws) -> bool:
    """Delete a flow definition an update replaced, unless loops are still in flight in it: those
    would be stopped (A2I stops a deleted flow definition's unstarted loops,
    https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-delete-flow-definition.html). True when deleted."""
    in_flight = loops_in_flight(arn, aws)
    if in_flight:
        logger.info("replaced flow definition kept until its loops end", flow_definition=name, loops=in_flight)
        return False
    try:
        aws.sagemaker.delete_flow_definition(FlowDefinitionName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceInUse":
            logger.info("replaced flow definition in use: kept", flow_definition=name)
            return False
        if error_code(exc) != "ResourceNotFound":
            raise
    logger.info("replaced flow definition deleted", flow_definition=name)
    return True


def retire_idle_flow_definitions(props: FlowDefinitionProperties, keep: set[str], aws: Aws) -> list[str]:
    """Delete the family's flow definitions not in `keep` whose loops have all ended; return their names."""
    return [name for name, arn, status in list_family(props, aws)
            if name not in keep and status != "Deleting" and retire_flow_definition(name, arn, aws)]


def stack_status(stack_id: str, aws: Aws) -> str:
    """The stack's StackStatus (DescribeStacks, by the unique stack id)."""
    stacks = aws.cloudformation.describe_stacks(StackName=stack_id).get("Stacks", [])
    return str(stacks[0]["StackStatus"]) if stacks else ""


def _wait_until_active(name: str, aws: Aws, deadline: Deadline) -> str:
    while True:
        described = aws.sagemaker.describe_flow_definition(FlowDefinitionName=name)
        status = described["FlowDefinitionStatus"]
        if status == "Active":
            return str(described["FlowDefinitionArn"])
        if status != "Initializing":
            reason = described.get("FailureReason") or "no reason given"
            raise CustomResourceError(f"flow definition {name} is {status}: {reason}")
        deadline.wait(f"flow definition {name} to become Active")


def worker_portal_url(workteam_arn: str, aws: Aws) -> str:
    """The workteam's sign-in URL (its SubDomain), or "" when it cannot be looked up."""
    name = workteam_arn.rsplit("/", 1)[-1]
    try:
        subdomain = aws.sagemaker.describe_workteam(WorkteamName=name)["Workteam"].get("SubDomain", "")
    except ClientError as exc:
        # The portal URL is an output for people; the flow definition works without it.
        logger.warning("workteam not described: no worker portal URL", workteam=workteam_arn,
                       error=error_code(exc))
        return ""
    if not subdomain:
        return ""
    return subdomain if subdomain.startswith("https://") else f"https://{subdomain}"


def delete_flow_definition(name: str, props: FlowDefinitionProperties | None, aws: Aws,
                           deadline: Deadline) -> None:
    """Delete flow definition `name`. A2I stops and deletes its loops nobody has started; when it
    answers ResourceInUse, the loops in progress are stopped and the delete is tried again.

    Succeeds when it is already gone, and does nothing for a physical id that names no flow
    definition this resource could have created.
    """
    if props is None or not props.enabled or not FLOW_DEFINITION_NAME.match(name) or not name.startswith(
            f"{props.flow_definition_name}-"):
        logger.info("nothing to delete", flow_definition=name)
        return
    while True:
        try:
            aws.sagemaker.delete_flow_definition(FlowDefinitionName=name)
            logger.info("flow definition deleted", flow_definition=name)
            return
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFound":
                logger.info("flow definition already gone", flow_definition=name)
                return
            if code != "ResourceInUse":
                raise
        stopped = stop_human_loops(name, aws)
        logger.info("flow definition in use", flow_definition=name, stopped_loops=stopped)
        deadline.wait(f"flow definition {name} is still in use")


def stop_human_loops(name: str, aws: Aws) -> int:
    """Stop every human loop of flow definition `name` that is still in progress; return how many."""
    arn = aws.sagemaker.describe_flow_definition(FlowDefinitionName=name)["FlowDefinitionArn"]
    stopped = 0
    for page in aws.a2i.get_paginator("list_human_loops").paginate(FlowDefinitionArn=arn):
        for loop in page.get("HumanLoopSummaries", []):
            if loop.get("HumanLoopStatus") != "InProgress":
                continue
            try:
                aws.a2i.stop_human_loop(HumanLoopName=loop["HumanLoopName"])
                stopped += 1
            except ClientError as exc:
                if error_code(exc) != "ResourceNotFoundException":
                    raise
    return stopped



def flow_definition_request(request: CustomResourceRequest, aws: Aws, deadline: Deadline) -> Outcome:
    if isinstance(request, CloudFormationCustomResourceDeleteModel):
        _delete_flow_definition_request(request, aws, deadline)
        return Outcome(request.physical_resource_id)
    props = parse_properties(FlowDefinitionProperties, request.resource_properties)
    # An update with the same settings keeps the flow definition: create_flow_definition finds it.
    # Other settings give another name, and CloudFormation deletes the old physical id afterwards.
    if isinstance(request, CloudFormationCustomResourceUpdateModel) and props.enabled:
        # Flow definitions retired by earlier updates go once their loops have ended. The one this
        # update replaces is still the route stage's until the update completes: its cleanup decides.
        retire_idle_flow_definitions(props, {props.physical_name(), request.physical_resource_id}, aws)
    return create_flow_definition(props, aws, deadline)


def _delete_flow_definition_request(request: CloudFormationCustomResourceDeleteModel, aws: Aws,
                                    deadline: Deadline) -> None:
    name = request.physical_resource_id
    try:
        old: FlowDefinitionProperties | None = parse_properties(FlowDefinitionProperties, request.resource_properties)
    except CustomResourceError:
        old = None  # properties that never made a flow definition
    if old is None or not old.enabled or not old.is_family(name):
        delete_flow_definition(name, old, aws, deadline)  # nothing to delete
        return
    if stack_status(request.stack_id, aws) in CLEANUP_STATUSES:
        # Replaced by an update: reviews in flight finish on it (the merge rule matches its ARN).
        arn = _arn_of(name, aws)
        if arn:
            retire_flow_definition(name, arn, aws)
        return
    # The stack is being deleted (or its creation rolled back): the whole family goes.
    delete_flow_definition(name, old, aws, deadline)
    for other, _, status in list_family(old, aws):
        if other != name and status != "Deleting":
            delete_flow_definition(other, old, aws, deadline)


def _arn_of(name: str, aws: Aws) -> str:
    """The flow definition's ARN, or "" when it is gone."""
    try:
        return str(aws.sagemaker.describe_flow_definition(FlowDefinitionName=name)["FlowDefinitionArn"])
    except ClientError as exc:
        if error_code(exc) != "ResourceNotFound":
            raise
        return ""

