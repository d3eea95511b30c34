"""The event pump: what carries events from the rules to the handlers, with Lambda's asynchronous retries.

Each cycle (`EventPump.cycle`)
1. sends a Scheduled Event to each scheduled function (the watch) when it is due: every
   `watch_every` cycles, and only while a stand-in has work in flight or changed since the
   scheduled functions last ran, or while a retrain is due with no training in flight (the watch,
   every minute on AWS, would start it: pending reviews past RetrainMaxWaitMinutes, say), so an
   idle stack stays idle;
2. delivers every message waiting in the functions' queues, in template order, to the handlers
   (nerloop_local.emulator.invocation). A handler that raises is retried on later cycles,
   EventInvokeConfig.MaximumRetryAttempts times (Lambda's default: twice); after the last attempt
   Lambda's invocation record goes to the function's on-failure destination queue
   (nerloop_local.emulator.dead_letters);
3. advances every stand-in one step (training, detection, human loops ...).
Before delivery, moto's event quirks are made AWS's (`normalize_event`): an `account` on every event, a
fresh `id` for each S3 event, `etag` not `eTag`, `reason` "PutObject", an increasing `sequencer`. S3 keys
stay as moto sends them, unencoded, as S3 documents them for EventBridge (event_models/s3.py).
"""

from __future__ import annotations

import copy
import json
import random
import time
import traceback
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from nerloop.retrain import RetrainPolicy, retrain_due
from nerloop.state import StateTable
from nerloop_local.emulator.dead_letters import invocation_record
from nerloop_local.emulator.faults import FaultInjector
from nerloop_local.emulator.isolation import ACCOUNT, REGION
from nerloop_local.emulator.queues import (
    ATTEMPT_ATTRIBUTE,
    DUPLICATE_ATTRIBUTE,
    NORMALIZED_ATTRIBUTE,
    FunctionWiring,
    attributes,
    message_attributes,
    receive_all,
    release,
)
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.workspace import Workspace
from nerloop_local.standins import StandIns

# Every S3 event from moto carries this id (its event template's); AWS gives each event its own.
MOTO_S3_EVENT_ID = "17793124-05d4-b198-2fde-7ededc63b103"
RECENT_DELIVERIES = 2000  # deliveries a runtime keeps in memory (`LocalRuntime.deliveries`)


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


class EventPump:
    """Delivers the functions' queued events to their handlers, cycle by cycle (see the module docstring).
    `client`, `standins` and `state` are asked for on use: they exist only while the runtime runs."""

    def __init__(
        self,
        wiring: dict[str, FunctionWiring],
        workspace: Workspace,
        stack: Stack,
        invoke: Callable[[str, dict[str, Any]], Any],
        access: tuple[Callable[[str], Any], Callable[[], StandIns], Callable[[], StateTable]],
        *,
        watch_every: int,
        duplicate_events: bool,
        seed: int,
        faults: FaultInjector | None,
    ) -> None:
        """access: (client(service), standins(), state()) of the running runtime."""
        self.wiring = wiring
        self.workspace = workspace
        self.stack = stack
        self.invoke = invoke
        self.client, self.standins, self.state = access
        self.watch_every = watch_every
        self.duplicate_events = duplicate_events
        self.faults = faults
        self.duplicates_injected = 0
        self._shuffle = random.Random(seed)  # nosec B311 # delivery order, not secrets
        # The latest deliveries, for people and tests; every one is in the workspace's deliveries.jsonl.
        # Bounded, so a service that runs for days does not grow with its invocations.
        self.deliveries: deque[Delivery] = deque(maxlen=RECENT_DELIVERIES)
        self.outcomes: Counter[str] = Counter()  # every delivery since start, by outcome
        self.listeners: list[Callable[[Delivery], None]] = []
        self._cycle = 0
        self._sequence = 0
        self._scheduled_seen = -1  # the stand-ins' change count when the scheduled functions last ran

    def cycle(self) -> list[Delivery]:
        """One pump cycle: fire due schedules, deliver what is queued, advance the stand-ins."""
        standins = self.standins()
        self._cycle += 1
        if self._cycle % self.watch_every == 0 and self._schedules_wanted():
            self.fire_schedules()
        delivered: list[Delivery] = []
        sqs = self.client("sqs")
        try:
            for function, wiring in self.wiring.items():
                messages = receive_all(sqs, wiring.queue_url)
                batch = (self._with_duplicates(wiring, messages) if self.duplicate_events
                         else [(message, True) for message in messages])
                for index, (message, owned) in enumerate(batch):
                    try:
                        delivered.append(self._deliver(function, message, owned=owned))
                    except BaseException:
                        # Interrupted (Ctrl-C): what was not handled becomes visible again, so it is
                        # saved with the queue and delivered after a restart.
                        release(sqs, wiring.queue_url, [m for m, own in batch[index:] if own])
                        raise
        finally:
            self.deliveries.extend(delivered)
            self.outcomes.update(d.outcome for d in delivered)
            self.workspace.append_jsonl("deliveries.jsonl", (d.to_dict() for d in delivered))
        standins.tick()
        return delivered

    def run_until_idle(self, max_cycles: int) -> PumpResult:
        """Cycle until idle (or `max_cycles`)."""
        delivered: list[Delivery] = []
        idle = False
        cycles = 0
        while cycles < max_cycles:
            cycles += 1
            delivered.extend(self.cycle())
            if self.idle():
                idle = True
                break
        return PumpResult(delivered, cycles, idle)

    def idle(self) -> bool:
        """Nothing will happen without new input: queues empty, stand-ins quiet, schedules caught up."""
        standins = self.standins()
        return not any(self.pending().values()) and not standins.busy() and not self._schedules_wanted()

    def pending(self) -> dict[str, int]:
        """Events waiting in each function's queue."""
        sqs = self.client("sqs")
        counts: dict[str, int] = {}
        for function, wiring in self.wiring.items():
            queue = sqs.get_queue_attributes(
                QueueUrl=wiring.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            counts[function] = (int(queue["ApproximateNumberOfMessages"])
                                + int(queue["ApproximateNumberOfMessagesNotVisible"]))
        return counts

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
                                 MessageAttributes=attributes({NORMALIZED_ATTRIBUTE: "1"}))

    def enqueue_invocation(self, physical: str, event: dict[str, Any]) -> bool:
        """An asynchronous invocation of the function named `physical`: its event queue, a first attempt."""
        wiring = next((wiring for wiring in self.wiring.values() if wiring.physical_name == physical), None)
        if wiring is None:
            return False
        self.client("sqs").send_message(QueueUrl=wiring.queue_url, MessageBody=json.dumps(event),
                                        MessageAttributes=attributes({NORMALIZED_ATTRIBUTE: "1"}))
        return True

    def _changes(self) -> int:
        return sum(service.changes for service in self.standins().services.values())

    def _schedules_wanted(self) -> bool:
        if not any(wiring.schedules for wiring in self.wiring.values()):
            return False
        standins = self.standins()
        return (standins.busy() or self._changes() != self._scheduled_seen or self._retrain_waiting()
                or bool(self.state().jobs.queued()))  # on AWS the next minute's watch starts them

    def _retrain_waiting(self) -> bool:
        """A retrain is due and no training holds the lock: on AWS the next minute's watch starts it."""
        state = self.state()
        if state.training_lock.holder() is not None:
            return False
        parameters = self.stack.parameters
        policy = RetrainPolicy(int(parameters["RetrainBatchSize"]), int(parameters["RetrainMaxWaitMinutes"]))
        return retrain_due(state, policy) is not None

    def _event_of(self, message: dict[str, Any]) -> dict[str, Any]:
        """The event a queued message carries, as AWS would deliver it."""
        raw = json.loads(message["Body"])
        if message_attributes(message).get(NORMALIZED_ATTRIBUTE):
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
            received = message_attributes(message)
            if received.get(DUPLICATE_ATTRIBUTE) or int(received.get(ATTEMPT_ATTRIBUTE, "1")) > 1:
                batch.append((message, True))  # a copy or a retry: delivered as it is
                continue
            event = self._event_of(message)
            original = {**message, "Body": json.dumps(event), "MessageAttributes": attributes(
                {**received, NORMALIZED_ATTRIBUTE: "1"})}
            batch.append((original, True))
            # A redelivery is a new event as far as ids go: only business keys may tell them apart.
            body = json.dumps({**event, "id": str(uuid.uuid4())})
            copy_attributes = attributes({NORMALIZED_ATTRIBUTE: "1", DUPLICATE_ATTRIBUTE: "1"})
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
        wiring = self.wiring[function]
        received = message_attributes(message)
        attempt = int(received.get(ATTEMPT_ATTRIBUTE, "1"))
        event = self._event_of(message)
        if wiring.schedules and event.get("detail-type") == "Scheduled Event":
            self._scheduled_seen = self._changes()
        delivery = Delivery(cycle=self._cycle, function=function, source=str(event.get("source", "")),
                            detail_type=str(event.get("detail-type", "")), summary=summarize_event(event),
                            outcome="ok", attempt=attempt, duplicate=bool(received.get(DUPLICATE_ATTRIBUTE)))
        started = time.monotonic()
        try:
            if self.faults is not None:
                with self.faults.armed(function):
                    result = self.invoke(function, event)
            else:
                result = self.invoke(function, event)
        except Exception as exc:  # a handler's failure is the event's, never the pump's
            delivery.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            delivery.outcome = self._after_failure(wiring, event, exc, attempt)
        else:
            delivery.result = result
        delivery.seconds = round(time.monotonic() - started, 4)
        # Deleted only once handled (or passed on to a retry or the dead-letter queue).
        if owned:
            self.client("sqs").delete_message(QueueUrl=wiring.queue_url, ReceiptHandle=message["ReceiptHandle"])
        for listener in self.listeners:
            listener(delivery)
        return delivery

    def _after_failure(self, wiring: FunctionWiring, event: dict[str, Any], error: Exception, attempt: int) -> str:
        """Queue a failed event's next attempt, or its invocation record on the failure destination after
        the last; return the delivery's outcome ("retry" or "dead-letter")."""
        sqs = self.client("sqs")
        if attempt < wiring.max_attempts:
            sqs.send_message(QueueUrl=wiring.queue_url, MessageBody=json.dumps(event), MessageAttributes=attributes(
                {ATTEMPT_ATTRIBUTE: str(attempt + 1), NORMALIZED_ATTRIBUTE: "1"}))
            return "retry"
        record = invocation_record(event, error, wiring.physical_name, attempt)
        sqs.send_message(QueueUrl=wiring.dlq_url, MessageBody=json.dumps(record, default=str))
        return "dead-letter"
