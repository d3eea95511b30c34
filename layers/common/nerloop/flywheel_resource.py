"""Custom::Flywheel: the stack's Comprehend flywheel (TrainingMode Flywheel, nerloop.flywheel).

A custom resource rather than AWS::Comprehend::Flywheel: a new model's flywheel needs its entity types
in TaskConfig.EntityRecognitionConfig.EntityTypes as a list of {"Type": name} objects, and
CloudFormation cannot turn the EntityTypes parameter (a CommaDelimitedList) into such objects. The
properties are the resource type's own (FlywheelName, DataAccessRoleArn, DataLakeS3Uri, TaskConfig,
ModelType CUSTOM_ENTITY_RECOGNIZER); CreateFlywheel is called as the API reference describes it.

- Create: CreateFlywheel named <FlywheelName>-<hash of the settings>, then wait for ACTIVE
  (FlywheelStatus CREATING, ACTIVE, UPDATING, DELETING, FAILED: botocore comprehend model). Its
  physical id and its Arn attribute are the flywheel's ARN.
- Update: the same settings find the same flywheel; others make a new one (a flywheel's task
  configuration cannot change: UpdateFlywheel takes none), and CloudFormation deletes the old one.
- Delete: DeleteFlywheel, retried while Comprehend refuses it because an iteration runs or a dataset
  is being created ("Configuring flywheels using the API"); the data lake and its models stay
  (Comprehend deletes neither with the flywheel).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from nerloop.aws import Aws
from nerloop.errors import NerloopError
from nerloop.observability import logger
from nerloop.recognizer_versions import NAME_PATTERN
from nerloop.settings import CommaSeparated

FLYWHEEL_TYPE = "Custom::Flywheel"
ACTIVE = "ACTIVE"
FAILED_STATUS = "FAILED"


class FlywheelResourceError(NerloopError):
    """The flywheel cannot be created or deleted; the message is the stack's failure reason."""


class FlywheelProperties(BaseModel):
    """The properties of a Custom::Flywheel (CloudFormation sends every value as a string)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    flywheel_name: str = Field(alias="FlywheelName", pattern=NAME_PATTERN, max_length=54)
    data_access_role_arn: str = Field(alias="DataAccessRoleArn", min_length=20)
    data_lake_s3_uri: str = Field(alias="DataLakeS3Uri", pattern=r"^s3://")
    language_code: str = Field(alias="LanguageCode", min_length=2)
    entity_types: CommaSeparated = Field(alias="EntityTypes", min_length=1, max_length=25)

    def physical_name(self) -> str:
        """<FlywheelName>-<8 hex digits of the settings>: new settings, a new flywheel."""
        settings = "|".join([self.data_access_role_arn, self.data_lake_s3_uri, self.language_code,
                             *self.entity_types])
        return f"{self.flywheel_name}-{hashlib.sha256(settings.encode('utf-8')).hexdigest()[:8]}"


def create_flywheel(props: FlywheelProperties, stack_id: str, aws: Aws,
                    wait: Callable[[str], None]) -> tuple[str, dict[str, str]]:
    """Create the flywheel (or find the one these settings made) and wait until it is ACTIVE;
    returns (physical id, attributes)."""
    name = props.physical_name()
    arn = flywheel_arn(stack_id, name)
    if not _exists(arn, aws):
        reply = aws.comprehend.create_flywheel(
            FlywheelName=name,
            DataAccessRoleArn=props.data_access_role_arn,
            DataLakeS3Uri=props.data_lake_s3_uri,
            ModelType="CUSTOM_ENTITY_RECOGNIZER",
            TaskConfig={"LanguageCode": props.language_code,
                        "EntityRecognitionConfig": {"EntityTypes": [{"Type": t} for t in props.entity_types]}},
            ClientRequestToken=hashlib.sha256(name.encode("utf-8")).hexdigest()[:64],
        )
        arn = str(reply["FlywheelArn"])
    while True:
        status = aws.comprehend.describe_flywheel(FlywheelArn=arn)["FlywheelProperties"]
        if status["Status"] == ACTIVE:
            break
        if status["Status"] == FAILED_STATUS:
            raise FlywheelResourceError(f"flywheel {name} failed: {status.get('Message', '')}")
        wait(f"flywheel {name} to become ACTIVE (it is {status['Status']})")
    logger.info("flywheel ready", flywheel=arn)
    return arn, {"Arn": arn}


def delete_flywheel(physical_id: str, aws: Aws, wait: Callable[[str], None]) -> None:
    """Delete the flywheel `physical_id` names (nothing when it names none, or it is gone)."""
    if not physical_id.startswith("arn:"):
        return
    while True:
        try:
            aws.comprehend.delete_flywheel(FlywheelArn=physical_id)
            return
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return
            if code != "ResourceInUseException":
                raise
            wait(f"flywheel {physical_id} to finish its iteration or dataset before it can be deleted")


def flywheel_arn(stack_id: str, name: str) -> str:
    """The flywheel's ARN (the API reference's pattern: arn:<partition>:comprehend:<region>:<account>:flywheel/<name>)
    in the stack's partition, region and account (StackId: arn:<partition>:cloudformation:<region>:<account>:...)."""
    _, partition, _, region, account = stack_id.split(":", 5)[:5]
    return f"arn:{partition}:comprehend:{region}:{account}:flywheel/{name}"


def _exists(arn: str, aws: Aws) -> bool:
    try:
        aws.comprehend.describe_flywheel(FlywheelArn=arn)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code", "") != "ResourceNotFoundException":
            raise
        return False


def flywheel_request(kind: str, physical_id: str, properties: Any, stack_id: str, aws: Aws,
                     wait: Callable[[str], None]) -> tuple[str, dict[str, str]]:
    """Carry out a Create, Update or Delete (`kind`) of a Custom::Flywheel."""
    if kind == "Delete":
        delete_flywheel(physical_id, aws, wait)
        return physical_id, {}
    return create_flywheel(FlywheelProperties.model_validate(properties or {}), stack_id, aws, wait)
