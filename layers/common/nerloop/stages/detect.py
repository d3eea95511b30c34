"""Stage 5 — detect: a recognizer version finished training, or new documents joined the pool.

TRAINED or TRAINED_WITH_WARNING (a warning is still a trained model; its message is kept): keep its
metrics, pass it through the gate (nerloop.evaluation: activated at once, or once scored on the stable
test set and found not worse than the active version there), delete versions beyond the retention
count, and start a detection job with the active version over the pool documents waiting and those
accepted by another version: at most DETECTION_DOCUMENTS_PER_ROUND of them, chosen by
`nerloop.detection_policy` when there are more (when the gate waits for the version's evaluation job,
once that job has ended: Detection Job Status Change). IN_ERROR, STOPPED (or gone): record the message
and count it. Whichever way the training ended, the training lock is released and a retrain that became
due meanwhile starts.

Documents Added (a batch from the preprocess stage): when a version is active, a detection job over
the batch starts at once, so new text does not wait for the next training. It is not counted against
the round's cap: each document is detected this way once, when it arrives, so its cost follows the
text put in, not the pool's size; and counting it could leave a round no room for anything else.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from nerloop.aws import Aws
from nerloop.comprehend_training import one_line
from nerloop.constants import DETECTION_INPUT_PREFIX, DOCUMENTS_FILE
from nerloop.cost_records import InputMeasure, measure_lines, record_detection_input
from nerloop.detection_jobs import DetectionStart, detection_token, start_or_queue, versions_in_use
from nerloop.detection_policy import RoundSelection, tier_counts
from nerloop.evaluation import activate_on_trained, finish_evaluation, record_decision
from nerloop.event_models.loop import DetectionJobStatusDetail, DocumentsAddedDetail, RecognizerStatusDetail
from nerloop.flywheel import flywheel_mode
from nerloop.idempotency import run_stage_once
from nerloop.observability import logger, metrics
from nerloop.recognizer_versions import (
    TRAINED_STATUSES,
    UNTRAINED_END_STATUSES,
    metrics_from_metadata,
    training_times,
)
from nerloop.retrain import RetrainPolicy, maybe_start_retrain, release_training
from nerloop.settings import Settings
from nerloop.stages.results import (
    BatchDetecting,
    BatchResult,
    BatchWaits,
    EvaluationResult,
    EvaluationScored,
    GateDecided,
    RecognizerStatusResult,
    TrainingEnded,
    VersionAwaitsGate,
    VersionTrained,
)
from nerloop.state import ACCEPTED, WAITING, DetectionRequest, PoolDocument, StateTable, Version

__all__ = ["detect_batch", "detection_token", "handle_evaluation_status", "handle_recognizer_status",
           "start_detection"]

# Versions in these states can be deleted to save cost (never the active one, never one in use);
# DeleteEntityRecognizer refuses a version still training (ResourceInUseException).
DELETABLE = (*TRAINED_STATUSES, "IN_ERROR", "STOPPED")


def handle_recognizer_status(detail: RecognizerStatusDetail, aws: Aws, settings: Settings) -> RecognizerStatusResult:
    """React once to a version's training ending (recognizers.TRAINING_END_STATUSES)."""
    return run_stage_once(
        settings.state_table, "detect", {"arn": detail.recognizerArn, "status": detail.status},
        lambda: _handle(detail, aws, settings), TrainingEnded, VersionTrained, VersionAwaitsGate,
    )


def _handle(detail: RecognizerStatusDetail, aws: Aws, settings: Settings) -> RecognizerStatusResult:
    state = StateTable(aws.table)
    version = detail.versionName
    trained: _Trained | None = None
    deleted: list[str] = []
    started = DetectionStart()
    if detail.status in TRAINED_STATUSES:
        trained = _record_trained(state, aws, detail, settings)
        deleted = delete_old_versions(state, aws, settings)
        if not trained.gate_pending:  # else the pool waits for the gate (handle_evaluation_status)
            started = start_detection(state, aws, settings, request_key=f"trained|{detail.recognizerArn}")
    elif detail.status in UNTRAINED_END_STATUSES:
        state.versions.update(version, status=detail.status, message=detail.message)
        # One metric for every end without a model: the template's alarm watches it.
        metrics.add_metric(name="RecognizerTrainingFailed", unit=MetricUnit.Count, value=1)
        logger.error("recognizer training ended without a model", version=version, status=detail.status,
                     reason=detail.message)
    release_training(state, version)
    retrain = maybe_start_retrain(state, aws.s3, settings.data_bucket, RetrainPolicy.of(settings))
    snapshot = retrain.version if retrain else None
    if trained is None:
        return TrainingEnded(version=version, status=detail.status, snapshot=snapshot)
    if trained.gate_pending:
        return VersionAwaitsGate(version=version, status=detail.status, f1=trained.f1, active=trained.active,
                                 deleted_versions=deleted, snapshot=snapshot)
    return VersionTrained(version=version, status=detail.status, f1=trained.f1, active=trained.active,
                          deleted_versions=deleted, detection_job=started.job_id, detection_queued=started.queued,
                          snapshot=snapshot)


@dataclass(frozen=True, slots=True)
class _Trained:
    f1: float
    active: str | None
    gate_pending: bool


def _record_trained(state: StateTable, aws: Aws, detail: RecognizerStatusDetail,
                    settings: Settings) -> _Trained:
    props = aws.comprehend.describe_entity_recognizer(EntityRecognizerArn=detail.recognizerArn)[
        "EntityRecognizerProperties"]
    evaluation = metrics_from_metadata(props.get("RecognizerMetadata") or {})
    version = state.versions.get(detail.versionName)
    stored = {**(version.metrics if version else {}), **evaluation, **training_times(props)}
    if version is None:  # trained outside the loop's own snapshots: adopt it
        state.versions.put(Version(version=detail.versionName, status=detail.status, arn=detail.recognizerArn))
    # A TRAINED_WITH_WARNING version keeps its status and its Message (the warning) for people to read.
    state.versions.update(detail.versionName, status=detail.status, metrics=stored, message=detail.message)
    if detail.status != "TRAINED":
        logger.warning("recognizer trained with a warning", version=detail.versionName, warning=detail.message)

    f1: float = evaluation["f1"] or 0.0
    active = state.versions.active()
    # The gate (nerloop.evaluation, nerloop.gate): activated now, or once scored on the stable test set.
    trained = state.versions.get(detail.versionName)
    activated = trained is not None and activate_on_trained(state, aws, settings, trained, f1)
    logger.info("recognizer trained", version=detail.versionName, f1=f1, activated=activated,
                previous_active=active[0] if active else None)
    return _Trained(f1=f1, active=detail.versionName if activated else active[0] if active else None,
                    gate_pending=not activated)


def handle_evaluation_status(detail: DetectionJobStatusDetail, aws: Aws, settings: Settings) -> EvaluationResult:
    """The gate's evaluation job over a version's test set ended: score it, decide the version's
    activation if it waits for that, then detect the pool with the active version. Once per job and status."""
    return run_stage_once(settings.state_table, "gate", {"job": detail.jobId, "status": detail.status},
                          lambda: _evaluated(detail, aws, settings), EvaluationScored, GateDecided)


def _evaluated(detail: DetectionJobStatusDetail, aws: Aws, settings: Settings) -> EvaluationResult:
    state = StateTable(aws.table)
    scored, decision = finish_evaluation(state, aws, settings, detail.versionName, detail.status,
                                         detail.outputS3Uri)
    if decision is None:
        return EvaluationScored(version=detail.versionName, status=detail.status, scored_documents=scored)
    if not decision.activate:
        metrics.add_metric(name="VersionsKeptInactive", unit=MetricUnit.Count, value=1)
    version = state.versions.get(detail.versionName)
    deleted = delete_old_versions(state, aws, settings)
    trigger = version.arn if version else detail.versionName
    started = start_detection(state, aws, settings, request_key=f"trained|{trigger}")
    record_decision(state, decision)  # last: until then the version still waits, and a retry redoes the rest
    return GateDecided(version=detail.versionName, status=detail.status, scored_documents=scored,
                       activated=decision.activate, reason=decision.reason, deleted_versions=deleted,
                       detection_job=started.job_id, detection_queued=started.queued)


def delete_old_versions(state: StateTable, aws: Aws, settings: Settings) -> list[str]:
    """Delete versions beyond the newest `retention`, sparing the active one and any a job still uses.
    In flywheel mode none: the flywheel keeps its model versions (its data lake has a folder for each,
    "Flywheel data lakes"), and what deleting one under it does is not documented."""
    if flywheel_mode(settings):
        return []
    active = state.versions.active()
    in_use = versions_in_use(state)
    if active:
        in_use.add(active[0])
    candidates = sorted((v for v in state.versions.list() if v.status in DELETABLE and v.arn),
                        key=lambda v: _version_order(v.version), reverse=True)
    deleted = []
    for version in candidates[settings.version_retention:]:
        if version.version in in_use:
            continue
        try:
            aws.comprehend.delete_entity_recognizer(EntityRecognizerArn=version.arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
        state.versions.update(version.version, status="DELETED")
        deleted.append(version.version)
        logger.info("recognizer version deleted", version=version.version)
    return deleted


def _version_order(name: str) -> tuple[int, str]:
    """v2 before v10; names that are not vN sort by name after the numbered ones."""
    match = re.fullmatch(r"v(\d+)", name)
    return (int(match.group(1)), "") if match else (0, name)


def start_detection(state: StateTable, aws: Aws, settings: Settings, request_key: str) -> DetectionStart:
    """Start (or queue, when Comprehend's job slots are full) a detection job with the active version
    over the pool documents still waiting and those accepted by another version, at most
    `settings.detection_documents_per_round` of them (0: all); once per `request_key` (what
    triggered it)."""
    token = detection_token(request_key)
    request = state.jobs.get_request(token)
    if request is None:
        active_version = _active_version(state)
        if active_version is None:
            return DetectionStart()
        input_key = f"{DETECTION_INPUT_PREFIX}{active_version.version}-{token[:12]}/{DOCUMENTS_FILE}"
        count = _write_detection_input(state, aws, settings, active_version.version, input_key)
        if count == 0:
            logger.info("no documents waiting for detection", version=active_version.version)
            return DetectionStart()
        # Recorded before the job starts: a retry reuses this input as it is, even if the pool changed.
        request = state.jobs.record_request(DetectionRequest(token, active_version.version, input_key, count))
    return start_or_queue(state, aws, settings, request)


def _write_detection_input(state: StateTable, aws: Aws, settings: Settings, version: str, input_key: str) -> int:
    """Write the round's input (ONE_DOC_PER_LINE: one document a line) from one Query over the pool;
    under a cap, memory holds only the documents the policy keeps. Returns the documents written."""
    cap = settings.detection_documents_per_round
    documents: Iterable[PoolDocument] = _eligible(state, version)
    if cap:
        selection: RoundSelection[PoolDocument] = RoundSelection(cap)
        for doc in documents:
            selection.offer(doc)
        documents = selection.chosen()
        logger.info("documents chosen for the round's detection", version=version, cap=cap,
                    eligible=selection.offered, chosen=len(documents), left_for_later=selection.left(),
                    by_tier=tier_counts(documents))
        metrics.add_metric(name="DocumentsLeftForLaterRounds", unit=MetricUnit.Count, value=selection.left())
    with tempfile.TemporaryFile("w+b") as spool:
        count = 0
        measure = InputMeasure()  # what Comprehend bills for this input (nerloop.cost_records)
        for doc in documents:
            line = one_line(doc.text)
            spool.write((line + "\n").encode("utf-8"))
            measure = measure.add(line)
            count += 1
        if count:
            spool.seek(0)
            aws.s3.upload_fileobj(spool, settings.data_bucket, input_key)
            record_detection_input(aws.table, input_key, measure)
    return count


def _eligible(state: StateTable, version: str) -> Iterator[PoolDocument]:
    """The pool documents a round with `version` may detect."""
    for doc in state.pool.documents((WAITING, ACCEPTED)):
        # Accepted documents are looked at again by each new version; waiting ones (left over by the
        # review budget, or sent back by a failed loop) always, even by the version that saw them, so
        # the loop goes on when a new version is not activated.
        if doc.status == ACCEPTED and doc.seen_by == version:
            continue
        yield doc


def detect_batch(detail: DocumentsAddedDetail, aws: Aws, settings: Settings) -> BatchResult:
    """New documents joined the pool: detect them with the active version now, rather than when the
    next version trains. Once per batch. Before the first version is active there is nothing to do:
    that version's training ends with a detection over the whole pool."""
    return run_stage_once(settings.state_table, "detect-batch", {"batch": detail.batch},
                          lambda: _detect_batch(detail, aws, settings), BatchWaits, BatchDetecting)


def _detect_batch(detail: DocumentsAddedDetail, aws: Aws, settings: Settings) -> BatchResult:
    state = StateTable(aws.table)
    token = detection_token(f"batch|{detail.batch}")
    request = state.jobs.get_request(token)
    if request is None:
        active_version = _active_version(state)
        if active_version is None:
            logger.info("no active version yet; the batch waits for the first one", batch=detail.batch)
            return BatchWaits(batch=detail.batch, documents=detail.documents)
        # The batch file is the job's input as it stands (one document a line); a server-side copy
        # puts it where Comprehend's data-access role may read, and where the route stage finds it.
        input_key = f"{DETECTION_INPUT_PREFIX}{active_version.version}-{detail.batch}/{DOCUMENTS_FILE}"
        aws.s3.copy_object(Bucket=settings.data_bucket, Key=input_key,
                           CopySource={"Bucket": settings.data_bucket, "Key": detail.documentsKey})
        batch_body = aws.s3.get_object(Bucket=settings.data_bucket, Key=detail.documentsKey)["Body"]
        record_detection_input(aws.table, input_key, measure_lines(batch_body.iter_lines()))
        request = state.jobs.record_request(
            DetectionRequest(token, active_version.version, input_key, detail.documents))
    started = start_or_queue(state, aws, settings, request)
    return BatchDetecting(batch=detail.batch, documents=detail.documents, detection_job=started.job_id,
                          detection_queued=started.queued, version=request.version)


def _active_version(state: StateTable) -> Version | None:
    active = state.versions.active()
    if active is None:
        return None
    version = state.versions.get(active[0])
    return version if version is not None and version.arn else None
