"""Stage 6 — route: a detection job's output.tar.gz landed in S3.

Every document of the output is either accepted (all its entities are confident) or sent to one
A2I human loop for the whole document (any entity below the threshold), least confident first
when a review budget applies, near-duplicates of a chosen document passed over
(`nerloop.routing.pick_diverse`); documents over budget stay waiting for the next model version.
Gold documents and documents already in review are left alone, unless this version's routing sent
them to review (an output routed again decides as before). Bad records are quarantined and
the rest goes on: records in = accepted + sent to review + over budget + skipped + quarantined.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from nerloop.a2i import ALREADY_STARTED, build_input_content, loop_name, start_human_loop
from nerloop.aws import Aws
from nerloop.comprehend_output import (
    DetectedEntity,
    DocumentEntities,
    DocumentFailure,
    check_against_text,
    iter_detection_output,
    job_id_from_key,
)
from nerloop.documents import document_hash
from nerloop.errors import InvalidRecord, UnknownJob
from nerloop.idempotency import run_once
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.routing import ACCEPT, SHORTLIST_FACTOR, ReviewBudget, pick_diverse, route_decision, word_set
from nerloop.settings import Settings, require
from nerloop.state import ACCEPTED, GOLD, IN_REVIEW, WAITING, Job, Loop, PoolDocument, StateTable, now

LOOP_IN_PROGRESS = "InProgress"


def route_detection_output(
    bucket: str, key: str, aws: Aws, settings: Settings, etag: str = ""
) -> dict[str, Any]:
    """Route the documents of the detection output at s3://`bucket`/`key`, once per object version.

    Raises UnknownJob when the job is not recorded, SettingsError without FLOW_DEFINITION_ARN, and
    InvalidRecord (after quarantining it) when the archive is unreadable.
    """
    job_id = job_id_from_key(key)
    state = StateTable(aws.table)
    job = state.get_job(job_id)
    if job is None:
        raise UnknownJob(f"detection job {job_id} (output {key}) is not recorded in the state table")
    flow_definition_arn = require(settings.flow_definition_arn, "FLOW_DEFINITION_ARN")
    if not etag:
        etag = str(aws.s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
    router = Router(bucket, key, job, state, aws, settings, flow_definition_arn)
    return run_once(settings.state_table, "route", {"bucket": bucket, "key": key, "etag": etag}, router.run)


# --- the job's input documents -------------------------------------------------------------------


class InputDocuments:
    """The job's ONE_DOC_PER_LINE input spooled to a file, with an index of where each line starts.

    Memory holds 8 bytes a line, not the text.
    """

    def __init__(self, spool: IO[bytes], name: str) -> None:
        self.spool = spool
        self.name = name  # the file name Comprehend reports in `File`
        self.starts = array("q")
        spool.seek(0)
        position = 0
        for raw in spool:
            self.starts.append(position)
            position += len(raw)

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, line: int) -> str:
        """The document on 0-based `line` (IndexError when there is no such line)."""
        if not 0 <= line < len(self.starts):
            raise IndexError(line)
        self.spool.seek(self.starts[line])
        raw = self.spool.readline()
        return raw.decode("utf-8").removesuffix("\n").removesuffix("\r")


@contextmanager
def open_input_documents(s3: Any, bucket: str, key: str) -> Iterator[InputDocuments]:
    with tempfile.TemporaryFile("w+b") as spool:
        s3.download_fileobj(bucket, key, spool)
        yield InputDocuments(spool, posixpath.basename(key))


# --- routing one output ----------------------------------------------------------------------------


@dataclass
class Candidate:
    """A document that needs review."""

    doc: str
    text: str
    entities: tuple[DetectedEntity, ...]
    line: int


class Router:
    """Routes one detection output; `run` is the effect guarded by the idempotency key."""

    def __init__(self, bucket: str, key: str, job: Job, state: StateTable, aws: Aws, settings: Settings,
                 flow_definition_arn: str) -> None:
        self.bucket = bucket
        self.key = key
        self.job = job
        self.state = state
        self.aws = aws
        self.settings = settings
        self.flow_definition_arn = flow_definition_arn
        self.version = job.version
        self.counts: Counter[str] = Counter()
        self.quarantine = Quarantine(stage="route", source=job.job_id)
        self.budget: ReviewBudget[Candidate] = ReviewBudget(settings.review_budget, SHORTLIST_FACTOR)

    def run(self) -> dict[str, Any]:
        with open_input_documents(self.aws.s3, self.settings.data_bucket, self.job.input_key) as documents:
            self.documents = documents
            self.seen_lines = bytearray(len(documents))
            body = self.aws.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"]
            records = iter_detection_output(body, self.key)
            while True:
                try:
                    record = next(records)
                except StopIteration:
                    break
                except InvalidRecord as exc:  # the archive itself: nothing more can be read
                    logger.exception("detection output unreadable", archive=self.key, job=self.job.job_id)
                    self.quarantine.reject(exc)
                    self.quarantine.write(self.aws.s3, self.settings.data_bucket)
                    raise
                self.counts["records"] += 1
                self.route_record(record)
            chosen, passed_over = pick_diverse(self.budget.selected(), self.budget.limit,
                                               lambda candidate: word_set(candidate.text))
            for candidate in chosen:
                self.review(candidate)
            for candidate in passed_over:
                self.over_budget(candidate)
        self.state.update_job(self.job.job_id, routed_at=now(), routed_key=self.key,
                              routing=json.dumps(dict(self.counts), sort_keys=True))
        quarantine_key = self.quarantine.write(self.aws.s3, self.settings.data_bucket)
        routed = sum(self.counts[k] for k in ("accepted", "loops_started", "loops_existing", "over_budget"))
        metrics.add_metric(name="DocumentsRouted", unit=MetricUnit.Count, value=routed)
        metrics.add_metric(name="LoopsStarted", unit=MetricUnit.Count, value=self.counts["loops_started"])
        metrics.add_metric(name="DocumentsAccepted", unit=MetricUnit.Count, value=self.counts["accepted"])
        summary: dict[str, Any] = {
            "job": self.job.job_id,
            "version": self.version,
            "archive": self.key,
            **{name: self.counts[name] for name in (
                "records", "accepted", "loops_started", "loops_existing", "over_budget", "skipped",
                "quarantined", "document_failures")},
            "quarantine": quarantine_key,
        }
        logger.info("detection output routed", **summary)
        return summary

    # --- one record ------------------------------------------------------------------------------

    def route_record(self, record: DocumentEntities | DocumentFailure | InvalidRecord) -> None:
        if isinstance(record, InvalidRecord):
            self.reject(record)
            return
        text = self.document_text(record)
        if text is None:
            return
        if isinstance(record, DocumentFailure):
            self.reject(record.as_invalid_record())
            self.counts["document_failures"] += 1
            self.keep_waiting(document_hash(text))
            return
        problem = check_against_text(record, text)
        if problem is not None:
            self.reject(problem)
            return
        doc = document_hash(text)
        pool = self.state.get_pool(doc)
        if pool is None or (pool.status in (GOLD, IN_REVIEW) and not self.reviewed_here(pool)):
            self.counts["skipped"] += 1
            logger.info("document skipped", document=doc, line=record.line,
                        status=pool.status if pool else "not in the pool")
            return
        if route_decision(record.entities, self.settings.confidence_threshold) == ACCEPT:
            self.accept(doc, record)
            return
        candidate = Candidate(doc, text, record.entities, record.line)
        if self.budget.unlimited:
            self.review(candidate)
            return
        over = self.budget.offer(record.min_score or 0.0, record.line, candidate)
        if over is not None:
            self.over_budget(over)

    def reviewed_here(self, pool: PoolDocument) -> bool:
        """True when the document went to review from this version's routing (its loop is still
        open, or was merged since). An output routed again after a failure half way then makes the
        same choices as the first attempt, and the budget is not spent twice."""
        return pool.loop == loop_name(pool.doc, self.version, scope=self.flow_definition_arn)

    def document_text(self, record: DocumentEntities | DocumentFailure) -> str | None:
        """The text of the record's input line; None (and the record quarantined) when it has none."""
        if record.file and record.file != self.documents.name:
            self.reject(InvalidRecord(record.source, record.record_line,
                                      f"File {record.file!r} is not the job's input {self.documents.name!r}"))
            return None
        try:
            text = self.documents.text(record.line)
        except IndexError:
            self.reject(InvalidRecord(record.source, record.record_line,
                                      f"Line {record.line} is not in the job's input "
                                      f"({len(self.documents)} documents)"))
            return None
        except UnicodeDecodeError as exc:
            self.reject(InvalidRecord(record.source, record.record_line,
                                      f"input line {record.line} is not UTF-8: {exc.reason}"))
            return None
        if self.seen_lines[record.line]:
            self.reject(InvalidRecord(record.source, record.record_line,
                                      f"a second record for input line {record.line}"))
            return None
        self.seen_lines[record.line] = 1
        return text

    # --- outcomes --------------------------------------------------------------------------------

    def reject(self, error: InvalidRecord) -> None:
        self.quarantine.reject(error)
        self.counts["quarantined"] += 1

    def keep_waiting(self, doc: str) -> None:
        """Leave a document waiting, but seen by this version so the next version picks it up."""
        pool = self.state.get_pool(doc)
        if pool is not None and pool.status not in (GOLD, IN_REVIEW):
            self.state.mark_pool(doc, WAITING, seen_by=self.version)

    def over_budget(self, candidate: Candidate) -> None:
        self.counts["over_budget"] += 1
        self.keep_waiting(candidate.doc)
        logger.info("document over the review budget", document=candidate.doc, budget=self.budget.limit)

    def accept(self, doc: str, record: DocumentEntities) -> None:
        entities = [{"begin": e.begin, "end": e.end, "type": e.type, "score": e.score}
                    for e in record.entities]
        self.state.mark_pool(doc, ACCEPTED, seen_by=self.version, job=self.job.job_id,
                             entities=json.dumps(entities))
        self.counts["accepted"] += 1
        logger.debug("document accepted", document=doc, entities=len(entities))

    def review(self, candidate: Candidate) -> None:
        """Open one human loop for the document (once: the name is derived from document and version)."""
        doc = candidate.doc
        name = loop_name(doc, self.version, scope=self.flow_definition_arn)
        try:
            content = build_input_content(doc, candidate.text, candidate.entities, self.version,
                                          self.settings.entity_types)
        except InvalidRecord as exc:
            self.reject(exc)
            self.keep_waiting(doc)
            return
        if not self.state.put_loop(Loop(name=name, doc=doc, version=self.version, status=LOOP_IN_PROGRESS)):
            existing = self.state.get_loop(name)
            if existing is not None and existing.status != LOOP_IN_PROGRESS:
                # This version's review of the document already ended; the next version sends it again.
                self.counts["skipped"] += 1
                logger.info("human loop already finished", loop=name, document=doc, status=existing.status)
                return
        try:
            outcome = start_human_loop(self.aws.a2i, name, self.flow_definition_arn, content)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") != "ValidationException":
                raise  # throttled past the retries, access or configuration: let the event be retried
            reason = f"A2I refused the loop: {error.get('Code')}: {error.get('Message', '')}"
            self.state.finish_loop(name, "Failed", failure=reason)
            self.reject(InvalidRecord(f"human loop {name}", None, reason))
            self.keep_waiting(doc)
            return
        self.state.mark_pool(doc, IN_REVIEW, loop=name, seen_by=self.version)
        if outcome == ALREADY_STARTED:
            self.counts["loops_existing"] += 1
        else:
            self.counts["loops_started"] += 1
        lowest = min(e.score for e in candidate.entities)
        logger.info("human loop started", loop=name, document=doc, score=lowest, outcome=outcome)
