"""Amazon Augmented AI: human loops answered by a local reviewer (moto has none). The SageMaker flow
definitions and human task UIs they need are in `nerloop_local.standins.flow_definitions`.

A2I runtime (service "sagemaker-a2i-runtime"): StartHumanLoop, DescribeHumanLoop, ListHumanLoops,
StopHumanLoop, DeleteHumanLoop.

Human loops are answered by a reviewer: `reviewer(loop_name, input_content) -> list of
{"label", "startOffset", "endOffset"}`, or None when there is no answer yet (asked again on the next
tick). Someone can also answer or fail a loop directly (`complete_loop`, `fail_loop`). A flow
definition's `HumanLoopConfig.TaskCount` is "the number of distinct workers who will perform the
same task on each object" (botocore's sagemaker service-2.json): a loop completes once that many
distinct workers answered, and output.json lists one `humanAnswers` entry per worker, each with its
`workerId` (https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-output-data.html). The reviewer
callback is asked once per worker, with that worker's id added to the input under "workerId"
(`local-reviewer`, then `local-reviewer-2`, `local-reviewer-3`). Once all have answered the stand-in
writes A2I's output.json at

    <flow definition S3OutputPath>/<flow-definition-name>/YYYY/MM/DD/hh/mm/ss/<human-loop-name>/output.json

(the time is the loop's creation time, as A2I documents) and puts A2I's "SageMaker A2I HumanLoop
Status Change" event on the emulated bus. Names: 1-63 characters of ^[a-z0-9](-*[a-z0-9])*$, unique
in the account: starting a loop again with the same name and the same input is answered with the
existing loop (a retried call); the same name with other input is a ConflictException.

Deleting a flow definition is what A2I documents
(https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-delete-flow-definition.html): it goes `Deleting`;
its loops no worker has started are stopped (their Stopped events go out) and deleted, and so are its
finished loops; a loop still `Stopping` (a worker on it) finishes first. Once it has no loop left the
flow definition is gone (on the next tick). Nobody works on a local loop until it is answered, so
every `InProgress` loop counts as not started.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from nerloop.constants import CROWD_ELEMENT_NAME
from nerloop_local.standins.base import (
    Reviewer,
    StandInContext,
    StandInError,
    StandInService,
    drop_none,
    from_iso,
    iso_millis,
    join_s3_uri,
    paginate,
    to_iso,
    utcnow,
)
from nerloop_local.standins.flow_definitions import FlowDefinitionsStandIn, check_name

A2I = "sagemaker-a2i-runtime"
MAX_INPUT_CONTENT_CHARS = 3_145_728
DETAIL_TYPE = "SageMaker A2I HumanLoop Status Change"
FINISHED = ("Completed", "Failed", "Stopped")
FAILURE_CODES = ("ValidationError", "Expired", "InternalError")
LOCAL_WORKER = "local-reviewer"


# --- human loops (service "sagemaker-a2i-runtime") --------------------------------------------------------


@dataclass
class HumanLoop:
    name: str
    arn: str
    flow_definition_arn: str
    input_content: str
    creation_time: datetime
    status: str = "InProgress"
    failure_code: str | None = None
    failure_reason: str | None = None
    output_uri: str | None = None
    asked: int = 0  # how many times the reviewer was asked
    answers: list[dict[str, Any]] = field(default_factory=list)  # humanAnswers so far, one per worker

    @property
    def input(self) -> dict[str, Any]:
        decoded = json.loads(self.input_content)
        return decoded if isinstance(decoded, dict) else {"value": decoded}


@dataclass(frozen=True)
class PendingLoop:
    """A loop waiting for a reviewer: its name, the worker's input and when it started."""

    name: str
    input: dict[str, Any]
    created: datetime
    flow_definition_arn: str
    task_count: int = 1  # distinct workers the loop needs (its flow definition's TaskCount)
    answered_by: tuple[str, ...] = ()  # the workers who answered it so far


class A2IStandIn(StandInService):
    """Human loops kept locally and answered by a reviewer callback (or by `complete_loop`)."""

    operations: ClassVar[dict[tuple[str, str], str]] = {
        (A2I, "StartHumanLoop"): "start_human_loop",
        (A2I, "DescribeHumanLoop"): "describe_human_loop",
        (A2I, "ListHumanLoops"): "list_human_loops",
        (A2I, "StopHumanLoop"): "stop_human_loop",
        (A2I, "DeleteHumanLoop"): "delete_human_loop",
    }

    def __init__(self, context: StandInContext, flows: FlowDefinitionsStandIn,
                 reviewer: Reviewer | None = None) -> None:
        super().__init__(context)
        self.flows = flows
        flows.loops = self
        self.reviewer = reviewer
        self.loops: dict[str, HumanLoop] = {}

    # --- API ------------------------------------------------------------------------------------

    def _loop(self, name: str) -> HumanLoop:
        loop = self.loops.get(name)
        if loop is None:
            raise StandInError("ResourceNotFoundException", f"We couldn't find the human loop {name}.", 404)
        return loop

    def start_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        name, flow_arn = params["HumanLoopName"], params["FlowDefinitionArn"]
        content = params["HumanLoopInput"]["InputContent"]
        check_name("HumanLoopName", name)
        if len(content) > MAX_INPUT_CONTENT_CHARS:
            raise StandInError("ValidationException", f"InputContent is {len(content)} characters; at most "
                            f"{MAX_INPUT_CONTENT_CHARS} are allowed")
        try:
            json.loads(content)
        except ValueError as exc:
            raise StandInError("ValidationException", f"InputContent is not valid JSON: {exc}") from exc
        existing = self.loops.get(name)
        if existing is not None:
            if existing.input_content == content and existing.flow_definition_arn == flow_arn:
                return {"HumanLoopArn": existing.arn}  # the same request again
            raise StandInError("ConflictException", "Your request has the same name as another active human loop but "
                            "has different input data. You cannot start two human loops with the same name and "
                            "different input data.", 409)
        flow = self.flows.by_arn(flow_arn)
        if flow is None or flow.status != "Active":
            raise StandInError("ResourceNotFoundException", f"We couldn't find the flow definition {flow_arn}.", 404)
        self.loops[name] = HumanLoop(
            name=name, arn=f"arn:aws:sagemaker:{self.context.region}:{self.context.account}:human-loop/{name}",
            flow_definition_arn=flow_arn, input_content=content, creation_time=utcnow(),
        )
        self.changes += 1
        return {"HumanLoopArn": self.loops[name].arn}

    def describe_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        loop = self._loop(params["HumanLoopName"])
        return drop_none({
            "CreationTime": loop.creation_time, "FailureReason": loop.failure_reason,
            "FailureCode": loop.failure_code, "HumanLoopStatus": loop.status, "HumanLoopName": loop.name,
            "HumanLoopArn": loop.arn, "FlowDefinitionArn": loop.flow_definition_arn,
            "HumanLoopOutput": {"OutputS3Uri": loop.output_uri} if loop.output_uri else None,
        })

    def list_human_loops(self, params: dict[str, Any]) -> dict[str, Any]:
        flow_arn = params["FlowDefinitionArn"]
        if self.flows.by_arn(flow_arn) is None:
            raise StandInError("ResourceNotFoundException", f"We couldn't find the flow definition {flow_arn}.", 404)
        found = [loop for loop in self.loops.values() if loop.flow_definition_arn == flow_arn]
        if "CreationTimeAfter" in params:
            found = [loop for loop in found if loop.creation_time > params["CreationTimeAfter"]]
        if "CreationTimeBefore" in params:
            found = [loop for loop in found if loop.creation_time < params["CreationTimeBefore"]]
        found.sort(key=lambda loop: (loop.creation_time, loop.name),
                   reverse=params.get("SortOrder", "Descending") == "Descending")
        page, token = paginate(found, params)
        return drop_none({"HumanLoopSummaries": [drop_none({
            "HumanLoopName": loop.name, "HumanLoopStatus": loop.status, "CreationTime": loop.creation_time,
            "FailureReason": loop.failure_reason, "FlowDefinitionArn": loop.flow_definition_arn,
        }) for loop in page], "NextToken": token})

    def stop_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        loop = self._loop(params["HumanLoopName"])
        if loop.status == "InProgress":
            loop.status = "Stopping"
            self.changes += 1
        elif loop.status in FINISHED:
            raise StandInError("ValidationException", f"Human loop {loop.name} is {loop.status} and cannot be stopped")
        return {}

    def delete_human_loop(self, params: dict[str, Any]) -> dict[str, Any]:
        loop = self._loop(params["HumanLoopName"])
        if loop.status not in FINISHED:
            raise StandInError("ValidationException", f"Human loop {loop.name} is {loop.status}; only Completed, "
                            "Failed or Stopped loops can be deleted")
        del self.loops[loop.name]
        self.changes += 1
        return {}

    def loops_of(self, flow_arn: str) -> list[HumanLoop]:
        return [loop for loop in self.loops.values() if loop.flow_definition_arn == flow_arn]

    def flow_definition_deleted(self, flow_arn: str) -> None:
        """A2I on DeleteFlowDefinition: stop and delete the loops nobody works on, delete the finished ones."""
        for loop in sorted(self.loops_of(flow_arn), key=lambda loop: (loop.creation_time, loop.name)):
            if loop.status == "InProgress":
                loop.status = "Stopped"
                self._finish(loop)
            if loop.status in FINISHED:
                del self.loops[loop.name]
                self.changes += 1

    # --- people -----------------------------------------------------------------------------------

    def pending_loops(self) -> list[PendingLoop]:
        """Loops waiting for an answer, oldest first."""
        return [PendingLoop(loop.name, loop.input, loop.creation_time, loop.flow_definition_arn,
                            self.task_count(loop), tuple(answer["workerId"] for answer in loop.answers))
                for loop in sorted(self.loops.values(), key=lambda loop: (loop.creation_time, loop.name))
                if loop.status == "InProgress"]

    def task_count(self, loop: HumanLoop) -> int:
        flow = self.flows.by_arn(loop.flow_definition_arn)
        return flow.task_count if flow is not None else 1

    def complete_loop(self, name: str, entities: list[dict[str, Any]], *, worker_id: str = LOCAL_WORKER,
                      seconds_spent: float = 30.0) -> str | None:
        """One worker's answer, as A2I takes it: kept until the flow definition's TaskCount distinct workers
        answered, then output.json is written (one humanAnswers entry per worker) and the loop completes.
        Returns the output.json URI once the loop completed, None while it waits for more workers.
        ValueError when the loop is not in progress or this worker answered it already."""
        loop = self._loop(name)
        if loop.status != "InProgress":
            raise ValueError(f"human loop {name} is {loop.status}, not InProgress")
        if any(answer["workerId"] == worker_id for answer in loop.answers):
            raise ValueError(f"worker {worker_id} answered human loop {name} already")
        flow = self.flows.by_arn(loop.flow_definition_arn)
        if flow is None:
            raise ValueError(f"the flow definition of {name} is gone")
        created = loop.creation_time
        loop.answers.append({
            "answerContent": {CROWD_ELEMENT_NAME: {"entities": entities}},
            "submissionTime": iso_millis(utcnow()),
            "acceptanceTime": iso_millis(created),
            "timeSpentInSeconds": seconds_spent,
            "workerId": worker_id,
            "workerMetadata": {"identityData": {
                "identityProviderType": "Cognito",
                "issuer": f"https://cognito-idp.{self.context.region}.amazonaws.com/{self.context.region}_local",
                "sub": worker_id,
            }},
        })
        self.changes += 1
        if len(loop.answers) < flow.task_count:
            return None
        uri = join_s3_uri(flow.output_path, flow.name, created.strftime("%Y/%m/%d/%H/%M/%S"), loop.name,
                          "output.json")
        output = {
            "flowDefinitionArn": loop.flow_definition_arn,
            "humanLoopName": loop.name,
            "humanAnswers": loop.answers,
            "inputContent": loop.input,
        }
        self.context.write_s3(uri, json.dumps(output, ensure_ascii=False).encode("utf-8"), "application/json")
        loop.status, loop.output_uri = "Completed", uri
        self._finish(loop)
        return uri

    def fail_loop(self, name: str, code: str = "Expired", reason: str = "The human loop expired") -> None:
        """End a loop as Failed (ValidationError, Expired or InternalError), as A2I would."""
        if code not in FAILURE_CODES:
            raise ValueError(f"failure code must be one of {FAILURE_CODES}")
        loop = self._loop(name)
        if loop.status not in ("InProgress", "Stopping"):
            raise ValueError(f"human loop {name} is {loop.status}")
        loop.status, loop.failure_code, loop.failure_reason = "Failed", code, reason
        self._finish(loop)

    def _finish(self, loop: HumanLoop) -> None:
        self.changes += 1
        # Every field of A2I's documented event, null when it has no value (as failureCode is on a
        # Completed loop): https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-cloudwatch-events.html.
        # Only a completed loop has review results, so only it has an output location.
        detail: dict[str, Any] = {
            "creationTime": iso_millis(loop.creation_time),
            "failureCode": loop.failure_code,
            "failureReason": loop.failure_reason,
            "flowDefinitionArn": loop.flow_definition_arn,
            "humanLoopArn": loop.arn,
            "humanLoopName": loop.name,
            "humanLoopOutput": {"outputS3Uri": loop.output_uri} if loop.output_uri else None,
            "humanLoopStatus": loop.status,
        }
        self.context.publish("aws.sagemaker", DETAIL_TYPE, detail, [loop.arn])

    # --- the clock --------------------------------------------------------------------------------

    def busy(self) -> bool:
        """Stopping loops, and loops the reviewer has not been asked about yet, will change by themselves.
        A loop the reviewer left unanswered waits for a person: it does not keep the pump busy."""
        return any(loop.status == "Stopping" or (loop.status == "InProgress" and self.reviewer and not loop.asked)
                   for loop in self.loops.values())

    def tick(self) -> None:
        for loop in sorted(self.loops.values(), key=lambda loop: (loop.creation_time, loop.name)):
            if loop.status == "Stopping":
                loop.status = "Stopped"
                self._finish(loop)
                flow = self.flows.by_arn(loop.flow_definition_arn)
                if flow is not None and flow.status == "Deleting":
                    del self.loops[loop.name]  # its flow definition is being deleted
            elif loop.status == "InProgress" and self.reviewer is not None:
                loop.asked += 1
                for worker in self._workers_to_ask(loop):
                    answer = self.reviewer(loop.name, {**loop.input, "workerId": worker})
                    if answer is None:
                        break
                    self.complete_loop(loop.name, list(answer), worker_id=worker)

    def _workers_to_ask(self, loop: HumanLoop) -> list[str]:
        """The simulated workers who have not answered `loop` yet, as many as it still needs."""
        answered = {answer["workerId"] for answer in loop.answers}
        workers = [LOCAL_WORKER if number == 1 else f"{LOCAL_WORKER}-{number}"
                   for number in range(1, self.task_count(loop) + 1)]
        return [worker for worker in workers if worker not in answered][:self.task_count(loop) - len(answered)]

    # --- saved state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"loops": [{**asdict(loop), "creation_time": to_iso(loop.creation_time)}
                          for loop in self.loops.values()]}

    def restore(self, data: dict[str, Any]) -> None:
        self.loops = {item["name"]: HumanLoop(**{**item, "creation_time": from_iso(item["creation_time"])})
                      for item in data.get("loops", [])}


__all__ = ["A2IStandIn", "HumanLoop", "PendingLoop"]
