"""The state table: one DynamoDB table (pk, sk) holding everything the loop remembers.

Item families, by partition key:
- GOLD / <doc hash>       a labelled document: text, spans, origin (labeling job or human loop)
- POOL / <doc hash>       a document waiting for the model: text, status, seen_by, loop; detected_at
                          and uncertain_by, what the detection cap's policy reads (nerloop.detection_policy)
- VERSION / <version>     a recognizer version: status, arn, metrics, snapshot
- MODEL / ACTIVE          the version detection uses
- JOB / <job id>          a detection job: status, version, input key
- JOB-IN-FLIGHT / <job id> a copy of a job's item while Comprehend runs it: written and deleted in the
                          same transaction as the job's status, so the watch stage reads only these
- DETECT-REQUEST / <token> a detection job's input, recorded before the job starts
- DETECT-QUEUE / <token>  a detection request waiting for one of Comprehend's concurrent-job slots
- LOOP / <loop name>      a human loop: document, version, status
- OPEN-LOOP / <loop name> present while that loop is InProgress: written and deleted in the same
                          transaction as the loop's status, so "is any loop open?" is one read
- COUNTER / <name>        atomic counters (reviews, snapshots)
- LOCK / TRAINING         the single-flight training lock
- IDEMPOTENCY / <hash>    Powertools idempotency records

Every write that must happen once is conditional; counters use atomic ADD.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from nerloop.documents import Span

IDEMPOTENCY_PK = "IDEMPOTENCY"

# Pool statuses.
WAITING = "waiting"  # not yet seen by the active version, or sent back after a failed loop
IN_REVIEW = "in_review"  # a human loop is open for it
ACCEPTED = "accepted"  # every predicted entity was confident
GOLD = "gold"  # labelled by people

LOOP_OPEN = "InProgress"  # a human loop's status until A2I reports it Completed, Failed or Stopped
OPEN_LOOP_PK = "OPEN-LOOP"
JOB_IN_FLIGHT_PK = "JOB-IN-FLIGHT"
DETECTION_QUEUE_PK = "DETECT-QUEUE"
COUNTER_FIRST = "first_epoch"  # on a counter item: when its first count since the last restamp was made

RECOGNIZER_IN_FLIGHT = ("SUBMITTED", "TRAINING", "STOP_REQUESTED", "DELETING")
JOB_IN_FLIGHT = ("SUBMITTED", "IN_PROGRESS", "STOP_REQUESTED")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _is_condition_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


@dataclass
class GoldDocument:
    """A document with the spans people agreed on."""

    doc: str
    text: str
    spans: list[Span]
    origin: str
    updated_at: str = field(default_factory=now)


@dataclass
class PoolDocument:
    """A document waiting for the model, accepted, in review or gold (`status`)."""

    doc: str
    text: str
    status: str
    seen_by: str = ""  # the version that detected it last
    loop: str = ""
    batch: str = ""
    detected_at: str = ""  # when that detection was routed
    uncertain_by: str = ""  # the last version that found it uncertain (kept when a later one accepts it)
    updated_at: str = ""


@dataclass
class Version:
    """A recognizer version: its status, ARN, training snapshot and metrics."""

    version: str
    status: str
    arn: str = ""
    snapshot: str = ""
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    training_started_at: str = ""  # Comprehend's TrainingStartTime / TrainingEndTime (nerloop.cost_records)
    training_ended_at: str = ""


@dataclass
class Job:
    """A detection job: the version it runs and the input it reads."""

    job_id: str
    status: str
    version: str
    input_key: str
    documents: int = 0
    arn: str = ""


@dataclass
class DetectionRequest:
    """A detection job about to start: its idempotency token and the input it reads."""

    token: str
    version: str
    input_key: str
    documents: int


@dataclass
class Loop:
    """A human loop: the document it reviews, under which version, and how it ended."""

    name: str
    doc: str
    version: str
    status: str
    failure: str = ""
    started_at: str = ""  # when the route stage recorded it (`now()`); read back, never written from here
    finished_at: str = ""  # when it left InProgress


class StateTable:
    """Typed access to the state table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    # --- generic -------------------------------------------------------------------------------

    def _query_all(self, pk: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        for page in self._query_pages(pk, **kwargs):
            yield from page.get("Items", [])

    def _query_pages(self, pk: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk), **kwargs}
        while True:
            page = self.table.query(**params)
            yield page
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")

    def _batch_get(self, pk: str, sks: Iterable[str], consistent: bool = False) -> dict[str, dict[str, Any]]:
        """Fetch many items of one family by sort key (100 a request, as DynamoDB allows);
        `consistent` asks for strongly consistent reads (BatchGetItem's `ConsistentRead`)."""
        return {sk: item for (_, sk), item in self.get_items([(pk, sk) for sk in sks], consistent).items()}

    def get_items(self, keys: Iterable[tuple[str, str]],
                  consistent: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """The items at `keys` ((pk, sk) pairs, of any families; missing ones left out), 100 keys a
        BatchGetItem request, unprocessed keys asked again; strongly consistent unless told otherwise."""
        # The resource's own client takes and returns plain Python values.
        resource = self.table.meta.client
        found: dict[tuple[str, str], dict[str, Any]] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 100):
            request: dict[str, Any] = {
                self.table.name: {"Keys": [{"pk": pk, "sk": sk} for pk, sk in wanted[start : start + 100]],
                                  **({"ConsistentRead": True} if consistent else {})}
            }
            while request:
                reply = resource.batch_get_item(RequestItems=request)
                for item in reply["Responses"].get(self.table.name, []):
                    found[(item["pk"], item["sk"])] = item
                request = reply.get("UnprocessedKeys") or {}
        return found

    # --- gold set ------------------------------------------------------------------------------

    def put_gold(self, gold: GoldDocument) -> None:
        """Write a gold document; a later write of the same document replaces the earlier labels."""
        self.table.put_item(
            Item={
                "pk": "GOLD",
                "sk": gold.doc,
                "text": gold.text,
                "spans": json.dumps(gold.spans),
                "origin": gold.origin,
                "updated_at": gold.updated_at,
            }
        )
        self.mark_pool(gold.doc, GOLD)

    def get_gold(self, doc: str) -> GoldDocument | None:
        item = self._get("GOLD", doc)
        return _gold_from_item(item) if item else None

    def get_gold_many(self, docs: Iterable[str]) -> dict[str, GoldDocument]:
        """The gold documents among `docs`, by hash (100 a BatchGetItem request), read strongly
        consistent as `get_gold` is: the convert stage reads back what it wrote a moment before."""
        return {doc: _gold_from_item(item) for doc, item in self._batch_get("GOLD", docs, consistent=True).items()}

    def iter_gold(self) -> Iterator[GoldDocument]:
        """Every gold document, in document-hash order (stable, so snapshots are repeatable)."""
        for item in self._query_all("GOLD"):
            yield _gold_from_item(item)

    def has_gold(self) -> bool:
        """True once the gold set holds any document (one item read, however large the set)."""
        reply = self.table.query(KeyConditionExpression=Key("pk").eq("GOLD"), Limit=1,
                                 ProjectionExpression="sk")
        return bool(reply.get("Items"))

    def gold_hashes(self, docs: Iterable[str]) -> set[str]:
        """Which of `docs` are in the gold set."""
        return set(self._batch_get("GOLD", docs))

    # --- pool of documents waiting for the model -------------------------------------------------

    def add_to_pool(self, doc: str, text: str, batch: str) -> bool:
        """Add a document to the pool; False when it is already there (or already gold)."""
        try:
            self.table.put_item(
                Item={"pk": "POOL", "sk": doc, "text": text, "status": WAITING, "batch": batch,
                      "seen_by": "", "updated_at": now()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def get_pool(self, doc: str) -> PoolDocument | None:
        item = self._get("POOL", doc)
        return _pool_from_item(item) if item else None

    def iter_pool(self, statuses: Iterable[str] | None = None) -> Iterator[PoolDocument]:
        wanted = set(statuses) if statuses is not None else None
        for item in self._query_all("POOL"):
            if wanted is None or item.get("status") in wanted:
                yield _pool_from_item(item)

    def mark_pool(self, doc: str, status: str, **attributes: str) -> bool:
        """Set a pooled document's status; False when the document is not in the pool."""
        update = self._pool_update(doc, status, attributes)["Update"]
        try:
            self.table.update_item(**{name: value for name, value in update.items() if name != "TableName"})
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    # --- recognizer versions -------------------------------------------------------------------

    def put_version(self, version: Version) -> bool:
        """Record a new version; False when it is already recorded."""
        try:
            self.table.put_item(
                Item={"pk": "VERSION", "sk": version.version, "status": version.status,
                      "arn": version.arn, "snapshot": version.snapshot, "message": version.message,
                      "metrics": json.dumps(version.metrics), "created_at": version.created_at or now()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def get_version(self, version: str) -> Version | None:
        item = self._get("VERSION", version)
        return _version_from_item(item) if item else None

    def list_versions(self) -> list[Version]:
        return [_version_from_item(item) for item in self._query_all("VERSION")]

    def update_version(self, version: str, **attributes: Any) -> None:
        if "metrics" in attributes:
            attributes["metrics"] = json.dumps(attributes["metrics"])
        self._update("VERSION", version, attributes)

    def get_active(self) -> tuple[str, float] | None:
        """The active version and its F1, or None before the first model is trained."""
        item = self._get("MODEL", "ACTIVE")
        return (item["version"], float(item["f1"])) if item else None

    def set_active(self, version: str, f1: float) -> None:
        self.table.put_item(Item={"pk": "MODEL", "sk": "ACTIVE", "version": version, "f1": str(f1),
                                  "updated_at": now()})

    # --- detection jobs ------------------------------------------------------------------------

    def put_job(self, job: Job) -> None:
        """Record a started job; while it is in flight its JOB-IN-FLIGHT copy goes in the same transaction."""
        item = {"pk": "JOB", "sk": job.job_id, "status": job.status, "version": job.version,
                "input_key": job.input_key, "documents": job.documents, "arn": job.arn, "created_at": now()}
        marker: dict[str, Any] = (
            {"Put": {"TableName": self.table.name, "Item": {**item, "pk": JOB_IN_FLIGHT_PK}}}
            if job.status in JOB_IN_FLIGHT else
            {"Delete": {"TableName": self.table.name, "Key": {"pk": JOB_IN_FLIGHT_PK, "sk": job.job_id}}})
        self.table.meta.client.transact_write_items(
            TransactItems=[{"Put": {"TableName": self.table.name, "Item": item}}, marker])

    def set_job_status(self, job_id: str, status: str, message: str = "") -> None:
        """A job's new status and message; its JOB-IN-FLIGHT copy follows in the same transaction
        (updated while the job runs, deleted once it has ended)."""
        update = {"UpdateExpression": "SET #status = :status, message = :message",
                  "ExpressionAttributeNames": {"#status": "status"},
                  "ExpressionAttributeValues": {":status": status, ":message": message}}
        marker_key = {"pk": JOB_IN_FLIGHT_PK, "sk": job_id}
        marker: dict[str, Any] = (
            # Only while the copy exists: a late poll must not bring an ended job back.
            {"Update": {"TableName": self.table.name, "Key": marker_key, **update,
                        "ConditionExpression": "attribute_exists(pk)"}}
            if status in JOB_IN_FLIGHT else {"Delete": {"TableName": self.table.name, "Key": marker_key}})
        try:
            self.table.meta.client.transact_write_items(TransactItems=[
                {"Update": {"TableName": self.table.name, "Key": {"pk": "JOB", "sk": job_id}, **update}},
                marker])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            # The copy was gone (the job had ended): the job's own item alone.
            self._update("JOB", job_id, {"status": status, "message": message})

    def list_jobs_in_flight(self) -> list[Job]:
        """The jobs Comprehend is running (SUBMITTED, IN_PROGRESS, STOP_REQUESTED): their copies only,
        however many jobs have ended before."""
        return [_job_from_item(item) for item in self._query_all(JOB_IN_FLIGHT_PK, ConsistentRead=True)]

    def count_jobs_in_flight(self) -> int:
        count = 0
        for page in self._query_pages(JOB_IN_FLIGHT_PK, Select="COUNT", ConsistentRead=True):
            count += int(page.get("Count", 0))
        return count

    # --- detection requests waiting for a slot ----------------------------------------------------

    def queue_detection(self, request: DetectionRequest) -> None:
        """Keep `request` until a concurrent-job slot frees; queued again, it keeps its place."""
        try:
            self.table.put_item(
                Item={"pk": DETECTION_QUEUE_PK, "sk": request.token, "version": request.version,
                      "input_key": request.input_key, "documents": request.documents,
                      "queued_at": time.time_ns()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def list_queued_detections(self) -> list[DetectionRequest]:
        """The queued detection requests, first queued first."""
        items = sorted(self._query_all(DETECTION_QUEUE_PK, ConsistentRead=True),
                       key=lambda item: (int(item["queued_at"]), item["sk"]))
        return [DetectionRequest(token=item["sk"], version=str(item["version"]), input_key=str(item["input_key"]),
                                 documents=int(item["documents"])) for item in items]

    def dequeue_detection(self, token: str) -> None:
        self.table.delete_item(Key={"pk": DETECTION_QUEUE_PK, "sk": token})

    def get_job(self, job_id: str) -> Job | None:
        item = self._get("JOB", job_id)
        return _job_from_item(item) if item else None

    def list_jobs(self) -> list[Job]:
        return [_job_from_item(item) for item in self._query_all("JOB")]

    def update_job(self, job_id: str, **attributes: Any) -> None:
        self._update("JOB", job_id, attributes)

    # --- human loops ---------------------------------------------------------------------------

    def put_loop(self, loop: Loop) -> bool:
        """Record a started human loop; False when a loop of that name is already recorded. An open
        loop (InProgress) gets its OPEN-LOOP marker in the same transaction."""
        return self._transact(self._loop_puts(loop, now()))

    def _loop_puts(self, loop: Loop, stamp: str) -> list[dict[str, Any]]:
        """The transaction actions recording `loop`: the loop (only if new), and its open-loop marker."""
        actions: list[dict[str, Any]] = [{"Put": {
            "TableName": self.table.name,
            "Item": {"pk": "LOOP", "sk": loop.name, "doc": loop.doc, "version": loop.version,
                     "status": loop.status, "failure": loop.failure, "started_at": stamp},
            "ConditionExpression": "attribute_not_exists(pk)"}}]
        if loop.status == LOOP_OPEN:
            actions.append({"Put": {"TableName": self.table.name,
                                    "Item": {"pk": OPEN_LOOP_PK, "sk": loop.name, "opened_at": stamp}}})
        return actions

    def get_loop(self, name: str) -> Loop | None:
        item = self._get("LOOP", name)
        return _loop_from_item(item) if item else None

    def list_loops(self, statuses: Iterable[str] | None = None) -> list[Loop]:
        wanted = set(statuses) if statuses is not None else None
        return [
            _loop_from_item(item)
            for item in self._query_all("LOOP")
            if wanted is None or item.get("status") in wanted
        ]

    def has_open_loops(self) -> bool:
        """True while any human loop is InProgress: one strongly consistent read of at most one
        marker, however many loops there are (markers are written and deleted with the loop's
        status, in one transaction: `put_loop`, `finish_loop`, `complete_loop_counted`)."""
        reply = self.table.query(KeyConditionExpression=Key("pk").eq(OPEN_LOOP_PK), Limit=1,
                                 ProjectionExpression="sk", ConsistentRead=True)
        return bool(reply.get("Items"))

    def open_loops_unchecked_since(self, stamp: str, limit: int) -> list[str]:
        """Up to `limit` open loops neither opened nor checked since `stamp` (a `now()` stamp),
        least recently checked first."""
        markers = self._query_all(OPEN_LOOP_PK, ProjectionExpression="sk, opened_at, checked_at",
                                  ConsistentRead=True)
        seen = sorted((max(str(m.get("opened_at", "")), str(m.get("checked_at", ""))), str(m["sk"]))
                      for m in markers)
        return [name for last, name in seen if last < stamp][:limit]

    def mark_open_loop_checked(self, name: str, stamp: str) -> None:
        """Note that loop `name` was found still open at `stamp` (unless it has closed meanwhile)."""
        try:
            self.table.update_item(Key={"pk": OPEN_LOOP_PK, "sk": name}, UpdateExpression="SET checked_at = :at",
                                   ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues={":at": stamp})
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def finish_loop(self, name: str, status: str, failure: str = "") -> bool:
        """Move a loop from InProgress to `status` and drop its open-loop marker, in one transaction;
        False (and nothing changed) when it had already finished (a redelivery)."""
        return self._transact([self._loop_finish(name, status, failure), self._open_loop_delete(name)])

    def complete_loop_counted(self, name: str, counter: str, first_epoch: int | None = None) -> bool:
        """Move a loop from InProgress to Completed, drop its open-loop marker and add 1 to `counter`,
        in one transaction; False (and nothing changed) when the loop had already finished.

        One transaction, so a failure between the writes cannot leave a finished loop whose review
        was never counted (a retry would find the loop finished and count nothing), nor a finished
        loop still counted as open. `first_epoch`: see `add_to_counter`."""
        return self._transact([self._loop_finish(name, "Completed", ""),
                               self._counter_add(counter, 1, first_epoch), self._open_loop_delete(name)])

    def merge_review(self, name: str, gold: GoldDocument, counter: str, first_epoch: int | None = None) -> bool:
        """`complete_loop_counted` with the review's gold labels in the same transaction: the gold
        document put (replacing earlier labels, as `put_gold`) and its pool item marked gold. All or
        nothing, so a retry never finds labels written for a loop still open, nor a finished loop
        without its labels; False (and nothing changed) when the loop had already finished.

        A document no longer in the pool fails the pool update's condition and cancels the
        transaction; it is then written without that update, as `put_gold` leaves such a document alone.
        DynamoDB lists a cancelled transaction's `CancellationReasons` in the order of its actions, and no
        two actions may target one item (botocore `dynamodb` TransactionCanceledException, TransactWriteItems;
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html)."""
        pool = self._pool_update(gold.doc, GOLD, {})
        actions = [self._loop_finish(name, "Completed", ""), {"Put": {"TableName": self.table.name,
                                                                      "Item": _gold_item_of(gold)}},
                   pool, self._open_loop_delete(name), self._counter_add(counter, 1, first_epoch)]
        try:
            return self._transact(actions)
        except ClientError as exc:
            failed = [reason.get("Code") == "ConditionalCheckFailed"
                      for reason in exc.response.get("CancellationReasons") or []]
            if len(failed) != len(actions) or failed.count(True) != 1 or not failed[actions.index(pool)]:
                raise
        return self._transact([action for action in actions if action is not pool])

    def _pool_update(self, doc: str, status: str, attributes: dict[str, str]) -> dict[str, Any]:
        """The transaction action `mark_pool` makes: set the status (and `attributes`) if pooled."""
        names = {"#status": "status", "#updated": "updated_at"}
        values: dict[str, Any] = {":status": status, ":now": now()}
        sets = ["#status = :status", "#updated = :now"]
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            sets.append(f"#a{index} = :a{index}")
        return {"Update": {"TableName": self.table.name, "Key": {"pk": "POOL", "sk": doc},
                           "UpdateExpression": "SET " + ", ".join(sets), "ConditionExpression": "attribute_exists(pk)",
                           "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}

    def _loop_finish(self, name: str, status: str, failure: str) -> dict[str, Any]:
        return {"Update": {
            "TableName": self.table.name, "Key": {"pk": "LOOP", "sk": name},
            "UpdateExpression": "SET #status = :status, failure = :failure, finished_at = :now",
            "ConditionExpression": "attribute_exists(pk) AND #status = :open",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {":status": status, ":failure": failure, ":now": now(),
                                          ":open": LOOP_OPEN},
        }}

    def _open_loop_delete(self, name: str) -> dict[str, Any]:
        # Unconditional: a loop recorded before markers existed has none, and deleting nothing is fine.
        return {"Delete": {"TableName": self.table.name, "Key": {"pk": OPEN_LOOP_PK, "sk": name}}}

    def _counter_add(self, counter: str, amount: int, first_epoch: int | None) -> dict[str, Any]:
        expression, values = "ADD #value :amount", {":amount": amount}
        names = {"#value": "value"}
        if first_epoch is not None:
            expression += " SET #first = if_not_exists(#first, :first)"
            names["#first"] = COUNTER_FIRST
            values[":first"] = first_epoch
        return {"Update": {"TableName": self.table.name, "Key": {"pk": "COUNTER", "sk": counter},
                           "UpdateExpression": expression, "ExpressionAttributeNames": names,
                           "ExpressionAttributeValues": values}}

    def _transact(self, actions: list[dict[str, Any]]) -> bool:
        """Write `actions` in one transaction (all or nothing); False (and nothing changed) when the
        first action's condition fails. Any other cancellation is raised."""
        try:
            self.table.meta.client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException" and \
                    reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

    # --- counters and the training lock -------------------------------------------------------

    def add_to_counter(self, name: str, amount: int = 1, first_epoch: int | None = None) -> int:
        """Atomically add `amount` to a counter and return its new value. With `first_epoch`, the
        counter also remembers that time unless it holds one already: when the first count since
        `restamp_counter` last cleared it was made."""
        update = self._counter_add(name, amount, first_epoch)["Update"]
        reply = self.table.update_item(
            Key=update["Key"], UpdateExpression=update["UpdateExpression"],
            ExpressionAttributeNames=update["ExpressionAttributeNames"],
            ExpressionAttributeValues=update["ExpressionAttributeValues"], ReturnValues="UPDATED_NEW",
        )
        return int(reply["Attributes"]["value"])

    def get_counter(self, name: str) -> int:
        item = self._get("COUNTER", name)
        return int(item["value"]) if item else 0

    def get_counter_stamped(self, name: str) -> tuple[int, int | None]:
        """A counter's value and the time (epoch seconds) it remembers (None when it holds none)."""
        item = self._get("COUNTER", name) or {}
        first = item.get(COUNTER_FIRST)
        return int(item.get("value", 0)), (int(first) if first is not None else None)

    def restamp_counter(self, name: str, value: int, taken_epoch: int) -> None:
        """The counts up to `value` were consumed at `taken_epoch` (read before that time): forget
        the remembered time when no count came after them, else move it up to `taken_epoch` (those
        later counts were made after the read). Each write is conditional and never moves the time
        back, so a repeat, or one that arrives late, changes nothing."""
        for update, condition in (
            ("REMOVE #first", "#value = :value AND #first <= :taken"),
            ("SET #first = :taken", "#value > :value AND #first < :taken"),
            ("SET #first = :taken", "#value > :value AND attribute_not_exists(#first)"),
        ):
            values = {":taken": taken_epoch, ":value": value}
            try:
                self.table.update_item(
                    Key={"pk": "COUNTER", "sk": name}, UpdateExpression=update, ConditionExpression=condition,
                    ExpressionAttributeNames={"#value": "value", "#first": COUNTER_FIRST},
                    ExpressionAttributeValues=values,
                )
                return
            except ClientError as exc:
                if not _is_condition_failure(exc):
                    raise

    def set_counter(self, name: str, value: int) -> None:
        """Raise a counter to `value` (never lowers it, so a late redelivery cannot undo progress)."""
        try:
            self.table.update_item(
                Key={"pk": "COUNTER", "sk": name},
                UpdateExpression="SET #value = :value",
                ConditionExpression="attribute_not_exists(#value) OR #value < :value",
                ExpressionAttributeNames={"#value": "value"},
                ExpressionAttributeValues={":value": value},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    def acquire_training_lock(self, holder: str, stale_after_seconds: int = 24 * 3600) -> bool:
        """Take the single-flight training lock; False when another training holds it.

        A lock older than `stale_after_seconds` is taken over, so a lost release cannot stop the loop.
        A lock `holder` already holds is left as it is: it may carry what its snapshot still owes
        (`rename_training_lock`), which a new item would drop.
        """
        acquired = int(time.time())
        try:
            self.table.put_item(
                Item={"pk": "LOCK", "sk": "TRAINING", "holder": holder, "acquired_at": now(),
                      "acquired_epoch": acquired},
                ConditionExpression="attribute_not_exists(pk) OR acquired_epoch < :stale",
                ExpressionAttributeValues={":stale": acquired - stale_after_seconds},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return self.training_lock_holder() == holder
            raise
        return True

    def rename_training_lock(self, holder: str, new_holder: str, **owed: int) -> None:
        """Hand the lock to `new_holder`, recording `owed` (counter name → value) with it: counters
        to raise once the holder's snapshot is written (see `training_lock_owed`)."""
        names = {f"#o{i}": f"owed_{name}" for i, name in enumerate(owed)}
        values: dict[str, Any] = {":new": new_holder, ":old": holder}
        values.update({f":o{i}": value for i, value in enumerate(owed.values())})
        sets = ["holder = :new", *(f"#o{i} = :o{i}" for i in range(len(owed)))]
        self.table.update_item(
            Key={"pk": "LOCK", "sk": "TRAINING"},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression="holder = :old",
            ExpressionAttributeValues=values,
            **({"ExpressionAttributeNames": names} if names else {}),
        )

    def training_lock_owed(self, holder: str) -> dict[str, int]:
        """The counters `holder` recorded with the lock (empty when it does not hold it)."""
        item = self._get("LOCK", "TRAINING")
        if item is None or item.get("holder") != holder:
            return {}
        return {name.removeprefix("owed_"): int(value) for name, value in item.items() if name.startswith("owed_")}

    def training_lock_holder(self) -> str | None:
        item = self._get("LOCK", "TRAINING")
        return item["holder"] if item else None

    def release_training_lock(self, holder: str) -> None:
        """Release the lock if `holder` still holds it (a redelivered release does nothing)."""
        try:
            self.table.delete_item(
                Key={"pk": "LOCK", "sk": "TRAINING"},
                ConditionExpression="holder = :holder",
                ExpressionAttributeValues={":holder": holder},
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise

    # --- detection requests ---------------------------------------------------------------------

    def record_detection_request(self, request: DetectionRequest) -> DetectionRequest:
        """Record the input a detection job is about to be started on; when a request with the same
        token was recorded before (a retried start), that one is kept and returned."""
        try:
            self.table.put_item(
                Item={"pk": "DETECT-REQUEST", "sk": request.token, "version": request.version,
                      "input_key": request.input_key, "documents": request.documents, "created_at": now()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not _is_condition_failure(exc):
                raise
            earlier = self.get_detection_request(request.token)
            if earlier is not None:
                return earlier
            raise
        return request

    def get_detection_request(self, token: str) -> DetectionRequest | None:
        item = self._get("DETECT-REQUEST", token)
        if item is None:
            return None
        return DetectionRequest(token=token, version=str(item["version"]), input_key=str(item["input_key"]),
                                documents=int(item["documents"]))

    # --- the seed labeling job ------------------------------------------------------------------

    def claim_seed_labeling(self, batch: str, replacing: str | None = None) -> bool:
        """Make `batch` the one whose Ground Truth job labels the seed set; False when another batch
        holds that place. `replacing` names a holder whose job ended without labels: it is taken over."""
        condition = "attribute_not_exists(pk) OR #batch = :batch"
        values = {":batch": batch}
        if replacing:
            condition += " OR #batch = :old"
            values[":old"] = replacing
        try:
            self.table.put_item(
                Item={"pk": "LABELING", "sk": "SEED", "batch": batch, "claimed_at": now()},
                ConditionExpression=condition,
                ExpressionAttributeNames={"#batch": "batch"},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def seed_labeling_batch(self) -> str | None:
        item = self._get("LABELING", "SEED")
        return str(item["batch"]) if item else None

    # --- helpers -------------------------------------------------------------------------------

    def _update(self, pk: str, sk: str, attributes: dict[str, Any]) -> None:
        names = {f"#a{i}": name for i, name in enumerate(attributes)}
        values = {f":a{i}": value for i, value in enumerate(attributes.values())}
        self.table.update_item(
            Key={"pk": pk, "sk": sk},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    # --- once-only counts ---------------------------------------------------------------------
    # The batched gold writes are GoldBatchWriter below the class: IAM grants are checked per function
    # against every method of the classes it uses, and only the convert stage needs BatchWriteItem.

    def count_once(self, marker: str, counter: str) -> bool:
        """Add 1 to `counter` unless `marker` was counted before: the marker item (COUNTED /
        <marker>) and the count are written in one transaction, so a retried effect counts once.
        False (and nothing changed) when the marker was already there."""
        return self._transact([{"Update": {
            "TableName": self.table.name, "Key": {"pk": "COUNTED", "sk": marker},
            "UpdateExpression": "SET #counter = :counter, counted_at = :now",
            "ConditionExpression": "attribute_not_exists(pk)",
            "ExpressionAttributeNames": {"#counter": "counter"},
            "ExpressionAttributeValues": {":counter": counter, ":now": now()},
        }}, self._counter_add(counter, 1, None)])

    # --- batched pool reads and writes --------------------------------------------------------
    # The route stage reads and writes the pool once per document of a detection output: these read
    # 100 pool items per BatchGetItem and make up to 100 conditional changes per TransactWriteItems
    # (IAM authorizes a transaction by its items' actions: UpdateItem, PutItem), not one request each.

    POOL_TRANSACTION_ITEMS = 100  # TransactWriteItems takes at most 100 actions
    POOL_TRANSACTION_BYTES = 3_000_000  # and 4 MB in all: stay well below it

    def get_pool_items(self, docs: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The pool items (every attribute) of those of `docs` that are pooled, by hash; read
        consistently, 100 a request, unprocessed keys asked again after a pause."""
        client = self.table.meta.client
        found: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(docs))
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {self.table.name: {
                "Keys": [{"pk": "POOL", "sk": doc} for doc in keys[start : start + 100]], "ConsistentRead": True}}
            attempt = 0
            while request:
                if attempt:  # throttled: back off before asking again
                    time.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))
                reply = client.batch_get_item(RequestItems=request)
                for item in reply["Responses"].get(self.table.name, []):
                    found[item["sk"]] = item
                request = reply.get("UnprocessedKeys") or {}
                attempt += 1
        return found

    @staticmethod
    def pool_document(item: dict[str, Any]) -> PoolDocument:
        """A pool item (as `get_pool_items` returns it) as a PoolDocument."""
        return _pool_from_item(item)

    def mark_pool_many(self, changes: Iterable[tuple[str, str, dict[str, str]]],
                       unless: Iterable[str] = ()) -> list[str]:
        """Make many `mark_pool` changes, each (doc, status, attributes), leaving alone a document
        whose current status is one of `unless`. Returns the documents changed (not those absent from
        the pool or left alone).

        Up to 100 changes go in one transaction; when any of them cannot be made (its condition
        fails, or a concurrent write conflicts), the transaction changes nothing and each of its
        changes is then made on its own. A document named twice is changed in the given order."""
        skip = list(dict.fromkeys(unless))
        condition = "attribute_exists(pk)" + "".join(f" AND #status <> :not{i}" for i in range(len(skip)))
        stamp = now()

        def update(doc: str, status: str, attributes: dict[str, str]) -> dict[str, Any]:
            names = {"#status": "status", "#updated": "updated_at"}
            values: dict[str, Any] = {":status": status, ":now": stamp}
            values.update({f":not{i}": value for i, value in enumerate(skip)})
            sets = ["#status = :status", "#updated = :now"]
            for index, (name, value) in enumerate(attributes.items()):
                names[f"#a{index}"] = name
                values[f":a{index}"] = value
                sets.append(f"#a{index} = :a{index}")
            return {"Key": {"pk": "POOL", "sk": doc}, "UpdateExpression": "SET " + ", ".join(sets),
                    "ConditionExpression": condition, "ExpressionAttributeNames": names,
                    "ExpressionAttributeValues": values}

        changed: list[str] = []
        for chunk in self._pool_transactions(changes):
            updates = [update(doc, status, attributes) for doc, status, attributes in chunk]
            if len(updates) > 1:
                try:
                    self.table.meta.client.transact_write_items(
                        TransactItems=[{"Update": {"TableName": self.table.name, **one}} for one in updates])
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                        raise
                else:
                    changed.extend(doc for doc, _, _ in chunk)
                    continue
            for one in updates:  # one change, or a cancelled transaction: each on its own
                try:
                    self.table.update_item(**one)
                except ClientError as exc:
                    if _is_condition_failure(exc):
                        continue
                    raise
                changed.append(one["Key"]["sk"])
        return changed

    def _pool_transactions(
        self, changes: Iterable[tuple[str, str, dict[str, str]]]
    ) -> Iterator[list[tuple[str, str, dict[str, str]]]]:
        """`changes` cut into transactions: at most 100 each, below the size limit, no item twice."""
        chunk: list[tuple[str, str, dict[str, str]]] = []
        docs: set[str] = set()
        size = 0
        for change in changes:
            doc, status, attributes = change
            bytes_ = 200 + len(doc) + len(status) + sum(len(k) + len(v) for k, v in attributes.items())
            if chunk and (doc in docs or len(chunk) == self.POOL_TRANSACTION_ITEMS
                          or size + bytes_ > self.POOL_TRANSACTION_BYTES):
                yield chunk
                chunk, docs, size = [], set(), 0
            chunk.append(change)
            docs.add(doc)
            size += bytes_
        if chunk:
            yield chunk

    def put_loop_many(self, loops: list[Loop]) -> list[bool]:
        """`put_loop` for many loops, up to 50 in one transaction (each open loop is two actions: the
        loop and its marker): for each, True when it was recorded now, False when a loop of that name
        was already recorded. When any is already there the transaction records nothing, and each
        loop is then recorded on its own."""
        recorded: list[bool] = []
        per_transaction = self.POOL_TRANSACTION_ITEMS // 2
        for start in range(0, len(loops), per_transaction):
            chunk = loops[start : start + per_transaction]
            if len(chunk) > 1 and len({loop.name for loop in chunk}) == len(chunk):
                stamp = now()
                try:
                    self.table.meta.client.transact_write_items(
                        TransactItems=[action for loop in chunk for action in self._loop_puts(loop, stamp)])
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                        raise
                else:
                    recorded.extend(True for _ in chunk)
                    continue
            recorded.extend(self.put_loop(loop) for loop in chunk)
        return recorded


class GoldBatchWriter:
    """`StateTable.put_gold` for many documents at once (the convert stage's).

    A manifest of a million lines would cost two requests a document through put_gold: this writes
    25 gold items a BatchWriteItem request, up to `WRITERS` requests at a time on a small thread
    pool (the requests are independent: each names other items), then one BatchGetItem per 100
    documents finds which are in the pool, and only those get the pool update put_gold makes.
    Threads share the table resource's low-level client, which boto3 documents as thread-safe
    (resources are not, so no thread touches `table` itself).
    """

    BATCH = 25  # DynamoDB's BatchWriteItem limit
    ATTEMPTS = 8
    WRITERS = 4  # requests in flight at once; DynamoDB on-demand takes far more, Lambda's CPU fewer

    def __init__(self, state: StateTable, writers: int = WRITERS) -> None:
        self.state = state
        self.client = state.table.meta.client  # the resource's client takes plain Python values
        self.table_name = state.table.name
        self._pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="gold-writer") if writers > 1 else None

    def put_gold_many(self, golds: Iterable[GoldDocument]) -> int:
        """Write `golds` as put_gold would; a document named twice is written once, with its last
        labels. Returns how many pooled documents were marked GOLD. Every request has succeeded
        when it returns (the first failure is raised)."""
        latest = {gold.doc: gold for gold in golds}  # one request may not name a key twice
        items = [_gold_item_of(gold) for gold in latest.values()]
        chunks = [items[start:start + self.BATCH] for start in range(0, len(items), self.BATCH)]
        if self._pool is None or len(chunks) < 2:
            for chunk in chunks:
                self._batch_put(chunk)
        else:
            for done in [self._pool.submit(self._batch_put, chunk) for chunk in chunks]:
                done.result()  # waits for all of them, in order; raises the first failure
        marked = 0
        for doc in self.state._batch_get("POOL", latest):
            marked += self.state.mark_pool(doc, GOLD)
        return marked

    def close(self) -> None:
        """Stop the writer threads (they idle until then)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def __enter__(self) -> GoldBatchWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _batch_put(self, items: list[dict[str, Any]]) -> None:
        """Put up to 25 items in one BatchWriteItem, retrying what DynamoDB leaves unprocessed.

        DynamoDB returns the puts it did not make in `UnprocessedItems` (throttling, an internal
        error) and recommends retrying them with exponential back-off ("BatchWriteItem":
        https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html)."""
        request: dict[str, Any] = {self.table_name: [{"PutRequest": {"Item": item}} for item in items]}
        for attempt in range(self.ATTEMPTS):
            reply = self.client.batch_write_item(RequestItems=request)
            request = reply.get("UnprocessedItems") or {}
            if not request:
                return
            time.sleep(min(0.05 * 2 ** attempt, 2.0))  # throttled: back off before the rest
        left = sum(len(requests) for requests in request.values())
        raise StateWriteIncomplete(f"{left} item(s) still unprocessed after {self.ATTEMPTS} BatchWriteItem attempts")


class StateWriteIncomplete(Exception):
    """DynamoDB kept leaving items of a batch write unprocessed (throttling outlasted the retries)."""


def _gold_item_of(gold: GoldDocument) -> dict[str, Any]:
    """The item `put_gold` writes for `gold`."""
    return {"pk": "GOLD", "sk": gold.doc, "text": gold.text,
            "spans": json.dumps(gold.spans),
            "origin": gold.origin, "updated_at": gold.updated_at}


def _gold_from_item(item: dict[str, Any]) -> GoldDocument:
    return GoldDocument(
        doc=item["sk"],
        text=item["text"],
        spans=list(map(Span._make, json.loads(item["spans"]))),  # written by json.dumps of Spans
        origin=item.get("origin", ""),
        updated_at=item.get("updated_at", ""),
    )


def _pool_from_item(item: dict[str, Any]) -> PoolDocument:
    return PoolDocument(doc=item["sk"], text=item["text"], status=item["status"],
                        seen_by=item.get("seen_by", ""), loop=item.get("loop", ""),
                        batch=item.get("batch", ""), detected_at=item.get("detected_at", ""),
                        uncertain_by=item.get("uncertain_by", ""), updated_at=item.get("updated_at", ""))


def _version_from_item(item: dict[str, Any]) -> Version:
    return Version(version=item["sk"], status=item["status"], arn=item.get("arn", ""),
                   snapshot=item.get("snapshot", ""), message=item.get("message", ""),
                   metrics=json.loads(item.get("metrics") or "{}"), created_at=item.get("created_at", ""),
                   training_started_at=item.get("training_started_at", ""),
                   training_ended_at=item.get("training_ended_at", ""))


def _job_from_item(item: dict[str, Any]) -> Job:
    return Job(job_id=item["sk"], status=item["status"], version=item["version"],
               input_key=item["input_key"], documents=int(item.get("documents", 0)),
               arn=item.get("arn", ""))


def _loop_from_item(item: dict[str, Any]) -> Loop:
    return Loop(name=item["sk"], doc=item["doc"], version=item["version"], status=item["status"],
                failure=item.get("failure", ""), started_at=item.get("started_at", ""),
                finished_at=item.get("finished_at", ""))
