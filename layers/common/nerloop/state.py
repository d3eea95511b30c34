"""The state table: one DynamoDB table (pk, sk) holding everything the loop remembers.

Item families, by partition key:
- GOLD / <doc hash>       a labelled document: text, spans, origin (labeling job or human loop)
- POOL / <doc hash>       a document waiting for the model: text, status, seen_by, loop
- VERSION / <version>     a recognizer version: status, arn, metrics, snapshot
- MODEL / ACTIVE          the version detection uses
- JOB / <job id>          a detection job: status, version, input key
- LOOP / <loop name>      a human loop: document, version, status
- COUNTER / <name>        atomic counters (reviews, snapshots)
- LOCK / TRAINING         the single-flight training lock
- IDEMPOTENCY / <hash>    Powertools idempotency records

Every write that must happen once is conditional; counters use atomic ADD.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
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
    doc: str
    text: str
    status: str
    seen_by: str = ""
    loop: str = ""
    batch: str = ""


@dataclass
class Version:
    version: str
    status: str
    arn: str = ""
    snapshot: str = ""
    message: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


@dataclass
class Job:
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
    name: str
    doc: str
    version: str
    status: str
    failure: str = ""


class StateTable:
    """Typed access to the state table."""

    def __init__(self, table: Any) -> None:
        self.table = table

    # --- generic -------------------------------------------------------------------------------

    def _query_all(self, pk: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(pk), **kwargs}
        while True:
            page = self.table.query(**params)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self.table.get_item(Key={"pk": pk, "sk": sk}, ConsistentRead=True).get("Item")

    def _batch_get(self, pk: str, sks: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Fetch many items of one family by sort key (100 a request, as DynamoDB allows)."""
        # The resource's own client takes and returns plain Python values.
        resource = self.table.meta.client
        found: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(sks))
        for start in range(0, len(keys), 100):
            request: dict[str, Any] = {
                self.table.name: {"Keys": [{"pk": pk, "sk": sk} for sk in keys[start : start + 100]]}
            }
            while request:
                reply = resource.batch_get_item(RequestItems=request)
                for item in reply["Responses"].get(self.table.name, []):
                    found[item["sk"]] = item
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
                "spans": json.dumps([span.to_list() for span in gold.spans]),
                "origin": gold.origin,
                "updated_at": gold.updated_at,
            }
        )
        self.mark_pool(gold.doc, GOLD)

    def get_gold(self, doc: str) -> GoldDocument | None:
        item = self._get("GOLD", doc)
        return _gold_from_item(item) if item else None

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
        names = {"#status": "status", "#updated": "updated_at"}
        values: dict[str, Any] = {":status": status, ":now": now()}
        sets = ["#status = :status", "#updated = :now"]
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            sets.append(f"#a{index} = :a{index}")
        try:
            self.table.update_item(
                Key={"pk": "POOL", "sk": doc},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
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

    def delete_version(self, version: str) -> None:
        self.table.delete_item(Key={"pk": "VERSION", "sk": version})

    def get_active(self) -> tuple[str, float] | None:
        """The active version and its F1, or None before the first model is trained."""
        item = self._get("MODEL", "ACTIVE")
        return (item["version"], float(item["f1"])) if item else None

    def set_active(self, version: str, f1: float) -> None:
        self.table.put_item(Item={"pk": "MODEL", "sk": "ACTIVE", "version": version, "f1": str(f1),
                                  "updated_at": now()})

    # --- detection jobs ------------------------------------------------------------------------

    def put_job(self, job: Job) -> None:
        self.table.put_item(
            Item={"pk": "JOB", "sk": job.job_id, "status": job.status, "version": job.version,
                  "input_key": job.input_key, "documents": job.documents, "arn": job.arn,
                  "created_at": now()}
        )

    def get_job(self, job_id: str) -> Job | None:
        item = self._get("JOB", job_id)
        return _job_from_item(item) if item else None

    def list_jobs(self) -> list[Job]:
        return [_job_from_item(item) for item in self._query_all("JOB")]

    def update_job(self, job_id: str, **attributes: Any) -> None:
        self._update("JOB", job_id, attributes)

    # --- human loops ---------------------------------------------------------------------------

    def put_loop(self, loop: Loop) -> bool:
        """Record a started human loop; False when a loop of that name is already recorded."""
        try:
            self.table.put_item(
                Item={"pk": "LOOP", "sk": loop.name, "doc": loop.doc, "version": loop.version,
                      "status": loop.status, "failure": loop.failure, "started_at": now()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

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

    def finish_loop(self, name: str, status: str, failure: str = "") -> bool:
        """Move a loop from InProgress to `status`; False when it had already finished (a redelivery)."""
        try:
            self.table.update_item(
                Key={"pk": "LOOP", "sk": name},
                UpdateExpression="SET #status = :status, failure = :failure, finished_at = :now",
                ConditionExpression="attribute_exists(pk) AND #status = :open",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":status": status, ":failure": failure, ":now": now(),
                                           ":open": "InProgress"},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def complete_loop_counted(self, name: str, counter: str) -> bool:
        """Move a loop from InProgress to Completed and add 1 to `counter`, in one transaction; False
        (and nothing changed) when the loop had already finished.

        One transaction, so a failure between the two writes cannot leave a finished loop whose review
        was never counted (a retry would find the loop finished and count nothing)."""
        client = self.table.meta.client
        try:
            client.transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self.table.name, "Key": {"pk": "LOOP", "sk": name},
                    "UpdateExpression": "SET #status = :status, failure = :failure, finished_at = :now",
                    "ConditionExpression": "attribute_exists(pk) AND #status = :open",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":status": "Completed", ":failure": "", ":now": now(),
                                                  ":open": "InProgress"},
                }},
                {"Update": {
                    "TableName": self.table.name, "Key": {"pk": "COUNTER", "sk": counter},
                    "UpdateExpression": "ADD #value :one",
                    "ExpressionAttributeNames": {"#value": "value"},
                    "ExpressionAttributeValues": {":one": 1},
                }},
            ])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if exc.response.get("Error", {}).get("Code") == "TransactionCanceledException" and \
                    reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise
        return True

    # --- counters and the training lock -------------------------------------------------------

    def add_to_counter(self, name: str, amount: int = 1) -> int:
        """Atomically add `amount` to a counter and return its new value."""
        reply = self.table.update_item(
            Key={"pk": "COUNTER", "sk": name},
            UpdateExpression="ADD #value :amount",
            ExpressionAttributeNames={"#value": "value"},
            ExpressionAttributeValues={":amount": amount},
            ReturnValues="UPDATED_NEW",
        )
        return int(reply["Attributes"]["value"])

    def get_counter(self, name: str) -> int:
        item = self._get("COUNTER", name)
        return int(item["value"]) if item else 0

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
        """
        acquired = int(time.time())
        try:
            self.table.put_item(
                Item={"pk": "LOCK", "sk": "TRAINING", "holder": holder, "acquired_at": now(),
                      "acquired_epoch": acquired},
                ConditionExpression="attribute_not_exists(pk) OR holder = :holder OR acquired_epoch < :stale",
                ExpressionAttributeValues={":holder": holder, ":stale": acquired - stale_after_seconds},
            )
        except ClientError as exc:
            if _is_condition_failure(exc):
                return False
            raise
        return True

    def rename_training_lock(self, holder: str, new_holder: str) -> None:
        self.table.update_item(
            Key={"pk": "LOCK", "sk": "TRAINING"},
            UpdateExpression="SET holder = :new",
            ConditionExpression="holder = :old",
            ExpressionAttributeValues={":new": new_holder, ":old": holder},
        )

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


def _gold_from_item(item: dict[str, Any]) -> GoldDocument:
    return GoldDocument(
        doc=item["sk"],
        text=item["text"],
        spans=[Span.from_list(raw) for raw in json.loads(item["spans"])],
        origin=item.get("origin", ""),
        updated_at=item.get("updated_at", ""),
    )


def _pool_from_item(item: dict[str, Any]) -> PoolDocument:
    return PoolDocument(doc=item["sk"], text=item["text"], status=item["status"],
                        seen_by=item.get("seen_by", ""), loop=item.get("loop", ""),
                        batch=item.get("batch", ""))


def _version_from_item(item: dict[str, Any]) -> Version:
    return Version(version=item["sk"], status=item["status"], arn=item.get("arn", ""),
                   snapshot=item.get("snapshot", ""), message=item.get("message", ""),
                   metrics=json.loads(item.get("metrics") or "{}"), created_at=item.get("created_at", ""))


def _job_from_item(item: dict[str, Any]) -> Job:
    return Job(job_id=item["sk"], status=item["status"], version=item["version"],
               input_key=item["input_key"], documents=int(item.get("documents", 0)),
               arn=item.get("arn", ""))


def _loop_from_item(item: dict[str, Any]) -> Loop:
    return Loop(name=item["sk"], doc=item["doc"], version=item["version"], status=item["status"],
                failure=item.get("failure", ""))
