"""CloudFormation custom resources: the A2I flow definition (flow_definition.py), and the ownership of
the recognizer (recognizer_cleanup.py); what they share is in common.py.

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

import json
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.parser.models import CloudFormationCustomResourceDeleteModel
from pydantic import TypeAdapter, ValidationError

from nerloop.aws import Aws
from nerloop.custom_resources.common import (
    FAILED,
    MAX_REASON_CHARS,
    NOTHING_CREATED,
    POLL_SECONDS,
    RETRY_FIRST_SECONDS,
    ROLE_PROPAGATION_SECONDS,
    SUCCESS,
    CustomResourceError,
    CustomResourceRequest,
    Deadline,
    LambdaContextLike,
    Outcome,
    retry_while_roles_propagate,
)
from nerloop.custom_resources.flow_definition import (
    FLOW_DEFINITION_ATTRIBUTES,
    FLOW_DEFINITION_NAME,
    FLOW_DEFINITION_TYPE,
    FlowDefinitionProperties,
    create_flow_definition,
    flow_definition_request,
)
from nerloop.custom_resources.recognizer_cleanup import (
    RECOGNIZER_CLEANUP_ATTRIBUTES,
    RECOGNIZER_CLEANUP_TYPE,
    RecognizerCleanupProperties,
    delete_recognizer_versions,
    recognizer_cleanup_request,
)
from nerloop.flywheel_resource import FLYWHEEL_TYPE, FlywheelResourceError, flywheel_request
from nerloop.observability import logger

_REQUEST: TypeAdapter[CustomResourceRequest] = TypeAdapter(CustomResourceRequest)


def carry_out(request: CustomResourceRequest, aws: Aws, deadline: Deadline) -> Outcome:
    """Do what `request` asks of its resource type; raise CustomResourceError when it cannot be done."""
    kind = request.resource_type
    if kind == FLOW_DEFINITION_TYPE:
        return flow_definition_request(request, aws, deadline)
    if kind == RECOGNIZER_CLEANUP_TYPE:
        return recognizer_cleanup_request(request, aws, deadline)
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

__all__ = [
    "FAILED", "FLOW_DEFINITION_ATTRIBUTES", "FLOW_DEFINITION_NAME", "FLOW_DEFINITION_TYPE", "NOTHING_CREATED",
    "POLL_SECONDS", "RECOGNIZER_CLEANUP_ATTRIBUTES", "RECOGNIZER_CLEANUP_TYPE", "RETRY_FIRST_SECONDS",
    "ROLE_PROPAGATION_SECONDS", "SUCCESS", "CustomResourceError", "Deadline", "FlowDefinitionProperties",
    "RecognizerCleanupProperties", "create_flow_definition", "delete_recognizer_versions", "handle_request",
    "retry_while_roles_propagate", "send_response",
]
