"""A deployed nerloop stack's resources, found the way an operator would: `nerloop status|report|redrive
--stack NAME [--region R]`.

CloudFormation's DescribeStackResources maps each logical id of template.yaml to the physical id
CloudFormation gave it: a table's or bucket's name, a queue's URL, a function's name (what `Ref`
returns; https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStackResources.html).
It lists at most 100 resources (the same page: "Only the first 100 resources will be returned"), and a
SAM stack holds more than its template shows (roles, rules, permissions), so a logical id missing
from the first answer is asked for by name (`LogicalResourceId`). DescribeStacks gives the
parameters the stack was deployed with and its outputs
(https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html).

Which queue is whose dead-letter queue is read from template.yaml itself: a function's
`EventInvokeConfig.DestinationConfig.OnFailure.Destination` and its rules' `DeadLetterConfig`.
Credentials come from boto3's default chain (environment, profile, SSO, instance or container role);
nothing here writes to AWS (the redrive in `stack_redrive` does, and only there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from nerloop_local.emulator.template import load_template
from nerloop_local.usage import UsageError

TABLE = "StateTable"
BUCKET = "DataBucket"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")
# A resource CloudFormation no longer has (or never made): its physical id cannot be used.
GONE_STATUSES = ("CREATE_FAILED", "DELETE_COMPLETE", "DELETE_IN_PROGRESS")
DESCRIBE_LIMIT = 100  # DescribeStackResources' most resources in one answer


class StackError(UsageError):
    """A stack that cannot be read as a nerloop stack: the message says which and why (printed as one line,
    exit status 2, as any bad input of the command line)."""


@dataclass(frozen=True)
class StackResources:
    """A deployed stack's resources by their template.yaml logical ids, and the session that reads them."""

    name: str
    region: str
    session: Any  # a boto3 Session on the default credential chain, in `region`
    stack_id: str
    status: str
    parameters: dict[str, str]
    outputs: dict[str, str]
    table: str
    bucket: str
    functions: dict[str, str]  # logical id → function name
    dead_letter_queues: dict[str, str]  # function logical id → its dead-letter queue's URL
    _clients: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region)
        return self._clients[service]

    def state_table(self) -> Any:
        """The state table as a boto3 DynamoDB Table resource (what nerloop.state.StateTable wraps)."""
        return self.session.resource("dynamodb", region_name=self.region).Table(self.table)

    @property
    def label(self) -> str:
        return f"stack {self.name} ({self.region})"

    @property
    def confidence_threshold(self) -> float:
        return float(self.parameters["ConfidenceThreshold"])


def open_stack_for(args: Any) -> StackResources | None:
    """The stack a command's `--stack NAME [--region R]` name, or None without --stack (UsageError for a
    --region without it)."""
    if getattr(args, "stack", None) is None:
        if getattr(args, "region", None) is not None:
            raise UsageError("--region goes with --stack NAME")
        return None
    return open_stack(args.stack, args.region)


def add_stack_arguments(parser: Any, source: Any, what: str) -> None:
    """`--stack NAME` (on `source`: the parser, or its group of mutually exclusive sources) and `--region R`."""
    source.add_argument("--stack", metavar="NAME",
                        help=f"a deployed nerloop stack: {what} (its resources found through CloudFormation, "
                             "read with boto3's default credential chain)")
    parser.add_argument("--region", metavar="R",
                        help="the stack's region (default: boto3's: AWS_DEFAULT_REGION, or the profile's)")


def dead_letter_queues(template: dict[str, Any]) -> dict[str, str]:
    """Function logical id → the logical id of the SQS queue its failures go to (its OnFailure destination,
    which its rules' DeadLetterConfig names too); ValueError when a function names two."""
    found: dict[str, str] = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] not in FUNCTION_TYPES:
            continue
        props = resource.get("Properties") or {}
        on_failure = ((props.get("EventInvokeConfig") or {}).get("DestinationConfig") or {}).get("OnFailure") or {}
        targets = [on_failure.get("Destination")]
        targets += [((event.get("Properties") or {}).get("DeadLetterConfig") or {}).get("Arn")
                    for event in (props.get("Events") or {}).values()]
        queues = {queue for target in targets if (queue := _get_att_arn(target)) is not None}
        if len(queues) > 1:
            raise ValueError(f"template.yaml: {logical_id} sends failures to several queues: {sorted(queues)}")
        if queues:
            found[logical_id] = str(queues.pop())
    return found


def _get_att_arn(node: Any) -> str | None:
    """`!GetAtt Queue.Arn` → "Queue"; anything else → None."""
    if isinstance(node, dict) and "Fn::GetAtt" in node:
        logical_id, attribute = node["Fn::GetAtt"]
        return str(logical_id) if attribute == "Arn" else None
    return None


def open_stack(name: str, region: str | None = None, *,
               session_factory: Callable[..., Any] = boto3.session.Session,
               template: dict[str, Any] | None = None) -> StackResources:
    """Find stack `name`'s resources; StackError (naming the stack, the region and the reason) when there
    are no credentials or region, the stack does not exist, or it lacks a resource nerloop needs."""
    session = session_factory(region_name=region) if region else session_factory()
    region = region or session.region_name
    if not region:
        raise StackError("no AWS region: pass --region R, or set AWS_DEFAULT_REGION (or a region "
                         "in the AWS profile)")
    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # a profile that names no credentials, an SSO login that expired ...
        raise StackError(f"no usable AWS credentials: {exc}") from exc
    if credentials is None:
        raise StackError("no AWS credentials: boto3's default chain found none (environment variables, "
                         "AWS_PROFILE or ~/.aws, SSO, an instance or container role)")
    template = template if template is not None else load_template()
    cloudformation = session.client("cloudformation", region_name=region)
    described = _call(name, region, "cloudformation:DescribeStacks",
                      lambda: cloudformation.describe_stacks(StackName=name))["Stacks"][0]
    functions = [logical_id for logical_id, resource in template["Resources"].items()
                 if resource["Type"] in FUNCTION_TYPES]
    queues = dead_letter_queues(template)
    physical = stack_physical_ids(cloudformation, name, region, [TABLE, BUCKET, *functions, *queues.values()])
    return StackResources(
        name=name, region=region, session=session, stack_id=str(described["StackId"]),
        status=str(described.get("StackStatus", "")),
        parameters={item["ParameterKey"]: str(item.get("ParameterValue", ""))
                    for item in described.get("Parameters") or []},
        outputs={item["OutputKey"]: str(item.get("OutputValue", "")) for item in described.get("Outputs") or []},
        table=physical[TABLE], bucket=physical[BUCKET],
        functions={logical_id: physical[logical_id] for logical_id in functions},
        dead_letter_queues={function: physical[queue] for function, queue in queues.items()},
    )


def stack_physical_ids(cloudformation: Any, name: str, region: str, wanted: Iterable[str]) -> dict[str, str]:
    """Logical id → physical id for each of `wanted`, from DescribeStackResources; StackError naming the
    first one the stack lacks (or has only as failed or deleted)."""
    wanted = list(dict.fromkeys(wanted))
    answer = _describe_resources(cloudformation, name, region)
    found = {item["LogicalResourceId"]: item for item in answer}
    if len(answer) >= DESCRIBE_LIMIT:  # perhaps cut short: ask for the rest one by one
        for logical_id in wanted:
            if logical_id not in found:
                found.update({item["LogicalResourceId"]: item
                              for item in _describe_resources(cloudformation, name, region, logical_id)})
    physical: dict[str, str] = {}
    for logical_id in wanted:
        item = found.get(logical_id)
        if item is None:
            raise StackError(f"stack {name} ({region}) has no resource {logical_id}: it is not a nerloop stack, or "
                             "it was deployed from a template.yaml without it (update the stack)")
        if item.get("ResourceStatus") in GONE_STATUSES or not item.get("PhysicalResourceId"):
            raise StackError(f"stack {name} ({region}): resource {logical_id} is {item.get('ResourceStatus')}"
                             + (f" ({item['ResourceStatusReason']})" if item.get("ResourceStatusReason") else ""))
        physical[logical_id] = str(item["PhysicalResourceId"])
    return physical


def _describe_resources(cloudformation: Any, name: str, region: str,
                        logical_id: str | None = None) -> list[dict[str, Any]]:
    wanted = {"LogicalResourceId": logical_id} if logical_id else {}
    answer = _call(name, region, "cloudformation:DescribeStackResources",
                   lambda: cloudformation.describe_stack_resources(StackName=name, **wanted))
    return list(answer["StackResources"])


def _call(name: str, region: str, action: str, call: Callable[[], Any]) -> Any:
    """A CloudFormation read, its errors said as a person needs them."""
    try:
        return call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        # CloudFormation answers an unknown stack with ValidationError ("Stack with id NAME does not exist").
        if code == "ValidationError":
            raise StackError(f"no stack {name} in {region} (CloudFormation: {message}); check --stack and "
                             "--region") from exc
        if code in ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation"):
            raise StackError(f"stack {name} ({region}): not allowed to {action} ({message})") from exc
        if code in ("ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException",
                    "SignatureDoesNotMatch"):
            raise StackError(f"the AWS credentials were refused ({code}: {message})") from exc
        raise StackError(f"stack {name} ({region}): {action} failed ({code}: {message})") from exc
    except (NoCredentialsError, NoRegionError) as exc:
        raise StackError(str(exc)) from exc
    except BotoCoreError as exc:  # no connection, an endpoint that does not answer ...
        raise StackError(f"stack {name} ({region}): {action} failed: {exc}") from exc


__all__ = [
    "StackError",
    "StackResources",
    "add_stack_arguments",
    "dead_letter_queues",
    "open_stack",
    "open_stack_for",
    "stack_physical_ids",
]
