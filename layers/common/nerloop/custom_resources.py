"""CloudFormation custom resources: the A2I flow definition, and the ownership of the recognizer.

CloudFormation has no AWS::SageMaker::FlowDefinition, and the recognizer's versions are created by
the loop, not by CloudFormation. One function serves two resource types:

- ``Custom::FlowDefinition`` creates the flow definition (human review workflow) the route stage
  starts human loops in. Flow definitions cannot be changed, so each is named
  ``<FlowDefinitionName>-<hash of its settings>`` (its *family*): an update with other settings
  creates a new one and CloudFormation then deletes the old one. Deleting a flow definition stops and
  deletes its loops nobody has started (A2I's documented behaviour), so a review in flight would be
  lost: when the Delete comes from an update's cleanup, a flow definition with loops still in flight
  is kept (retired) and its loops finish on it; the next replacement deletes the retired ones whose
  loops have all ended, and deleting the stack deletes the whole family. Without a ``WorkteamArn``
  nothing is created and the attributes are empty. Attributes: ``Arn``, ``Name``,
  ``WorkerPortalUrl``, and ``Arns``: this one and every other of its family still there, comma
  separated, for the merge rule (loops of a retired flow definition report its ARN).
- ``Custom::RecognizerCleanup`` owns ``RecognizerName``: Create refuses a name that already has
  versions (they would belong to someone else), Delete stops every version still training and every
  detection job still using a version, and deletes them all.

A delete of something already gone succeeds. Every request gets a response, also when the event is
malformed or the work fails: CloudFormation would otherwise wait an hour for it. The response is
PUT to the request's pre-signed ``ResponseURL`` with urllib (the cfn-response protocol); requests
are parsed with Powertools' CloudFormation custom resource models.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from nerloop.aws import Aws
from nerloop.errors import NerloopError
from nerloop.flywheel_resource import FLYWHEEL_TYPE, FlywheelResourceError, flywheel_request
from nerloop.observability import logger
from nerloop.recognizer_versions import MAX_NAME_LENGTH, NAME_PATTERN

FLOW_DEFINITION_TYPE = "Custom::FlowDefinition"
RECOGNIZER_CLEANUP_TYPE = "Custom::RecognizerCleanup"

# The attributes (Fn::GetAtt) each resource type returns.
FLOW_DEFINITION_ATTRIBUTES = ("Arn", "Arns", "Name", "WorkerPortalUrl")
RECOGNIZER_CLEANUP_ATTRIBUTES = ("RecognizerName",)

SUCCESS = "SUCCESS"
FAILED = "FAILED"

# A flow definition name: 1-63 characters of [a-z0-9-] (the API's FlowDefinitionName pattern).
FLOW_DEFINITION_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
_HASH_CHARS = 8
MAX_BASE_NAME = 63 - 1 - _HASH_CHARS
# The physical id of a resource whose Create failed or that created nothing: its Delete is a no-op.
NOTHING_CREATED = "nothing-created"

# Recognizer version statuses (DescribeEntityRecognizer's ModelStatus).
TRAINING_STATUSES = frozenset({"SUBMITTED", "TRAINING"})
DELETABLE_STATUSES = frozenset({"TRAINED", "TRAINED_WITH_WARNING", "IN_ERROR", "STOPPED"})
GOING_STATUSES = frozenset({"DELETING"})
# Detection jobs that still use their version (JobStatus): DeleteEntityRecognizer refuses the version with
# ResourceInUseException while one runs, so they are stopped first.
# https://docs.aws.amazon.com/comprehend/latest/APIReference/API_DeleteEntityRecognizer.html
RUNNING_JOB_STATUSES = ("SUBMITTED", "IN_PROGRESS")

# Human loop statuses (A2I HumanLoopStatus) of a loop that can still be answered: Stopping lasts while
# a worker who started the task finishes it (https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-delete-human-loop.html).
LOOPS_IN_FLIGHT = frozenset({"InProgress", "Stopping"})
# The stack statuses in which CloudFormation deletes what an update (or its rollback) replaced
# (botocore cloudformation StackStatus; https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html).
CLEANUP_STATUSES = frozenset({"UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"})

POLL_SECONDS = 15.0
# Time kept back from the Lambda timeout to send the response.
RESPONSE_MARGIN_SECONDS = 20.0
# CloudFormation shows at most this much of a failure's reason (the whole response is at most 4 KB).
MAX_REASON_CHARS = 1000


class CustomResourceError(NerloopError):
    """The request cannot be carried out; the message becomes the FAILED response's reason."""


class LambdaContextLike(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


# --- requests and their properties -----------------------------------------------------------------

CustomResourceRequest = (
    CloudFormationCustomResourceCreateModel
    | CloudFormationCustomResourceUpdateModel
    | CloudFormationCustomResourceDeleteModel
)
_REQUEST: TypeAdapter[CustomResourceRequest] = TypeAdapter(CustomResourceRequest)


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


class RecognizerCleanupProperties(BaseModel):
    """The properties of a Custom::RecognizerCleanup."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    recognizer_name: str = Field(alias="RecognizerName", pattern=NAME_PATTERN,
                                 max_length=MAX_NAME_LENGTH)


@dataclass
class Outcome:
    """What a Create or Update made: the physical id and the attributes (GetAtt) of the resource."""

    physical_id: str
    data: dict[str, str] = field(default_factory=dict)


# --- time ------------------------------------------------------------------------------------------


@dataclass
class Deadline:
    """Waiting within the Lambda's time, keeping enough back to answer CloudFormation."""

    until: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    poll_seconds: float = POLL_SECONDS

    @classmethod
    def from_context(cls, context: LambdaContextLike,
                     sleep: Callable[[float], None] | None = None) -> Deadline:
        remaining = context.get_remaining_time_in_millis() / 1000.0 - RESPONSE_MARGIN_SECONDS
        return cls(until=time.monotonic() + remaining, sleep=sleep or time.sleep, poll_seconds=POLL_SECONDS)

    def wait(self, what: str) -> None:
        """Sleep one poll interval, or raise CustomResourceError saying `what` when time is up."""
        if self.clock() + self.poll_seconds > self.until:
            raise CustomResourceError(f"gave up waiting: {what}")
        self.sleep(self.poll_seconds)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# IAM is eventually consistent: a role created seconds before may not yet be usable by the service it
# is passed to, and AWS advises waiting for the change to propagate:
# https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency
# SageMaker does not name the error it then answers; it reports input it finds invalid as a validation
# error, so that is retried for a bounded time, with the transient common errors (throttling, 503, 500):
# https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html
TRANSIENT_CREATE_ERRORS = frozenset({
    "ValidationException", "ValidationError", "ThrottlingException", "ServiceUnavailable", "InternalFailure"})
RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 30.0
# How long a refusal is retried before the stack fails with it (a genuinely invalid request fails this late).
ROLE_PROPAGATION_SECONDS = 180.0


def retry_while_roles_propagate(call: Callable[[], Any], deadline: Deadline) -> Any:
    """`call()`, retried with exponential back-off while it fails with a transient error.

    Gives up, raising the last error, after ROLE_PROPAGATION_SECONDS of waiting or at the deadline.
    """
    delay, waited = RETRY_FIRST_SECONDS, 0.0
    while True:
        try:
            return call()
        except ClientError as exc:
            code = _error_code(exc)
            if (code not in TRANSIENT_CREATE_ERRORS or waited + delay > ROLE_PROPAGATION_SECONDS
                    or deadline.clock() + delay > deadline.until):
                raise
            logger.warning("request refused, retrying (new roles may not have propagated yet)", error=code,
                           retry_in_seconds=delay)
        deadline.sleep(delay)
        waited += delay
        delay = min(delay * 2, RETRY_MAX_SECONDS)


# --- the flow definition ------------------------------------------------------------------------------


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
        if _error_code(exc) != "ResourceInUse":
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
        if _error_code(exc) != "ResourceNotFoundException":
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
        if _error_code(exc) == "ResourceInUse":
            logger.info("replaced flow definition in use: kept", flow_definition=name)
            return False
        if _error_code(exc) != "ResourceNotFound":
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
                       error=_error_code(exc))
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
            code = _error_code(exc)
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
                if _error_code(exc) != "ResourceNotFoundException":
                    raise
    return stopped


# --- the recognizer ----------------------------------------------------------------------------------


def list_recognizer_versions(name: str, aws: Aws) -> list[tuple[str, str]]:
    """(ARN, status) of every version of recognizer `name`."""
    versions: list[tuple[str, str]] = []
    paginator = aws.comprehend.get_paginator("list_entity_recognizers")
    for page in paginator.paginate(Filter={"RecognizerName": name}):
        for props in page.get("EntityRecognizerPropertiesList", []):
            versions.append((str(props["EntityRecognizerArn"]), str(props.get("Status", ""))))
    return versions


def claim_recognizer_name(props: RecognizerCleanupProperties, aws: Aws) -> Outcome:
    """Refuse a recognizer name with versions not being deleted: this stack would delete them."""
    name = props.recognizer_name
    taken = [arn for arn, status in list_recognizer_versions(name, aws) if status not in GOING_STATUSES]
    if taken:
        raise CustomResourceError(
            f"recognizer {name} already has {len(taken)} version(s) (first: {taken[0]}); deleting this stack "
            "would delete them: choose another RecognizerName or delete those versions first")
    return Outcome(name, {"RecognizerName": name})


def delete_recognizer_versions(name: str, aws: Aws, deadline: Deadline) -> list[str]:
    """Stop the versions of `name` still training, delete every version, and return the ARNs deleted.

    Finishes when every version left is DELETING. A version in use has the detection jobs that use it
    stopped and is retried until the deadline, after which CustomResourceError names what is left.
    """
    deleted: list[str] = []
    stop_requested: set[str] = set()
    while True:
        busy: list[str] = []
        in_use: set[str] = set()
        for arn, status in list_recognizer_versions(name, aws):
            if status in GOING_STATUSES:
                continue
            if status in DELETABLE_STATUSES:
                if _delete_version(arn, aws):
                    deleted.append(arn)
                else:
                    in_use.add(arn)
                    busy.append(f"{arn} (in use)")
                continue
            if status in TRAINING_STATUSES and arn not in stop_requested:
                _stop_training(arn, aws)
                stop_requested.add(arn)
            busy.append(f"{arn} ({status})")
        if not busy:
            logger.info("recognizer versions deleted", recognizer=name, deleted=len(deleted))
            return deleted
        if in_use:
            stop_detection_jobs(in_use, aws)
        deadline.wait("recognizer versions still busy: " + ", ".join(busy))


def stop_detection_jobs(recognizer_arns: set[str], aws: Aws) -> list[str]:
    """Stop every entities detection job still running with one of `recognizer_arns`; return their ids.

    A job that ended meanwhile is left alone (StopEntitiesDetectionJob answers a COMPLETED or FAILED job
    with InvalidRequestException; its processed documents are written either way):
    https://docs.aws.amazon.com/comprehend/latest/APIReference/API_StopEntitiesDetectionJob.html
    """
    stopped: list[str] = []
    paginator = aws.comprehend.get_paginator("list_entities_detection_jobs")
    for status in RUNNING_JOB_STATUSES:  # the filter takes one status
        for page in paginator.paginate(Filter={"JobStatus": status}):
            for job in page.get("EntitiesDetectionJobPropertiesList", []):
                if job.get("EntityRecognizerArn") not in recognizer_arns:
                    continue
                try:
                    aws.comprehend.stop_entities_detection_job(JobId=job["JobId"])
                except ClientError as exc:
                    if _error_code(exc) not in ("InvalidRequestException", "JobNotFoundException"):
                        raise
                    continue
                stopped.append(str(job["JobId"]))
                logger.info("detection job stopped", job=job["JobId"], recognizer=job["EntityRecognizerArn"])
    return stopped


def _delete_version(arn: str, aws: Aws) -> bool:
    """Delete one version; False when it is in use and must be retried."""
    try:
        aws.comprehend.delete_entity_recognizer(EntityRecognizerArn=arn)
        logger.info("recognizer version deleted", recognizer=arn)
    except ClientError as exc:
        code = _error_code(exc)
        if code in ("ResourceInUseException", "ResourceUnavailableException"):
            return False
        if code != "ResourceNotFoundException":
            raise
    return True


def _stop_training(arn: str, aws: Aws) -> None:
    try:
        aws.comprehend.stop_training_entity_recognizer(EntityRecognizerArn=arn)
        logger.info("recognizer training stopped", recognizer=arn)
    except ClientError as exc:
        # Gone, or finished training meanwhile (then it is deleted on the next pass).
        if _error_code(exc) not in ("ResourceNotFoundException", "InvalidRequestException"):
            raise


# --- dispatch ----------------------------------------------------------------------------------------


def _properties(model: type[BaseModel], raw: Any) -> Any:
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise CustomResourceError(f"invalid properties: {problems}") from exc


def carry_out(request: CustomResourceRequest, aws: Aws, deadline: Deadline) -> Outcome:
    """Do what `request` asks of its resource type; raise CustomResourceError when it cannot be done."""
    kind = request.resource_type
    if kind == FLOW_DEFINITION_TYPE:
        return _flow_definition(request, aws, deadline)
    if kind == RECOGNIZER_CLEANUP_TYPE:
        return _recognizer_cleanup(request, aws, deadline)
    if kind == FLYWHEEL_TYPE:  # TrainingMode Flywheel (nerloop.flywheel_resource)
        physical_id = getattr(request, "physical_resource_id", "")
        try:
            return Outcome(*flywheel_request(request.request_type, physical_id, request.resource_properties,
                                             request.stack_id, aws, deadline.wait))
        except (FlywheelResourceError, ValidationError) as exc:
            raise CustomResourceError(str(exc)) from exc
    if isinstance(request, CloudFormationCustomResourceDeleteModel):
        return Outcome(request.physical_resource_id)  # never created: nothing to delete
    raise CustomResourceError(f"unknown resource type {kind}")


def _flow_definition(request: CustomResourceRequest, aws: Aws, deadline: Deadline) -> Outcome:
    if isinstance(request, CloudFormationCustomResourceDeleteModel):
        _delete_flow_definition_request(request, aws, deadline)
        return Outcome(request.physical_resource_id)
    props = _properties(FlowDefinitionProperties, request.resource_properties)
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
        old: FlowDefinitionProperties | None = _properties(FlowDefinitionProperties, request.resource_properties)
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
        if _error_code(exc) != "ResourceNotFound":
            raise
        return ""


def _recognizer_cleanup(request: CustomResourceRequest, aws: Aws, deadline: Deadline) -> Outcome:
    if isinstance(request, CloudFormationCustomResourceDeleteModel):
        try:
            props = _properties(RecognizerCleanupProperties, request.resource_properties)
        except CustomResourceError:
            return Outcome(request.physical_resource_id)
        # Only a name this resource claimed (its physical id) is cleaned up.
        if request.physical_resource_id == props.recognizer_name:
            delete_recognizer_versions(props.recognizer_name, aws, deadline)
        return Outcome(request.physical_resource_id)
    props = _properties(RecognizerCleanupProperties, request.resource_properties)
    if isinstance(request, CloudFormationCustomResourceUpdateModel) and (
            request.physical_resource_id == props.recognizer_name):
        return Outcome(props.recognizer_name, {"RecognizerName": props.recognizer_name})
    return claim_recognizer_name(props, aws)


# --- the response ------------------------------------------------------------------------------------


def send_response(url: str, body: dict[str, Any]) -> None:
    """PUT the response JSON to CloudFormation's pre-signed ResponseURL (the cfn-response protocol)."""
    if not url.startswith("https://"):
        raise ValueError(f"refusing to send a custom resource response to {url!r}: not https")
    data = json.dumps(body).encode("utf-8")
    # The URL is signed without a content type: send an empty one.
    request = urllib.request.Request(  # nosec B310 # an https URL, checked above
        url, data=data, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(data))})
    for attempt in range(3):
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:  # nosec B310 # https, checked above
                reply.read()
            return
        except OSError:
            if attempt == 2:
                raise
            time.sleep(2**attempt)


def response_body(event: dict[str, Any], status: str, physical_id: str, reason: str,
                  data: dict[str, str]) -> dict[str, Any]:
    return {
        "Status": status,
        "Reason": reason[:MAX_REASON_CHARS],
        "PhysicalResourceId": physical_id,
        "StackId": event.get("StackId", ""),
        "RequestId": event.get("RequestId", ""),
        "LogicalResourceId": event.get("LogicalResourceId", ""),
        "NoEcho": False,
        "Data": data,
    }


def failed_physical_id(event: dict[str, Any]) -> str:
    """The physical id to report with a failure, chosen so that the Delete that follows is right.

    An Update keeps its resource's id. A failed Create of a flow definition reports the name it
    meant to create (it may exist: the Delete then removes it); any other failed Create reports an
    id whose Delete does nothing (a recognizer name that was not claimed must not be cleaned up).
    """
    if event.get("PhysicalResourceId"):
        return str(event["PhysicalResourceId"])
    if event.get("ResourceType") == FLOW_DEFINITION_TYPE:
        try:
            props = FlowDefinitionProperties.model_validate(event.get("ResourceProperties") or {})
            return props.physical_name() if props.enabled else NOTHING_CREATED
        except (ValidationError, CustomResourceError):
            pass
    return NOTHING_CREATED


def handle_request(
    event: dict[str, Any],
    context: LambdaContextLike,
    aws: Aws,
    send: Callable[[str, dict[str, Any]], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Carry out one custom resource request and always answer CloudFormation; return the answer.

    Never raises for a failed request: the failure is logged and reported as FAILED with its reason.
    """
    send = send or send_response
    deadline = Deadline.from_context(context, sleep)
    try:
        request = _REQUEST.validate_python(event)
        outcome = carry_out(request, aws, deadline)
        body = response_body(event, SUCCESS, outcome.physical_id, "", outcome.data)
        logger.info("custom resource done", request=event.get("RequestType"),
                    resource=event.get("ResourceType"), physical_id=outcome.physical_id)
    except Exception as exc:  # whatever happened, CloudFormation must get an answer
        logger.exception("custom resource failed", request=event.get("RequestType"),
                         resource=event.get("ResourceType"))
        reason = str(exc) if isinstance(exc, CustomResourceError) else f"{type(exc).__name__}: {exc}"
        body = response_body(event, FAILED, failed_physical_id(event), reason, {})
    response_url = str(event.get("ResponseURL", ""))
    if not response_url:
        logger.error("no ResponseURL: CloudFormation cannot be answered", body=body)
        return body
    send(response_url, body)
    return body
