"""Stand-ins for the AWS APIs moto lacks: Comprehend custom entity recognizers and detection jobs,
the A2I runtime (human loops), SageMaker flow definitions, human task UIs, Ground Truth
labeling jobs, CloudFormation's DescribeStacks and DescribeStackResources for the local stack, and
Lambda's asynchronous Invoke of its functions.

How a call reaches a stand-in: `nerloop_local.standins.dispatch`; what they share:
`nerloop_local.standins.base`. One module per service: `comprehend` (recognizers; its training data in
`comprehend_training_data`, detection jobs' input and output in `comprehend_detection`), `comprehend_flywheel`,
`flow_definitions` (SageMaker flow definitions, human task UIs, workteams), `a2i` (human loops), `groundtruth`,
`cloudformation` (the stack and Lambda's asynchronous Invoke).

Time: a stand-in never moves on by itself. `StandIns.tick()` advances every piece of in-flight work
by one step (SUBMITTED → TRAINING → TRAINED, a detection job's SUBMITTED → IN_PROGRESS →
COMPLETED, a human loop asked of the reviewer ...). The local runtime ticks once per pump cycle;
tests tick by hand. Reads (Describe, List) never change anything, as on AWS.

Only one set of stand-ins answers at a time (like moto's single mock): `StandIns.install()` claims the
operations process-wide and `StandIns.uninstall()` releases them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nerloop_local.standins.a2i import A2IStandIn
from nerloop_local.standins.base import Operation, Reviewer, StandInContext, StandInService
from nerloop_local.standins.cloudformation import FunctionsStandIn, StackStandIn
from nerloop_local.standins.comprehend import ComprehendStandIn
from nerloop_local.standins.comprehend_flywheel import FlywheelsStandIn
from nerloop_local.standins.dispatch import claim, release
from nerloop_local.standins.flow_definitions import FlowDefinitionsStandIn
from nerloop_local.standins.groundtruth import GroundTruthStandIn


class StandIns:
    """All the stand-ins of one emulated account, installed together."""

    def __init__(self, context: StandInContext | None = None, reviewer: Reviewer | None = None) -> None:
        self.context = context or StandInContext()
        self.comprehend: ComprehendStandIn = ComprehendStandIn(self.context)
        self.flywheels: FlywheelsStandIn = FlywheelsStandIn(self.context, self.comprehend)
        self.flow_definitions: FlowDefinitionsStandIn = FlowDefinitionsStandIn(self.context)
        self.a2i: A2IStandIn = A2IStandIn(self.context, self.flow_definitions, reviewer)
        self.groundtruth: GroundTruthStandIn = GroundTruthStandIn(self.context)
        self.stack: StackStandIn = StackStandIn(self.context)
        self.functions: FunctionsStandIn = FunctionsStandIn(self.context)
        self._installed = False

    @property
    def services(self) -> dict[str, StandInService]:
        return {"comprehend": self.comprehend, "flywheels": self.flywheels,
                "flow_definitions": self.flow_definitions, "a2i": self.a2i,
                "groundtruth": self.groundtruth, "stack": self.stack, "functions": self.functions}

    def _all_operations(self) -> dict[tuple[str, str], Operation]:
        merged: dict[tuple[str, str], Operation] = {}
        for service in self.services.values():
            merged.update(service.bound_operations())
        return merged

    def install(self) -> StandIns:
        if not self._installed:
            claim(self._all_operations())
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            release(self._all_operations())
            self._installed = False

    @contextmanager
    def installed(self) -> Iterator[StandIns]:
        self.install()
        try:
            yield self
        finally:
            self.uninstall()

    def tick(self) -> None:
        """One step of every stand-in's clock."""
        for service in self.services.values():
            service.tick()

    def busy(self) -> bool:
        return any(service.busy() for service in self.services.values())

    def snapshot(self) -> dict[str, Any]:
        return {name: service.snapshot() for name, service in self.services.items()}

    def restore(self, data: dict[str, Any]) -> None:
        for name, service in self.services.items():
            if name in data:
                service.restore(data[name])
