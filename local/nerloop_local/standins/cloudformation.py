"""CloudFormation's DescribeStacks and DescribeStackResources for the local stack (moto knows no
stack: the local runtime creates the template's resources itself), and Lambda's asynchronous
Invoke of the stack's functions (moto's would need Docker).

The runtime sets `status` as it goes (CREATE_IN_PROGRESS, UPDATE_IN_PROGRESS, the cleanup of an
update, ...), so a custom resource that asks in which phase its request came sees what it would on
AWS. Another stack id or name is a ValidationError, as CloudFormation answers for a stack that does
not exist (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html).

`resources` (logical id → physical id and type, as the runtime created them) answers
DescribeStackResources as CloudFormation does: one StackResource each, the physical id being what
`Ref` returns (a queue's URL, a function's or table's name), optionally filtered by
LogicalResourceId (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStackResources.html).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from nerloop_local.standins.base import StandInContext, StandInError, StandInService, utcnow

CLOUDFORMATION = "cloudformation"
LAMBDA = "lambda"
# What CloudFormation lists a SAM resource as once the transform ran.
TRANSFORMED_TYPES = {"AWS::Serverless::Function": "AWS::Lambda::Function",
                     "AWS::Serverless::LayerVersion": "AWS::Lambda::LayerVersion"}


class StackStandIn(StandInService):
    """The one local stack: its id, name, status, parameters, outputs and resources."""

    operations: ClassVar[dict[tuple[str, str], str]] = {
        (CLOUDFORMATION, "DescribeStacks"): "describe_stacks",
        (CLOUDFORMATION, "DescribeStackResources"): "describe_stack_resources",
    }

    def __init__(self, context: StandInContext) -> None:
        super().__init__(context)
        self.stack_id = ""
        self.name = ""
        self.status = "CREATE_IN_PROGRESS"
        self.created = utcnow()
        self.parameters: dict[str, str] = {}
        self.resources: dict[str, tuple[str, str]] = {}  # logical id → (physical id, resource type)
        self.outputs: dict[str, str] = {}

    def _check(self, wanted: Any) -> None:
        if not self.stack_id or wanted not in (self.stack_id, self.name):
            raise StandInError("ValidationError", f"Stack with id {wanted} does not exist")

    def describe_stacks(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check(params.get("StackName"))
        return {"Stacks": [{"StackId": self.stack_id, "StackName": self.name, "CreationTime": self.created,
                            "StackStatus": self.status,
                            "Parameters": [{"ParameterKey": key, "ParameterValue": value}
                                           for key, value in sorted(self.parameters.items())],
                            "Outputs": [{"OutputKey": key, "OutputValue": value}
                                        for key, value in self.outputs.items()]}]}

    def describe_stack_resources(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check(params.get("StackName"))
        wanted = params.get("LogicalResourceId")
        return {"StackResources": [
            {"StackName": self.name, "StackId": self.stack_id, "LogicalResourceId": logical,
             "PhysicalResourceId": physical, "ResourceType": TRANSFORMED_TYPES.get(kind, kind),
             "Timestamp": self.created, "ResourceStatus": "CREATE_COMPLETE"}
            for logical, (physical, kind) in self.resources.items() if wanted in (None, logical)][:100]}


class FunctionsStandIn(StandInService):
    """Lambda's Invoke with InvocationType Event: the event joins the function's event queue, as
    Lambda queues an asynchronous invocation (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html),
    and the runtime's pump delivers it with the function's retries. `enqueue(function name, event)`
    is the runtime's; it returns False for a function it does not run."""

    operations: ClassVar[dict[tuple[str, str], str]] = {(LAMBDA, "Invoke"): "invoke"}

    def __init__(self, context: StandInContext) -> None:
        super().__init__(context)
        self.enqueue: Callable[[str, dict[str, Any]], bool] | None = None

    def invoke(self, params: dict[str, Any]) -> dict[str, Any]:
        name = str(params["FunctionName"])
        name = name.split(":function:", 1)[1] if ":function:" in name else name
        name = name.split(":", 1)[0]  # a qualifier (version or alias) after the name
        if params.get("InvocationType") != "Event":
            raise StandInError("InvalidParameterValueException",
                            "the local stand-in runs asynchronous invocations only (InvocationType Event)")
        try:
            event = json.loads(params.get("Payload") or b"{}")
        except ValueError as exc:
            raise StandInError("InvalidRequestContentException", f"could not parse the payload as JSON: {exc}") from exc
        if self.enqueue is None or not self.enqueue(name, event):
            raise StandInError("ResourceNotFoundException", f"Function not found: {name}", status=404)
        self.changes += 1
        return {"StatusCode": 202}


__all__ = ["FunctionsStandIn", "StackStandIn"]
