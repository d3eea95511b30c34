"""Stage 7 — merge: an A2I human loop finished.

Completed: the reviewer's spans, checked against the text the reviewer saw, become the document's
gold labels (replacing earlier ones) and the review is counted. With several reviewers per document
(the flow definition's TaskCount) their answers are consolidated first (`nerloop.review_consensus`:
a span kept when more than half of them marked it); the document still counts as one review. An
answer that fails validation, or reviewers who tie, are quarantined and the loop recorded as Failed
(the document goes back to waiting: a later version sends it to a further review). Failed (A2I's
failureCode `Expired` included: a task nobody took within the flow definition's
TaskAvailabilityLifetimeInSeconds), Stopped or rejected: the document goes back to waiting, so a
later model version sends it for review again.

However the loop ended, a training snapshot is then written if a retrain is due
(`nerloop.retrain`): a batch of reviews is complete, or this was the last open loop and reviews
are pending. A2I reports a loop's end on EventBridge as Completed, Failed or Stopped, at least once
(https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-monitor-humanloop-results.html; failure codes:
https://docs.aws.amazon.com/augmented-ai/2019-11-07/APIReference/API_DescribeHumanLoop.html).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit

from nerloop import review_answers
from nerloop.aws import Aws
from nerloop.documents import document_hash
from nerloop.errors import InvalidEvent, InvalidRecord, UnknownJob
from nerloop.event_models.human_loop import HumanLoopDetail
from nerloop.idempotency import run_stage_once
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.retrain import RetrainCheck, RetrainPolicy, check_retrain, merge_review_counted
from nerloop.s3_uri import InvalidS3Uri, split_s3_uri
from nerloop.settings import Settings
from nerloop.stages.results import (
    AnswerRejected,
    LoopAlreadyFinished,
    LoopIgnored,
    LoopUnmerged,
    MergeResult,
    ReviewMerged,
)
from nerloop.state import IN_REVIEW, WAITING, GoldDocument, Loop, StateTable

FINISHED = ("Completed", "Failed", "Stopped")
IN_PROGRESS = "InProgress"


def merge_human_loop(detail: HumanLoopDetail, aws: Aws, settings: Settings) -> MergeResult:
    """Merge a finished human loop once per (loop name, status); other statuses are ignored."""
    name, status = detail.humanLoopName, detail.humanLoopStatus
    if status not in FINISHED:
        logger.info("human loop not finished; ignored", loop=name, status=status)
        return LoopIgnored(loop=name, status=status)
    return run_stage_once(settings.state_table, "merge", {"loop": name, "status": status},
                          lambda: _merge(detail, aws, settings),
                          LoopAlreadyFinished, LoopUnmerged, AnswerRejected, ReviewMerged)


def _merge(detail: HumanLoopDetail, aws: Aws, settings: Settings) -> MergeResult:
    state = StateTable(aws.table)
    loop = state.loops.get(detail.humanLoopName)
    if loop is None:
        raise UnknownJob(f"human loop {detail.humanLoopName} is not recorded in the state table")
    name, status, document, version = loop.name, detail.humanLoopStatus, loop.doc, loop.version
    if loop.status != IN_PROGRESS:
        # Finished before: a redelivery after the idempotency record expired, or a retry of a run that
        # failed after finishing the loop. Change nothing, but a retrain that run was about to start
        # must still start (maybe_start_retrain does nothing unless one is due and none in flight).
        logger.info("human loop already finished", loop=loop.name, recorded=loop.status)
        return LoopAlreadyFinished(loop=name, status=status, document=document, version=version,
                                   snapshot=_retrain_if_due(state, aws, settings).version,
                                   already_finished=loop.status)
    ended: _Closed | _Rejected | _Merged
    if detail.humanLoopStatus == "Completed":
        ended = _merge_completed(detail, loop, state, aws, settings)
    else:
        failure = f"{detail.failureCode or detail.humanLoopStatus}: {detail.failureReason or 'no reason given'}"
        ended = _close_unmerged(state, loop, detail.humanLoopStatus, failure)
    # Whether merged or not, the loop is closed: a batch may be complete, or this was the last open
    # loop with reviews pending (an expired last loop must not leave the reviews waiting for ever).
    check = _retrain_if_due(state, aws, settings)
    if isinstance(ended, _Closed):
        return LoopUnmerged(loop=name, status=status, document=document, version=version, snapshot=check.version,
                            recorded_status=ended.recorded_status, failure=ended.failure, requeued=ended.requeued)
    if isinstance(ended, _Rejected):
        closed = ended.closed
        return AnswerRejected(loop=name, status=status, document=document, version=version, snapshot=check.version,
                              recorded_status=closed.recorded_status, failure=closed.failure,
                              requeued=closed.requeued, quarantine=ended.quarantine)
    # reviews: read with the retrain decision, after this review was counted
    return ReviewMerged(loop=name, status=status, document=document, version=version, snapshot=check.version,
                        counted=ended.counted, spans=ended.spans, worker=ended.worker, quarantine=ended.quarantine,
                        reviews=check.reviews)


@dataclass(frozen=True, slots=True)
class _Closed:
    """A loop ended without a merge (`_close_unmerged`)."""

    recorded_status: str
    failure: str
    requeued: bool


@dataclass(frozen=True, slots=True)
class _Rejected:
    """An answer quarantined, its loop closed."""

    closed: _Closed
    quarantine: str | None


@dataclass(frozen=True, slots=True)
class _Merged:
    """A review merged into the gold set."""

    counted: bool
    spans: int
    worker: str  # the reviewers' ids, comma-separated
    quarantine: str | None


def _retrain_if_due(state: StateTable, aws: Aws, settings: Settings) -> RetrainCheck:
    return check_retrain(state, aws.s3, settings.data_bucket, RetrainPolicy.of(settings))


def _merge_completed(detail: HumanLoopDetail, loop: Loop, state: StateTable, aws: Aws,
                     settings: Settings) -> _Rejected | _Merged:
    if detail.humanLoopOutput is None or not detail.humanLoopOutput.outputS3Uri:
        raise InvalidEvent(f"completed human loop {loop.name} has no humanLoopOutput.outputS3Uri")
    uri = detail.humanLoopOutput.outputS3Uri
    try:
        bucket, key = split_s3_uri(uri)
    except InvalidS3Uri as exc:
        raise InvalidEvent(f"humanLoopOutput.outputS3Uri of {loop.name}: {exc}") from exc
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    quarantine = Quarantine(stage="merge", source=loop.name)
    try:
        output = review_answers.parse_output(body, uri)
        if output.humanLoopName and output.humanLoopName != loop.name:
            raise InvalidRecord(uri, None, f"output of human loop {output.humanLoopName}, not {loop.name}")
        text = review_answers.input_text(output, uri)
        if document_hash(text) != loop.doc:
            raise InvalidRecord(uri, None, f"the reviewed text is not document {loop.doc}")
        answer = review_answers.review_answer(output, uri, text, settings.entity_types)
    except InvalidRecord as exc:
        quarantine.reject(exc)
        closed = _close_unmerged(state, loop, "Failed", f"invalid answer: {exc.reason}")
        return _Rejected(closed, quarantine.write(aws.s3, settings.data_bucket))

    for note in answer.notes:
        quarantine.note(uri, None, note)
    # The labels, the pool's status, the loop's end and its count in one transaction: a retry never
    # finds a finished, uncounted loop, nor labels written for a loop still open.
    gold = GoldDocument(doc=loop.doc, text=text, spans=answer.spans, origin=f"review:{loop.name}")
    counted = merge_review_counted(state, loop.name, gold)
    if counted:
        metrics.add_metric(name="ReviewsMerged", unit=MetricUnit.Count, value=1)
    logger.info("review merged", loop=loop.name, document=loop.doc, spans=len(answer.spans), counted=counted)
    return _Merged(counted=counted, spans=len(answer.spans), worker=answer.worker,
                   quarantine=quarantine.write(aws.s3, settings.data_bucket))


def _close_unmerged(state: StateTable, loop: Loop, status: str, failure: str) -> _Closed:
    """Record the loop as ended without a merge and send its document back to waiting."""
    closed = state.loops.finish(loop.name, status, failure=failure)
    requeued = False
    if closed:
        pool = state.pool.get(loop.doc)
        # Only if nothing else happened to it meanwhile (e.g. a labeling job made it gold).
        if pool is not None and pool.status == IN_REVIEW and pool.loop == loop.name:
            requeued = state.pool.mark(loop.doc, WAITING, loop="")
        metrics.add_metric(name="LoopsFailed", unit=MetricUnit.Count, value=1)
        logger.warning("human loop ended without a merge", loop=loop.name, document=loop.doc,
                       status=status, failure=failure, requeued=requeued)
    return _Closed(recorded_status=status, failure=failure, requeued=requeued)
