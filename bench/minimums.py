"""The fewest AWS requests each stage's design needs, and the targets a latency run is held to.

Each minimum counts requests of every service (DynamoDB, S3, A2I, SageMaker, EventBridge) for the
work the stage must do, at the batch sizes AWS allows, from the stage's own result (how many
documents, repeats, loops). bench/README.md gives the reasoning; the measured requests are the
stand-ins' counts (bench/standins.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import ceil
from typing import Any

# DynamoDB's request limits: BatchWriteItem takes up to 25 put/delete requests, BatchGetItem up to 100 keys,
# TransactWriteItems up to 100 actions (botocore `dynamodb` shapes WriteRequests, KeyList, TransactWriteItemList;
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html, API_BatchGetItem.html,
# API_TransactWriteItems.html).
BATCH_WRITE_ITEMS = 25
BATCH_GET_KEYS = 100
TRANSACTION_ACTIONS = 100
REQUESTS_TARGET_RATIO = 1.2  # requests per 1,000 documents within 1.2x of the minimum
MARGIN_TARGET = 2.0  # a stage's wall time at most half its function's Timeout, or it continues


def convert_minimum(documents: int, repeated: int, snapshot_pages: int, snapshots: int = 1) -> dict[str, int]:
    """The requests converting a manifest needs, by purpose.

    `documents` distinct documents go to the gold set 25 a BatchWriteItem; which of them are in the
    pool (to mark them gold) is one BatchGetItem per 100; a line repeating a document already written
    must read its labels back to merge them, 100 a BatchGetItem (`repeated` lines at most). Once per
    job: DescribeLabelingJob, the manifest's GetObject, the quarantine report's PutObject and the
    retrain request's transaction. Each training snapshot reads the gold set (`snapshot_pages` Query
    pages of at most 1 MB, as measured: DynamoDB's page limit decides them), takes and records the
    training lock (2 writes) and uploads its 2 files."""
    return {
        "gold writes (BatchWriteItem of 25)": ceil(documents / BATCH_WRITE_ITEMS),
        "pool look-ups (BatchGetItem of 100)": ceil(documents / BATCH_GET_KEYS),
        "repeats read back (BatchGetItem of 100)": ceil(repeated / BATCH_GET_KEYS),
        "once per job (describe, manifest, quarantine, retrain request)": 4,
        "training snapshot (gold set pages, lock, 2 uploads)": snapshot_pages + 4 * snapshots,
    }


def route_minimum(records: int, decided: int, loops: int) -> dict[str, int]:
    """The requests routing a detection output needs, by purpose.

    The pool items of the `records` are read 100 a BatchGetItem; each `decided` document's status
    changes (accepted, in review, or waiting seen by this version), 100 updates a TransactWriteItems;
    each human loop is recorded with its open-loop marker (2 actions, 50 loops a transaction) and
    started with its own StartHumanLoop (A2I has no batch start). Once per output: the job's item,
    the job's input (GetObject), the archive (GetObject), the job's routing summary (UpdateItem) and
    the quarantine report (PutObject)."""
    return {
        "pool reads (BatchGetItem of 100)": ceil(records / BATCH_GET_KEYS),
        "pool status writes (transactions of 100)": ceil(decided / TRANSACTION_ACTIONS),
        "loop records (transactions of 50 loops)": ceil(2 * loops / TRANSACTION_ACTIONS),
        "StartHumanLoop (one a loop)": loops,
        "once per output (job, input, archive, summary, quarantine)": 5,
    }


def merge_minimum(reviews: int, snapshot_pages: int, snapshots: int, repaired: int = 0) -> dict[str, int]:
    """The requests merging `reviews` completed human loops needs, by purpose.

    Per review: the loop's item (GetItem: which document and version, still open?), the answer
    (GetObject), one TransactWriteItems holding the gold put, the pool update, the loop's end, its
    open-loop marker's delete and the review count (5 actions, all or nothing), and one BatchGetItem
    of the items the retrain decision reads (the counters and the training lock). A review whose answer
    was repaired (a span trimmed of white space: `repaired` of them) writes its quarantine report, one
    PutObject, as convert writes one per job. Each training snapshot as in `convert_minimum`."""
    return {
        "loop item (GetItem)": reviews,
        "answer (GetObject)": reviews,
        "merge transaction (gold, pool, loop, marker, count)": reviews,
        "retrain decision (BatchGetItem)": reviews,
        "repair notes (PutObject, a review with a repaired answer)": repaired,
        "training snapshot (gold set pages, lock, 2 uploads)": snapshot_pages + 4 * snapshots,
    }


def per_thousand(requests: float, units: int) -> float:
    return 1000 * requests / units if units else 0.0


def requests_target(stage: str, unit: str, units: int, measured: Mapping[str, int],
                    minimum: Mapping[str, int]) -> dict[str, Any]:
    """A requests-per-1,000 target: measured (all services) against the design's minimum."""
    measured_total = sum(measured.values())
    minimum_total = sum(minimum.values())
    ratio = measured_total / minimum_total if minimum_total else float("inf")
    return {
        "target": f"{stage}: requests per 1,000 {unit} within {REQUESTS_TARGET_RATIO}x of the design's minimum",
        "units": units, "unit": unit,
        "measured_per_1000": per_thousand(measured_total, units),
        "minimum_per_1000": per_thousand(minimum_total, units),
        "ratio": ratio, "threshold": REQUESTS_TARGET_RATIO, "met": ratio <= REQUESTS_TARGET_RATIO,
        "measured": dict(measured), "minimum": dict(minimum),
    }


def time_target(stage: str, size: str, timeout_seconds: float, invocation_seconds: list[float],
                extrapolated_from: str | None = None, same_end_state: bool | None = None) -> dict[str, Any]:
    """A Lambda-timeout target: met when one invocation did it all with at least MARGIN_TARGET x margin
    (Timeout / wall time), or when the stage continued across invocations each within the Timeout and
    with no repeated effect (`same_end_state`: its end state equals a one-invocation run's; None when not
    compared). An extrapolated wall time counts as one invocation (it was not run at that size)."""
    longest = max(invocation_seconds, default=0.0)
    margin = timeout_seconds / longest if longest else float("inf")
    continued = len(invocation_seconds) > 1
    met = longest <= timeout_seconds and same_end_state is not False if continued else margin >= MARGIN_TARGET
    return {
        "target": f"{stage} {size}: within the function's Timeout with >= {MARGIN_TARGET:g}x margin, or continued "
                  "across invocations",
        "timeout_seconds": timeout_seconds, "wall_seconds": sum(invocation_seconds), "longest_invocation_seconds":
        longest, "invocations": len(invocation_seconds), "margin": margin, "threshold": MARGIN_TARGET,
        "continued": continued, "extrapolated_from": extrapolated_from, "same_end_state": same_end_state, "met": met,
    }
