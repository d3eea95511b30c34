"""The local runtime: the stack of template.yaml in one process, offline, with the same handler code.

    with LocalRuntime(Path("workspace"), reviewer=my_reviewer) as runtime:
        runtime.put_text("raw/notes.txt", text)      # a .txt under raw/ → the preprocess rule fires
        result = runtime.run_until_idle()            # deliver, retry, tick the stand-ins, repeat
        for delivery in result.deliveries: print(delivery.line())

`LocalRuntime` is a façade: it starts and stops the emulated account and hands each concern to its module
in nerloop_local.emulator (all from template.yaml, so the wiring is written once):
- isolation: moto's mock_aws with fake credentials; any socket to a non-loopback address fails loudly;
- deployment: DataBucket (EventBridge notifications on) and StateTable, as the template declares them;
  the template's AWS::SageMaker::HumanTaskUi resources and custom resources (each created by invoking its
  ServiceToken function's own handler, its `Fn::GetAtt` values resolved into the functions' environments,
  e.g. FLOW_DEFINITION_ARN from FlowDefinition.Arn); for every function with rules, the rules in moto's
  EventBridge targeting an SQS queue per function (queues), and its on-failure destination queue.
  Schedule rules are created too, but moto never fires them: the pump does;
- the stand-ins for what moto lacks (nerloop_local.standins), with a local private workteam: the
  template parameter WorkteamArn defaults to it here, so its conditions hold and the review exists;
- invocation: each handler run with its own environment, its settings re-read and a fake LambdaContext;
- event_pump: `cycle` / `run_until_idle` fire due schedules, deliver the queued events with Lambda's
  retries, and advance the stand-ins; dead_letters: what failed every attempt, and `redrive`.

People: human loops are answered by `reviewer(loop_name, input_content)` (None = not yet; change it
with `runtime.a2i.reviewer = ...`), or later with `runtime.a2i.complete_loop(name, entities)` for the
loops in `runtime.a2i.pending_loops()`. Ground Truth jobs the preprocess stage starts wait in
`runtime.groundtruth.pending_jobs()` until `complete_job_from_manifest(name, manifest)`;
`label_with_manifest(manifest)` runs a whole labeling job from a finished manifest (labeling).

State lives in the workspace folder (nerloop_local.emulator.workspace) and survives restarts: S3 objects,
DynamoDB items, the stand-ins, the custom resources' outcomes, undelivered events and dead letters
are saved on `save()`, after each `run_until_idle` (autosave) and on `close()`, and restored on start.
EventBridge's own retry policy and dead-letter queue (for deliveries to a target that fail) have no
counterpart: delivering to a queue here never fails.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from nerloop.state import StateTable
from nerloop_local.emulator import dead_letters as dead_letter_queues
from nerloop_local.emulator.atomic import make_dynamodb_writes_atomic
from nerloop_local.emulator.deployment import (
    LOCAL_PARAMETERS,
    Deployment,
    create_stack_resources,
    enable_bucket_notifications,
    wire_functions,
)
from nerloop_local.emulator.event_pump import Delivery, EventPump, PumpResult
from nerloop_local.emulator.faults import FaultInjector
from nerloop_local.emulator.invocation import Handler, Invoker, LambdaContext, reset_shared_caches, shared_session
from nerloop_local.emulator.isolation import ACCOUNT, REGION, IsolatedEnvironment, NetworkGuard
from nerloop_local.emulator.labeling import label_with_manifest
from nerloop_local.emulator.queues import FunctionWiring
from nerloop_local.emulator.scaling import make_moto_scale
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.workspace import Workspace

# Imported before any boto3 session is made, so every client reaches the stand-ins.
from nerloop_local.standins import StandIns
from nerloop_local.standins.base import Reviewer, StandInContext
from nerloop_local.standins.dispatch import patch_client


class RuntimeNotStarted(RuntimeError):
    """The runtime was used before `start()` (or after `close()`)."""


class LocalRuntime:
    """The whole stack in this process: emulated AWS, stand-ins, event rules and the pump."""

    def __init__(
        self,
        workspace: Path | str,
        parameters: Mapping[str, str] | None = None,
        reviewer: Reviewer | None = None,
        *,
        watch_every: int = 1,
        max_attempts: int | None = None,
        restore: bool = True,
        autosave: bool = True,
        environment: Mapping[str, str] | None = None,
        block_network: bool = True,
        test_fraction: float = 0.1,
        seed: int = 0,
        stack: Stack | None = None,
        duplicate_events: bool = False,
        faults: FaultInjector | None = None,
    ) -> None:
        """
        workspace: the folder holding the state (created if missing).
        parameters: template parameter overrides (e.g. {"RetrainBatchSize": "5"}), over LOCAL_PARAMETERS.
        reviewer: answers human loops: reviewer(loop_name, input_content) → entities or None (later).
        watch_every: scheduled functions run at most every this many pump cycles.
        max_attempts: deliveries of a failing event before it goes to the failure destination
            (default: the function's EventInvokeConfig.MaximumRetryAttempts + 1, else 3).
        restore: load the workspace's saved state on start; autosave: save after run_until_idle.
        environment: variables set over every function's own (e.g. {"POWERTOOLS_METRICS_DISABLED": "true"}).
        test_fraction, seed: the Comprehend stand-in's hold-out split.
        stack: an already loaded Stack (instead of `parameters`; saves reading the template again).
            It is copied: the custom resources' attributes are added to the copy's names.
        duplicate_events: deliver every event twice, as EventBridge, S3 and A2I may: the second copy
            has a new event id (redeliveries do) and goes either into the same cycle's batch, whose
            order is shuffled (a rule promises no order), or to the next cycle. Seeded by `seed`.
        faults: a nerloop_local.emulator.faults.FaultInjector, installed while the runtime runs and armed
            around every delivery to a handler (the harness's own calls are never faulted).
        """
        if watch_every < 1 or (max_attempts is not None and max_attempts < 1):
            raise ValueError("watch_every and max_attempts must be at least 1")
        if stack is not None and parameters:
            raise ValueError("give either a loaded stack or parameters, not both")
        self.workspace = Workspace(workspace)
        self.parameters = dict(parameters or {})
        self.reviewer = reviewer
        self.max_attempts = max_attempts
        self.restore = restore
        self.autosave = autosave
        self.environment = dict(environment or {})
        self.block_network = block_network
        self.test_fraction = test_fraction
        self.seed = seed
        self.faults = faults
        loaded = stack or Stack.load({**LOCAL_PARAMETERS, **self.parameters})
        self.stack = replace(loaded, parameters=dict(loaded.parameters), names=dict(loaded.names))
        self.bucket = self.stack.physical_name("DataBucket")
        self.table_name = self.stack.physical_name("StateTable")
        self.wiring: dict[str, FunctionWiring] = {}  # filled on start, in template order
        self.restored = False
        self._compose(watch_every=watch_every, duplicate_events=duplicate_events)

    def _compose(self, *, watch_every: int, duplicate_events: bool) -> None:
        """The parts each concern lives in, and the process state the runtime changes and puts back."""
        self.invoker = Invoker(self.stack, self.environment)
        self.deployment = Deployment(self.stack, self.invoke)
        self.pump = EventPump(self.wiring, self.workspace, self.stack, self.invoke,
                              (self.client, self._require, lambda: self.state),
                              watch_every=watch_every, duplicate_events=duplicate_events, seed=self.seed,
                              faults=self.faults)
        self._standins: StandIns | None = None
        self._mock: Any = None
        self._guard = NetworkGuard()
        self._isolation = IsolatedEnvironment()
        self._clients: dict[str, Any] = {}

    # --- life cycle -----------------------------------------------------------------------------

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        return self._mock is not None

    def start(self) -> LocalRuntime:
        """Start emulated AWS, create the stack from the template, restore the workspace."""
        if self.started:
            return self
        self._isolation.enter(self.workspace.root / ".no-aws-config")
        if self.block_network:
            self._guard.install()
        make_dynamodb_writes_atomic()
        make_moto_scale()
        try:
            self._start_emulation()
            saved = self.restore and self.workspace.exists()
            self._deploy(saved)
            if saved:
                self.workspace.restore_queues(self.client("sqs"), self.wiring)
                self.restored = True
            if self.faults is not None:
                self.faults.install()
        except BaseException:
            self.close(save=False)
            raise
        return self

    def _start_emulation(self) -> None:
        """moto's mock_aws, and the stand-ins installed over it."""
        mock = mock_aws()
        mock.start()
        self._mock = mock
        # Handlers' clients come from boto3's default session: make it the shared one (moto put
        # None there, and puts back what was there before when it stops).
        boto3.DEFAULT_SESSION = shared_session()
        reset_shared_caches()
        self.workspace.root.mkdir(parents=True, exist_ok=True)
        context = StandInContext(account=ACCOUNT, region=REGION, state_dir=self.workspace.standins_dir,
                                 session=shared_session())
        self._standins = StandIns(context, self.reviewer)
        self._standins.comprehend.test_fraction = self.test_fraction
        self._standins.comprehend.seed = self.seed
        self._standins.install()

    def _deploy(self, saved: bool) -> None:
        """The template's resources, in CloudFormation's order; `saved`: restore the workspace's first."""
        standins = self.standins
        create_stack_resources(self.stack, notifications=False)
        if saved:
            self._restore_resources()  # before notifications and rules: restoring fires nothing
        enable_bucket_notifications(self.stack)
        workteam = self.stack.parameters.get("WorkteamArn")
        if workteam:
            standins.flow_definitions.add_workteam(workteam)
        # Resources first: rule patterns and environments resolve their attributes (FlowDefinition.Arn).
        outcomes: dict[str, dict[str, Any]] = self.workspace.load_json("stack.json", {}) if saved else {}
        self.deployment.deploy_resources(standins, self.client("sagemaker"), outcomes)
        self.wiring.update(wire_functions(self.stack, self.client("sqs"), self.client("events"), self.max_attempts))
        self.deployment.clean_up_replaced(standins)
        self.deployment.publish_stack(standins, self.pump.enqueue_invocation)

    def close(self, save: bool = True) -> None:
        """Save (unless told not to), stop emulating, and put the process back as it was."""
        try:
            if save and self.started:
                self.save()
        finally:
            if self.faults is not None:
                self.faults.uninstall()
            if self._standins is not None:
                self._standins.uninstall()
            if self._mock is not None:
                self._mock.stop()
                self._mock = None
            reset_shared_caches()
            self.invoker.forget_handlers()
            self._clients.clear()
            self._guard.remove()
            self._isolation.leave()

    # --- access ---------------------------------------------------------------------------------

    def _require(self) -> StandIns:
        if self._standins is None or not self.started:
            raise RuntimeNotStarted("start the LocalRuntime first (use it as a context manager)")
        return self._standins

    @property
    def standins(self) -> StandIns:
        return self._require()

    @property
    def comprehend(self) -> Any:
        return self._require().comprehend

    @property
    def a2i(self) -> Any:
        return self._require().a2i

    @property
    def groundtruth(self) -> Any:
        return self._require().groundtruth

    @property
    def flow_definition_arn(self) -> str:
        """What the functions are told (FLOW_DEFINITION_ARN): the FlowDefinition custom resource's Arn."""
        return str(self.stack.names.get("FlowDefinition.Arn", ""))

    @property
    def custom_resources(self) -> dict[str, dict[str, Any]]:
        """What each custom resource answered: {logical id: {"physical_id", "data", "properties"}}."""
        return self.deployment.custom_resources

    def client(self, service: str) -> Any:
        """A boto3 client of the emulated account."""
        self._require()
        if service not in self._clients:
            self._clients[service] = patch_client(shared_session().client(service))  # type: ignore[call-overload]
        return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    @property
    def state(self) -> StateTable:
        """The state table as nerloop.state.StateTable."""
        self._require()
        return StateTable(shared_session().resource("dynamodb").Table(self.table_name))

    @property
    def functions(self) -> list[str]:
        """Functions with event rules, in template order (the order the pump serves them)."""
        return list(self.wiring)

    # --- data in and out ------------------------------------------------------------------------

    def put_text(self, key: str, text: str, content_type: str = "text/plain; charset=utf-8") -> str:
        """Write `text` to the data bucket at `key` (UTF-8); return the object's ETag."""
        return self.put_bytes(key, text.encode("utf-8"), content_type)

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        reply = self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return str(reply["ETag"])

    def get_bytes(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def get_text(self, key: str) -> str:
        return self.get_bytes(key).decode("utf-8")

    def list_keys(self, prefix: str = "") -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def put_event(self, source: str, detail_type: str, detail: dict[str, Any],
                  resources: list[str] | None = None) -> str:
        """Put an event on the emulated default bus (the rules route it); return its id."""
        reply = self.client("events").put_events(Entries=[{
            "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail),
            "Resources": resources or [],
        }])
        entry = reply["Entries"][0]
        if "EventId" not in entry:
            raise RuntimeError(f"the emulated bus refused the event: {entry}")
        return str(entry["EventId"])

    def label_with_manifest(self, manifest: Path | str | bytes, job_name: str | None = None) -> str:
        """Run a Ground Truth labeling job that ends with `manifest` (a finished output manifest, as a
        path, text or bytes): its input manifest is written, the job is created through the SageMaker
        API and completed at once, which publishes the job's Completed event. Returns the job ARN."""
        return label_with_manifest(self.stack, self.bucket, (self.s3, self.client("sagemaker")), self.groundtruth,
                                   manifest, job_name)

    # --- functions --------------------------------------------------------------------------------

    def function_environment(self, function: str) -> dict[str, str]:
        """The variables `function` runs with: its template environment, the runtime's overrides, and
        what Lambda itself sets."""
        return self.invoker.function_environment(function)

    def override_handler(self, function: str, handler: Handler) -> ExitStack:
        """Use `handler` instead of the function's own code (tests, or a stage not written yet). It
        still runs with the function's environment and a LambdaContext. Used in a `with` block, the
        function's own code comes back when the block ends."""
        return self.invoker.override_handler(function, handler)

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Call `function`'s handler once with `event`, in its own environment (no retries)."""
        self._require()
        return self.invoker.invoke(function, event)

    def lambda_context(self, function: str) -> LambdaContext:
        """A fresh LambdaContext for one invocation of `function` (its Timeout, memory, ARN)."""
        return self.invoker.lambda_context(function)

    # --- the pump ---------------------------------------------------------------------------------

    @property
    def watch_every(self) -> int:
        return self.pump.watch_every

    @property
    def duplicate_events(self) -> bool:
        return self.pump.duplicate_events

    @property
    def duplicates_injected(self) -> int:
        """Second deliveries made so far (`duplicate_events`)."""
        return self.pump.duplicates_injected

    @property
    def deliveries(self) -> deque[Delivery]:
        """The latest deliveries (every one is in the workspace's deliveries.jsonl)."""
        return self.pump.deliveries

    @property
    def outcomes(self) -> Counter[str]:
        """Every delivery since start, by outcome."""
        return self.pump.outcomes

    def on_delivery(self, listener: Callable[[Delivery], None]) -> None:
        """Call `listener` with every delivery as it happens (a CLI prints them)."""
        self.pump.listeners.append(listener)

    def cycle(self) -> list[Delivery]:
        """One pump cycle: fire due schedules, deliver what is queued, advance the stand-ins."""
        return self.pump.cycle()

    def run_until_idle(self, max_cycles: int = 100) -> PumpResult:
        """Cycle until no queue holds an event and no stand-in has work in flight (or `max_cycles`)."""
        result = self.pump.run_until_idle(max_cycles)
        if self.autosave:
            self.save()
        return result

    def idle(self) -> bool:
        """Nothing will happen without new input: queues empty, stand-ins quiet, schedules caught up."""
        return self.pump.idle()

    def pending(self) -> dict[str, int]:
        """Events waiting in each function's queue."""
        return self.pump.pending()

    def fire_schedules(self) -> None:
        """Send a Scheduled Event to every scheduled function now (what EventBridge's timer would do)."""
        self.pump.fire_schedules()

    def dead_letters(self, function: str | None = None) -> list[dict[str, Any]]:
        """Events that failed every attempt, from the failure destinations (left in place):
        {"function", "event", "error", "attempts", "record"} where record is Lambda's invocation record."""
        return dead_letter_queues.dead_letters(self.client("sqs"), self.wiring, function)

    def redrive(self, function: str | None = None, *, keep: bool = False) -> list[dict[str, Any]]:
        """Put each dead letter's original event (Lambda's `requestPayload`) back on its function's
        event queue, the target of the function's rules, as a first attempt: the next cycles deliver
        it to the same handler as before, with the same retries. The stages' business-key idempotency
        makes a redriven event that had half succeeded, or one redriven twice, change nothing twice.

        function: only this function's dead letters (default: every function's).
        keep: leave the dead letters in place (default: they are removed once requeued).
        Returns [{"function", "event", "error", "attempts"}] for what was requeued.
        """
        return dead_letter_queues.redrive(self.client("sqs"), self.wiring, function, keep=keep)

    # --- the workspace ----------------------------------------------------------------------------

    def save(self) -> None:
        """Write S3, DynamoDB, the stand-ins, the custom resources' outcomes and the queues to the workspace."""
        standins = self._require()
        ws = self.workspace
        ws.save_bucket(self.s3, self.bucket)
        ws.save_table(self.client("dynamodb"), self.table_name)
        ws.save_json("standins/state.json", standins.snapshot())
        ws.save_json("stack.json", self.custom_resources)
        ws.save_queues(self.client("sqs"), self.wiring)
        ws.write_manifest(self.stack.parameters)

    def _restore_resources(self) -> None:
        ws = self.workspace
        ws.restore_bucket(self.s3, self.bucket)
        ws.restore_table(self.client("dynamodb"), self.table_name)
        self.standins.restore(ws.load_json("standins/state.json", {}))


__all__ = ["LocalRuntime", "RuntimeNotStarted"]
