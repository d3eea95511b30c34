"""CloudFormation's DescribeStacks for the local stack (moto knows no stack: the local runtime
creates the template's resources itself).

The runtime sets `status` as it goes (CREATE_IN_PROGRESS, UPDATE_IN_PROGRESS, the cleanup of an
update, ...), so a custom resource that asks in which phase its request came sees what it would on
AWS. Another stack id or name is a ValidationError, as CloudFormation answers for a stack that does
not exist (https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html).
"""

from __future__ import annotations

from typing import Any, ClassVar

from nerloop_local.fakes import FakeContext, FakeError, FakeService, utcnow

CLOUDFORMATION = "cloudformation"


class StackFake(FakeService):
    """The one local stack: its id, name and status."""

    operations: ClassVar[dict[tuple[str, str], str]] = {(CLOUDFORMATION, "DescribeStacks"): "describe_stacks"}

    def __init__(self, context: FakeContext) -> None:
        super().__init__(context)
        self.stack_id = ""
        self.name = ""
        self.status = "CREATE_IN_PROGRESS"
        self.created = utcnow()

    def describe_stacks(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("StackName")
        if not self.stack_id or wanted not in (self.stack_id, self.name):
            raise FakeError("ValidationError", f"Stack with id {wanted} does not exist")
        return {"Stacks": [{"StackId": self.stack_id, "StackName": self.name, "CreationTime": self.created,
                            "StackStatus": self.status}]}


__all__ = ["StackFake"]
