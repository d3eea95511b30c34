"""What a chaos run ended with, made comparable across runs, and the figures of its line in the chaos table
(nerloop_local.commands.chaos). CHAOS_ENVIRONMENT: the handlers' environment in every chaos run."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from nerloop.state import IDEMPOTENCY_PK

CHAOS_ENVIRONMENT = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "CRITICAL"}
# Attributes that say when something happened (updated_at, started_at, acquired_epoch, claimed_at ...):
# they differ between any two runs.
TIMESTAMP_SUFFIXES = ("_at", "_epoch")
_RUN_TIME = re.compile(r"-\d{8}T\d{6}")  # the detection run's name: <version>-<UTC time>


def canonical_state(runtime: Any) -> dict[str, Any]:
    """What a run ended with, comparable across runs.

    Left out, and why:
    - IDEMPOTENCY items: bookkeeping of how often something was attempted (their expiry times and
      stored results carry timestamps and job ids); the effects they guard are compared instead.
    - timestamps (attributes named *_at or *_epoch, and such keys of a version's metrics): when, not what.
    - the seed-labeling marker (LABELING): a batch that arrives before the seed's labels are in is
      sent to Ground Truth, one that arrives after is not; a fault that delays the seed's conversion
      legitimately changes which, and the stand-in never completes a job nobody labels.
    - detection job ids and ARNs (JOB sk, arn, routed_key, a pool item's `job`): Comprehend makes them
      up (random); a job is named by its version and what it did instead, and the run-name time in
      its input key is blanked.
    Everything else is kept as is: gold texts, spans and origins; pool statuses, seen_by, loops and
    the entities (with scores) they were accepted with; versions with status, ARN, snapshot, message
    and metrics (F1 included); the active model; loops; every counter; the training lock's holder.
    """
    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    for page in runtime.client("dynamodb").get_paginator("scan").paginate(TableName=runtime.table_name):
        items.extend({name: deserializer.deserialize(value) for name, value in item.items()}
                     for item in page["Items"])
    job_versions = {item["sk"]: item.get("version", "") for item in items if item["pk"] == "JOB"}
    families: dict[str, Any] = {}
    jobs: list[dict[str, Any]] = []
    for item in items:
        pk, sk = str(item["pk"]), str(item["sk"])
        if pk in (IDEMPOTENCY_PK, "LABELING"):
            continue
        fields = {name: _plain(value) for name, value in item.items()
                  if name not in ("pk", "sk") and not name.endswith(TIMESTAMP_SUFFIXES)}
        if pk == "JOB":
            for name in ("arn", "routed_key"):
                fields.pop(name, None)
            fields["input_key"] = _RUN_TIME.sub("-<time>", str(fields.get("input_key", "")))
            jobs.append(fields)
            continue
        if pk == "POOL" and "job" in fields:
            fields["job"] = f"<job of {job_versions.get(str(fields['job']), '?')}>"
        if pk == "VERSION" and isinstance(fields.get("metrics"), str):  # its training's times are when, too
            fields["metrics"] = {name: value for name, value in json.loads(fields["metrics"]).items()
                                 if not name.endswith(TIMESTAMP_SUFFIXES)}
        families.setdefault(pk, {})[sk] = fields
    families["JOB"] = sorted(jobs, key=lambda job: json.dumps(job, sort_keys=True))
    families["S3 training/"] = {key: hashlib.sha256(runtime.get_bytes(key)).hexdigest()
                                for key in sorted(runtime.list_keys("training/"))}
    comprehend, a2i = runtime.comprehend, runtime.a2i
    families["Comprehend"] = {
        "versions": sorted(f"{r.version}:{r.status}" for r in comprehend.recognizers.values()),
        "detection jobs per version": dict(sorted(Counter(
            comprehend.recognizers[j.recognizer_arn].version if j.recognizer_arn in comprehend.recognizers
            else j.recognizer_arn for j in comprehend.jobs.values()).items())),
    }
    families["A2I"] = {"human loops": sorted(f"{name}:{loop.status}" for name, loop in a2i.loops.items())}
    return families


def _plain(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as int or str, so states compare and print as JSON."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def state_differences(expected: dict[str, Any], actual: dict[str, Any], limit: int = 8) -> list[str]:
    """Where two canonical states differ, a line each (at most `limit`)."""
    out: list[str] = []
    for family in sorted(set(expected) | set(actual)):
        left, right = expected.get(family), actual.get(family)
        if left == right:
            continue
        if isinstance(left, dict) and isinstance(right, dict):
            for key in sorted(set(left) | set(right)):
                if left.get(key) != right.get(key):
                    out.append(f"{family}/{key}: {json.dumps(left.get(key), default=str)[:160]} ≠ "
                               f"{json.dumps(right.get(key), default=str)[:160]}")
        else:
            out.append(f"{family}: {json.dumps(left, default=str)[:200]} ≠ {json.dumps(right, default=str)[:200]}")
    return out[:limit] + ([f"… and {len(out) - limit} more"] if len(out) > limit else [])


@dataclass
class Figures:
    """One line of the chaos table."""

    check: str
    ok: bool = False
    equal: str = "-"  # "yes" / "no" against the clean run, "-" when not compared
    deliveries: int = 0
    duplicates: int = 0  # second deliveries injected
    failed: int = 0  # deliveries that failed (and were retried or dead-lettered)
    dead_letters: int = 0
    redriven: int = 0
    faults: dict[str, int] = field(default_factory=dict)  # injected, per service
    retries: int = 0  # client retries of injected faults (botocore's or emulated)
    surfaced: int = 0  # faults that got past the client retries to the handler
    gold: int = 0
    versions: str = ""
    loops: str = ""
    reviews: int = 0
    counters: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def summarize(runtime: Any, figures: Figures) -> dict[str, Any]:
    """Fill the state figures of `figures` from the runtime; return the canonical state."""
    state = canonical_state(runtime)
    counters = {name: fields["value"] for name, fields in state.get("COUNTER", {}).items()}
    loops = Counter(fields["status"] for fields in state.get("LOOP", {}).values())
    figures.gold = len(state.get("GOLD", {}))
    versions = sorted(state.get("VERSION", {}).items())
    figures.versions = " ".join(f"{name}:{fields['status']}" for name, fields in versions)
    figures.loops = " ".join(f"{status}:{count}" for status, count in sorted(loops.items()))
    figures.reviews = int(counters.get("REVIEWS", 0))
    figures.counters = " ".join(f"{name}={value}" for name, value in sorted(counters.items()))
    figures.dead_letters = len(runtime.dead_letters())
    return state
