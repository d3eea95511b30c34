"""Starting entities detection jobs within Comprehend's concurrent-job quota.

Comprehend runs at most MAX_CONCURRENT_DETECTION_JOBS active jobs of a type per account; past it,
StartEntitiesDetectionJob answers TooManyRequestsException ("The number of requests exceeds the
limit. Resubmit your request later.": the only quota error the API reference and botocore's model list
for the operation). A request that finds no slot (the loop's own count, or Comprehend's refusal: other
applications of the account use slots too) is queued in the state table, never lost; the watch stage
sees jobs end every minute and starts queued requests, oldest first, as slots free.

Each start passes the request's token as ClientRequestToken, so a start made twice (a redelivery, a
detect and a watch racing for one queued request) gets the one job the first made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from nerloop.aws import Aws
from nerloop.constants import (
    DETECTION_INPUT_PREFIX,
    DETECTION_OUTPUT_PREFIX,
    EVALUATION_OUTPUT_PREFIX,
    MAX_CONCURRENT_DETECTION_JOBS,
    TRAINING_PREFIX,
)
from nerloop.flywheel import detection_model
from nerloop.observability import logger, metrics
from nerloop.recognizer_versions import TRAINED_STATUSES
from nerloop.settings import Settings
from nerloop.state import DetectionRequest, Job, StateTable

# StartEntitiesDetectionJob's "resubmit later" error (botocore comprehend model; API reference, Errors).
NO_SLOT_ERROR = "TooManyRequestsException"


@dataclass(frozen=True)
class DetectionStart:
    """What became of a detection request: the job started, or queued for a slot (or neither, when
    its version can no longer detect)."""

    job_id: str | None = None
    queued: bool = False


def detection_token(request_key: str) -> str:
    """Comprehend's ClientRequestToken for a detection job, from the business key of what started
    it: a retried start gets the job the first attempt started, never a second one."""
    return hashlib.sha256(request_key.encode("utf-8")).hexdigest()[:40]


def start_or_queue(state: StateTable, aws: Aws, settings: Settings, request: DetectionRequest,
                   in_flight: int | None = None) -> DetectionStart:
    """Start the job `request` describes when a concurrent-job slot is free, else queue it.
    `in_flight`: the loop's running jobs, when the caller has counted them."""
    version = state.versions.get(request.version)
    if version is None or not version.arn or version.status not in TRAINED_STATUSES:
        # Deleted, or never trained: its waiting documents go to the next version's detection.
        logger.warning("the version of a detection request cannot detect; request dropped",
                       version=request.version, status=version.status if version else None)
        state.jobs.dequeue(request.token)
        return DetectionStart()
    running = state.jobs.count_in_flight() if in_flight is None else in_flight
    if running >= MAX_CONCURRENT_DETECTION_JOBS:
        return _queue(state, request, reason="the loop's own jobs fill every slot", running=running)
    job_name, output_prefix = job_destination(request)
    try:
        active = state.versions.active()
        reply = aws.comprehend.start_entities_detection_job(
            JobName=job_name,
            # The version's ARN, or in flywheel mode the flywheel's for the active version's pool jobs
            # (nerloop.flywheel); the gate's evaluation jobs always name their own version's model.
            **(detection_model(settings, version, active[0] if active else None)
               if output_prefix != EVALUATION_OUTPUT_PREFIX else {"EntityRecognizerArn": version.arn}),
            LanguageCode=settings.language_code,
            DataAccessRoleArn=settings.comprehend_role_arn,
            InputDataConfig={"S3Uri": f"s3://{settings.data_bucket}/{request.input_key}",
                             "InputFormat": "ONE_DOC_PER_LINE"},
            OutputDataConfig={"S3Uri": f"s3://{settings.data_bucket}/{output_prefix}"},
            ClientRequestToken=request.token,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != NO_SLOT_ERROR:
            raise
        return _queue(state, request, reason="Comprehend refused the job for now", running=running)
    job_id = str(reply["JobId"])
    state.jobs.put(Job(job_id=job_id, status=reply.get("JobStatus", "SUBMITTED"), version=version.version,
                      input_key=request.input_key, documents=request.documents, arn=reply.get("JobArn", "")))
    state.jobs.dequeue(request.token)
    metrics.add_metric(name="DetectionJobsStarted", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="DocumentsSentToDetection", unit=MetricUnit.Count, value=request.documents)
    logger.info("detection job started", job=job_id, version=version.version, documents=request.documents)
    return DetectionStart(job_id=job_id)


def job_destination(request: DetectionRequest) -> tuple[str, str]:
    """A job's name and output prefix: a job over a snapshot's test set (the gate's evaluation,
    nerloop.evaluation) writes under evaluation/output/, where the route stage does not look."""
    if request.input_key.startswith(TRAINING_PREFIX):
        return f"evaluate-{request.version}", EVALUATION_OUTPUT_PREFIX
    return request.input_key.removeprefix(DETECTION_INPUT_PREFIX).split("/", 1)[0], DETECTION_OUTPUT_PREFIX


def _queue(state: StateTable, request: DetectionRequest, reason: str, running: int) -> DetectionStart:
    state.jobs.queue(request)
    metrics.add_metric(name="DetectionJobsQueued", unit=MetricUnit.Count, value=1)
    logger.info("detection job queued until a slot frees", version=request.version, reason=reason,
                running=running, documents=request.documents)
    return DetectionStart(queued=True)


def start_queued(state: StateTable, aws: Aws, settings: Settings) -> list[str]:
    """Start queued detection requests, oldest first, while slots are free; the jobs started."""
    queued = state.jobs.queued()
    if not queued:
        return []
    running = state.jobs.count_in_flight()
    started: list[str] = []
    for request in queued:
        if running >= MAX_CONCURRENT_DETECTION_JOBS:
            break
        outcome = start_or_queue(state, aws, settings, request, in_flight=running)
        if outcome.queued:
            break  # Comprehend has no slot either: the next poll tries again
        if outcome.job_id is not None:
            started.append(outcome.job_id)
            running += 1
    return started


def versions_in_use(state: StateTable) -> set[str]:
    """Versions a running job or a queued request still needs (never to be deleted)."""
    return ({job.version for job in state.jobs.in_flight()}
            | {request.version for request in state.jobs.queued()})
