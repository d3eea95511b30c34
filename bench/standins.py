"""Stand-ins for the AWS calls the benchmarked stages make, cheap enough not to be what is measured.

Under moto a million DynamoDB puts would measure moto, not nerloop, and moto keeps every S3 object
in memory. So the stages run here against:

- `SqliteTable`: the boto3 DynamoDB `Table` calls StateTable makes (get/put/update/delete_item with
  the condition and update expressions nerloop writes, query with pages, batch_get_item, batch_write_item), items
  kept in a SQLite file on local disk so the stand-in's storage does not show in the process's
  memory. Condition failures raise the same ClientError DynamoDB's client raises.
- `LocalS3`: get_object (a body with iter_chunks/read), put_object, upload_fileobj,
  download_fileobj, head_object over files in a directory.
- `StandInA2I`, `StandInSageMaker`, `StandInEventBridge` (bench/standin_services.py): the few calls a
  stage makes of A2I, SageMaker and EventBridge.

Every call is counted (`calls`), so a benchmark can say how many requests a stage made, and timed
(`CLOCK`), so it can say how much of the stage's time was spent inside the stand-ins: on AWS that
part is a network round trip and the service's work, not the function's code.

With a latency model on (`use_latency`, bench/latency.py) every call first sleeps its operation's
latency on AWS, outside any lock, so that calls from a thread pool overlap as on AWS. The stand-ins
are thread-safe: the SQLite connection is shared under a lock, counters are changed under a lock.
"""

from __future__ import annotations

import hashlib
import marshal
import shutil
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import IO, Any, TypeVar

from botocore.exceptions import ClientError

from bench.latency import LatencyModel
from bench.standin_expressions import _condition_failed, _Expression, _key_condition

PAGE_BYTES = 1024 * 1024  # DynamoDB returns at most 1 MB of items per query page
_Call = TypeVar("_Call", bound=Callable[..., Any])


class StandInClock:
    """Wall seconds during which at least one stand-in call was running: calls overlapping in threads
    count once, and so does a call made from inside another."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()
        self._active = 0  # calls running now, over all threads
        self._since = 0.0
        self._thread = threading.local()

    def reset(self) -> None:
        with self._lock:
            self.seconds = 0.0
            self._since = time.perf_counter()

    def enter(self) -> bool:
        """Start timing a call; False when this thread is already inside one (the outer call times it)."""
        if getattr(self._thread, "depth", 0):
            self._thread.depth += 1
            return False
        self._thread.depth = 1
        with self._lock:
            if not self._active:
                self._since = time.perf_counter()
            self._active += 1
        return True

    def leave(self, entered: bool) -> None:
        self._thread.depth -= 1
        if not entered:
            return
        with self._lock:
            self._active -= 1
            if not self._active:
                self.seconds += time.perf_counter() - self._since


CLOCK = StandInClock()
LATENCY = LatencyModel()  # no latency unless a benchmark asks for it


def use_latency(model: LatencyModel) -> None:
    """Make every stand-in call from now on take `model`'s latency."""
    global LATENCY
    LATENCY = model


def stand_in(operation: str, exclusive: bool = False, counted_as: str = "") -> Callable[[_Call], _Call]:
    """A stand-in method for the AWS `operation` (a row of bench/latency.py): timed in CLOCK, counted in
    the instance's `calls` (as `counted_as`, else the method's name) under its lock, after sleeping the
    operation's latency outside any lock. `exclusive`: the whole call runs under the instance's lock."""
    def decorate(call: _Call) -> _Call:
        counted = counted_as or call.__name__

        @wraps(call)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            entered = CLOCK.enter()
            try:
                LATENCY.wait(operation)
                with self.lock:
                    self.calls[counted] += 1
                    if exclusive:
                        return call(self, *args, **kwargs)
                return call(self, *args, **kwargs)
            finally:
                CLOCK.leave(entered)
        return run  # type: ignore[return-value]
    return decorate


class _Meta:
    def __init__(self, table: SqliteTable) -> None:
        self.client = _TableClient(table)


class _TableClient:
    """The resource client's batch_get_item, batch_write_item and transact_write_items, answering for the one table."""

    def __init__(self, table: SqliteTable) -> None:
        self.table = table
        self.lock = table.lock  # one connection, one lock
        self.calls = table.calls

    @stand_in("dynamodb.BatchGetItem", exclusive=True)
    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        responses: dict[str, list[dict[str, Any]]] = {}
        for name, request in RequestItems.items():
            responses[name] = self.table._load_many([(key["pk"], key["sk"]) for key in request["Keys"]])
        return {"Responses": responses, "UnprocessedKeys": {}}

    @stand_in("dynamodb.BatchWriteItem", exclusive=True)
    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        """Puts and deletes, at most 25 and no key twice, as DynamoDB checks; all processed."""
        requests = [request for name in RequestItems for request in RequestItems[name]]
        if len(requests) > 25:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "more than 25 requests"}},
                              "BatchWriteItem")
        keys = [(r.get("PutRequest", {}).get("Item") or r["DeleteRequest"]["Key"]) for r in requests]
        if len({(key["pk"], key["sk"]) for key in keys}) < len(keys):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "duplicate keys"}},
                              "BatchWriteItem")
        db = self.table.db
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
                       [(item["pk"], item["sk"], marshal.dumps(item))
                        for item in (r["PutRequest"]["Item"] for r in requests if "PutRequest" in r)])
        db.executemany("DELETE FROM items WHERE pk = ? AND sk = ?",
                       [(key["pk"], key["sk"]) for key in (r["DeleteRequest"]["Key"] for r in requests
                                                           if "DeleteRequest" in r)])
        db.execute("COMMIT")
        return {"UnprocessedItems": {}}

    @stand_in("dynamodb.TransactWriteItems", exclusive=True)
    def transact_write_items(self, TransactItems: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        """All or nothing: every condition is checked before anything is written."""
        reasons: list[Any] = []
        current: list[dict[str, Any] | None] = []  # each action's item as read for its condition
        for action in TransactItems:
            (kind, request), = action.items()
            key = request.get("Key") or {"pk": request["Item"]["pk"], "sk": request["Item"]["sk"]}
            condition = request.get("ConditionExpression")
            expression = _Expression(request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues"))
            current.append(self.table._load(key["pk"], key["sk"]))
            failed = bool(condition) and not expression.check(condition, current[-1])
            reasons.append({"Code": "ConditionalCheckFailed" if failed else "None"})
        if any(reason["Code"] != "None" for reason in reasons):
            raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                               "CancellationReasons": reasons}, "TransactWriteItems")
        self.table.db.execute("BEGIN")  # one request, one commit (as batch_write_item)
        for action, loaded in zip(TransactItems, current, strict=True):
            (kind, request), = action.items()
            if kind == "Update":
                key = request["Key"]
                item = loaded if loaded is not None else dict(key)
                _Expression(request.get("ExpressionAttributeNames"),
                            request.get("ExpressionAttributeValues")).update(request["UpdateExpression"], item)
                self.table._store(item)
            elif kind == "Put":
                self.table._store(dict(request["Item"]))
            elif kind == "Delete":
                self.table.db.execute("DELETE FROM items WHERE pk = ? AND sk = ?",
                                      (request["Key"]["pk"], request["Key"]["sk"]))
        self.table.db.execute("COMMIT")
        return {}


class SqliteTable:
    """A boto3 `Table` stand-in over a SQLite file (see the module docstring)."""

    def __init__(self, path: str | Path, name: str = "nerloop-state") -> None:
        self.name = name
        self.path = str(path)
        # One connection shared by every thread, used only under `lock` (SQLite's own check is off).
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.lock = threading.RLock()
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-4096")  # 4 MB of page cache at most
        self.db.execute("CREATE TABLE IF NOT EXISTS items (pk TEXT, sk TEXT, body BLOB, PRIMARY KEY (pk, sk))"
                        " WITHOUT ROWID")
        self.calls: Counter[str] = Counter()
        self.query_pages: Counter[str] = Counter()  # Query pages by partition key (what each read)
        self.meta = _Meta(self)

    def close(self) -> None:
        self.db.close()

    # --- storage --------------------------------------------------------------------------------

    def _load(self, pk: str, sk: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM items WHERE pk = ? AND sk = ?", (pk, sk)).fetchone()
        return marshal.loads(row[0]) if row else None  # nosec B302 # our own rows, written above

    def _load_many(self, keys: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """The items of `keys` that exist, one statement per partition key (a batch read's keys
        share no order)."""
        by_pk: dict[str, list[str]] = {}
        for pk, sk in keys:
            by_pk.setdefault(pk, []).append(sk)
        found: list[dict[str, Any]] = []
        for pk, sks in by_pk.items():
            marks = ", ".join("?" * len(sks))
            rows = self.db.execute(f"SELECT body FROM items WHERE pk = ? AND sk IN ({marks})",  # nosec B608 # only "?" placeholders are joined in
                                   [pk, *sks])
            found += [marshal.loads(body) for (body,) in rows]  # nosec B302 # our own rows, written above
        return found

    def _store(self, item: dict[str, Any]) -> None:
        self.db.execute("INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
                        (item["pk"], item["sk"], marshal.dumps(item)))

    def load_items(self, items: Iterator[dict[str, Any]]) -> None:
        """Seed the table (set-up, not a counted call)."""
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
                                ((item["pk"], item["sk"], marshal.dumps(item)) for item in items))
            self.db.execute("COMMIT")

    def count(self, pk: str) -> int:
        with self.lock:
            return int(self.db.execute("SELECT COUNT(*) FROM items WHERE pk = ?", (pk,)).fetchone()[0])

    def statuses(self, pk: str) -> dict[str, int]:
        """How many items of partition `pk` hold each `status` (not counted as requests: a check's read)."""
        with self.lock:
            rows = self.db.execute("SELECT body FROM items WHERE pk = ?", (pk,))
            found = Counter(str(marshal.loads(body).get("status", "")) for (body,) in rows)  # nosec B302 # our rows
        return dict(sorted(found.items()))

    # --- the Table API --------------------------------------------------------------------------

    @stand_in("dynamodb.GetItem", exclusive=True)
    def get_item(self, Key: dict[str, str], **_: Any) -> dict[str, Any]:
        item = self._load(Key["pk"], Key["sk"])
        return {"Item": item} if item is not None else {}

    @stand_in("dynamodb.PutItem", exclusive=True)
    def put_item(self, Item: dict[str, Any], ConditionExpression: str | None = None,
                 ExpressionAttributeNames: dict[str, str] | None = None,
                 ExpressionAttributeValues: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        if ConditionExpression:
            current = self._load(Item["pk"], Item["sk"])
            if not _Expression(ExpressionAttributeNames, ExpressionAttributeValues).check(ConditionExpression, current):
                raise _condition_failed("PutItem")
        self._store(dict(Item))
        return {}

    @stand_in("dynamodb.UpdateItem", exclusive=True)
    def update_item(self, Key: dict[str, str], UpdateExpression: str,
                    ConditionExpression: str | None = None,
                    ExpressionAttributeNames: dict[str, str] | None = None,
                    ExpressionAttributeValues: dict[str, Any] | None = None,
                    ReturnValues: str = "NONE", **_: Any) -> dict[str, Any]:
        expression = _Expression(ExpressionAttributeNames, ExpressionAttributeValues)
        current = self._load(Key["pk"], Key["sk"])
        if ConditionExpression and not expression.check(ConditionExpression, current):
            raise _condition_failed("UpdateItem")
        item = current if current is not None else dict(Key)
        changed = expression.update(UpdateExpression, item)
        self._store(item)
        if ReturnValues == "UPDATED_NEW":
            return {"Attributes": {name: item[name] for name in changed}}
        if ReturnValues == "ALL_NEW":
            return {"Attributes": item}
        return {}

    @stand_in("dynamodb.DeleteItem", exclusive=True)
    def delete_item(self, Key: dict[str, str], ConditionExpression: str | None = None,
                    ExpressionAttributeNames: dict[str, str] | None = None,
                    ExpressionAttributeValues: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        if ConditionExpression:
            current = self._load(Key["pk"], Key["sk"])
            if not _Expression(ExpressionAttributeNames, ExpressionAttributeValues).check(ConditionExpression, current):
                raise _condition_failed("DeleteItem")
        self.db.execute("DELETE FROM items WHERE pk = ? AND sk = ?", (Key["pk"], Key["sk"]))
        return {}

    @stand_in("dynamodb.Query", exclusive=True)
    def query(self, KeyConditionExpression: Any, ExclusiveStartKey: dict[str, str] | None = None,
              Limit: int | None = None, ProjectionExpression: str | None = None,
              **_: Any) -> dict[str, Any]:
        """One page in sort-key order: at most `Limit` items and about 1 MB, like DynamoDB."""
        pk = _key_condition(KeyConditionExpression)
        self.query_pages[pk] += 1
        after = ExclusiveStartKey["sk"] if ExclusiveStartKey else ""
        rows = self.db.execute("SELECT body FROM items WHERE pk = ? AND sk > ? ORDER BY sk", (pk, after))
        items: list[dict[str, Any]] = []
        size = 0
        more = False
        for (body,) in rows:
            if (Limit is not None and len(items) >= Limit) or size >= PAGE_BYTES:
                more = True
                break
            size += len(body)
            item = marshal.loads(body)  # nosec B302 # our own rows, written above
            if ProjectionExpression:
                wanted = [name.strip() for name in ProjectionExpression.split(",")]
                item = {name: item[name] for name in wanted if name in item}
            items.append(item)
        rows.close()
        page: dict[str, Any] = {"Items": items, "Count": len(items)}
        if more and items:
            page["LastEvaluatedKey"] = {"pk": pk, "sk": items[-1].get("sk")}
        return page


# --- S3 ----------------------------------------------------------------------------------------------


class _Body:
    """What botocore's StreamingBody offers that nerloop uses; read no faster than one S3 connection
    when a latency model is on."""

    def __init__(self, path: Path, start: int = 0, length: int | None = None) -> None:
        self._file: IO[bytes] = path.open("rb")
        self._file.seek(start)
        self._left = length  # bytes of a ranged GET still to give; None: to the end of the file
        self._pace = LATENCY.body("s3.GetObject")

    def _take(self, amount: int | None) -> bytes:
        if self._left is not None:
            amount = self._left if amount is None else min(amount, self._left)
        data = self._file.read() if amount is None else self._file.read(amount)
        if self._left is not None:
            self._left -= len(data)
        return data

    def read(self, amount: int | None = None) -> bytes:
        data = self._take(amount)
        self._pace.account(len(data))
        if not data:
            self._file.close()
        return data

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:  # botocore's default chunk size
        with self._file:
            while chunk := self._take(chunk_size):
                self._pace.account(len(chunk))
                yield chunk

    def close(self) -> None:
        self._file.close()


def _etag(path: Path) -> str:
    """An ETag that changes when the file does (its modification time's hash, quoted as S3 quotes it)."""
    return '"' + hashlib.md5(str(path.stat().st_mtime_ns).encode(), usedforsecurity=False).hexdigest() + '"'


class LocalS3:
    """S3 calls over `root/<bucket>/<key>` files. Calls on different keys run side by side (only the
    counters are locked); a body's transfer time is slept after the call's first-byte latency."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def path(self, bucket: str, key: str) -> Path:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @stand_in("s3.GetObject")
    def get_object(self, Bucket: str, Key: str, Range: str = "", IfMatch: str = "", **_: Any) -> dict[str, Any]:
        """The object, or the bytes of `Range` ("bytes=first-" or "bytes=first-last", as a continued stage
        asks for the rest of its input); `IfMatch` another ETag fails as S3 does (412 PreconditionFailed)."""
        path = self.path(Bucket, Key)
        if not path.exists():
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": Key}}, "GetObject")
        etag, size = _etag(path), path.stat().st_size
        if IfMatch and IfMatch != etag:
            raise ClientError({"Error": {"Code": "PreconditionFailed", "Message": Key}}, "GetObject")
        if not Range:
            return {"Body": _Body(path), "ContentLength": size, "ETag": etag}
        first, _dash, last = Range.removeprefix("bytes=").partition("-")
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        return {"Body": _Body(path, start, end - start + 1), "ContentLength": end - start + 1, "ETag": etag,
                "ContentRange": f"bytes {start}-{end}/{size}"}

    @stand_in("s3.HeadObject")
    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        path = self.path(Bucket, Key)
        return {"ETag": _etag(path), "ContentLength": path.stat().st_size}

    @stand_in("s3.PutObject")
    def put_object(self, Bucket: str, Key: str, Body: bytes | str | IO[bytes] = b"", **_: Any) -> dict[str, Any]:
        path = self.path(Bucket, Key)
        if isinstance(Body, str):
            path.write_text(Body, encoding="utf-8")
        elif isinstance(Body, bytes | bytearray):
            path.write_bytes(Body)
        else:
            with path.open("wb") as out:
                shutil.copyfileobj(Body, out)
        LATENCY.wait_transfer("s3.PutObject", path.stat().st_size)
        return {"ETag": '"local"'}

    @stand_in("s3.PutObject")
    def upload_fileobj(self, Fileobj: IO[bytes], Bucket: str, Key: str, **_: Any) -> None:
        """One PutObject's latency and the body's transfer (boto3 splits a body over 8 MB into parts sent
        in parallel: the model's one stream is the slower case)."""
        path = self.path(Bucket, Key)
        with path.open("wb") as out:
            shutil.copyfileobj(Fileobj, out, 1024 * 1024)
        LATENCY.wait_transfer("s3.PutObject", path.stat().st_size)

    @stand_in("s3.GetObject")
    def download_fileobj(self, Bucket: str, Key: str, Fileobj: IO[bytes], **_: Any) -> None:
        path = self.path(Bucket, Key)
        with path.open("rb") as source:
            shutil.copyfileobj(source, Fileobj, 1024 * 1024)
        LATENCY.wait_transfer("s3.GetObject", path.stat().st_size)


def requests_of(**stand_ins: Any) -> dict[str, int]:
    """Every call the stand-ins counted, as `service.method` (e.g. `table.batch_write_item`)."""
    return {f"{service}.{method}": count for service, stand_in_ in stand_ins.items()
            for method, count in sorted(stand_in_.calls.items())}
