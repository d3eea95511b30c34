"""SageMaker Ground Truth labeling jobs that complete from an output manifest someone already has.

Answers (service "sagemaker"): CreateLabelingJob, DescribeLabelingJob, ListLabelingJobs,
StopLabelingJob. A job starts Initializing; the next tick checks its input manifest (missing: Failed)
and makes it InProgress, where it waits for people: `complete_job_from_manifest` copies a finished
output manifest to `<S3OutputPath>/<job>/manifests/output/output.manifest`, sets Completed with
LabelingJobOutput.OutputDatasetS3Uri, and puts "SageMaker Ground Truth Labeling Job State Change" on
the emulated bus (detail.LabelingJobStatus, resources[0] the job ARN, no name in the detail).
`fail_job` and StopLabelingJob (Stopping → Stopped on the next tick) publish the same event.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from nerloop_local.standins.base import (
    StandInContext,
    StandInError,
    StandInService,
    drop_none,
    from_iso,
    join_s3_uri,
    paginate,
    to_iso,
    utcnow,
)

SAGEMAKER = "sagemaker"
DETAIL_TYPE = "SageMaker Ground Truth Labeling Job State Change"
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
ATTRIBUTE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}$")
FINISHED = ("Completed", "Failed", "Stopped")


@dataclass
class LabelingJob:
    name: str
    arn: str
    label_attribute: str
    input_config: dict[str, Any]
    output_config: dict[str, Any]
    role: str
    human_task_config: dict[str, Any]
    creation_time: datetime
    modified_time: datetime
    status: str = "Initializing"
    failure_reason: str | None = None
    output_uri: str | None = None
    labeled: int = 0
    human_labeled: int = 0

    @property
    def manifest_uri(self) -> str:
        return str(self.input_config.get("DataSource", {}).get("S3DataSource", {}).get("ManifestS3Uri", ""))

    def describe(self) -> dict[str, Any]:
        return drop_none({
            "LabelingJobStatus": self.status,
            "LabelCounters": {"TotalLabeled": self.labeled, "HumanLabeled": self.human_labeled,
                              "MachineLabeled": self.labeled - self.human_labeled, "FailedNonRetryableError": 0,
                              "Unlabeled": 0},
            "FailureReason": self.failure_reason,
            "CreationTime": self.creation_time,
            "LastModifiedTime": self.modified_time,
            "JobReferenceCode": self.arn.rsplit("/", 1)[-1][:16],
            "LabelingJobName": self.name,
            "LabelingJobArn": self.arn,
            "LabelAttributeName": self.label_attribute,
            "InputConfig": self.input_config,
            "OutputConfig": self.output_config,
            "RoleArn": self.role,
            "HumanTaskConfig": self.human_task_config,
            "LabelingJobOutput": {"OutputDatasetS3Uri": self.output_uri} if self.output_uri else None,
        })


class GroundTruthStandIn(StandInService):
    """Labeling jobs whose people are whoever hands the stand-in a finished output manifest."""

    operations: ClassVar[dict[tuple[str, str], str]] = {
        (SAGEMAKER, "CreateLabelingJob"): "create_labeling_job",
        (SAGEMAKER, "DescribeLabelingJob"): "describe_labeling_job",
        (SAGEMAKER, "ListLabelingJobs"): "list_labeling_jobs",
        (SAGEMAKER, "StopLabelingJob"): "stop_labeling_job",
    }

    def __init__(self, context: StandInContext) -> None:
        super().__init__(context)
        self.jobs: dict[str, LabelingJob] = {}

    def _job(self, name: str) -> LabelingJob:
        if name not in self.jobs:
            raise StandInError("ResourceNotFound", f"Could not find labeling job {name}")
        return self.jobs[name]

    # --- API ------------------------------------------------------------------------------------

    def create_labeling_job(self, params: dict[str, Any]) -> dict[str, Any]:
        name, attribute = params["LabelingJobName"], params["LabelAttributeName"]
        if not JOB_NAME.match(name):
            raise StandInError("ValidationException", f"LabelingJobName {name!r} must match {JOB_NAME.pattern}")
        if not ATTRIBUTE_NAME.match(attribute) or attribute.endswith("-metadata"):
            raise StandInError("ValidationException", f"LabelAttributeName {attribute!r} must match "
                            f"{ATTRIBUTE_NAME.pattern} and not end with -metadata")
        if name in self.jobs:
            raise StandInError("ResourceInUse", f"Labeling job {self.jobs[name].arn} already exists")
        now = utcnow()
        self.jobs[name] = LabelingJob(
            name=name, arn=f"arn:aws:sagemaker:{self.context.region}:{self.context.account}:labeling-job/{name}",
            label_attribute=attribute, input_config=params["InputConfig"], output_config=params["OutputConfig"],
            role=params["RoleArn"], human_task_config=params["HumanTaskConfig"], creation_time=now, modified_time=now,
        )
        self.changes += 1
        return {"LabelingJobArn": self.jobs[name].arn}

    def describe_labeling_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._job(params["LabelingJobName"]).describe()

    def list_labeling_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs = list(self.jobs.values())
        if "NameContains" in params:
            jobs = [job for job in jobs if params["NameContains"] in job.name]
        if "StatusEquals" in params:
            jobs = [job for job in jobs if job.status == params["StatusEquals"]]
        jobs.sort(key=lambda job: (job.creation_time, job.name),
                  reverse=params.get("SortOrder", "Ascending") == "Descending")
        page, token = paginate(jobs, params)
        summaries = []
        for job in page:
            described = job.describe()
            summaries.append(drop_none({
                "LabelingJobName": job.name, "LabelingJobArn": job.arn, "CreationTime": job.creation_time,
                "LastModifiedTime": job.modified_time, "LabelingJobStatus": job.status,
                "LabelCounters": described["LabelCounters"],
                "WorkteamArn": job.human_task_config.get("WorkteamArn", ""),
                "PreHumanTaskLambdaArn": job.human_task_config.get("PreHumanTaskLambdaArn"),
                "LabelingJobOutput": described.get("LabelingJobOutput"),
                "FailureReason": job.failure_reason, "InputConfig": job.input_config,
            }))
        return drop_none({"LabelingJobSummaryList": summaries, "NextToken": token})

    def stop_labeling_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["LabelingJobName"])
        if job.status in ("Initializing", "InProgress"):
            job.status, job.modified_time = "Stopping", utcnow()
            self.changes += 1
        return {}

    # --- people -----------------------------------------------------------------------------------

    def pending_jobs(self) -> list[LabelingJob]:
        """Jobs waiting for their labels (Initializing or InProgress), oldest first."""
        return sorted((job for job in self.jobs.values() if job.status in ("Initializing", "InProgress")),
                      key=lambda job: (job.creation_time, job.name))

    def complete_job_from_manifest(self, name: str, manifest: str | bytes | Path) -> str:
        """Finish job `name` with this output manifest (its text, bytes or a file); return its S3 URI."""
        job = self._job(name)
        if job.status in FINISHED or job.status == "Stopping":
            raise ValueError(f"labeling job {name} is {job.status}")
        if isinstance(manifest, Path):
            body = manifest.read_bytes()
        else:
            body = manifest.encode("utf-8") if isinstance(manifest, str) else bytes(manifest)
        uri = join_s3_uri(job.output_config["S3OutputPath"], name, "manifests", "output", "output.manifest")
        self.context.write_s3(uri, body, "application/x-ndjson")
        job.labeled, job.human_labeled = _count_labels(body, job.label_attribute)
        job.output_uri = uri
        self._finish(job, "Completed")
        return uri

    def fail_job(self, name: str, reason: str = "ClientError: the labeling job failed") -> None:
        job = self._job(name)
        if job.status in FINISHED:
            raise ValueError(f"labeling job {name} is {job.status}")
        job.failure_reason = reason
        self._finish(job, "Failed")

    def _finish(self, job: LabelingJob, status: str) -> None:
        job.status, job.modified_time = status, utcnow()
        self.changes += 1
        self.context.publish("aws.sagemaker", DETAIL_TYPE, {"LabelingJobStatus": status}, [job.arn])

    # --- the clock --------------------------------------------------------------------------------

    def busy(self) -> bool:
        return any(job.status in ("Initializing", "Stopping") for job in self.jobs.values())

    def tick(self) -> None:
        for job in list(self.jobs.values()):
            if job.status == "Initializing":
                if job.manifest_uri and not self.context.list_s3(job.manifest_uri):
                    job.failure_reason = f"ClientError: the input manifest {job.manifest_uri} does not exist"
                    self._finish(job, "Failed")
                else:
                    job.status, job.modified_time = "InProgress", utcnow()
                    self.changes += 1
            elif job.status == "Stopping":
                self._finish(job, "Stopped")

    # --- saved state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"jobs": [{**asdict(job), "creation_time": to_iso(job.creation_time),
                          "modified_time": to_iso(job.modified_time)} for job in self.jobs.values()]}

    def restore(self, data: dict[str, Any]) -> None:
        self.jobs = {item["name"]: LabelingJob(**{**item, "creation_time": from_iso(item["creation_time"]),
                                                  "modified_time": from_iso(item["modified_time"])})
                     for item in data.get("jobs", [])}


def label_attribute_of(manifest: str | bytes) -> str:
    """The label attribute name of a Ground Truth output manifest (the key with a `-metadata` twin)."""
    text = manifest.decode("utf-8") if isinstance(manifest, bytes) else manifest
    for line in text.splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        for key in record:
            if f"{key}-metadata" in record:
                return str(key)
    raise ValueError("no label attribute (a key with a '-metadata' twin) in the manifest")


def _count_labels(body: bytes, attribute: str) -> tuple[int, int]:
    """(labelled lines, human-labelled lines) of an output manifest, for LabelCounters."""
    labeled = human = 0
    for line in body.decode("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or attribute not in record:
            continue
        labeled += 1
        metadata = record.get(f"{attribute}-metadata")
        if isinstance(metadata, dict) and metadata.get("human-annotated") == "yes":
            human += 1
    return labeled, human


__all__ = ["GroundTruthStandIn", "LabelingJob", "label_attribute_of"]
