"""Stage 6 — route: a detection job's output.tar.gz landed in S3.

Every document of the output is either accepted (all its entities are confident) or sent to one
A2I human loop for the whole document (any entity below the threshold). Under a review budget the
uncertain documents with the most expected errors go first, and room the uncertain ones leave goes
to the documents most likely to hold what the model misses, near-duplicates of a chosen document
passed over (`nerloop.routing`); uncertain documents over budget stay waiting for the next model
version.
Gold documents and documents already in review are left alone, unless this version's routing sent
them to review (an output routed again decides as before). Bad records are quarantined and
the rest goes on: records in = accepted + sent to review + over budget + skipped + quarantined.

Requests come in batches, not per document: the pool items of 100 records are read in one
BatchGetItem, the decided ones changed in transactions of up to 100 conditional updates (a document
that turned gold meanwhile stays gold), the human loops of the batch recorded in one transaction
before A2I starts them one by one. A text that recurs on another line is decided after the batch
holding the first one is written. StartHumanLoop calls go a few at a time at a bounded pace
(`nerloop.loop_starter`); when the account's quota on loops in progress refuses one, the documents
not yet started wait for a later version (counted `over_quota`).
"""

from __future__ import annotations

import json
import threading
from collections import Counter

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from nerloop.a2i import ALREADY_STARTED, build_input_content, loop_name
from nerloop.aws import Aws
from nerloop.comprehend_output import (
    DetectedEntity,
    DocumentEntities,
    DocumentFailure,
    check_against_text,
    iter_detection_output,
    job_id_from_key,
)
from nerloop.continuation import publish_continuation
from nerloop.deadline import Deadline
from nerloop.documents import document_hash
from nerloop.errors import InvalidRecord, UnknownJob
from nerloop.idempotency import run_stage_once
from nerloop.input_documents import open_input_documents
from nerloop.loop_starter import LOOP_STARTS_PER_SECOND, NOT_TRIED, QUOTA_EXCEEDED, Pace, start_loops
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.route_checkpoint import Candidate, restore_router, save_router
from nerloop.routing import (
    ACCEPT,
    SHORTLIST_FACTOR,
    ReviewBudget,
    expected_errors,
    fill_priority,
    pick_diverse,
    route_decision,
    word_set,
)
from nerloop.settings import Settings, require
from nerloop.stages.results import Routed, RouteResult, RoutingContinued
from nerloop.state import ACCEPTED, GOLD, IN_REVIEW, WAITING, Job, Loop, PoolDocument, StateTable, now

LOOP_IN_PROGRESS = "InProgress"
POOL_BATCH = 100  # records whose pool items are read in one request (BatchGetItem's limit)
LOOP_CHUNK = 100  # the budget's loops started between two looks at the deadline


def route_detection_output(
    bucket: str, key: str, aws: Aws, settings: Settings, etag: str = "", *, deadline: Deadline | None = None
) -> RouteResult:
    """Route the documents of the detection output at s3://`bucket`/`key`, once per object version.

    Raises UnknownJob when the job is not recorded, SettingsError without FLOW_DEFINITION_ARN, and
    InvalidRecord (after quarantining it) when the archive is unreadable. When `deadline` comes
    first, the result is `RoutingContinued` (the continuation's sequence and checkpoint), else `Routed`.
    """
    job_id = job_id_from_key(key)
    state = StateTable(aws.table)
    job = state.jobs.get(job_id)
    if job is None:
        raise UnknownJob(f"detection job {job_id} (output {key}) is not recorded in the state table")
    flow_definition_arn = require(settings.flow_definition_arn, "FLOW_DEFINITION_ARN")
    if not etag:
        etag = str(aws.s3.head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')
    router = Router(bucket, key, job, state, aws, settings, flow_definition_arn, deadline or Deadline.never())
    router.etag = etag
    return run_stage_once(settings.state_table, "route", {"bucket": bucket, "key": key, "etag": etag}, router.run,
                          RoutingContinued, Routed)


def continue_routing(key: dict[str, str], sequence: int, checkpoint: str, aws: Aws, settings: Settings, *,
                     deadline: Deadline | None = None) -> RouteResult:
    """Go on routing the output of business `key` (bucket, key, etag) from `checkpoint`; once per
    (key, `sequence`), so a continuation delivered twice has one effect."""
    state = StateTable(aws.table)
    job_id = job_id_from_key(key["key"])
    job = state.jobs.get(job_id)
    if job is None:
        raise UnknownJob(f"detection job {job_id} (output {key['key']}) is not recorded in the state table")
    flow_definition_arn = require(settings.flow_definition_arn, "FLOW_DEFINITION_ARN")
    router = Router(key["bucket"], key["key"], job, state, aws, settings, flow_definition_arn,
                    deadline or Deadline.never(), sequence=sequence)
    router.etag = key["etag"]
    return run_stage_once(settings.state_table, "route-continued", {**key, "sequence": str(sequence)},
                          lambda: router.run(checkpoint), RoutingContinued, Routed)


# --- routing one output ----------------------------------------------------------------------------


class Router:
    """Routes one detection output; `run` is the effect guarded by the idempotency key."""

    def __init__(self, bucket: str, key: str, job: Job, state: StateTable, aws: Aws, settings: Settings,
                 flow_definition_arn: str, deadline: Deadline | None = None, sequence: int = 0) -> None:
        self.bucket = bucket
        self.key = key
        self.job = job
        self.state = state
        self.aws = aws
        self.settings = settings
        self.flow_definition_arn = flow_definition_arn
        self.version = job.version
        # Written on each document this routing decides: the detection cap's policy reads it
        # (nerloop.detection_policy: never detected, waiting longest, once uncertain, stalest).
        self.detected_at = now()
        self.counts: Counter[str] = Counter()
        self.quarantine = Quarantine(stage="route", source=job.job_id)
        self.budget: ReviewBudget[Candidate] = ReviewBudget(settings.review_budget, SHORTLIST_FACTOR)
        # The confident documents most worth the budget's room the uncertain ones leave (none without
        # a budget: then every uncertain document goes to review, and only those).
        self.fill: ReviewBudget[Candidate] = ReviewBudget(settings.review_budget, SHORTLIST_FACTOR)
        # Records waiting for their pool items (read POOL_BATCH at a time), each document once.
        self.pending: list[tuple[DocumentEntities | DocumentFailure, str, str]] = []
        self.pending_docs: set[str] = set()
        self.to_review: list[Candidate] = []  # of the pending records, without a review budget
        # Pool changes not yet written, each (doc, status, attributes): marks are made unless the
        # document is gold by then, waits unless it is gold or in review.
        self.marks: list[tuple[str, str, dict[str, str]]] = []
        self.waits: list[tuple[str, str, dict[str, str]]] = []
        # One pace for every StartHumanLoop of the run, and whether A2I's loop quota was reached.
        self.pace = Pace(LOOP_STARTS_PER_SECOND)
        self.quota_reached = threading.Event()
        # Going on in a fresh invocation when time runs short (nerloop.route_checkpoint).
        self.deadline = deadline or Deadline.never()
        self.sequence = sequence  # 0 for the run the output's event started, n for its n-th continuation
        self.etag = ""  # of the output's object version: with bucket and key, the run's business key
        self.records_done = 0  # archive records routed (or quarantined) and written
        self.scanned = False  # every record of the archive routed
        self.spent = 0  # of the budget's chosen documents, those whose loops are started

    def run(self, checkpoint: str | None = None) -> RouteResult:
        with open_input_documents(self.aws.s3, self.settings.data_bucket, self.job.input_key) as documents:
            self.documents = documents
            self.seen_lines = bytearray(len(documents))
            if checkpoint is not None:
                restore_router(self, checkpoint)
                logger.info("routing goes on", job=self.job.job_id, sequence=self.sequence,
                            records=self.records_done, spent=self.spent)
            if not self.scanned and not self.scan():
                return self.stop()
            if not self.spend_budget():
                return self.stop()
            self.write_pool()
        self.state.jobs.update(self.job.job_id, routed_at=now(), routed_key=self.key,
                              routing=json.dumps(dict(self.counts), sort_keys=True))
        quarantine_key = self.quarantine.write(self.aws.s3, self.settings.data_bucket)
        routed = sum(self.counts[k] for k in ("accepted", "loops_started", "loops_existing", "over_budget",
                                              "over_quota"))
        metrics.add_metric(name="DocumentsRouted", unit=MetricUnit.Count, value=routed)
        metrics.add_metric(name="LoopsStarted", unit=MetricUnit.Count, value=self.counts["loops_started"])
        metrics.add_metric(name="DocumentsAccepted", unit=MetricUnit.Count, value=self.counts["accepted"])
        counts = self.counts
        summary = Routed(
            job=self.job.job_id, version=self.version, archive=self.key, records=counts["records"],
            accepted=counts["accepted"], loops_started=counts["loops_started"],
            loops_existing=counts["loops_existing"], over_budget=counts["over_budget"], skipped=counts["skipped"],
            quarantined=counts["quarantined"], document_failures=counts["document_failures"],
            filled=counts["filled"], over_quota=counts["over_quota"], quarantine=quarantine_key,
        )
        logger.info("detection output routed", **summary.to_dict())
        return summary

    def scan(self) -> bool:
        """Route the archive's records from the first not yet routed; False when the deadline came
        first (everything decided so far is written)."""
        body = self.aws.s3.get_object(Bucket=self.bucket, Key=self.key)["Body"]
        records = iter_detection_output(body, self.key)
        skip, progress = self.records_done, 0
        while True:
            try:
                record = next(records)
            except StopIteration:
                break
            except InvalidRecord as exc:  # the archive itself: nothing more can be read
                logger.exception("detection output unreadable", archive=self.key, job=self.job.job_id)
                self.flush()  # the records read before the damage are routed, as they came
                self.quarantine.reject(exc)
                self.quarantine.write(self.aws.s3, self.settings.data_bucket)
                raise
            if skip:  # routed by an earlier invocation
                skip -= 1
                continue
            self.counts["records"] += 1
            self.route_record(record)
            progress += 1
            if not self.pending:  # a batch written: a clean place to stop
                self.records_done += progress
                progress = 0
                if self.deadline.expired():
                    return False
        self.flush()
        self.records_done += progress
        self.scanned = True
        return True

    def stop(self) -> RoutingContinued:
        """Checkpoint and ask for a continuation (every decision so far is written)."""
        self.write_pool()
        sequence = self.sequence + 1
        checkpoint = save_router(self, sequence)
        self.quarantine.close()
        continued = publish_continuation(self.aws, "route", {"bucket": self.bucket, "key": self.key,
                                                             "etag": self.etag}, sequence, checkpoint)
        result = RoutingContinued(job=self.job.job_id, version=self.version, archive=self.key,
                                  records=self.counts["records"], continued=continued)
        logger.info("routing continues in a new invocation", **result.to_dict())
        return result

    # --- one record ------------------------------------------------------------------------------

    def route_record(self, record: DocumentEntities | DocumentFailure | InvalidRecord) -> None:
        """Check a record against the job's input; a valid one waits for its pool item to be read
        together with those of the next records (`flush`)."""
        if isinstance(record, InvalidRecord):
            self.reject(record)
            return
        text = self.document_text(record)
        if text is None:
            return
        if isinstance(record, DocumentFailure):
            self.reject(record.as_invalid_record())
            self.counts["document_failures"] += 1
        else:
            problem = check_against_text(record, text)
            if problem is not None:
                self.reject(problem)
                return
        doc = document_hash(text)
        if doc in self.pending_docs:  # the same text on another line: decide after the first is done
            self.flush()
        self.pending.append((record, text, doc))
        self.pending_docs.add(doc)
        if len(self.pending) >= POOL_BATCH:
            self.flush()

    def flush(self) -> None:
        """Route the pending records, in their order, with one read of their pool items."""
        if not self.pending:
            return
        items = self.state.pool.get_items(self.pending_docs)
        for record, text, doc in self.pending:
            item = items.get(doc)
            self.route_document(record, text, doc, self.state.pool.document(item) if item else None)
        self.pending.clear()
        self.pending_docs.clear()
        self.write_pool()  # the accepted ones, before the loops of the batch start
        if self.to_review:
            self.review_many(self.to_review)
            self.to_review.clear()
            self.write_pool()

    def spend_budget(self) -> bool:
        """Open the budget's loops: the uncertain documents first, then the room they leave for the
        most promising confident ones; the uncertain rest wait, the confident rest are accepted.
        LOOP_CHUNK loops at a time, from the first not yet started; False when the deadline came first.
        The choice depends only on the short lists, so a continuation makes the same one."""
        if self.budget.unlimited:
            return True
        chosen, passed_over = pick_diverse(self.budget.selected(), self.budget.limit,
                                           lambda candidate: word_set(candidate.text))
        room = self.budget.limit - len(chosen)
        filled, unused = pick_diverse(self.fill.selected(), room, lambda candidate: word_set(candidate.text))
        # A text on two lines of the input is one document: reviewed once, and then nothing else.
        in_review = {candidate.doc: candidate for candidate in chosen + filled}
        candidates = list(in_review.values())
        started_here = self.spent
        while self.spent < len(candidates):
            if self.spent > started_here and self.deadline.expired():  # each invocation starts a chunk
                return False
            self.review_many(candidates[self.spent:self.spent + LOOP_CHUNK])
            self.write_pool()
            self.spent = min(len(candidates), self.spent + LOOP_CHUNK)
        self.counts["filled"] += len(in_review) - len({candidate.doc for candidate in chosen})
        for candidate in passed_over:
            if candidate.doc not in in_review:
                self.over_budget(candidate)
        for candidate in unused:
            if candidate.doc not in in_review:
                self.accept(candidate.doc, candidate.entities)
        return True

    def route_document(self, record: DocumentEntities | DocumentFailure, text: str, doc: str,
                       pool: PoolDocument | None) -> None:
        if isinstance(record, DocumentFailure):
            self.keep_waiting(doc)
            return
        if pool is None or (pool.status in (GOLD, IN_REVIEW) and not self.reviewed_here(pool)):
            self.counts["skipped"] += 1
            logger.debug("document skipped", document=doc, line=record.line,
                         status=pool.status if pool else "not in the pool")
            return
        candidate = Candidate(doc, text, record.entities, record.line)
        if route_decision(record.entities, self.settings.confidence_threshold) == ACCEPT:
            if self.fill.unlimited:
                self.accept(doc, record.entities)
            elif (left := self.fill.offer(fill_priority(record.entities, text), record.line, candidate)) is not None:
                self.accept(left.doc, left.entities)
            return
        if self.budget.unlimited:
            self.to_review.append(candidate)
            return
        over = self.budget.offer(expected_errors(record.entities), record.line, candidate)
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

    def keep_waiting(self, doc: str, uncertain: bool = False) -> None:
        """Leave a document waiting, but seen by this version so the next version picks it up (unless
        it is gold or in review by then: the write is conditional, written with the next batch)."""
        detected = {"seen_by": self.version, "detected_at": self.detected_at}
        self.waits.append((doc, WAITING, {**detected, "uncertain_by": self.version} if uncertain else detected))

    def over_budget(self, candidate: Candidate) -> None:
        self.counts["over_budget"] += 1
        self.keep_waiting(candidate.doc, uncertain=True)
        logger.debug("document over the review budget", document=candidate.doc, budget=self.budget.limit)

    def accept(self, doc: str, detected: tuple[DetectedEntity, ...]) -> None:
        entities = [{"begin": e.begin, "end": e.end, "type": e.type, "score": e.score} for e in detected]
        self.mark(doc, ACCEPTED, seen_by=self.version, detected_at=self.detected_at, job=self.job.job_id,
                  entities=json.dumps(entities))
        self.counts["accepted"] += 1

    def mark(self, doc: str, status: str, **attributes: str) -> None:
        """Set a document's status; written by `write_pool`, with the batch's other changes."""
        self.marks.append((doc, status, attributes))

    def write_pool(self) -> None:
        """Write the pool status changes decided so far (a batch's worth: the documents differ).
        Conditional, so a document that became gold meanwhile (a merge, a labeling job) stays gold."""
        if self.marks:
            self.state.pool.mark_many(self.marks, unless=(GOLD,))
            self.marks.clear()
        if self.waits:
            self.state.pool.mark_many(self.waits, unless=(GOLD, IN_REVIEW))
            self.waits.clear()

    def review_many(self, candidates: list[Candidate]) -> None:
        """Open one human loop for each document (once: the name is derived from document and version).

        The loops of the batch are recorded in one request before any is started, then started one
        a few at a time; a retry after a failure half way finds its loops recorded and still in
        progress, and starts them (A2I answers for those it already has)."""
        ready: list[tuple[Candidate, str, str]] = []
        for candidate in candidates:
            try:
                content = build_input_content(candidate.doc, candidate.text, candidate.entities, self.version,
                                              self.settings.entity_types)
            except InvalidRecord as exc:
                self.reject(exc)
                self.keep_waiting(candidate.doc)
                continue
            ready.append((candidate, loop_name(candidate.doc, self.version, scope=self.flow_definition_arn),
                          content))
        if not ready:
            return
        recorded = self.state.loops.put_many(
            [Loop(name=name, doc=candidate.doc, version=self.version, status=LOOP_IN_PROGRESS)
             for candidate, name, _ in ready])
        to_start: list[tuple[Candidate, str, str]] = []
        for (candidate, name, content), new in zip(ready, recorded, strict=True):
            if not new:
                existing = self.state.loops.get(name)
                if existing is not None and existing.status != LOOP_IN_PROGRESS:
                    # This version's review of the document already ended; the next version sends it again.
                    self.counts["skipped"] += 1
                    logger.debug("human loop already finished", loop=name, document=candidate.doc,
                                 status=existing.status)
                    continue
            to_start.append((candidate, name, content))
        # A few StartHumanLoop calls at a time, at a bounded pace (nerloop.loop_starter); what each
        # call ended with is then handled here, in order, on this thread.
        outcomes = start_loops(self.aws.a2i, self.flow_definition_arn,
                               [(name, content) for _, name, content in to_start],
                               pace=self.pace, quota_reached=self.quota_reached)
        for (candidate, name, _), outcome in zip(to_start, outcomes, strict=True):
            self.loop_started(candidate, name, outcome)

    def loop_started(self, candidate: Candidate, name: str, outcome: str | ClientError) -> None:
        doc = candidate.doc
        error = outcome.response.get("Error", {}) if isinstance(outcome, ClientError) else {}
        if outcome == NOT_TRIED or error.get("Code") == QUOTA_EXCEEDED:
            # The account's quota on loops in progress: the document waits for a later version.
            self.state.loops.finish(name, "Failed", failure=f"not started: {QUOTA_EXCEEDED}")
            self.counts["over_quota"] += 1
            self.keep_waiting(doc)
            return
        if isinstance(outcome, ClientError):
            if error.get("Code") != "ValidationException":
                raise outcome  # throttled past the retries, access or configuration: let the event be retried
            reason = f"A2I refused the loop: {error.get('Code')}: {error.get('Message', '')}"
            self.state.loops.finish(name, "Failed", failure=reason)
            self.reject(InvalidRecord(f"human loop {name}", None, reason))
            self.keep_waiting(doc)
            return
        # Written with the batch: a crash before then is the case of a loop started and the pool not
        # yet marked, which the retry handles (the loop is recorded; A2I answers it already exists).
        uncertain = route_decision(candidate.entities, self.settings.confidence_threshold) != ACCEPT
        self.mark(doc, IN_REVIEW, loop=name, seen_by=self.version, detected_at=self.detected_at,
                  **({"uncertain_by": self.version} if uncertain else {}))
        if outcome == ALREADY_STARTED:
            self.counts["loops_existing"] += 1
        else:
            self.counts["loops_started"] += 1
        logger.debug("human loop started", loop=name, document=doc,
                     score=min((e.score for e in candidate.entities), default=None), outcome=outcome)
