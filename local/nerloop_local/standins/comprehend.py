"""Amazon Comprehend custom entity recognizers and entities detection jobs, emulated with the local
CRF recognizer (nerloop_local.recognizer.crf).

Answers (service "comprehend"): CreateEntityRecognizer, DescribeEntityRecognizer,
ListEntityRecognizers, DeleteEntityRecognizer, StopTrainingEntityRecognizer,
StartEntitiesDetectionJob, DescribeEntitiesDetectionJob, ListEntitiesDetectionJobs,
StopEntitiesDetectionJob. Everything else on "comprehend" goes on to moto.

Each tick moves every recognizer and job one step:
  recognizer  SUBMITTED → TRAINING → TRAINED | TRAINED_WITH_WARNING | IN_ERROR (the CRF is trained on
              the second step; TRAINED_WITH_WARNING only when `warn_training` asked for it, since the
              documentation names the status (ModelStatus) but not what causes it)
              STOP_REQUESTED → STOPPED; DELETING → gone
  job         SUBMITTED → IN_PROGRESS → COMPLETED | FAILED (the documents are tagged on the second step)
              STOP_REQUESTED → STOPPED

Training reads the COMPREHEND_CSV input from the emulated S3 as Comprehend does
(`nerloop_local.standins.comprehend_training_data`); data that breaks Comprehend's rules ends IN_ERROR
with a Message saying what and where. With Documents.TestS3Uri and Annotations.TestS3Uri the model
trains on every training document and its metrics come from the test set (which needs an annotation
of each type); without a test set 10 % is held out (grouped by text) for the metrics.

At most MAX_CONCURRENT_DETECTION_JOBS jobs are active at once (Comprehend's quota, per account and job
type); StartEntitiesDetectionJob past it raises TooManyRequestsException.

A job writes `<OutputDataConfig.S3Uri>/<account>-NER-<jobId>/output/output.tar.gz`
(`nerloop_local.standins.comprehend_detection`).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from nerloop.constants import MAX_CONCURRENT_DETECTION_JOBS
from nerloop.recognizer_versions import MAX_NAME_LENGTH, NAME_PATTERN, VERSION_NAME
from nerloop_local.recognizer.crf import (
    CrfRecognizer,
    InvalidTrainingData,
    evaluate,
    train_recognizer,
    train_with_holdout,
)
from nerloop_local.standins.base import (
    StandInContext,
    StandInError,
    StandInService,
    drop_none,
    dump_record,
    join_s3_uri,
    load_record,
    paginate,
    utcnow,
)
from nerloop_local.standins.comprehend_detection import JOB_IN_FLIGHT, DetectionJob, detection_output
from nerloop_local.standins.comprehend_training_data import TrainingDataError, check_input_config, read_training_data

SERVICE = "comprehend"

TRAINING_IN_FLIGHT = ("SUBMITTED", "TRAINING", "STOP_REQUESTED", "DELETING")
DELETABLE = ("TRAINED", "TRAINED_WITH_WARNING", "IN_ERROR", "STOPPED")


@dataclass
class Recognizer:
    """One recognizer version, as the service keeps it."""

    arn: str
    name: str
    version: str | None
    status: str
    input_config: dict[str, Any]
    language: str
    role: str
    submit_time: datetime
    message: str | None = None
    training_start: datetime | None = None
    training_end: datetime | None = None
    end_time: datetime | None = None
    metadata: dict[str, Any] | None = None
    model_file: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    token: str | None = None

    def properties(self) -> dict[str, Any]:
        """EntityRecognizerProperties."""
        return drop_none({
            "EntityRecognizerArn": self.arn,
            "LanguageCode": self.language,
            "Status": self.status,
            "Message": self.message,
            "SubmitTime": self.submit_time,
            "EndTime": self.end_time,
            "TrainingStartTime": self.training_start,
            "TrainingEndTime": self.training_end,
            "InputDataConfig": self.input_config,
            "RecognizerMetadata": self.metadata,
            "DataAccessRoleArn": self.role,
            "VersionName": self.version,
        })


class ComprehendStandIn(StandInService):
    """Custom entity recognizers trained and run locally."""

    operations: ClassVar[dict[tuple[str, str], str]] = {
        (SERVICE, "CreateEntityRecognizer"): "create_entity_recognizer",
        (SERVICE, "DescribeEntityRecognizer"): "describe_entity_recognizer",
        (SERVICE, "ListEntityRecognizers"): "list_entity_recognizers",
        (SERVICE, "DeleteEntityRecognizer"): "delete_entity_recognizer",
        (SERVICE, "StopTrainingEntityRecognizer"): "stop_training_entity_recognizer",
        (SERVICE, "StartEntitiesDetectionJob"): "start_entities_detection_job",
        (SERVICE, "DescribeEntitiesDetectionJob"): "describe_entities_detection_job",
        (SERVICE, "ListEntitiesDetectionJobs"): "list_entities_detection_jobs",
        (SERVICE, "StopEntitiesDetectionJob"): "stop_entities_detection_job",
    }

    def __init__(self, context: StandInContext, *, test_fraction: float = 0.1, seed: int = 0) -> None:
        super().__init__(context)
        self.recognizers: dict[str, Recognizer] = {}
        self.jobs: dict[str, DetectionJob] = {}
        self.test_fraction = test_fraction
        self.seed = seed
        self._loaded: dict[str, Any] = {}
        self._temp_dir: Path | None = None
        self._warnings: dict[str, str] = {}  # version name → the Message its training ends with
        # A flywheel's ARN → its active model's (set by standins.comprehend_flywheel.FlywheelsStandIn).
        self.active_model: Callable[[str], str] | None = None

    def warn_training(self, version: str, message: str) -> None:
        """Make the training of `version` (its VersionName) end TRAINED_WITH_WARNING with `message`:
        a model that can detect, and a Message for people (botocore ModelStatus)."""
        self._warnings[version] = message

    # --- where models live ----------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        if self.context.state_dir is not None:
            return self.context.state_dir / "models"
        if self._temp_dir is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="nerloop-models-"))
            weakref.finalize(self, shutil.rmtree, self._temp_dir, True)
        return self._temp_dir

    def _model_path(self, recognizer: Recognizer) -> Path:
        return self.models_dir / recognizer.name / f"{recognizer.version or '_'}.crf"

    def model(self, arn: str) -> Any:
        """The trained CrfRecognizer of a TRAINED (or TRAINED_WITH_WARNING) version (loaded once)."""
        recognizer = self._recognizer(arn)
        if recognizer.model_file is None:
            raise StandInError("ResourceUnavailableException", f"{arn} has no trained model ({recognizer.status})")
        if arn not in self._loaded:
            self._loaded[arn] = CrfRecognizer.load(self.models_dir / recognizer.model_file)
        return self._loaded[arn]

    # --- recognizers ------------------------------------------------------------------------------

    def _arn(self, name: str, version: str | None) -> str:
        base = f"arn:aws:comprehend:{self.context.region}:{self.context.account}:entity-recognizer/{name}"
        return f"{base}/version/{version}" if version else base

    def _recognizer(self, arn: str) -> Recognizer:
        recognizer = self.recognizers.get(arn)
        if recognizer is None:
            raise StandInError("ResourceNotFoundException", f"Could not find specified resource: {arn}")
        return recognizer

    def create_entity_recognizer(self, params: dict[str, Any]) -> dict[str, Any]:
        name, version = params["RecognizerName"], params.get("VersionName")
        for label, value in (("RecognizerName", name), ("VersionName", version)):
            if value is not None and (len(value) > MAX_NAME_LENGTH or not VERSION_NAME.match(value)):
                raise StandInError("ValidationException", f"{label} {value!r} must be 1-{MAX_NAME_LENGTH} characters "
                                    f"matching {NAME_PATTERN}")
        token = params.get("ClientRequestToken")
        for existing in self.recognizers.values():
            if token and existing.token == token and existing.name == name and existing.version == version:
                return {"EntityRecognizerArn": existing.arn}  # a retried call with the same token
        arn = self._arn(name, version)
        if arn in self.recognizers:
            raise StandInError("ResourceInUseException", f"Entity recognizer {arn} already exists")
        config = params["InputDataConfig"]
        check_input_config(config)
        self.recognizers[arn] = Recognizer(
            arn=arn, name=name, version=version, status="SUBMITTED", input_config=config,
            language=params["LanguageCode"], role=params["DataAccessRoleArn"], submit_time=utcnow(),
            tags=params.get("Tags", []), token=token,
        )
        self.changes += 1
        return {"EntityRecognizerArn": arn}

    def describe_entity_recognizer(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"EntityRecognizerProperties": self._recognizer(params["EntityRecognizerArn"]).properties()}

    def list_entity_recognizers(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filter") or {}
        found = sorted(self.recognizers.values(), key=lambda r: (r.submit_time, r.arn))
        if "Status" in wanted:
            found = [r for r in found if r.status == wanted["Status"]]
        if "RecognizerName" in wanted:
            found = [r for r in found if r.name == wanted["RecognizerName"]]
        if "SubmitTimeBefore" in wanted:
            found = [r for r in found if r.submit_time < wanted["SubmitTimeBefore"]]
        if "SubmitTimeAfter" in wanted:
            found = [r for r in found if r.submit_time > wanted["SubmitTimeAfter"]]
        page, token = paginate(found, params)
        return drop_none({"EntityRecognizerPropertiesList": [r.properties() for r in page], "NextToken": token})

    def delete_entity_recognizer(self, params: dict[str, Any]) -> dict[str, Any]:
        recognizer = self._recognizer(params["EntityRecognizerArn"])
        if recognizer.status not in DELETABLE:
            raise StandInError("ResourceInUseException", f"{recognizer.arn} is {recognizer.status}; only recognizers "
                            f"in {', '.join(DELETABLE)} can be deleted")
        if any(job.recognizer_arn == recognizer.arn and job.status in JOB_IN_FLIGHT for job in self.jobs.values()):
            raise StandInError("ResourceInUseException", f"{recognizer.arn} is used by a detection job in progress")
        recognizer.status = "DELETING"
        self.changes += 1
        return {}

    def stop_training_entity_recognizer(self, params: dict[str, Any]) -> dict[str, Any]:
        recognizer = self._recognizer(params["EntityRecognizerArn"])
        if recognizer.status in ("SUBMITTED", "TRAINING"):
            recognizer.status = "STOP_REQUESTED"
            self.changes += 1
        return {}

    # --- detection jobs ---------------------------------------------------------------------------

    def _job(self, job_id: str) -> DetectionJob:
        job = self.jobs.get(job_id)
        if job is None:
            raise StandInError("JobNotFoundException", f"Could not find specified job: {job_id}")
        return job

    def start_entities_detection_job(self, params: dict[str, Any]) -> dict[str, Any]:
        arn = params.get("EntityRecognizerArn")
        if not arn and params.get("FlywheelArn") and self.active_model is not None:
            arn = self.active_model(params["FlywheelArn"])  # the flywheel's active model (standins.comprehend_flywheel)
        if not arn:
            raise StandInError("InvalidRequestException", "the local stand-in runs custom recognizers only: "
                            "EntityRecognizerArn is required")
        token = params.get("ClientRequestToken")
        for job in self.jobs.values():
            if token and job.token == token:
                return self._start_reply(job)
        recognizer = self._recognizer(arn)
        if recognizer.status not in ("TRAINED", "TRAINED_WITH_WARNING"):
            raise StandInError("ResourceUnavailableException",
                            f"The specified resource is not available: {arn} is {recognizer.status}")
        running = sum(1 for job in self.jobs.values() if job.status in JOB_IN_FLIGHT)
        if running >= MAX_CONCURRENT_DETECTION_JOBS:
            # The concurrent active job quota; TooManyRequestsException is the operation's only
            # "exceeds the limit, resubmit later" error (botocore model, API reference).
            raise StandInError("TooManyRequestsException", f"{running} entities detection jobs are active; at most "
                            f"{MAX_CONCURRENT_DETECTION_JOBS} may run at once. Resubmit your request later.")
        input_config = {"InputFormat": "ONE_DOC_PER_FILE", **params["InputDataConfig"]}
        job_id = uuid.uuid4().hex
        output_prefix = params["OutputDataConfig"]["S3Uri"]
        output_uri = join_s3_uri(output_prefix, f"{self.context.account}-NER-{job_id}", "output", "output.tar.gz")
        job = DetectionJob(
            job_id=job_id,
            arn=f"arn:aws:comprehend:{self.context.region}:{self.context.account}:entities-detection-job/{job_id}",
            status="SUBMITTED", recognizer_arn=arn, input_config=input_config,
            output_config={**params["OutputDataConfig"], "S3Uri": output_uri},
            language=params["LanguageCode"], role=params["DataAccessRoleArn"], submit_time=utcnow(),
            name=params.get("JobName"), token=token, flywheel_arn=params.get("FlywheelArn"),
        )
        self.jobs[job_id] = job
        self.changes += 1
        return self._start_reply(job)

    @staticmethod
    def _start_reply(job: DetectionJob) -> dict[str, Any]:
        return {"JobId": job.job_id, "JobArn": job.arn, "JobStatus": job.status,
                "EntityRecognizerArn": job.recognizer_arn}

    def describe_entities_detection_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"EntitiesDetectionJobProperties": self._job(params["JobId"]).properties()}

    def list_entities_detection_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        wanted = params.get("Filter") or {}
        found = sorted(self.jobs.values(), key=lambda j: (j.submit_time, j.job_id))
        if "JobName" in wanted:
            found = [j for j in found if j.name == wanted["JobName"]]
        if "JobStatus" in wanted:
            found = [j for j in found if j.status == wanted["JobStatus"]]
        if "SubmitTimeBefore" in wanted:
            found = [j for j in found if j.submit_time < wanted["SubmitTimeBefore"]]
        if "SubmitTimeAfter" in wanted:
            found = [j for j in found if j.submit_time > wanted["SubmitTimeAfter"]]
        page, token = paginate(found, params)
        return drop_none({"EntitiesDetectionJobPropertiesList": [j.properties() for j in page], "NextToken": token})

    def stop_entities_detection_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job = self._job(params["JobId"])
        if job.status in ("SUBMITTED", "IN_PROGRESS"):
            job.status = "STOP_REQUESTED"
            self.changes += 1
        return {"JobId": job.job_id, "JobStatus": job.status}

    # --- the clock ----------------------------------------------------------------------------------

    def busy(self) -> bool:
        return (any(r.status in TRAINING_IN_FLIGHT for r in self.recognizers.values())
                or any(j.status in JOB_IN_FLIGHT for j in self.jobs.values()))

    def tick(self) -> None:
        for recognizer in list(self.recognizers.values()):
            self._advance_recognizer(recognizer)
        for job in list(self.jobs.values()):
            self._advance_job(job)

    def _advance_recognizer(self, recognizer: Recognizer) -> None:
        status = recognizer.status
        if status == "SUBMITTED":
            recognizer.status = "TRAINING"
            recognizer.training_start = utcnow()
        elif status == "TRAINING":
            self._train(recognizer)
            recognizer.training_end = recognizer.end_time = utcnow()
        elif status == "STOP_REQUESTED":
            recognizer.status = "STOPPED"
            recognizer.end_time = utcnow()
        elif status == "DELETING":
            del self.recognizers[recognizer.arn]
            self._loaded.pop(recognizer.arn, None)
            if recognizer.model_file:
                (self.models_dir / recognizer.model_file).unlink(missing_ok=True)
        else:
            return
        self.changes += 1

    def _advance_job(self, job: DetectionJob) -> None:
        if job.status == "SUBMITTED":
            job.status = "IN_PROGRESS"
        elif job.status == "IN_PROGRESS":
            self._detect(job)
            job.end_time = utcnow()
        elif job.status == "STOP_REQUESTED":
            job.status = "STOPPED"
            job.end_time = utcnow()
        else:
            return
        self.changes += 1

    # --- training -------------------------------------------------------------------------------------

    def _train(self, recognizer: Recognizer) -> None:
        config = recognizer.input_config
        types = [item["Type"] for item in config["EntityTypes"]]
        try:
            train, test = read_training_data(self.context, config, types)
            if test is None:
                result = train_with_holdout(train, types, test_fraction=self.test_fraction, seed=self.seed)
                model, metadata = result.recognizer, result.to_comprehend_metadata()
            else:
                model = train_recognizer(train, types, seed=self.seed)
                metadata = evaluate(model, test).to_comprehend_metadata(model.trained_documents,
                                                                        model.train_mentions)
        except (TrainingDataError, InvalidTrainingData) as exc:
            recognizer.status = "IN_ERROR"
            recognizer.message = str(exc)
            return
        path = self._model_path(recognizer)
        model.save(path)
        recognizer.model_file = path.relative_to(self.models_dir).as_posix()
        recognizer.metadata = metadata
        warning = self._warnings.pop(recognizer.version or "", None)
        recognizer.status = "TRAINED" if warning is None else "TRAINED_WITH_WARNING"
        recognizer.message = warning
        self._loaded[recognizer.arn] = model

    # --- detection --------------------------------------------------------------------------------

    def _detect(self, job: DetectionJob) -> None:
        recognizer = self.recognizers.get(job.recognizer_arn)
        if recognizer is None or recognizer.model_file is None:
            job.status, job.message = "FAILED", f"The entity recognizer {job.recognizer_arn} is not available"
            return
        input_uri = job.input_config["S3Uri"]
        keys = self.context.list_s3(input_uri)
        if not keys:
            job.status, job.message = "FAILED", f"No input files were found at {input_uri}"
            return
        archive = detection_output(self.context, self.model(job.recognizer_arn), job.input_config, keys)
        self.context.write_s3(job.output_config["S3Uri"], archive, "application/x-gzip")
        job.status = "COMPLETED"

    # --- saved state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"recognizers": [dump_record(r) for r in self.recognizers.values()],
                "jobs": [dump_record(j) for j in self.jobs.values()]}

    def restore(self, data: dict[str, Any]) -> None:
        self.recognizers = {item["arn"]: load_record(Recognizer, item) for item in data.get("recognizers", [])}
        self.jobs = {item["job_id"]: load_record(DetectionJob, item) for item in data.get("jobs", [])}
        self._loaded.clear()


__all__ = ["ComprehendStandIn", "Recognizer"]
