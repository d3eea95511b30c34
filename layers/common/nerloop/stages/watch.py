"""Stage 4 — watch: on a schedule, poll what the state table lists as in flight and publish the
project's own status events. Comprehend publishes none, and this keeps the rest event-driven.

Detection jobs are read from their in-flight copies only (JobRepository.in_flight), so a poll
costs the same after a thousand jobs as after one. A job Comprehend no longer knows
(JobNotFoundException, botocore comprehend model: DescribeEntitiesDetectionJob) is recorded as
NOT_FOUND, a status of nerloop's own, once, and not asked about again. Then detection requests queued
for a concurrent-job slot start as slots free (`nerloop.detection_jobs`).

Then end the human loops A2I has ended or deleted without the merge stage hearing of it
(`nerloop.loop_reconcile`: no document stays in review without a live loop), and start a retrain if
one is due (`nerloop.retrain`): the only check that sees time pass with no event (pending reviews past
`RetrainMaxWaitMinutes`), and, every minute, a backstop for any due retrain whose event-driven check
found the lock taken or never ran.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from nerloop.aws import Aws
from nerloop.bus import publish
from nerloop.constants import DETECTION_JOB_STATUS_DETAIL_TYPE, RECOGNIZER_STATUS_DETAIL_TYPE
from nerloop.cost_records import training_times
from nerloop.detection_jobs import start_queued
from nerloop.flywheel import poll_version
from nerloop.loop_reconcile import reconcile_open_loops
from nerloop.observability import logger, metrics
from nerloop.retrain import RetrainPolicy, maybe_start_retrain
from nerloop.settings import Settings
from nerloop.stages.results import Polled
from nerloop.state import RECOGNIZER_IN_FLIGHT, Job, StateTable, Version

# Recorded for a job Comprehend no longer knows; not one of Comprehend's JobStatus values.
JOB_NOT_FOUND = "NOT_FOUND"


def poll_in_flight(aws: Aws, settings: Settings) -> Polled:
    """Publish one event per status change since the last poll, start queued detection jobs as slots
    free, then start a retrain if one is due; return the changes, the jobs started and the snapshot
    written (None when none was).

    The event goes out before the state table is updated: if the update fails, the next poll
    publishes the change again (consumers are idempotent), so no change is ever lost. A retrain is
    started at most once however often this runs: the training lock admits one.
    """
    state = StateTable(aws.table)
    changes: list[dict[str, str]] = []
    for version in state.versions.list():
        if version.status in RECOGNIZER_IN_FLIGHT and (version.metrics.get("flywheel") or {}).get("datasets"):
            change = _poll_flywheel_version(state, aws, settings, version)
        elif version.status in RECOGNIZER_IN_FLIGHT and version.arn:
            change = _poll_version(state, aws, settings, version)
        else:
            change = None
        if change:
            changes.append(change)
    changes.extend(change for job in state.jobs.in_flight() if (change := _poll_job(state, aws, job)))

    started = start_queued(state, aws, settings)
    reconciled = [f"{merge.loop}: {merge.status}" for merge in reconcile_open_loops(aws, settings)]
    snapshot = maybe_start_retrain(state, aws.s3, settings.data_bucket, RetrainPolicy.of(settings))
    return Polled(changes=changes, started=started, snapshot=snapshot.version if snapshot else None,
                  reconciled=reconciled)


def _poll_version(state: StateTable, aws: Aws, settings: Settings, version: Version) -> dict[str, str] | None:
    """A training recognizer version's status change since the last poll, published and recorded
    (None when its status is unchanged)."""
    try:
        props = aws.comprehend.describe_entity_recognizer(EntityRecognizerArn=version.arn)[
            "EntityRecognizerProperties"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        props = {"Status": "DELETED", "Message": "the recognizer version no longer exists"}
    status, message = props["Status"], props.get("Message", "")
    if status == version.status:
        return None
    publish(aws, RECOGNIZER_STATUS_DETAIL_TYPE, resource=version.arn, detail={
        "recognizerName": settings.recognizer_name, "versionName": version.version,
        "recognizerArn": version.arn, "status": status, "previousStatus": version.status,
        "message": message,
    })
    # Kept for the round's cost: Comprehend bills the training time (nerloop.cost_records).
    state.versions.update(version.version, status=status, message=message, **training_times(props))
    logger.info("recognizer status changed", version=version.version, status=status, previous=version.status)
    return {"version": version.version, "status": status}


def _poll_job(state: StateTable, aws: Aws, job: Job) -> dict[str, str] | None:
    """A detection job's status change since the last poll, published and recorded (None when its
    status is unchanged)."""
    try:
        props = aws.comprehend.describe_entities_detection_job(JobId=job.job_id)[
            "EntitiesDetectionJobProperties"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "JobNotFoundException":
            raise
        props = {"JobStatus": JOB_NOT_FOUND, "Message": "the detection job no longer exists"}
    status, message = props["JobStatus"], props.get("Message", "")
    if status == job.status:
        return None
    publish(aws, DETECTION_JOB_STATUS_DETAIL_TYPE, resource=props.get("JobArn", job.arn), detail={
        "jobId": job.job_id, "jobArn": props.get("JobArn", job.arn), "versionName": job.version,
        "status": status, "previousStatus": job.status, "message": message,
        "outputS3Uri": (props.get("OutputDataConfig") or {}).get("S3Uri", ""),
        "inputKey": job.input_key,  # under training/: the gate's evaluation job (the detect rule's filter)
    })
    state.jobs.set_status(job.job_id, status, message)
    if status in ("FAILED", JOB_NOT_FOUND):
        metrics.add_metric(name="DetectionJobsFailed", unit=MetricUnit.Count, value=1)
    logger.info("detection job status changed", job=job.job_id, status=status, previous=job.status)
    return {"job": job.job_id, "status": status}


# --- TrainingMode Flywheel (issue 15 part 2) ---
def _poll_flywheel_version(state: StateTable, aws: Aws, settings: Settings, version: Version) -> dict[str, str] | None:
    """A version trained by a flywheel iteration (nerloop.flywheel): start its iteration once its
    datasets are in, then publish the iteration's changes as the version's, like a recognizer's.
    The event names the trained model's ARN once there is one (the detect stage reads its metrics
    and detects with it), else the iteration's own identity."""
    poll = poll_version(aws, settings, version)
    # Kept before the event: the iteration's id, and the model's ARN the detect stage detects with.
    kept: dict[str, Any] = {}
    if poll.flywheel is not None and poll.flywheel != version.metrics.get("flywheel"):
        kept["metrics"] = {**version.metrics, "flywheel": poll.flywheel}
    if poll.model_arn and poll.model_arn != version.arn:
        kept["arn"] = poll.model_arn
    if kept:
        state.versions.update(version.version, **kept)
    if poll.status is None or poll.status == version.status:
        return None
    iteration = (poll.flywheel or {}).get("iteration", "")
    resource = poll.model_arn or f"{settings.flywheel_arn}/iteration/{iteration}"
    publish(aws, RECOGNIZER_STATUS_DETAIL_TYPE, resource=resource, detail={
        "recognizerName": settings.recognizer_name, "versionName": version.version,
        "recognizerArn": resource, "status": poll.status, "previousStatus": version.status,
        "message": poll.message, "flywheelIterationId": iteration,
    })
    state.versions.update(version.version, status=poll.status, message=poll.message)
    logger.info("flywheel version status changed", version=version.version, status=poll.status,
                previous=version.status, iteration=iteration)
    return {"version": version.version, "status": poll.status}
# --- end of TrainingMode Flywheel ---
