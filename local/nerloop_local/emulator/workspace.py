"""The workspace: a folder where the local stack keeps its state between runs.

    <workspace>/
      workspace.json            format, template parameters, when it was last saved
      s3/<bucket>/index.json    key → blob file, ETag, content type, user metadata
      s3/<bucket>/blobs/<sha256 of the key>
      dynamodb/<table>.json     every item, in DynamoDB's typed JSON (binary values base64)
      standins/state.json          the stand-ins: recognizers, detection jobs, loops, labeling jobs, flows
      standins/models/...          trained recognizer models (the Comprehend stand-in writes them here)
      stack.json                what the custom resources answered (physical id, attributes, properties)
      queues.json               events not yet delivered, and dead letters
      deliveries.jsonl          every delivery the pump made (appended)

Plain files, written atomically (a temporary file, then a rename), so an interrupted save leaves the
previous state readable. Objects are stored under a hash of their key, so any key (spaces, "a" and
"a/b" side by side) round-trips.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from nerloop_local.emulator.queues import FunctionWiring, attributes, peek_all

FORMAT = 1


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _dump_json(data: Any) -> bytes:
    return (json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")


class Workspace:
    """Reads and writes the state of one local stack in a folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        # Workspaces saved before the stand-ins' folder was renamed keep theirs.
        legacy = self.root / "fakes"
        if legacy.is_dir() and not self.standins_dir.exists():
            legacy.rename(self.standins_dir)

    @property
    def standins_dir(self) -> Path:
        return self.root / "standins"

    @property
    def manifest_path(self) -> Path:
        return self.root / "workspace.json"

    def exists(self) -> bool:
        """True when a stack was saved here before."""
        return self.manifest_path.exists()

    def manifest(self) -> dict[str, Any]:
        return self.load_json("workspace.json", {})

    def write_manifest(self, parameters: dict[str, str]) -> None:
        self.save_json("workspace.json", {"format": FORMAT, "parameters": parameters,
                                          "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    # --- JSON files -------------------------------------------------------------------------------

    def save_json(self, name: str, data: Any) -> None:
        write_atomic(self.root / name, _dump_json(data))

    def load_json(self, name: str, default: Any) -> Any:
        path = self.root / name
        if not path.exists():
            return default
        return json.loads(path.read_text(encoding="utf-8"))

    def append_jsonl(self, name: str, records: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(record, ensure_ascii=False, default=str) + "\n" for record in records)
        if lines:
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(lines)

    def read_jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self.root / name
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    # --- S3 ---------------------------------------------------------------------------------------

    def _bucket_dir(self, bucket: str) -> Path:
        return self.root / "s3" / bucket

    def save_bucket(self, s3: Any, bucket: str) -> int:
        """Copy every object of `bucket` into the workspace (unchanged objects are not read again)."""
        folder = self._bucket_dir(bucket)
        old_index: dict[str, dict[str, Any]] = self.load_json(f"s3/{bucket}/index.json", {})
        index: dict[str, dict[str, Any]] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                key, etag = item["Key"], item["ETag"]
                blob = hashlib.sha256(key.encode("utf-8")).hexdigest()
                previous = old_index.get(key)
                if previous and previous["etag"] == etag and (folder / "blobs" / blob).exists():
                    index[key] = previous
                    continue
                reply = s3.get_object(Bucket=bucket, Key=key)
                write_atomic(folder / "blobs" / blob, reply["Body"].read())
                index[key] = {"blob": blob, "etag": etag, "content_type": reply.get("ContentType", ""),
                              "metadata": reply.get("Metadata", {})}
        self.save_json(f"s3/{bucket}/index.json", index)
        kept = {entry["blob"] for entry in index.values()}
        blobs = folder / "blobs"
        if blobs.exists():
            for path in blobs.iterdir():
                if path.name not in kept:
                    path.unlink()
        return len(index)

    def restore_bucket(self, s3: Any, bucket: str) -> int:
        """Put the saved objects back into `bucket` (an existing, empty bucket)."""
        index: dict[str, dict[str, Any]] = self.load_json(f"s3/{bucket}/index.json", {})
        for key, entry in sorted(index.items()):
            extra: dict[str, Any] = {}
            if entry.get("content_type"):
                extra["ContentType"] = entry["content_type"]
            if entry.get("metadata"):
                extra["Metadata"] = entry["metadata"]
            body = (self._bucket_dir(bucket) / "blobs" / entry["blob"]).read_bytes()
            s3.put_object(Bucket=bucket, Key=key, Body=body, **extra)
        return len(index)

    # --- DynamoDB ---------------------------------------------------------------------------------

    def save_table(self, dynamodb: Any, table: str) -> int:
        """Write every item of `table` (a low-level DynamoDB client scan) to the workspace."""
        items: list[dict[str, Any]] = []
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            items.extend(_encode_item(item) for item in page.get("Items", []))
        items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        self.save_json(f"dynamodb/{table}.json", items)
        return len(items)

    def restore_table(self, dynamodb: Any, table: str) -> int:
        items = [_decode_item(item) for item in self.load_json(f"dynamodb/{table}.json", [])]
        for start in range(0, len(items), 25):
            request: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]}
            while request:
                request = dynamodb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        return len(items)


# DynamoDB's typed JSON is JSON except for binary values: those travel as base64 text.

    def save_queues(self, sqs: Any, wiring: Mapping[str, FunctionWiring]) -> None:
        """Every function's undelivered events and dead letters, left in their queues, to queues.json."""
        self.save_json("queues.json", {
            function: {"queue": peek_all(sqs, wired.queue_url), "dlq": peek_all(sqs, wired.dlq_url)}
            for function, wired in wiring.items()
        })

    def restore_queues(self, sqs: Any, wiring: Mapping[str, FunctionWiring]) -> None:
        """Put queues.json's events and dead letters back in the queues of the functions still wired."""
        saved: dict[str, dict[str, list[dict[str, Any]]]] = self.load_json("queues.json", {})
        for function, queues in saved.items():
            wired = wiring.get(function)
            if wired is None:
                continue
            for kind, url in (("queue", wired.queue_url), ("dlq", wired.dlq_url)):
                for message in queues.get(kind, []):
                    sqs.send_message(QueueUrl=url, MessageBody=message["body"],
                                     MessageAttributes=attributes(message.get("attributes", {})))


def _encode_value(value: dict[str, Any]) -> dict[str, Any]:
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(item)).decode("ascii") for item in inner]}
    if kind == "M":
        return {"M": _encode_item(inner)}
    if kind == "L":
        return {"L": [_encode_value(item) for item in inner]}
    return value


def _decode_value(value: dict[str, Any]) -> dict[str, Any]:
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(item) for item in inner]}
    if kind == "M":
        return {"M": _decode_item(inner)}
    if kind == "L":
        return {"L": [_decode_value(item) for item in inner]}
    return value


def _encode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _encode_value(value) for name, value in item.items()}


def _decode_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _decode_value(value) for name, value in item.items()}


__all__ = ["FORMAT", "Workspace", "write_atomic"]
