"""What the route stage keeps when it runs short of time, and how a fresh invocation takes it up.

A checkpoint is written between batches, when every decision made so far is written (pool marks,
loops started): the number of archive records read, the counts, which input lines have had their
record, the quarantine so far, the review budget's short lists, and how many of the budget's chosen
documents have had their loop started. The archive is a tar.gz stream, so the continuation reads it
again from the start and skips the records already routed (reading is not an effect: nothing is
written twice).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

from nerloop.aws import Aws
from nerloop.comprehend_output import DetectedEntity
from nerloop.continuation import checkpoint_prefix, get_checkpoint, put_checkpoint
from nerloop.quarantine import Quarantine
from nerloop.routing import ReviewBudget
from nerloop.settings import Settings
from nerloop.state import Job

STAGE = "route"


@dataclass
class Candidate:
    """A document that needs review."""

    doc: str
    text: str
    entities: tuple[DetectedEntity, ...]
    line: int


class Router(Protocol):
    """What a checkpoint keeps of the route stage's router (nerloop.stages.route.Router)."""

    aws: Aws
    settings: Settings
    job: Job
    key: str
    seen_lines: bytearray
    records_done: int
    scanned: bool
    spent: int
    counts: Counter[str]
    budget: ReviewBudget[Candidate]
    fill: ReviewBudget[Candidate]
    quarantine: Quarantine


def _candidate_row(candidate: Candidate) -> list[Any]:
    return [candidate.doc, candidate.text, [list(entity) for entity in candidate.entities], candidate.line]


def _budget_rows(entries: list[tuple[float, int, Candidate]]) -> list[list[Any]]:
    return [[priority, order, _candidate_row(candidate)] for priority, order, candidate in entries]


def save_router(router: Router, sequence: int) -> str:
    """Write `router`'s checkpoint for continuation `sequence`; its `state.json` key."""
    aws, bucket = router.aws, router.settings.data_bucket
    prefix = checkpoint_prefix(STAGE, router.job.job_id, sequence)
    lines_key = prefix + "seen-lines.bin"
    aws.s3.put_object(Bucket=bucket, Key=lines_key, Body=bytes(router.seen_lines))
    return put_checkpoint(aws, bucket, prefix, {
        "archive": router.key, "records": router.records_done, "scanned": router.scanned,
        "spent": router.spent, "counts": dict(router.counts), "seen_lines": lines_key,
        "budget": _budget_rows(router.budget.entries()), "fill": _budget_rows(router.fill.entries()),
        "quarantine": router.quarantine.save(aws.s3, bucket, prefix),
    })


def restore_router(router: Router, checkpoint: str) -> None:
    """Put back into `router` what `save_router` kept (its input documents are open already)."""
    aws, bucket = router.aws, router.settings.data_bucket
    saved = get_checkpoint(aws, bucket, checkpoint)
    router.records_done = int(saved["records"])
    router.scanned = bool(saved["scanned"])
    router.spent = int(saved["spent"])
    router.counts.update(saved["counts"])
    router.seen_lines = bytearray(aws.s3.get_object(Bucket=bucket, Key=saved["seen_lines"])["Body"].read())

    def entries(rows: list[list[Any]]) -> list[tuple[float, int, Candidate]]:
        return [(priority, order, Candidate(doc, text, tuple(DetectedEntity(*entity) for entity in entities), line))
                for priority, order, (doc, text, entities, line) in rows]

    router.budget.load(entries(saved["budget"]))
    router.fill.load(entries(saved["fill"]))
    router.quarantine.restore(aws.s3, bucket, saved["quarantine"])
