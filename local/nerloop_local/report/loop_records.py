"""The loop's own records, read (never written) for the report: from a state table and a data bucket,
whether a local workspace's or a deployed stack's.

- versions: the state table's VERSION items (status, Comprehend's evaluation as the detect stage
  stored it from DescribeEntityRecognizer, the training snapshot's statistics) and the active one;
  for each snapshot, how many of its documents came from reviews merged before the version was
  recorded (its `documents.txt` read line by line and hashed as the pool hashes documents);
- human loops: the LOOP items (document, version, status, when started and finished);
- reviews: each Completed loop's A2I output (`reviews/<flow definition>/YYYY/MM/DD/hh/mm/ss/<loop>/
  output.json`, the flow definition's S3OutputPath in template.yaml; the layout and `humanAnswers`, a
  list of the workers' responses: https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-output-data.html).
  Its `inputContent` is what the
  route stage sent (`nerloop.a2i.build_input_content`): the text and the model's `predictions` with
  their scores; its `humanAnswers` hold one answer per worker (`workerId`, `submissionTime`). Each
  worker's spans are checked by the merge stage's own reader (`nerloop.review_answers`); the
  consolidated spans are the gold set's when the gold document still comes from this loop (what the
  merge wrote, under whatever rule it consolidates several answers by), else the merge's reading of
  the output.

A file that cannot be read is not fatal: it is listed in `problems` (file: reason) and left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from nerloop import review_answers
from nerloop.constants import DOCUMENTS_FILE, REVIEW_OUTPUT_PREFIX
from nerloop.documents import Span, document_hash
from nerloop.errors import InvalidRecord
from nerloop.review_consensus import TIED_REASON
from nerloop.state import Loop, StateTable, Version
from nerloop_local.report.review_analysis import ModelSpan

OUTPUT_FILE = "output.json"
REVIEW_ORIGIN = "review:"  # a gold document's origin when a human loop's answer wrote it (merge stage)


@dataclass(frozen=True)
class WorkerAnswer:
    """One worker's answer to a human loop, as the merge stage's reader validates it."""

    worker: str
    submitted: datetime | None
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class ReviewRecord:
    """A completed human loop: what the model proposed, what each worker answered, what was merged."""

    loop: str
    doc: str
    version: str
    text: str
    model: tuple[ModelSpan, ...]
    consolidated: tuple[Span, ...]
    answers: tuple[WorkerAnswer, ...]
    started: datetime | None
    finished: datetime | None
    output_key: str


@dataclass(frozen=True)
class VersionRecord:
    """A recognizer version as the state table holds it, with the reviews its snapshot trained on."""

    version: Version
    active: bool
    reviews_trained_on: int | None  # None when the snapshot could not be read


@dataclass
class LoopRecords:
    """Everything the live report reads."""

    versions: list[VersionRecord]
    loops: list[Loop]
    reviews: list[ReviewRecord]
    problems: list[str] = field(default_factory=list)
    # Loops whose reviewers tied (merge recorded them Failed, nothing entered the gold set): their answers
    # count for agreement between reviewers, never for what the reviewers did to the model's spans.
    tied: list[ReviewRecord] = field(default_factory=list)


def parse_time(value: str) -> datetime | None:
    """An ISO 8601 time (`Z` or an offset; A2I writes milliseconds, the state table seconds) in UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def version_order(name: str) -> tuple[int, str]:
    """v2 before v10; other names after the numbered ones, by name."""
    digits = name[1:] if name.startswith("v") else ""
    return (int(digits), "") if digits.isdigit() else (1 << 30, name)


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield str(item["Key"])


def output_keys(s3: Any, bucket: str) -> dict[str, str]:
    """Loop name → the key of its output.json (the folder above the file is the loop's name)."""
    found: dict[str, str] = {}
    for key in _keys(s3, bucket, REVIEW_OUTPUT_PREFIX):
        parts = key.split("/")
        if len(parts) >= 3 and parts[-1] == OUTPUT_FILE:
            found[parts[-2]] = key
    return found


def model_spans(content: dict[str, Any], file: str) -> tuple[ModelSpan, ...]:
    """The model's spans the worker was shown: the input's `predictions` of the types offered as labels."""
    labels = {item.get("label") for item in content.get("labels") or [] if isinstance(item, dict)}
    spans = []
    for index, item in enumerate(content.get("predictions") or []):
        try:
            span = ModelSpan(int(item["startOffset"]), int(item["endOffset"]), str(item["label"]),
                             float(item["score"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRecord(file, None, f"inputContent.predictions[{index}]: not a scored span ({exc})") from exc
        if not 0.0 <= span.score <= 1.0:
            raise InvalidRecord(file, None, f"inputContent.predictions[{index}]: score {span.score} outside 0-1")
        if span.type in labels:
            spans.append(span)
    return tuple(spans)


def read_review(s3: Any, bucket: str, key: str, loop: Loop, state: StateTable,
                problems: list[str] | None = None, consolidate: bool = True) -> ReviewRecord:
    """One completed loop's review; InvalidRecord (naming the file) when its output cannot be used. A
    worker's answer the merge stage's reader refuses is left out and said in `problems`."""
    file = f"s3://{bucket}/{key}"
    output = review_answers.parse_output(s3.get_object(Bucket=bucket, Key=key)["Body"].read(), file)
    text = review_answers.input_text(output, file)
    content = output.input()
    types = [str(item["label"]) for item in content.get("labels") or [] if isinstance(item, dict) and "label" in item]
    answers: list[WorkerAnswer] = []
    for answer in output.humanAnswers or []:
        alone = output.model_copy(update={"humanAnswers": [answer]})
        try:
            checked = review_answers.review_answer(alone, file, text, types)
        except InvalidRecord as exc:
            if problems is not None:
                problems.append(f"{exc} (worker {answer.workerId or '?'}; left out)")
            continue
        answers.append(WorkerAnswer(answer.workerId or f"worker {len(answers) + 1}", parse_time(answer.submissionTime),
                                    tuple(checked.spans)))
    gold = state.gold.get(loop.doc) if consolidate else None
    if not consolidate:  # the reviewers tied: nothing was merged
        consolidated: tuple[Span, ...] = ()
    elif gold is not None and gold.origin == f"{REVIEW_ORIGIN}{loop.name}":
        consolidated = tuple(gold.spans)
    else:  # relabelled since (a later review or labeling job): the merge's own reading of this answer
        consolidated = tuple(review_answers.review_answer(output, file, text, types).spans)
    return ReviewRecord(loop.name, loop.doc, loop.version, text, model_spans(content, file), consolidated,
                        tuple(answers), parse_time(loop.started_at), parse_time(loop.finished_at), key)


def snapshot_documents(s3: Any, bucket: str, snapshot: str) -> set[str] | None:
    """The document hashes of a training snapshot's documents file; None when it cannot be read."""
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{snapshot}{DOCUMENTS_FILE}")["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
            return None
        raise
    return {document_hash(line.decode("utf-8")) for line in body.iter_lines() if line}


def reviews_in_snapshot(documents: set[str], loops: list[Loop], recorded: datetime | None) -> int:
    """Snapshot documents whose review (a Completed loop) finished no later than the version was recorded."""
    reviewed = {loop.doc for loop in loops if loop.status == "Completed"
                and (recorded is None or ((end := parse_time(loop.finished_at)) is not None and end <= recorded))}
    return len(documents & reviewed)


def read_records(table: Any, s3: Any, bucket: str) -> LoopRecords:
    """Read the loop's records from a state table (a boto3 DynamoDB Table) and its data bucket (an S3
    client and the bucket's name). Reads only."""
    state = StateTable(table)
    active = state.versions.active()
    loops = sorted(state.loops.list(), key=lambda loop: (loop.started_at, loop.name))
    problems: list[str] = []
    versions = []
    for version in sorted(state.versions.list(), key=lambda v: version_order(v.version)):
        documents = snapshot_documents(s3, bucket, version.snapshot) if version.snapshot else None
        trained_on = None if documents is None else reviews_in_snapshot(documents, loops,
                                                                        parse_time(version.created_at))
        versions.append(VersionRecord(version, bool(active and active[0] == version.version), trained_on))
    outputs = output_keys(s3, bucket)
    reviews, tied = [], []
    for loop in loops:
        if loop.status == "Failed" and TIED_REASON in loop.failure and loop.name in outputs:
            try:
                tied.append(read_review(s3, bucket, outputs[loop.name], loop, state, problems, consolidate=False))
            except InvalidRecord as exc:
                problems.append(str(exc))
            continue
        if loop.status != "Completed":
            continue
        key = outputs.get(loop.name)
        if key is None:
            problems.append(f"human loop {loop.name}: Completed, but no {OUTPUT_FILE} under s3://{bucket}/"
                            f"{REVIEW_OUTPUT_PREFIX}")
            continue
        try:
            reviews.append(read_review(s3, bucket, key, loop, state, problems))
        except InvalidRecord as exc:
            problems.append(str(exc))
    return LoopRecords(versions, loops, reviews, problems, tied)


__all__ = [
    "LoopRecords",
    "ReviewRecord",
    "VersionRecord",
    "WorkerAnswer",
    "model_spans",
    "output_keys",
    "parse_time",
    "read_records",
    "read_review",
    "reviews_in_snapshot",
    "version_order",
]
