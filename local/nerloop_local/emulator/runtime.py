"""The local runtime: the stack of template.yaml in one process, offline, with the same handler code.

    with LocalRuntime(Path("workspace"), reviewer=my_reviewer) as runtime:
        runtime.put_text("raw/notes.txt", text)      # a .txt under raw/ → the preprocess rule fires
        result = runtime.run_until_idle()            # deliver, retry, tick the stand-ins, repeat
        for delivery in result.deliveries: print(delivery.line())

What it sets up (all from template.yaml, so the wiring is written once):
- moto's mock_aws with fake credentials; any socket to a non-loopback address fails loudly;
- DataBucket (EventBridge notifications on) and StateTable, as the template declares them;
- the stand-ins for what moto lacks (nerloop_local.standins), with a local private workteam: the
  template parameter WorkteamArn defaults to it here, so its conditions hold and the review exists;
- the template's AWS::SageMaker::HumanTaskUi resources, and its custom resources: each is created
  by invoking its ServiceToken function's own handler with a CloudFormation Create request (an
  Update when its properties changed since the workspace was saved); the answer PUT to the
  ResponseURL is caught in process, and its Data become the `Fn::GetAtt` values the functions'
  environments resolve (e.g. FLOW_DEFINITION_ARN from FlowDefinition.Arn);
- for every function with rules: the rules (the template's RuleName / Name, resolved patterns) in
  moto's EventBridge targeting an SQS queue per function, and the function's on-failure
  destination queue (EventInvokeConfig.DestinationConfig.OnFailure, else <function>-dlq).
  Schedule rules are created too, but moto never fires them: the pump does (see below).

The pump (`cycle`, `run_until_idle`): each cycle
1. sends a Scheduled Event to each scheduled function (the watch) when it is due: every
   `watch_every` cycles, and only while a stand-in has work in flight or changed since the
   scheduled functions last ran, or while a retrain is due with no training in flight (the watch,
   every minute on AWS, would start it: pending reviews past RetrainMaxWaitMinutes, say), so an
   idle stack stays idle;
2. delivers every message waiting in the functions' queues, in template order, to the handlers,
   each run with its own environment from the template (Globals merged with its own variables),
   its settings re-read, and a fake LambdaContext. A handler that raises is retried on later cycles,
   EventInvokeConfig.MaximumRetryAttempts times (Lambda's default: twice); after the last attempt
   Lambda's invocation record (condition RetriesExhausted, requestPayload = the event,
   responsePayload = the error) goes to the function's on-failure destination queue;
3. advances every stand-in one step (training, detection, human loops ...).
Before delivery, moto's event quirks are made AWS's: an `account` on every event, a fresh `id`
for each S3 event, `etag` not `eTag`, `reason` "PutObject", an increasing `sequencer`. S3 keys stay as
moto sends them, unencoded, as S3 documents them for EventBridge (event_models/s3.py).

People: human loops are answered by `reviewer(loop_name, input_content)` (None = not yet; change it
with `runtime.a2i.reviewer = ...`), or later with `runtime.a2i.complete_loop(name, entities)` for the
loops in `runtime.a2i.pending_loops()`. Ground Truth jobs the preprocess stage starts wait in
`runtime.groundtruth.pending_jobs()` until `complete_job_from_manifest(name, manifest)`;
`label_with_manifest(manifest)` runs a whole labeling job from a finished manifest.

State lives in the workspace folder (nerloop_local.emulator.workspace) and survives restarts: S3 objects,
DynamoDB items, the stand-ins, the custom resources' outcomes, undelivered events and dead letters
are saved on `save()`, after each `run_until_idle` (autosave) and on `close()`, and restored on start.
EventBridge's own retry policy and dead-letter queue (for deliveries to a target that fail) have no
counterpart: delivering to a queue here never fails.
"""

from __future__ import annotations

import contextlib
import copy
import email.message
import functools
import io
import json
import os
import random
import time
import traceback
import urllib.request
import urllib.response
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from nerloop.constants import LABELING_PREFIX
from nerloop.retrain import RetrainPolicy, retrain_due
from nerloop_local.emulator.atomic import make_dynamodb_writes_atomic
from nerloop_local.emulator.faults import FaultInjector
from nerloop_local.emulator.isolation import (
    ACCOUNT,
    ENDPOINT_PREFIX,
    FAKE_CREDENTIALS,
    LEAKY_VARIABLES,
    REGION,
    NetworkGuard,
)
from nerloop_local.emulator.scaling import make_moto_scale
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.template import rules as template_rules
from nerloop_local.emulator.workspace import Workspace

# Imported before any boto3 session is made, so every client reaches the stand-ins.
from nerloop_local.standins import StandIns
from nerloop_local.standins.base import Reviewer, StandInContext
from nerloop_local.standins.dispatch import patch_client
from nerloop_local.standins.groundtruth import label_attribute_of

# Every S3 event from moto carries this id (its event template's); AWS gives each event its own.
MOTO_S3_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"
ATTEMPT_ATTRIBUTE = "nerloop-attempt"
NORMALIZED_ATTRIBUTE = "nerloop-normalized"
DUPLICATE_ATTRIBUTE = "nerloop-duplicate"  # a second delivery made by `duplicate_events`
REDRIVEN_ATTRIBUTE = "nerloop-redriven"  # put back from the dead-letter queue by `redrive`
LOCAL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/nerloop-local"
LOCAL_WORKTEAM = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:workteam/private-crowd/nerloop-local"
# Ground Truth's built-in NER task (us-east-1), as a real labeling job would name it.
GT_NER_PRE_LAMBDA = "arn:aws:lambda:us-east-1:432418664414:function:PRE-NamedEntityRecognition"
GT_NER_ACS_LAMBDA = "arn:aws:lambda:us-east-1:432418664414:function:ACS-NamedEntityRecognition"
GT_NER_TASK_UI = "arn:aws:sagemaker:us-east-1:394669845002:human-task-ui/NamedEntityRecognition"
STACK_ID = f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/nerloop/00000000-0000-4000-8000-000000000000"
# What local mode sets unless told otherwise: a workteam, so the review (flow definition) exists.
LOCAL_PARAMETERS = {"WorkteamArn": LOCAL_WORKTEAM}
DEFAULT_RETRIES = 2  # Lambda retries a failed asynchronous invocation twice unless configured


class RuntimeNotStarted(RuntimeError):
    """The runtime was used before `start()` (or after `close()`)."""


RECENT_DELIVERIES = 2000  # deliveries a runtime keeps in memory (`LocalRuntime.deliveries`)

# --- what the pump reports ------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One attempt to deliver one event to one function."""

    cycle: int
    function: str
    source: str
    detail_type: str
    summary: str  # what the event is about: an S3 key, a job, a loop, a version
    outcome: str  # "ok", "retry" (it failed and will be tried again) or "dead-letter"
    attempt: int
    result: Any = None
    error: str = ""
    seconds: float = 0.0
    duplicate: bool = False  # a second delivery of the same event (`duplicate_events`)

    def line(self) -> str:
        """One line for people: `[3] PreprocessFunction  Object Created raw/a.txt  ok`."""
        tail = self.error.splitlines()[0] if self.error else ""
        attempt = f" (attempt {self.attempt})" if self.attempt > 1 else ""
        return (f"[{self.cycle}] {self.function}  {self.detail_type} {self.summary}  {self.outcome}{attempt}"
                + (f": {tail}" if tail else ""))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PumpResult:
    deliveries: list[Delivery]
    cycles: int
    idle: bool

    @property
    def failures(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.outcome != "ok"]


@dataclass
class FunctionWiring:
    """A function's event plumbing in the emulated account."""

    logical_id: str
    physical_name: str
    queue_url: str
    queue_arn: str
    dlq_url: str  # the on-failure destination
    dlq_arn: str
    max_attempts: int
    rules: list[str] = field(default_factory=list)
    schedules: list[str] = field(default_factory=list)  # schedule rule ARNs, fired by the pump


@dataclass
class LambdaContext:
    """What Powertools and handlers read from the Lambda context object."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    timeout_seconds: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


# --- event normalisation -------------------------------------------------------------------------------


def normalize_event(event: dict[str, Any], sequence: int) -> dict[str, Any]:
    """The event as AWS would deliver it (see the module docstring for what moto gets wrong)."""
    event = copy.deepcopy(event)
    event.setdefault("version", "0")
    if not event.get("id"):
        event["id"] = str(uuid.uuid4())
    if not event.get("account"):
        event["account"] = ACCOUNT
    if not event.get("region"):
        event["region"] = REGION
    event.pop("ingestion-time", None)
    detail = event.get("detail")
    if event.get("source") == "aws.s3" and isinstance(detail, dict):
        if event["id"] == MOTO_S3_EVENT_ID:
            event["id"] = str(uuid.uuid4())
        obj = detail.get("object")
        if isinstance(obj, dict):
            if "eTag" in obj:
                obj["etag"] = obj.pop("eTag")
            if "sequencer" in obj:
                obj["sequencer"] = f"{sequence:018X}"
        if detail.get("reason") == "ObjectCreated":
            detail["reason"] = "PutObject"
    return event


def summarize_event(event: dict[str, Any]) -> str:
    """What an event is about, in a few words (for the delivery log)."""
    raw_detail = event.get("detail")
    detail: dict[str, Any] = raw_detail if isinstance(raw_detail, dict) else {}
    if event.get("source") == "aws.s3":
        return str(detail.get("object", {}).get("key", ""))
    if event.get("detail-type") == "Scheduled Event":
        return "schedule"
    for name in ("humanLoopName", "versionName", "jobId"):
        if name in detail:
            status = detail.get("humanLoopStatus") or detail.get("status") or ""
            return f"{detail[name]} {status}".strip()
    if "LabelingJobStatus" in detail:
        job = (event.get("resources") or [""])[0].rsplit("/", 1)[-1]
        return f"{job} {detail['LabelingJobStatus']}"
    return ""


# --- process-wide settings the runtime changes and puts back -----------------------------------------------


@functools.cache
def shared_session() -> boto3.session.Session:
    """One boto3 session for every runtime of this process: it keeps the service models it has loaded
    (SageMaker's alone takes a noticeable fraction of a second), so a second runtime starts fast. It is
    made after moto and the stand-ins registered their botocore handlers, and only ever sees the fake
    credentials the runtime sets."""
    return boto3.session.Session(region_name=REGION)


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for a block, then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _reset_shared_caches() -> None:
    """Forget clients, settings and idempotency stores made for another emulated account."""
    from nerloop import aws as nerloop_aws
    from nerloop import idempotency, settings

    nerloop_aws.reset_clients()
    idempotency.forget_persistence()
    settings.get_settings.cache_clear()


def create_stack_resources(stack: Stack, *, notifications: bool = True) -> tuple[str, str]:
    """Create DataBucket and StateTable as template.yaml declares them; return (bucket, table)."""
    bucket = stack.physical_name("DataBucket")
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=bucket)
    if notifications:
        enable_bucket_notifications(stack)
    table = stack.physical_name("StateTable")
    props = stack.resolve(stack.resource("StateTable")["Properties"])
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(TableName=table, KeySchema=props["KeySchema"],
                          AttributeDefinitions=props["AttributeDefinitions"],
                          BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"))
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=table, TimeToLiveSpecification=ttl)
    return bucket, table


def enable_bucket_notifications(stack: Stack) -> None:
    """Turn on the bucket's EventBridge notifications when the template does."""
    props = stack.resolve(stack.resource("DataBucket")["Properties"])
    config = (props.get("NotificationConfiguration") or {}).get("EventBridgeConfiguration") or {}
    if config.get("EventBridgeEnabled") in (True, "true", "True"):
        boto3.client("s3", region_name=REGION).put_bucket_notification_configuration(
            Bucket=stack.physical_name("DataBucket"),
            NotificationConfiguration={"EventBridgeConfiguration": {}},
        )


# --- the runtime ---------------------------------------------------------------------------------------------


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
        self.workspace = Workspace(workspace)
        self.parameters = dict(parameters or {})
        self.reviewer = reviewer
        self.watch_every = watch_every
        self.max_attempts = max_attempts
        self.restore = restore
        self.autosave = autosave
        self.environment = dict(environment or {})
        self.block_network = block_network
        self.test_fraction = test_fraction
        self.seed = seed
        self.duplicate_events = duplicate_events
        self.faults = faults
        self.duplicates_injected = 0
        self._shuffle = random.Random(seed)  # nosec B311 # delivery order, not secrets

        if stack is not None and parameters:
            raise ValueError("give either a loaded stack or parameters, not both")
        loaded = stack or Stack.load({**LOCAL_PARAMETERS, **self.parameters})
        self.stack = replace(loaded, parameters=dict(loaded.parameters), names=dict(loaded.names))
        self.custom_resources: dict[str, dict[str, Any]] = {}
        # Resources an update replaced, deleted in its cleanup: (logical id, type, what was saved).
        self._replaced: list[tuple[str, str, dict[str, Any]]] = []
        self.bucket = self.stack.physical_name("DataBucket")
        self.table_name = self.stack.physical_name("StateTable")
        self.wiring: dict[str, FunctionWiring] = {}
        # The latest deliveries, for people and tests; every one is in the workspace's deliveries.jsonl.
        # Bounded, so a service that runs for days does not grow with its invocations.
        self.deliveries: deque[Delivery] = deque(maxlen=RECENT_DELIVERIES)
        self.outcomes: Counter[str] = Counter()  # every delivery since start, by outcome
        self.restored = False
        self._fakes: StandIns | None = None
        self._mock: Any = None
        self._guard = NetworkGuard()
        self._saved_env: dict[str, str | None] = {}
        self._handlers: dict[str, Any] = {}
        self._overrides: dict[str, Any] = {}
        self._clients: dict[str, Any] = {}
        self._listeners: list[Callable[[Delivery], None]] = []
        self._cycle = 0
        self._sequence = 0
        self._scheduled_seen = -1  # the stand-ins' change count when the scheduled functions last ran

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
        self._isolate_environment()
        if self.block_network:
            self._guard.install()
        make_dynamodb_writes_atomic()
        make_moto_scale()
        try:
            mock = mock_aws()
            mock.start()
            self._mock = mock
            # Handlers' clients come from boto3's default session: make it the shared one (moto put
            # None there, and puts back what was there before when it stops).
            boto3.DEFAULT_SESSION = shared_session()
            _reset_shared_caches()
            self.workspace.root.mkdir(parents=True, exist_ok=True)
            context = StandInContext(account=ACCOUNT, region=REGION, state_dir=self.workspace.standins_dir,
                                  session=shared_session())
            self._fakes = StandIns(context, self.reviewer)
            self._fakes.comprehend.test_fraction = self.test_fraction
            self._fakes.comprehend.seed = self.seed
            self._fakes.install()
            create_stack_resources(self.stack, notifications=False)
            saved = self.restore and self.workspace.exists()
            if saved:
                self._restore_resources()  # before notifications and rules: restoring fires nothing
            enable_bucket_notifications(self.stack)
            workteam = self.stack.parameters.get("WorkteamArn")
            if workteam:
                self._fakes.flow_definitions.add_workteam(workteam)
            # Resources first: rule patterns and environments resolve their attributes (FlowDefinition.Arn).
            self._deploy_resources(saved)
            self._wire_functions()
            self._clean_up_replaced()
            self._publish_stack()
            if saved:
                self._restore_queues()
                self.restored = True
            if self.faults is not None:
                self.faults.install()
        except BaseException:
            self.close(save=False)
            raise
        return self

    def close(self, save: bool = True) -> None:
        """Save (unless told not to), stop emulating, and put the process back as it was."""
        try:
            if save and self.started:
                self.save()
        finally:
            if self.faults is not None:
                self.faults.uninstall()
            if self._fakes is not None:
                self._fakes.uninstall()
            if self._mock is not None:
                self._mock.stop()
                self._mock = None
            _reset_shared_caches()
            self._handlers = dict(self._overrides)
            self._clients.clear()
            self._guard.remove()
            self._restore_environment()

    def _isolate_environment(self) -> None:
        touched = [*FAKE_CREDENTIALS, *LEAKY_VARIABLES, "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
                   *(name for name in os.environ if name.startswith(ENDPOINT_PREFIX))]
        self._saved_env = {name: os.environ.get(name) for name in touched}
        for name in touched:
            os.environ.pop(name, None)
        os.environ.update(FAKE_CREDENTIALS)
        # No profile or config file can send a client elsewhere.
        nowhere = str(self.workspace.root / ".no-aws-config")
        os.environ["AWS_CONFIG_FILE"] = nowhere
        os.environ["AWS_SHARED_CREDENTIALS_FILE"] = nowhere

    def _restore_environment(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    # --- access ---------------------------------------------------------------------------------

    def _require(self) -> StandIns:
        if self._fakes is None or not self.started:
            raise RuntimeNotStarted("start the LocalRuntime first (use it as a context manager)")
        return self._fakes

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
    def state(self) -> Any:
        """The state table as nerloop.state.StateTable."""
        from nerloop.state import StateTable

        self._require()
        return StateTable(shared_session().resource("dynamodb").Table(self.table_name))

    @property
    def functions(self) -> list[str]:
        """Functions with event rules, in template order (the order the pump serves them)."""
        return list(self.wiring)

    def on_delivery(self, listener: Callable[[Delivery], None]) -> None:
        """Call `listener` with every delivery as it happens (a CLI prints them)."""
        self._listeners.append(listener)

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
        body = (manifest.read_bytes() if isinstance(manifest, Path)
                else manifest.encode("utf-8") if isinstance(manifest, str) else bytes(manifest))
        prefix = self.stack.labeling_job_prefix()
        name = job_name or f"{prefix}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
        if not name.startswith(f"{prefix}-"):  # the convert rule would never hear of the job
            raise ValueError(f"labeling job {name!r}: the stack's convert rule takes only jobs named {prefix}-…")
        sources = [json.dumps({"source": json.loads(line)["source"]}, ensure_ascii=False)
                   for line in body.decode("utf-8").splitlines() if line.strip()]
        input_key = f"{LABELING_PREFIX}{name}/input.manifest"
        self.put_text(input_key, "\n".join(sources) + "\n", "application/x-ndjson")
        labels_key = f"{LABELING_PREFIX}{name}/label-categories.json"
        types = self.stack.names["EntityTypes"]
        self.put_text(labels_key, json.dumps({"document-version": "2018-11-28",
                                              "labels": [{"label": t} for t in types]}), "application/json")
        reply = self.client("sagemaker").create_labeling_job(
            LabelingJobName=name,
            LabelAttributeName=label_attribute_of(body),
            InputConfig={"DataSource": {"S3DataSource": {"ManifestS3Uri": f"s3://{self.bucket}/{input_key}"}}},
            OutputConfig={"S3OutputPath": f"s3://{self.bucket}/{LABELING_PREFIX}"},
            RoleArn=LOCAL_ROLE,
            LabelCategoryConfigS3Uri=f"s3://{self.bucket}/{labels_key}",
            HumanTaskConfig={
                "WorkteamArn": self.stack.parameters.get("WorkteamArn") or LOCAL_WORKTEAM,
                "UiConfig": {"HumanTaskUiArn": GT_NER_TASK_UI},
                "PreHumanTaskLambdaArn": GT_NER_PRE_LAMBDA,
                "TaskTitle": "Label the entities", "TaskDescription": "Mark every entity in the text",
                "NumberOfHumanWorkersPerDataObject": 1, "TaskTimeLimitInSeconds": 600,
                "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": GT_NER_ACS_LAMBDA},
            },
        )
        self.groundtruth.complete_job_from_manifest(name, body)
        return str(reply["LabelingJobArn"])

    # --- functions --------------------------------------------------------------------------------

    def function_environment(self, function: str) -> dict[str, str]:
        """The variables `function` runs with: its template environment, the runtime's overrides, and
        what Lambda itself sets."""
        physical = self.stack.physical_name(function)
        return {
            **self.stack.function_environment(function),
            "AWS_LAMBDA_FUNCTION_NAME": physical,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.stack.function_setting(function, "MemorySize", 128)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{physical}",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
            **self.environment,
        }

    def override_handler(self, function: str, handler: Callable[[dict[str, Any], Any], Any]) -> ExitStack:
        """Use `handler` instead of the function's own code (tests, or a stage not written yet). It
        still runs with the function's environment and a LambdaContext. Used in a `with` block, the
        function's own code comes back when the block ends."""
        self._overrides[function] = handler
        self._handlers[function] = handler
        restore = ExitStack()
        restore.callback(self._overrides.pop, function, None)
        restore.callback(self._handlers.pop, function, None)
        return restore

    def invoke(self, function: str, event: dict[str, Any]) -> Any:
        """Call `function`'s handler once with `event`, in its own environment (no retries)."""
        self._require()
        from nerloop import settings

        env = self.function_environment(function)
        with _environment(env):
            # Imported here so that, the first time, Powertools reads this function's environment.
            from nerloop.observability import logger

            settings.get_settings.cache_clear()
            try:
                handler = self._handlers.get(function)
                if handler is None:
                    handler = self._handlers[function] = self.stack.load_handler(function)
                logger.append_keys(service=env.get("POWERTOOLS_SERVICE_NAME", function))
                return handler(event, self._lambda_context(function))
            finally:
                settings.get_settings.cache_clear()
                # Each Lambda invocation starts with no metrics; with metrics disabled Powertools never
                # flushes them, so they would pile up across invocations here.
                from nerloop.observability import metrics

                metrics.clear_metrics()

    def _lambda_context(self, function: str) -> LambdaContext:
        physical = self.stack.physical_name(function)
        return LambdaContext(
            function_name=physical,
            memory_limit_in_mb=int(self.stack.function_setting(function, "MemorySize", 128)),
            invoked_function_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{physical}",
            aws_request_id=str(uuid.uuid4()),
            timeout_seconds=int(self.stack.function_setting(function, "Timeout", 3)),
            log_group_name=f"/aws/lambda/{physical}",
        )

    # --- wiring ---------------------------------------------------------------------------------

    def _wire_functions(self) -> None:
        sqs, events = self.client("sqs"), self.client("events")
        for function, function_events in template_rules(self.stack.template).items():
            physical = self.stack.physical_name(function)
            props = self.stack.functions()[function].get("Properties", {})
            invoke_config = self.stack.resolve(props.get("EventInvokeConfig") or {})
            queue_url, queue_arn = self._queue(sqs, f"{physical}-events")
            destination = ((invoke_config.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
            dlq_name = str(destination).rsplit(":", 1)[-1] if str(destination or "").startswith("arn:aws:sqs:") \
                else f"{physical}-dlq"
            dlq_url, dlq_arn = self._queue(sqs, dlq_name)
            retries = int(invoke_config.get("MaximumRetryAttempts", DEFAULT_RETRIES))
            attempts = self.max_attempts if self.max_attempts is not None else retries + 1
            wiring = FunctionWiring(function, physical, queue_url, queue_arn, dlq_url, dlq_arn, attempts)
            for event_name, spec in function_events.items():
                event_props = self.stack.resolve(spec.get("Properties") or {})
                rule = str(event_props.get("RuleName") or event_props.get("Name") or f"{physical}-{event_name}")[:64]
                if spec["Type"] == "EventBridgeRule":
                    events.put_rule(Name=rule, EventPattern=json.dumps(event_props["Pattern"]), State="ENABLED")
                    wiring.rules.append(rule)
                    events.put_targets(Rule=rule, Targets=[{"Id": "queue", "Arn": queue_arn}])
                else:
                    # Schedule / ScheduleV2: the rule is created as on AWS, but without its target:
                    # moto never fires schedules and would match every event against a rule that has
                    # no pattern. The pump fires it (fire_schedules).
                    expression = event_props.get("Schedule") or event_props.get("ScheduleExpression")
                    arn = events.put_rule(Name=rule, ScheduleExpression=expression, State="ENABLED")["RuleArn"]
                    wiring.schedules.append(arn)
            self.wiring[function] = wiring

    @staticmethod
    def _queue(sqs: Any, name: str) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return str(url), str(arn)

    # --- what CloudFormation would create -------------------------------------------------------------

    def _condition_holds(self, resource: dict[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or bool(self.stack.names.get(f"Condition:{condition}"))

    def _deploy_resources(self, restoring: bool) -> None:
        """Create the human task UIs and the custom resources, in template order (an update when the
        workspace holds them already)."""
        saved: dict[str, dict[str, Any]] = self.workspace.load_json("stack.json", {}) if restoring else {}
        stack = self.standins.stack
        stack.stack_id, stack.name = STACK_ID, str(self.stack.names["AWS::StackName"])
        stack.status = "UPDATE_IN_PROGRESS" if saved else "CREATE_IN_PROGRESS"
        self._replaced = []
        for logical_id, resource in self.stack.template["Resources"].items():
            if not self._condition_holds(resource):
                continue
            kind = resource["Type"]
            if kind == "AWS::SageMaker::HumanTaskUi":
                self._create_task_ui(logical_id, resource)
            elif kind.startswith("Custom::") or kind == "AWS::CloudFormation::CustomResource":
                outcome = self._custom_resource(logical_id, resource, saved.get(logical_id))
                self.custom_resources[logical_id] = outcome
                self.stack.names[logical_id] = outcome["physical_id"]
                for attribute, value in outcome["data"].items():
                    self.stack.names[f"{logical_id}.{attribute}"] = value

    def _create_task_ui(self, logical_id: str, resource: dict[str, Any]) -> None:
        props = self.stack.resolve(resource.get("Properties") or {})
        name = props["HumanTaskUiName"]
        uis = self.standins.flow_definitions.task_uis
        if name not in uis:
            self.client("sagemaker").create_human_task_ui(HumanTaskUiName=name, UiTemplate=props["UiTemplate"])
        self.stack.names[logical_id] = self.stack.names[f"{logical_id}.HumanTaskUiArn"] = uis[name].arn

    def _custom_resource(self, logical_id: str, resource: dict[str, Any],
                         previous: dict[str, Any] | None) -> dict[str, Any]:
        """Run a custom resource's Create (or Update) through its function's handler, as CloudFormation
        would, and return {"physical_id", "data", "properties"}; RuntimeError when it answers FAILED."""
        properties = _as_cloudformation_strings(self.stack.resolve(resource.get("Properties") or {}))
        if previous is not None and previous.get("properties") == properties:
            return previous
        outcome = self._send_custom_resource_request(logical_id, resource["Type"], properties, previous)
        if previous is not None and previous["physical_id"] != outcome["physical_id"]:
            # A new physical id replaced the old resource: CloudFormation deletes the old one once
            # the whole update is done, in its cleanup (`_clean_up_replaced`).
            self._replaced.append((logical_id, resource["Type"], previous))
        return outcome

    def _clean_up_replaced(self) -> None:
        """The update's cleanup: Delete requests for the resources it replaced, then the stack is complete
        (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-cfn-updating-stacks-monitor-stack.html)."""
        stack = self.standins.stack
        if self._replaced:
            stack.status = "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS"
            for logical_id, kind, previous in self._replaced:
                self._send_custom_resource_request(logical_id, kind, previous["properties"], previous, delete=True)
            self._replaced = []
        stack.status = "UPDATE_COMPLETE" if stack.status != "CREATE_IN_PROGRESS" else "CREATE_COMPLETE"

    def _publish_stack(self) -> None:
        """What CloudFormation would answer about this stack (DescribeStacks' parameters, DescribeStackResources'
        logical → physical ids), and Lambda's asynchronous Invoke of its functions: `nerloop ... --stack`
        finds and drives the local stack as it would a deployed one."""
        standins = self.standins
        standins.stack.parameters = dict(self.stack.parameters)
        standins.stack.resources = {
            logical_id: (str(self.stack.names[logical_id]), resource["Type"])
            for logical_id, resource in self.stack.template["Resources"].items()
            if self._condition_holds(resource) and logical_id in self.stack.names}
        standins.stack.outputs = {}
        for key, output in (self.stack.template.get("Outputs") or {}).items():
            if self._condition_holds(output):
                with contextlib.suppress(KeyError):  # a value made of what only AWS knows
                    standins.stack.outputs[key] = str(self.stack.resolve(output["Value"]))
        standins.functions.enqueue = self._enqueue_invocation

    def _enqueue_invocation(self, physical: str, event: dict[str, Any]) -> bool:
        """An asynchronous invocation of the function named `physical`: its event queue, a first attempt."""
        wiring = next((wiring for wiring in self.wiring.values() if wiring.physical_name == physical), None)
        if wiring is None:
            return False
        self.client("sqs").send_message(QueueUrl=wiring.queue_url, MessageBody=json.dumps(event),
                                        MessageAttributes=_attributes({NORMALIZED_ATTRIBUTE: "1"}))
        return True

    def _send_custom_resource_request(self, logical_id: str, kind: str, properties: dict[str, Any],
                                      previous: dict[str, Any] | None, *, delete: bool = False) -> dict[str, Any]:
        token = properties["ServiceToken"]
        function = next((name for name in self.stack.functions()
                         if self.stack.names.get(f"{name}.Arn") == token), None)
        if function is None:
            raise RuntimeError(f"custom resource {logical_id}: no function of the template has ServiceToken {token}")
        request_id = str(uuid.uuid4())
        response_url = (f"https://cloudformation-custom-resource-response-{REGION.replace('-', '')}"
                        f".s3.amazonaws.com/local/{logical_id}/{request_id}")
        request_type = "Delete" if delete else ("Update" if previous is not None else "Create")
        event: dict[str, Any] = {
            "RequestType": request_type, "ServiceToken": token, "ResponseURL": response_url,
            "StackId": STACK_ID, "RequestId": request_id, "LogicalResourceId": logical_id,
            "ResourceType": kind, "ResourceProperties": properties,
        }
        if previous is not None:
            event["PhysicalResourceId"] = previous["physical_id"]
            if request_type == "Update":
                event["OldResourceProperties"] = previous["properties"]
        with _cloudformation_responses() as responses:
            self.invoke(function, event)
        answer = responses.get(response_url)
        if answer is None:
            raise RuntimeError(f"custom resource {logical_id}: {function} sent no response to CloudFormation")
        if answer.get("Status") != "SUCCESS":
            raise RuntimeError(f"custom resource {logical_id} failed ({request_type}): {answer.get('Reason')}")
        return {"physical_id": str(answer["PhysicalResourceId"]), "data": dict(answer.get("Data") or {}),
                "properties": properties}

    # --- the pump ---------------------------------------------------------------------------------

    def cycle(self) -> list[Delivery]:
        """One pump cycle: fire due schedules, deliver what is queued, advance the stand-ins."""
        standins = self._require()
        self._cycle += 1
        if self._cycle % self.watch_every == 0 and self._schedules_wanted():
            self.fire_schedules()
        delivered: list[Delivery] = []
        try:
            for function, wiring in self.wiring.items():
                messages = self._receive_all(wiring.queue_url)
                batch = (self._with_duplicates(wiring, messages) if self.duplicate_events
                         else [(message, True) for message in messages])
                for index, (message, owned) in enumerate(batch):
                    try:
                        delivered.append(self._deliver(function, message, owned=owned))
                    except BaseException:
                        # Interrupted (Ctrl-C): what was not handled becomes visible again, so it is
                        # saved with the queue and delivered after a restart.
                        self._release(wiring.queue_url, [m for m, own in batch[index:] if own])
                        raise
        finally:
            self.deliveries.extend(delivered)
            self.outcomes.update(d.outcome for d in delivered)
            self.workspace.append_jsonl("deliveries.jsonl", (d.to_dict() for d in delivered))
        standins.tick()
        return delivered

    def run_until_idle(self, max_cycles: int = 100) -> PumpResult:
        """Cycle until no queue holds an event and no stand-in has work in flight (or `max_cycles`)."""
        delivered: list[Delivery] = []
        idle = False
        cycles = 0
        while cycles < max_cycles:
            cycles += 1
            delivered.extend(self.cycle())
            if self.idle():
                idle = True
                break
        if self.autosave:
            self.save()
        return PumpResult(delivered, cycles, idle)

    def idle(self) -> bool:
        """Nothing will happen without new input: queues empty, stand-ins quiet, schedules caught up."""
        standins = self._require()
        return not any(self.pending().values()) and not standins.busy() and not self._schedules_wanted()

    def pending(self) -> dict[str, int]:
        """Events waiting in each function's queue."""
        sqs = self.client("sqs")
        counts: dict[str, int] = {}
        for function, wiring in self.wiring.items():
            attributes = sqs.get_queue_attributes(
                QueueUrl=wiring.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            counts[function] = (int(attributes["ApproximateNumberOfMessages"])
                                + int(attributes["ApproximateNumberOfMessagesNotVisible"]))
        return counts

    def dead_letters(self, function: str | None = None) -> list[dict[str, Any]]:
        """Events that failed every attempt, from the failure destinations (left in place):
        {"function", "event", "error", "attempts", "record"} where record is Lambda's invocation record."""
        found: list[dict[str, Any]] = []
        for name, wiring in self.wiring.items():
            if function is not None and name != function:
                continue
            for message in self._peek_all(wiring.dlq_url):
                record = json.loads(message["body"])
                found.append({"function": name, "event": record.get("requestPayload"),
                              "error": (record.get("responsePayload") or {}).get("errorMessage", ""),
                              "attempts": (record.get("requestContext") or {}).get("approximateInvokeCount", 0),
                              "record": record})
        return found

    def redrive(self, function: str | None = None, *, keep: bool = False) -> list[dict[str, Any]]:
        """Put each dead letter's original event (Lambda's `requestPayload`) back on its function's
        event queue, the target of the function's rules, as a first attempt: the next cycles deliver
        it to the same handler as before, with the same retries. The stages' business-key idempotency
        makes a redriven event that had half succeeded, or one redriven twice, change nothing twice.

        function: only this function's dead letters (default: every function's).
        keep: leave the dead letters in place (default: they are removed once requeued).
        Returns [{"function", "event", "error", "attempts"}] for what was requeued.
        """
        if function is not None and function not in self.wiring:
            raise KeyError(f"no function {function!r} with a dead-letter queue; known: {', '.join(self.wiring)}")
        sqs = self.client("sqs")
        requeued: list[dict[str, Any]] = []
        for name, wiring in self.wiring.items():
            if function is not None and name != function:
                continue
            messages = self._receive_all(wiring.dlq_url)
            for message in messages:
                record = json.loads(message["Body"])
                event = record.get("requestPayload")
                if not isinstance(event, dict):
                    continue  # not an invocation record: left in the queue for a person
                sqs.send_message(QueueUrl=wiring.queue_url, MessageBody=json.dumps(event),
                                 MessageAttributes=_attributes({NORMALIZED_ATTRIBUTE: "1", REDRIVEN_ATTRIBUTE: "1"}))
                requeued.append({"function": name, "event": event,
                                 "error": (record.get("responsePayload") or {}).get("errorMessage", ""),
                                 "attempts": (record.get("requestContext") or {}).get("approximateInvokeCount", 0)})
                if not keep:
                    sqs.delete_message(QueueUrl=wiring.dlq_url, ReceiptHandle=message["ReceiptHandle"])
            if keep:
                self._release(wiring.dlq_url, messages)
            else:
                self._release(wiring.dlq_url, [m for m in messages
                                               if not isinstance(json.loads(m["Body"]).get("requestPayload"), dict)])
        return requeued

    def fire_schedules(self) -> None:
        """Send a Scheduled Event to every scheduled function now (what EventBridge's timer would do)."""
        self._scheduled_seen = self._changes()
        sqs = self.client("sqs")
        for wiring in self.wiring.values():
            for rule_arn in wiring.schedules:
                event = {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
                         "source": "aws.events", "account": ACCOUNT,
                         "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "region": REGION,
                         "resources": [rule_arn], "detail": {}}
                sqs.send_message(QueueUrl=wiring.queue_url, MessageBody=json.dumps(event),
                                 MessageAttributes=_attributes({NORMALIZED_ATTRIBUTE: "1"}))

    def _changes(self) -> int:
        return sum(service.changes for service in self._require().services.values())

    def _schedules_wanted(self) -> bool:
        if not any(wiring.schedules for wiring in self.wiring.values()):
            return False
        standins = self._require()
        return (standins.busy() or self._changes() != self._scheduled_seen or self._retrain_waiting()
                or bool(self.state.jobs.queued()))  # on AWS the next minute's watch starts them

    def _retrain_waiting(self) -> bool:
        """A retrain is due and no training holds the lock: on AWS the next minute's watch starts it."""
        state = self.state
        if state.training_lock.holder() is not None:
            return False
        parameters = self.stack.parameters
        policy = RetrainPolicy(int(parameters["RetrainBatchSize"]), int(parameters["RetrainMaxWaitMinutes"]))
        return retrain_due(state, policy) is not None

    def _receive_all(self, queue_url: str) -> list[dict[str, Any]]:
        """Every message visible in the queue now (hidden while being handled)."""
        sqs = self.client("sqs")
        messages: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                        VisibilityTimeout=900, MessageAttributeNames=["All"]).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)

    def _release(self, queue_url: str, messages: list[dict[str, Any]]) -> None:
        sqs = self.client("sqs")
        for message in messages:
            sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"],
                                          VisibilityTimeout=0)

    def _peek_all(self, queue_url: str) -> list[dict[str, Any]]:
        """Read every message of a queue and leave them there: {"body", "attributes"}."""
        messages = self._receive_all(queue_url)
        self._release(queue_url, messages)
        return [{"body": m["Body"], "attributes": {name: value["StringValue"] for name, value in
                                                   (m.get("MessageAttributes") or {}).items()}} for m in messages]

    def _event_of(self, message: dict[str, Any]) -> dict[str, Any]:
        """The event a queued message carries, as AWS would deliver it."""
        raw = json.loads(message["Body"])
        if _message_attributes(message).get(NORMALIZED_ATTRIBUTE):
            return raw  # type: ignore[no-any-return]
        self._sequence += 1
        return normalize_event(raw, self._sequence)

    def _with_duplicates(self, wiring: FunctionWiring, messages: list[dict[str, Any]]
                         ) -> list[tuple[dict[str, Any], bool]]:
        """The cycle's batch for one function with every first delivery made twice, shuffled:
        [(message, owned)], where only owned messages are in the queue (and deleted once handled)."""
        sqs = self.client("sqs")
        batch: list[tuple[dict[str, Any], bool]] = []
        for message in messages:
            attributes = _message_attributes(message)
            if attributes.get(DUPLICATE_ATTRIBUTE) or int(attributes.get(ATTEMPT_ATTRIBUTE, "1")) > 1:
                batch.append((message, True))  # a copy or a retry: delivered as it is
                continue
            event = self._event_of(message)
            original = {**message, "Body": json.dumps(event), "MessageAttributes": _attributes(
                {**attributes, NORMALIZED_ATTRIBUTE: "1"})}
            batch.append((original, True))
            # A redelivery is a new event as far as ids go: only business keys may tell them apart.
            body = json.dumps({**event, "id": str(uuid.uuid4())})
            copy_attributes = _attributes({NORMALIZED_ATTRIBUTE: "1", DUPLICATE_ATTRIBUTE: "1"})
            self.duplicates_injected += 1
            if self._shuffle.random() < 0.5:
                batch.append(({"Body": body, "MessageAttributes": copy_attributes, "ReceiptHandle": ""}, False))
            else:  # later: the next cycle, after whatever the first delivery set off
                sqs.send_message(QueueUrl=wiring.queue_url, MessageBody=body, MessageAttributes=copy_attributes)
        self._shuffle.shuffle(batch)
        return batch

    def _deliver(self, function: str, message: dict[str, Any], *, owned: bool = True) -> Delivery:
        """Hand one queued message's event to `function`; `owned` False for an in-memory copy
        (`duplicate_events`) that is in no queue."""
        sqs = self.client("sqs")
        wiring = self.wiring[function]
        attributes = _message_attributes(message)
        attempt = int(attributes.get(ATTEMPT_ATTRIBUTE, "1"))
        event = self._event_of(message)
        if wiring.schedules and event.get("detail-type") == "Scheduled Event":
            self._scheduled_seen = self._changes()
        delivery = Delivery(cycle=self._cycle, function=function, source=str(event.get("source", "")),
                            detail_type=str(event.get("detail-type", "")), summary=summarize_event(event),
                            outcome="ok", attempt=attempt, duplicate=bool(attributes.get(DUPLICATE_ATTRIBUTE)))
        started = time.monotonic()
        try:
            if self.faults is not None:
                with self.faults.armed(function):
                    result = self.invoke(function, event)
            else:
                result = self.invoke(function, event)
        except Exception as exc:  # a handler's failure is the event's, never the pump's
            delivery.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            body = json.dumps(event)
            if attempt < wiring.max_attempts:
                delivery.outcome = "retry"
                sqs.send_message(QueueUrl=wiring.queue_url, MessageBody=body, MessageAttributes=_attributes(
                    {ATTEMPT_ATTRIBUTE: str(attempt + 1), NORMALIZED_ATTRIBUTE: "1"}))
            else:
                delivery.outcome = "dead-letter"
                record = invocation_record(event, exc, wiring.physical_name, attempt)
                sqs.send_message(QueueUrl=wiring.dlq_url, MessageBody=json.dumps(record, default=str))
        else:
            delivery.result = result
        delivery.seconds = round(time.monotonic() - started, 4)
        # Deleted only once handled (or passed on to a retry or the dead-letter queue).
        if owned:
            sqs.delete_message(QueueUrl=wiring.queue_url, ReceiptHandle=message["ReceiptHandle"])
        for listener in self._listeners:
            listener(delivery)
        return delivery

    # --- the workspace ----------------------------------------------------------------------------

    def save(self) -> None:
        """Write S3, DynamoDB, the stand-ins and the queues to the workspace."""
        standins = self._require()
        ws = self.workspace
        ws.save_bucket(self.s3, self.bucket)
        ws.save_table(self.client("dynamodb"), self.table_name)
        ws.save_json("standins/state.json", standins.snapshot())
        ws.save_json("stack.json", self.custom_resources)
        ws.save_json("queues.json", {
            function: {"queue": self._peek_all(wiring.queue_url), "dlq": self._peek_all(wiring.dlq_url)}
            for function, wiring in self.wiring.items()
        })
        ws.write_manifest(self.stack.parameters)

    def _restore_resources(self) -> None:
        ws = self.workspace
        ws.restore_bucket(self.s3, self.bucket)
        ws.restore_table(self.client("dynamodb"), self.table_name)
        self.standins.restore(ws.load_json("standins/state.json", {}))

    def _restore_queues(self) -> None:
        sqs = self.client("sqs")
        saved: dict[str, dict[str, list[dict[str, Any]]]] = self.workspace.load_json("queues.json", {})
        for function, queues in saved.items():
            wiring = self.wiring.get(function)
            if wiring is None:
                continue
            for kind, url in (("queue", wiring.queue_url), ("dlq", wiring.dlq_url)):
                for message in queues.get(kind, []):
                    sqs.send_message(QueueUrl=url, MessageBody=message["body"],
                                     MessageAttributes=_attributes(message.get("attributes", {})))


def invocation_record(event: dict[str, Any], error: BaseException, function: str, attempts: int) -> dict[str, Any]:
    """What Lambda sends an on-failure destination when an asynchronous invocation ran out of retries."""
    request_id = str(uuid.uuid4())
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {"requestId": request_id,
                           "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}:$LATEST",
                           "condition": "RetriesExhausted", "approximateInvokeCount": attempts},
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__, "requestId": request_id,
                            "stackTrace": traceback.format_exception(type(error), error, error.__traceback__)[-5:]},
    }


def _as_cloudformation_strings(value: Any) -> Any:
    """Property values as CloudFormation hands them to a custom resource: every scalar a string."""
    if isinstance(value, dict):
        return {key: _as_cloudformation_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_cloudformation_strings(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class _ResponseCatcher(urllib.request.BaseHandler):
    """Answers the handler's PUT to the ResponseURL in process (nothing leaves the machine)."""

    handler_order = 100

    def __init__(self) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}

    def https_open(self, request: urllib.request.Request) -> urllib.response.addinfourl:
        url = request.full_url
        if ".s3.amazonaws.com/local/" not in url or not request.data:
            raise RuntimeError(f"the local runtime refuses to open {url}")
        data = request.data if isinstance(request.data, bytes) else bytes(request.data)  # type: ignore[arg-type]
        self.bodies[url] = json.loads(data)
        return urllib.response.addinfourl(io.BytesIO(b""), email.message.Message(), url, 200)


@contextmanager
def _cloudformation_responses() -> Iterator[dict[str, dict[str, Any]]]:
    """Catch custom resource responses sent with urllib while the block runs: {ResponseURL: body}."""
    catcher = _ResponseCatcher()
    opener = urllib.request.OpenerDirector()
    opener.add_handler(catcher)
    previous = urllib.request._opener  # type: ignore[attr-defined]
    urllib.request.install_opener(opener)
    try:
        yield catcher.bodies
    finally:
        urllib.request._opener = previous  # type: ignore[attr-defined]


def _message_attributes(message: Mapping[str, Any]) -> dict[str, str]:
    return {name: value["StringValue"] for name, value in (message.get("MessageAttributes") or {}).items()}


def _attributes(values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


__all__ = [
    "LOCAL_PARAMETERS",
    "LOCAL_WORKTEAM",
    "Delivery",
    "FunctionWiring",
    "LambdaContext",
    "LocalRuntime",
    "PumpResult",
    "RuntimeNotStarted",
    "create_stack_resources",
    "enable_bucket_notifications",
    "invocation_record",
    "normalize_event",
    "summarize_event",
]
