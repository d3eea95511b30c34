"""Custom::RecognizerCleanup: owns the recognizer name, and deletes its versions with the stack."""

from __future__ import annotations

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
)
from nerloop.observability import logger
from nerloop.recognizer_versions import MAX_NAME_LENGTH, NAME_PATTERN

RECOGNIZER_CLEANUP_TYPE = "Custom::RecognizerCleanup"
RECOGNIZER_CLEANUP_ATTRIBUTES = ("RecognizerName",)

# Recognizer version statuses (DescribeEntityRecognizer's ModelStatus).
TRAINING_STATUSES = frozenset({"SUBMITTED", "TRAINING"})
DELETABLE_STATUSES = frozenset({"TRAINED", "TRAINED_WITH_WARNING", "IN_ERROR", "STOPPED"})
GOING_STATUSES = frozenset({"DELETING"})
# Detection jobs that still use their version (JobStatus): DeleteEntityRecognizer refuses the version with
# ResourceInUseException while one runs, so they are stopped first.
# https://docs.aws.amazon.com/comprehend/latest/APIReference/API_DeleteEntityRecognizer.html
RUNNING_JOB_STATUSES = ("SUBMITTED", "IN_PROGRESS")


class RecognizerCleanupProperties(BaseModel):
    """The properties of a Custom::RecognizerCleanup."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    recognizer_name: str = Field(alias="RecognizerName", pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)




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
                    if error_code(exc) not in ("InvalidRequestException", "JobNotFoundException"):
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
        code = error_code(exc)
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
        if error_code(exc) not in ("ResourceNotFoundException", "InvalidRequestException"):
            raise


def recognizer_cleanup_request(request: CustomResourceRequest, aws: Aws, deadline: Deadline) -> Outcome:
    if isinstance(request, CloudFormationCustomResourceDeleteModel):
        try:
            props = parse_properties(RecognizerCleanupProperties, request.resource_properties)
        except CustomResourceError:
            return Outcome(request.physical_resource_id)
        # Only a name this resource claimed (its physical id) is cleaned up.
        if request.physical_resource_id == props.recognizer_name:
            delete_recognizer_versions(props.recognizer_name, aws, deadline)
        return Outcome(request.physical_resource_id)
    props = parse_properties(RecognizerCleanupProperties, request.resource_properties)
    if isinstance(request, CloudFormationCustomResourceUpdateModel) and (
            request.physical_resource_id == props.recognizer_name):
        return Outcome(props.recognizer_name, {"RecognizerName": props.recognizer_name})
    return claim_recognizer_name(props, aws)


# --- the response ------------------------------------------------------------------------------------
