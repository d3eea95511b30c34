"""What every stand-in shares: the errors they answer with (`StandInError`), the emulated account they
work in (`StandInContext`: its S3 and event bus, both moto), the base of a stand-in (`StandInService`: the
operations it answers, its clock, its saved state) and small helpers (times as AWS writes them, S3 URIs,
pagination, saved records).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import boto3

from nerloop import s3_uri
from nerloop_local.emulator.isolation import ACCOUNT, REGION

# A stand-in's answer to one operation: the caller's parameters → the reply (before ResponseMetadata).
Operation = Callable[[dict[str, Any]], dict[str, Any]]


class StandInError(Exception):
    """An error a stand-in answers with, as the service would: `code` becomes `Error.Code`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(moment: datetime | None) -> str | None:
    """A timestamp as stored in a snapshot (ISO 8601, UTC)."""
    return moment.astimezone(UTC).isoformat() if moment else None


def from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def iso_millis(moment: datetime) -> str:
    """The form AWS puts in event details and output files: 2020-06-24T01:26:53.625Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """An object's or a prefix's URI → (bucket, key); StandInError, as a service answers, when it is not an S3 URI."""
    try:
        return s3_uri.split_s3_uri(uri, prefix=True)
    except s3_uri.InvalidS3Uri as exc:
        raise StandInError("ValidationException", str(exc)) from exc


def join_s3_uri(prefix_uri: str, *parts: str) -> str:
    """s3://b/out + a/b → s3://b/out/a/b (one slash between parts, whatever the prefix ends with)."""
    return "/".join([prefix_uri.rstrip("/"), *(part.strip("/") for part in parts)])


def paginate(items: Sequence[Any], params: dict[str, Any], default_max: int = 100) -> tuple[list[Any], str | None]:
    """One page of `items` for MaxResults / NextToken; the token is opaque to callers."""
    start = 0
    token = params.get("NextToken")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, UnicodeDecodeError) as exc:
            raise StandInError("InvalidRequestException", "the pagination token is not valid") from exc
    size = int(params.get("MaxResults") or default_max)
    page = list(items[start : start + size])
    following = start + size
    next_token = base64.urlsafe_b64encode(str(following).encode()).decode() if following < len(items) else None
    return page, next_token


def drop_none(mapping: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if value is not None}


@dataclass
class StandInContext:
    """What the stand-ins need from the emulated account: its S3 and its event bus (both moto)."""

    account: str = ACCOUNT
    region: str = REGION
    state_dir: Path | None = None  # where model files live; a temporary folder when None
    session: Any = None  # a boto3 Session to make clients from (default: boto3's default session)

    def __post_init__(self) -> None:
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            maker = self.session or boto3
            self._clients[service] = maker.client(service, region_name=self.region)
        return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.client("s3")

    def read_s3(self, uri: str) -> bytes:
        bucket, key = split_s3_uri(uri)
        return bytes(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def write_s3(self, uri: str, body: bytes, content_type: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)

    def list_s3(self, uri: str) -> list[str]:
        """Keys of the objects at `uri`: the object itself if it exists, else all under it as a prefix."""
        bucket, key = split_s3_uri(uri)
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key):
            keys.extend(item["Key"] for item in page.get("Contents", []) if not item["Key"].endswith("/"))
        return [key] if key in keys else keys

    def publish(self, source: str, detail_type: str, detail: dict[str, Any], resources: list[str]) -> None:
        """Put an event on the emulated default bus, as the service would."""
        reply = self.client("events").put_events(Entries=[{
            "Source": source, "DetailType": detail_type, "Detail": json.dumps(detail), "Resources": resources,
        }])
        if reply.get("FailedEntryCount"):
            raise RuntimeError(f"the emulated bus refused a {detail_type} event: {reply['Entries']}")


class StandInService:
    """Base of a stand-in: the operations it answers, its clock, its saved state."""

    operations: ClassVar[dict[tuple[str, str], str]] = {}  # (service id, Operation) → method name

    def __init__(self, context: StandInContext) -> None:
        self.context = context
        self.changes = 0  # bumped on every status change (the runtime's watch schedule reads it)

    def bound_operations(self) -> dict[tuple[str, str], Operation]:
        return {key: getattr(self, name) for key, name in self.operations.items()}

    def tick(self) -> None:
        """Advance in-flight work by one step."""

    def busy(self) -> bool:
        """True while something will change on a later tick without anyone's input."""
        return False

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, data: dict[str, Any]) -> None:
        """Load what `snapshot` returned."""


# (loop name, the loop's input content with the asked worker's id added under "workerId") -> the
# worker's entities, or None while unanswered. A flow definition's TaskCount asks that many workers.
Reviewer = Callable[[str, dict[str, Any]], "list[dict[str, Any]] | None"]


_TIMES = ("submit_time", "training_start", "training_end", "end_time", "creation_time")  # creation_time: flywheels


def dump_record(record: Any) -> dict[str, Any]:
    """A stand-in's dataclass record as saved in a snapshot (its times as ISO 8601)."""
    data = asdict(record)
    for name in _TIMES:
        if name in data:
            data[name] = to_iso(data[name])
    return data


def load_record(cls: type[Any], data: dict[str, Any]) -> Any:
    """The record `dump_record` saved."""
    values = dict(data)
    for name in _TIMES:
        if name in values:
            values[name] = from_iso(values[name])
    return cls(**values)
