"""SageMaker flow definitions, human task UIs and workteams, as A2I's human loops need them (moto has
none of these).

Answers (service "sagemaker"): CreateFlowDefinition, DescribeFlowDefinition, ListFlowDefinitions,
DeleteFlowDefinition, CreateHumanTaskUi, DescribeHumanTaskUi, DeleteHumanTaskUi, and DescribeWorkteam
for the workteams made known with `add_workteam` (the private team whose portal is the local review).

Deleting a flow definition is what A2I documents
(https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-delete-flow-definition.html): it goes `Deleting`,
the human loops (`nerloop_local.standins.a2i`) are told, and once it has no loop left the flow
definition is gone (on the next tick).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from nerloop_local.standins.base import (
    StandInContext,
    StandInError,
    StandInService,
    drop_none,
    from_iso,
    paginate,
    split_s3_uri,
    to_iso,
    utcnow,
)

SAGEMAKER = "sagemaker"
NAME = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")  # flow definitions, human task UIs and human loops alike
MAX_NAME_LENGTH = 63


def check_name(label: str, value: str, pattern: re.Pattern[str] = NAME) -> None:
    if not 1 <= len(value) <= MAX_NAME_LENGTH or not pattern.match(value):
        raise StandInError("ValidationException", f"{label} {value!r} must be 1-{MAX_NAME_LENGTH} characters matching "
                        f"{pattern.pattern}")


class FlowLoops(Protocol):
    """The human loops a flow definition's deletion waits for (the A2I stand-in)."""

    def loops_of(self, flow_arn: str) -> Sequence[object]: ...

    def flow_definition_deleted(self, flow_arn: str) -> None: ...


@dataclass
class FlowDefinition:
    name: str
    arn: str
    output_path: str
    role: str
    human_loop_config: dict[str, Any]
    creation_time: datetime
    status: str = "Active"

    @property
    def task_count(self) -> int:
        """Distinct workers per loop (HumanLoopConfig.TaskCount; 1 when not given)."""
        return max(1, int(self.human_loop_config.get("TaskCount") or 1))

    def describe(self) -> dict[str, Any]:
        return {"FlowDefinitionArn": self.arn, "FlowDefinitionName": self.name,
                "FlowDefinitionStatus": self.status, "CreationTime": self.creation_time,
                "HumanLoopConfig": self.human_loop_config, "OutputConfig": {"S3OutputPath": self.output_path},
                "RoleArn": self.role}


@dataclass
class HumanTaskUi:
    name: str
    arn: str
    content: str
    creation_time: datetime


class FlowDefinitionsStandIn(StandInService):
    """SageMaker flow definitions and human task UIs: kept, described and deleted (created Active)."""

    operations: ClassVar[dict[tuple[str, str], str]] = {
        (SAGEMAKER, "CreateFlowDefinition"): "create_flow_definition",
        (SAGEMAKER, "DescribeFlowDefinition"): "describe_flow_definition",
        (SAGEMAKER, "ListFlowDefinitions"): "list_flow_definitions",
        (SAGEMAKER, "DeleteFlowDefinition"): "delete_flow_definition",
        (SAGEMAKER, "CreateHumanTaskUi"): "create_human_task_ui",
        (SAGEMAKER, "DescribeHumanTaskUi"): "describe_human_task_ui",
        (SAGEMAKER, "DeleteHumanTaskUi"): "delete_human_task_ui",
        (SAGEMAKER, "DescribeWorkteam"): "describe_workteam",
    }

    def __init__(self, context: StandInContext) -> None:
        super().__init__(context)
        self.flows: dict[str, FlowDefinition] = {}
        self.loops: FlowLoops | None = None  # the human loops, told when a flow definition is deleted
        self.task_uis: dict[str, HumanTaskUi] = {}
        self.workteams: dict[str, str] = {}  # name → worker portal address (SubDomain)
        self.unpropagated_roles: dict[str, int] = {}  # role ARN → CreateFlowDefinition calls still refused

    def add_new_role(self, role_arn: str, refusals: int = 2) -> None:
        """Make `role_arn` a role created moments ago that IAM has not propagated yet (IAM is eventually
        consistent): the next `refusals` CreateFlowDefinition calls passing it are refused as invalid."""
        self.unpropagated_roles[role_arn] = refusals

    def add_workteam(self, arn: str, portal: str = "") -> None:
        """Make a private workteam known (its workers are whoever answers the loops locally)."""
        name = arn.rsplit("/", 1)[-1]
        self.workteams[name] = portal or f"{name}.labeling.{self.context.region}.sagemaker.aws"

    def describe_workteam(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["WorkteamName"]
        if name not in self.workteams:
            raise StandInError("ResourceNotFound", f"Workteam {name} does not exist")
        pool = f"{self.context.region}_local"
        return {"Workteam": {
            "WorkteamName": name,
            "WorkteamArn": self._arn("workteam/private-crowd", name),
            "WorkforceArn": self._arn("workforce", "default"),
            "Description": "people reviewing locally",
            "SubDomain": self.workteams[name],
            "MemberDefinitions": [{"CognitoMemberDefinition": {"UserPool": pool, "UserGroup": name,
                                                               "ClientId": "local"}}],
        }}

    def _arn(self, kind: str, name: str) -> str:
        return f"arn:aws:sagemaker:{self.context.region}:{self.context.account}:{kind}/{name}"

    def by_arn(self, arn: str) -> FlowDefinition | None:
        return next((flow for flow in self.flows.values() if flow.arn == arn), None)

    def create_flow_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["FlowDefinitionName"]
        check_name("FlowDefinitionName", name)
        if name in self.flows:
            raise StandInError("ResourceInUse", f"Flow definition {self.flows[name].arn} already exists")
        role = params["RoleArn"]
        if self.unpropagated_roles.get(role, 0) > 0:
            self.unpropagated_roles[role] -= 1
            raise StandInError("ValidationException", f"SageMaker cannot assume role {role} (not propagated yet)")
        output = params["OutputConfig"]["S3OutputPath"]
        split_s3_uri(output)
        self.flows[name] = FlowDefinition(
            name=name, arn=self._arn("flow-definition", name), output_path=output, role=params["RoleArn"],
            human_loop_config=params.get("HumanLoopConfig", {}), creation_time=utcnow(),
        )
        self.changes += 1
        return {"FlowDefinitionArn": self.flows[name].arn}

    def _flow(self, name: str) -> FlowDefinition:
        if name not in self.flows:
            raise StandInError("ResourceNotFound", f"Flow definition {name} does not exist")
        return self.flows[name]

    def describe_flow_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._flow(params["FlowDefinitionName"]).describe()

    def list_flow_definitions(self, params: dict[str, Any]) -> dict[str, Any]:
        flows = sorted(self.flows.values(), key=lambda f: f.creation_time,
                       reverse=params.get("SortOrder", "Descending") == "Descending")
        page, token = paginate(flows, params)
        return drop_none({"FlowDefinitionSummaries": [
            {"FlowDefinitionName": f.name, "FlowDefinitionArn": f.arn, "FlowDefinitionStatus": f.status,
             "CreationTime": f.creation_time} for f in page], "NextToken": token})

    def delete_flow_definition(self, params: dict[str, Any]) -> dict[str, Any]:
        flow = self._flow(params["FlowDefinitionName"])
        if flow.status != "Deleting":
            flow.status = "Deleting"
            self.changes += 1
            if self.loops is not None:
                self.loops.flow_definition_deleted(flow.arn)
        return {}

    def busy(self) -> bool:
        return any(flow.status == "Deleting" for flow in self.flows.values())

    def tick(self) -> None:
        for flow in [flow for flow in self.flows.values() if flow.status == "Deleting"]:
            if self.loops is None or not self.loops.loops_of(flow.arn):
                del self.flows[flow.name]
                self.changes += 1

    def create_human_task_ui(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params["HumanTaskUiName"]
        check_name("HumanTaskUiName", name)
        if name in self.task_uis:
            raise StandInError("ResourceInUse", f"Human task UI {name} already exists")
        self.task_uis[name] = HumanTaskUi(name, self._arn("human-task-ui", name),
                                          params["UiTemplate"]["Content"], utcnow())
        return {"HumanTaskUiArn": self.task_uis[name].arn}

    def describe_human_task_ui(self, params: dict[str, Any]) -> dict[str, Any]:
        ui = self.task_uis.get(params["HumanTaskUiName"])
        if ui is None:
            raise StandInError("ResourceNotFound", f"Human task UI {params['HumanTaskUiName']} does not exist")
        return {"HumanTaskUiArn": ui.arn, "HumanTaskUiName": ui.name, "HumanTaskUiStatus": "Active",
                "CreationTime": ui.creation_time,
                "UiTemplate": {"Url": f"s3://local-task-uis/{ui.name}.liquid.html",
                               "ContentSha256": hashlib.sha256(ui.content.encode("utf-8")).hexdigest()}}

    def delete_human_task_ui(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.task_uis.pop(params["HumanTaskUiName"], None) is None:
            raise StandInError("ResourceNotFound", f"Human task UI {params['HumanTaskUiName']} does not exist")
        return {}

    def snapshot(self) -> dict[str, Any]:
        return {"flows": [{**asdict(f), "creation_time": to_iso(f.creation_time)} for f in self.flows.values()],
                "task_uis": [{**asdict(u), "creation_time": to_iso(u.creation_time)} for u in self.task_uis.values()],
                "workteams": self.workteams}

    def restore(self, data: dict[str, Any]) -> None:
        self.flows = {item["name"]: FlowDefinition(**{**item, "creation_time": from_iso(item["creation_time"])})
                      for item in data.get("flows", [])}
        self.task_uis = {item["name"]: HumanTaskUi(**{**item, "creation_time": from_iso(item["creation_time"])})
                         for item in data.get("task_uis", [])}
        self.workteams = dict(data.get("workteams", {}))
