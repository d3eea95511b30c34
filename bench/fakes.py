"""Stand-ins for the AWS calls the benchmarked stages make, cheap enough not to be what is measured.

Under moto a million DynamoDB puts would measure moto, not nerloop, and moto keeps every S3 object
in memory. So the stages run here against:

- `SqliteTable`: the boto3 DynamoDB `Table` calls StateTable makes (get/put/update/delete_item with
  the condition and update expressions nerloop writes, query with pages, batch_get_item, batch_write_item), items
  kept in a SQLite file on local disk so the stand-in's storage does not show in the process's
  memory. Condition failures raise the same ClientError DynamoDB's client raises.
- `LocalS3`: get_object (a body with iter_chunks/read), put_object, upload_fileobj,
  download_fileobj, head_object over files in a directory.
- `FakeA2I`: start_human_loop that checks the name and the input size and counts loops.
- `FakeSageMaker`: describe_labeling_job naming the manifest.

Every call is counted (`calls`), so a benchmark can say how many requests a stage made, and timed
(`CLOCK`), so it can say how much of the stage's time was spent inside the stand-ins: on AWS that
part is a network round trip and the service's work, not the function's code.
"""

from __future__ import annotations

import hashlib
import marshal
import re
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

from nerloop.a2i import MAX_INPUT_CONTENT_CHARS, NAME_PATTERN

PAGE_BYTES = 1024 * 1024  # DynamoDB returns at most 1 MB of items per query page
_MISSING = object()
_Call = TypeVar("_Call", bound=Callable[..., Any])


class StandInClock:
    """Seconds spent inside stand-in calls; a call made from inside another counts once."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.depth = 0

    def reset(self) -> None:
        self.seconds = 0.0


CLOCK = StandInClock()


_CALLS = threading.RLock()


def timed(call: _Call) -> _Call:
    """Add the time spent in `call` to CLOCK."""
    @wraps(call)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        # One call at a time: the stages now make independent requests from a few threads (issue 13),
        # and CLOCK and the SQLite table are not shared safely between threads.
        with _CALLS:
            if CLOCK.depth:
                return call(*args, **kwargs)
            CLOCK.depth += 1
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                CLOCK.seconds += time.perf_counter() - started
                CLOCK.depth -= 1
    return timed_call  # type: ignore[return-value]


def _condition_failed(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ConditionalCheckFailedException",
                                  "Message": "The conditional request failed"}}, operation)


class _Expression:
    """The DynamoDB expression subset nerloop writes: `attribute_exists(x)`, `attribute_not_exists(x)`,
    comparisons `a = b`, `a <> b`, `a < b`, `a <= b`, `a > b`, `a >= b` joined by AND / OR (no
    parentheses), `SET a = :v, ...` (a value may be `if_not_exists(a, :v)`), `ADD a :n` and `REMOVE a`."""

    def __init__(self, names: dict[str, str] | None, values: dict[str, Any] | None) -> None:
        self.names = names or {}
        self.values = values or {}

    def name(self, token: str) -> str:
        return self.names[token] if token.startswith("#") else token

    def operand(self, token: str, item: dict[str, Any]) -> Any:
        if token.startswith(":"):
            return self.values[token]
        return item.get(self.name(token), _MISSING)

    def check(self, expression: str, item: dict[str, Any] | None) -> bool:
        item = item or {}
        return any(all(self._term(term.strip(), item) for term in re.split(r"\s+AND\s+", alternative))
                   for alternative in re.split(r"\s+OR\s+", expression))

    def _term(self, term: str, item: dict[str, Any]) -> bool:
        match = re.fullmatch(r"(attribute_exists|attribute_not_exists)\(\s*([#\w]+)\s*\)", term)
        if match:
            present = self.name(match.group(2)) in item
            return present if match.group(1) == "attribute_exists" else not present
        match = re.fullmatch(r"([#:\w]+)\s*(<>|<=|>=|=|<|>)\s*([#:\w]+)", term)
        if not match:
            raise NotImplementedError(f"condition term {term!r}")
        left, operator, right = match.group(1), match.group(2), match.group(3)
        a, b = self.operand(left, item), self.operand(right, item)
        if a is _MISSING or b is _MISSING:
            return operator == "<>"
        return {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[operator]

    def update(self, expression: str, item: dict[str, Any]) -> list[str]:
        """Apply an update expression to `item` in place; return the names it set."""
        changed: list[str] = []
        for clause, body in re.findall(r"(SET|ADD|REMOVE)\s+(.*?)(?=\s+(?:SET|ADD|REMOVE)\s+|$)",
                                       expression.strip()):
            for part in re.split(r",(?![^(]*\))", body):  # not the comma inside if_not_exists(a, :v)
                if clause == "REMOVE":
                    item.pop(self.name(part.strip()), None)
                    continue
                if clause == "SET":
                    target, value = (piece.strip() for piece in part.split("=", 1))
                    default = re.fullmatch(r"if_not_exists\(\s*([#\w]+)\s*,\s*([#:\w]+)\s*\)", value)
                    if default:
                        current = self.operand(default.group(1), item)
                        item[self.name(target)] = (self.operand(default.group(2), item) if current is _MISSING
                                                   else current)
                    else:
                        item[self.name(target)] = self.operand(value, item)
                else:
                    target, value = part.split()
                    current = item.get(self.name(target), 0)
                    item[self.name(target)] = current + self.operand(value, item)
                changed.append(self.name(target))
        return changed


def _key_condition(condition: Any) -> str:
    """The partition key value of a `Key("pk").eq(value)` condition (the only one nerloop queries by)."""
    expression = condition.get_expression()
    key, value = expression["values"]
    if expression["operator"] != "=" or getattr(key, "name", None) != "pk":
        raise NotImplementedError(f"key condition {expression}")
    return str(value)


class _Meta:
    def __init__(self, table: SqliteTable) -> None:
        self.client = _TableClient(table)


class _TableClient:
    """The resource client's batch_get_item, batch_write_item and transact_write_items, answering for the one table."""

    def __init__(self, table: SqliteTable) -> None:
        self.table = table

    @timed
    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        self.table.calls["batch_get_item"] += 1
        responses: dict[str, list[dict[str, Any]]] = {}
        for name, request in RequestItems.items():
            responses[name] = self.table._load_many([(key["pk"], key["sk"]) for key in request["Keys"]])
        return {"Responses": responses, "UnprocessedKeys": {}}

    @timed
    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        """Puts and deletes, at most 25 and no key twice, as DynamoDB checks; all processed."""
        self.table.calls["batch_write_item"] += 1
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

    @timed
    def transact_write_items(self, TransactItems: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        """All or nothing: every condition is checked before anything is written."""
        self.table.calls["transact_write_items"] += 1
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
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)  # calls hold _CALLS
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-4096")  # 4 MB of page cache at most
        self.db.execute("CREATE TABLE IF NOT EXISTS items (pk TEXT, sk TEXT, body BLOB, PRIMARY KEY (pk, sk))"
                        " WITHOUT ROWID")
        self.calls: Counter[str] = Counter()
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
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO items VALUES (?, ?, ?)",
                            ((item["pk"], item["sk"], marshal.dumps(item)) for item in items))
        self.db.execute("COMMIT")

    def count(self, pk: str) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM items WHERE pk = ?", (pk,)).fetchone()[0])

    # --- the Table API --------------------------------------------------------------------------

    @timed
    def get_item(self, Key: dict[str, str], **_: Any) -> dict[str, Any]:
        self.calls["get_item"] += 1
        item = self._load(Key["pk"], Key["sk"])
        return {"Item": item} if item is not None else {}

    @timed
    def put_item(self, Item: dict[str, Any], ConditionExpression: str | None = None,
                 ExpressionAttributeNames: dict[str, str] | None = None,
                 ExpressionAttributeValues: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        self.calls["put_item"] += 1
        if ConditionExpression:
            current = self._load(Item["pk"], Item["sk"])
            if not _Expression(ExpressionAttributeNames, ExpressionAttributeValues).check(ConditionExpression, current):
                raise _condition_failed("PutItem")
        self._store(dict(Item))
        return {}

    @timed
    def update_item(self, Key: dict[str, str], UpdateExpression: str,
                    ConditionExpression: str | None = None,
                    ExpressionAttributeNames: dict[str, str] | None = None,
                    ExpressionAttributeValues: dict[str, Any] | None = None,
                    ReturnValues: str = "NONE", **_: Any) -> dict[str, Any]:
        self.calls["update_item"] += 1
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

    @timed
    def delete_item(self, Key: dict[str, str], ConditionExpression: str | None = None,
                    ExpressionAttributeNames: dict[str, str] | None = None,
                    ExpressionAttributeValues: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        self.calls["delete_item"] += 1
        if ConditionExpression:
            current = self._load(Key["pk"], Key["sk"])
            if not _Expression(ExpressionAttributeNames, ExpressionAttributeValues).check(ConditionExpression, current):
                raise _condition_failed("DeleteItem")
        self.db.execute("DELETE FROM items WHERE pk = ? AND sk = ?", (Key["pk"], Key["sk"]))
        return {}

    @timed
    def query(self, KeyConditionExpression: Any, ExclusiveStartKey: dict[str, str] | None = None,
              Limit: int | None = None, ProjectionExpression: str | None = None,
              **_: Any) -> dict[str, Any]:
        """One page in sort-key order: at most `Limit` items and about 1 MB, like DynamoDB."""
        self.calls["query"] += 1
        pk = _key_condition(KeyConditionExpression)
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
    """What botocore's StreamingBody offers that nerloop uses."""

    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = path.open("rb")

    def read(self, amount: int | None = None) -> bytes:
        data = self._file.read() if amount is None else self._file.read(amount)
        if not data:
            self._file.close()
        return data

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:  # botocore's default chunk size
        with self._file:
            while chunk := self._file.read(chunk_size):
                yield chunk

    def close(self) -> None:
        self._file.close()


class LocalS3:
    """S3 calls over `root/<bucket>/<key>` files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.calls: Counter[str] = Counter()

    def path(self, bucket: str, key: str) -> Path:
        path = self.root / bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @timed
    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self.calls["get_object"] += 1
        path = self.path(Bucket, Key)
        if not path.exists():
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": Key}}, "GetObject")
        return {"Body": _Body(path), "ContentLength": path.stat().st_size}

    @timed
    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self.calls["head_object"] += 1
        path = self.path(Bucket, Key)
        etag = hashlib.md5(str(path.stat().st_mtime_ns).encode(), usedforsecurity=False).hexdigest()
        return {"ETag": f'"{etag}"', "ContentLength": path.stat().st_size}

    @timed
    def put_object(self, Bucket: str, Key: str, Body: bytes | str | IO[bytes] = b"", **_: Any) -> dict[str, Any]:
        self.calls["put_object"] += 1
        path = self.path(Bucket, Key)
        if isinstance(Body, str):
            path.write_text(Body, encoding="utf-8")
        elif isinstance(Body, bytes | bytearray):
            path.write_bytes(Body)
        else:
            with path.open("wb") as out:
                shutil.copyfileobj(Body, out)
        return {"ETag": '"local"'}

    @timed
    def upload_fileobj(self, Fileobj: IO[bytes], Bucket: str, Key: str, **_: Any) -> None:
        self.calls["upload_fileobj"] += 1
        with self.path(Bucket, Key).open("wb") as out:
            shutil.copyfileobj(Fileobj, out, 1024 * 1024)

    @timed
    def download_fileobj(self, Bucket: str, Key: str, Fileobj: IO[bytes], **_: Any) -> None:
        self.calls["download_fileobj"] += 1
        with self.path(Bucket, Key).open("rb") as source:
            shutil.copyfileobj(source, Fileobj, 1024 * 1024)


# --- A2I and SageMaker ---------------------------------------------------------------------------------


class FakeA2I:
    """start_human_loop: checks what A2I checks (name pattern, input size) and counts the loops.

    Names are not kept (memory would grow with them): nerloop's names are unique per document and
    version, and a repeat is what the route benchmark never sends.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.started = 0

    @timed
    def start_human_loop(self, HumanLoopName: str, FlowDefinitionArn: str,
                         HumanLoopInput: dict[str, str], **_: Any) -> dict[str, Any]:
        self.calls["start_human_loop"] += 1
        if not NAME_PATTERN.match(HumanLoopName) or len(HumanLoopName) > 63:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "bad name"}}, "StartHumanLoop")
        if len(HumanLoopInput["InputContent"]) > MAX_INPUT_CONTENT_CHARS:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "too big"}}, "StartHumanLoop")
        self.started += 1
        return {"HumanLoopArn": f"{FlowDefinitionArn.replace(':flow-definition/', ':human-loop/')}/{HumanLoopName}"}


class FakeSageMaker:
    """describe_labeling_job for one completed job."""

    def __init__(self, manifest_uri: str, label_attribute: str) -> None:
        self.manifest_uri = manifest_uri
        self.label_attribute = label_attribute

    @timed
    def describe_labeling_job(self, LabelingJobName: str) -> dict[str, Any]:
        return {"LabelingJobName": LabelingJobName, "LabelingJobStatus": "Completed",
                "LabelAttributeName": self.label_attribute,
                "LabelingJobOutput": {"OutputDatasetS3Uri": self.manifest_uri}}
