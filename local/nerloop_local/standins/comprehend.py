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

Training reads the COMPREHEND_CSV input from the emulated S3 as Comprehend does: a ONE_DOC_PER_LINE
documents file (or every object under a prefix) and the annotations CSV `File, Line, Begin Offset,
End Offset, Type` (Line 0-based, offsets within the line, File the documents file's name). Data that
breaks Comprehend's rules (AWS-FACTS "Comprehend training limits") ends IN_ERROR with a Message
saying what and where. With Documents.TestS3Uri and Annotations.TestS3Uri the model trains on every
training document and its metrics come from the test set (which needs an annotation of each type);
without a test set 10 % is held out (grouped by text) for the metrics.

At most MAX_CONCURRENT_DETECTION_JOBS jobs are active at once (Comprehend's quota, per account and job
type); StartEntitiesDetectionJob past it raises TooManyRequestsException.

A job writes `<OutputDataConfig.S3Uri>/<account>-NER-<jobId>/output/output.tar.gz`, a gzip tar with
one member named `output` holding JSON Lines `{"File", "Line", "Entities": [...]}` (ONE_DOC_PER_LINE)
or `{"File", "Entities": [...]}` (ONE_DOC_PER_FILE); a document that cannot be read gets
`{"File", "Line", "ErrorCode", "ErrorMessage"}` instead (the error codes are inferred, not documented).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
import shutil
import tarfile
import tempfile
import uuid
import weakref
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from nerloop.constants import (
    MAX_CONCURRENT_DETECTION_JOBS,
    MAX_CORPUS_BYTES,
    MAX_DOCUMENT_BYTES,
    MAX_ENTITY_TYPES,
    MAX_TRAINING_DOCUMENTS,
    MAX_TYPE_NAME_LENGTH,
    MIN_ANNOTATIONS_PER_TYPE,
    MIN_CORPUS_BYTES,
    MIN_TRAINING_DOCUMENTS,
)
from nerloop.documents import Span
from nerloop.recognizer_versions import MAX_NAME_LENGTH, NAME_PATTERN, VERSION_NAME
from nerloop_local.standins import (
    StandInContext,
    StandInError,
    StandInService,
    drop_none,
    from_iso,
    join_s3_uri,
    paginate,
    split_s3_uri,
    to_iso,
    utcnow,
)

SERVICE = "comprehend"
ANNOTATION_COLUMNS = ["File", "Line", "Begin Offset", "End Offset", "Type"]
MAX_DETECTION_DOCUMENT_BYTES = 1024 * 1024  # AWS-FACTS: each document at most 1 MB in a detection job
OUTPUT_MEMBER = "output"

TRAINING_IN_FLIGHT = ("SUBMITTED", "TRAINING", "STOP_REQUESTED", "DELETING")
DELETABLE = ("TRAINED", "TRAINED_WITH_WARNING", "IN_ERROR", "STOPPED")
JOB_IN_FLIGHT = ("SUBMITTED", "IN_PROGRESS", "STOP_REQUESTED")

Document = tuple[str, list[Span]]


class TrainingDataError(Exception):
    """The training data breaks one of Comprehend's rules; the message becomes the recognizer's Message."""


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


@dataclass
class DetectionJob:
    job_id: str
    arn: str
    status: str
    recognizer_arn: str
    input_config: dict[str, Any]
    output_config: dict[str, Any]  # S3Uri is the full path of output.tar.gz, as Describe shows it
    language: str
    role: str
    submit_time: datetime
    name: str | None = None
    message: str | None = None
    end_time: datetime | None = None
    token: str | None = None
    flywheel_arn: str | None = None  # started with FlywheelArn: recognizer_arn is its active model then

    def properties(self) -> dict[str, Any]:
        """EntitiesDetectionJobProperties."""
        return drop_none({
            "JobId": self.job_id,
            "JobArn": self.arn,
            "JobName": self.name,
            "JobStatus": self.status,
            "Message": self.message,
            "SubmitTime": self.submit_time,
            "EndTime": self.end_time,
            "EntityRecognizerArn": self.recognizer_arn,
            "InputDataConfig": self.input_config,
            "OutputDataConfig": self.output_config,
            "LanguageCode": self.language,
            "DataAccessRoleArn": self.role,
            "FlywheelArn": self.flywheel_arn,
        })


_TIMES = ("submit_time", "training_start", "training_end", "end_time", "creation_time")  # creation_time: flywheels


def _dump(record: Any) -> dict[str, Any]:
    data = asdict(record)
    for name in _TIMES:
        if name in data:
            data[name] = to_iso(data[name])
    return data


def _load(cls: type[Any], data: dict[str, Any]) -> Any:
    values = dict(data)
    for name in _TIMES:
        if name in values:
            values[name] = from_iso(values[name])
    return cls(**values)


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
        from nerloop_local.recognizer.crf import CrfRecognizer

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
        _check_input_config(config)
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
        from nerloop_local.recognizer.crf import InvalidTrainingData, evaluate, train_recognizer, train_with_holdout

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
        model = self.model(job.recognizer_arn)
        bucket, _ = split_s3_uri(input_uri)
        one_per_line = job.input_config.get("InputFormat") == "ONE_DOC_PER_LINE"
        lines: list[str] = []
        for key in sorted(keys):
            body = self.context.read_s3(f"s3://{bucket}/{key}")
            name = key.rsplit("/", 1)[-1]
            documents = _split_lines(body) if one_per_line else [body]
            for number, raw in enumerate(documents):
                record: dict[str, Any] = {"File": name, "Line": number} if one_per_line else {"File": name}
                record.update(_detect_document(model, raw))
                lines.append(json.dumps(record, ensure_ascii=False))
        archive = _tar_gz(OUTPUT_MEMBER, ("\n".join(lines) + "\n").encode("utf-8"))
        self.context.write_s3(job.output_config["S3Uri"], archive, "application/x-gzip")
        job.status = "COMPLETED"

    # --- saved state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {"recognizers": [_dump(r) for r in self.recognizers.values()],
                "jobs": [_dump(j) for j in self.jobs.values()]}

    def restore(self, data: dict[str, Any]) -> None:
        self.recognizers = {item["arn"]: _load(Recognizer, item) for item in data.get("recognizers", [])}
        self.jobs = {item["job_id"]: _load(DetectionJob, item) for item in data.get("jobs", [])}
        self._loaded.clear()


def _check_input_config(config: dict[str, Any]) -> None:
    """What CreateEntityRecognizer refuses at once (InvalidRequestException), before any training."""
    if config.get("DataFormat", "COMPREHEND_CSV") != "COMPREHEND_CSV" or config.get("EntityList"):
        raise StandInError("InvalidRequestException", "the local stand-in trains from COMPREHEND_CSV annotations "
                        "only (no AUGMENTED_MANIFEST, no EntityList)")
    if not config.get("Documents") or not config.get("Annotations"):
        raise StandInError("InvalidRequestException", "COMPREHEND_CSV training needs Documents and Annotations")
    if config["Documents"].get("InputFormat", "ONE_DOC_PER_LINE") != "ONE_DOC_PER_LINE":
        raise StandInError("InvalidRequestException", "the local stand-in trains from ONE_DOC_PER_LINE documents only")
    types = [item.get("Type", "") for item in config.get("EntityTypes", [])]
    if not 1 <= len(types) <= MAX_ENTITY_TYPES:
        raise StandInError("InvalidRequestException", f"{len(types)} entity types; 1 to {MAX_ENTITY_TYPES} are allowed")
    for name in types:
        if not name or len(name) > MAX_TYPE_NAME_LENGTH or re.search(r"[\s,]|\\[nrt]", name):
            raise StandInError("InvalidRequestException", f"entity type {name!r} is not valid: at most "
                            f"{MAX_TYPE_NAME_LENGTH} characters, no space, comma, tab or line break")
    if len(set(types)) != len(types):
        raise StandInError("InvalidRequestException", "entity types repeat")


# --- reading training data (pure functions over what S3 holds) -----------------------------------------


def read_training_data(context: StandInContext, config: dict[str, Any], types: list[str]
                       ) -> tuple[list[Document], list[Document] | None]:
    """(train, test) documents from the COMPREHEND_CSV input; test is None without a test set."""
    documents, annotations = config["Documents"], config["Annotations"]
    train = _read_set(context, documents["S3Uri"], annotations["S3Uri"], types)
    test = None
    if documents.get("TestS3Uri") or annotations.get("TestS3Uri"):
        if not (documents.get("TestS3Uri") and annotations.get("TestS3Uri")):
            raise TrainingDataError("a test set needs both Documents.TestS3Uri and Annotations.TestS3Uri")
        test = _read_set(context, documents["TestS3Uri"], annotations["TestS3Uri"], types)
        # "the test data must include at least one annotation for each of the entity types specified in
        # the creation request" (https://docs.aws.amazon.com/comprehend/latest/dg/prep-training-data-cer.html)
        found = {span.type for _, spans in test for span in spans}
        missing = [name for name in types if name not in found]
        if missing:
            raise TrainingDataError(f"the test data has no annotation of {', '.join(missing)}; it needs at least "
                                    "one of each entity type")
    check_minimums(train, types)
    return train, test


def _read_set(context: StandInContext, documents_uri: str, annotations_uri: str, types: list[str]) -> list[Document]:
    bucket, _ = split_s3_uri(documents_uri)
    document_keys = context.list_s3(documents_uri)
    if not document_keys:
        raise TrainingDataError(f"No documents were found at {documents_uri}")
    files: dict[str, list[str]] = {}
    for key in sorted(document_keys):
        name = key.rsplit("/", 1)[-1]
        try:
            files[name] = [raw.decode("utf-8") for raw in _split_lines(context.read_s3(f"s3://{bucket}/{key}"))]
        except UnicodeDecodeError as exc:
            raise TrainingDataError(f"documents file {key} is not UTF-8: {exc}") from exc
    annotations_bucket, _ = split_s3_uri(annotations_uri)
    annotation_keys = context.list_s3(annotations_uri)
    if not annotation_keys:
        raise TrainingDataError(f"No annotations were found at {annotations_uri}")
    spans: dict[tuple[str, int], list[Span]] = {}
    for key in sorted(annotation_keys):
        text = context.read_s3(f"s3://{annotations_bucket}/{key}").decode("utf-8-sig", errors="strict")
        for file_name, line, span in parse_annotations(text, key, files, types):
            spans.setdefault((file_name, line), []).append(span)
    for (file_name, line), found in spans.items():
        _check_overlaps(file_name, line, found)
    return [(text, sorted(spans.get((name, number), [])))
            for name, lines in files.items() for number, text in enumerate(lines)
            if text.strip() or spans.get((name, number))]


def parse_annotations(text: str, key: str, files: dict[str, list[str]], types: list[str]
                      ) -> list[tuple[str, int, Span]]:
    """Rows of an annotations CSV as (file, 0-based line, span); TrainingDataError names the CSV row."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip() for cell in rows[0]] != ANNOTATION_COLUMNS:
        raise TrainingDataError(f"annotations file {key}: the header must be {', '.join(ANNOTATION_COLUMNS)}")
    known = set(types)
    found: list[tuple[str, int, Span]] = []
    for row_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"annotations file {key} row {row_number}"
        if len(row) != len(ANNOTATION_COLUMNS):
            raise TrainingDataError(f"{where}: {len(row)} columns, expected {len(ANNOTATION_COLUMNS)}")
        file_name, line_text, begin_text, end_text, type_ = (cell.strip() for cell in row)
        if file_name not in files:
            raise TrainingDataError(f"{where}: File {file_name!r} is not one of the documents files "
                                    f"({', '.join(sorted(files))})")
        try:
            line, begin, end = int(line_text), int(begin_text), int(end_text)
        except ValueError as exc:
            raise TrainingDataError(f"{where}: Line, Begin Offset and End Offset must be integers") from exc
        if type_ not in known:
            raise TrainingDataError(f"{where}: entity type {type_!r} is not one of the recognizer's "
                                    f"EntityTypes ({', '.join(types)})")
        lines = files[file_name]
        if not 0 <= line < len(lines):
            raise TrainingDataError(f"{where}: Line {line} is outside {file_name} ({len(lines)} lines, 0-based)")
        if not 0 <= begin < end <= len(lines[line]):
            raise TrainingDataError(f"{where}: offsets {begin}-{end} are outside line {line} of {file_name} "
                                    f"({len(lines[line])} characters)")
        found.append((file_name, line, Span(begin, end, type_)))
    return found


def _check_overlaps(file_name: str, line: int, spans: list[Span]) -> None:
    ordered = sorted(spans)
    for before, after in itertools.pairwise(ordered):
        if after.begin < before.end:
            raise TrainingDataError(f"overlapping annotations in {file_name} line {line}: {before.begin}-"
                                    f"{before.end} {before.type} and {after.begin}-{after.end} {after.type}")


def check_minimums(documents: list[Document], types: list[str]) -> None:
    """Comprehend's training minimums and maxima (nerloop.constants, from the quotas page); the first
    broken rule raises TrainingDataError, so the version ends IN_ERROR as Comprehend's would."""
    if len(documents) < MIN_TRAINING_DOCUMENTS:
        raise TrainingDataError(f"{len(documents)} training documents; at least {MIN_TRAINING_DOCUMENTS} are required")
    if len(documents) > MAX_TRAINING_DOCUMENTS:
        raise TrainingDataError(f"{len(documents)} training documents; at most {MAX_TRAINING_DOCUMENTS} are allowed")
    sizes = [len(text.encode("utf-8")) for text, _ in documents]
    oversized = [index for index, size in enumerate(sizes) if size > MAX_DOCUMENT_BYTES]
    if oversized:
        raise TrainingDataError(f"{len(oversized)} documents are over {MAX_DOCUMENT_BYTES} bytes "
                                f"(the first is training document {oversized[0]})")
    if sum(sizes) < MIN_CORPUS_BYTES:
        raise TrainingDataError(f"the training documents total {sum(sizes)} bytes; at least {MIN_CORPUS_BYTES} "
                                "are required")
    if sum(sizes) > MAX_CORPUS_BYTES:
        raise TrainingDataError(f"the training documents total {sum(sizes)} bytes; at most {MAX_CORPUS_BYTES} "
                                "are allowed")
    counts = Counter(span.type for _, spans in documents for span in spans)
    short = [f"{name} has {counts.get(name, 0)}" for name in types if counts.get(name, 0) < MIN_ANNOTATIONS_PER_TYPE]
    if short:
        raise TrainingDataError(f"each entity type needs at least {MIN_ANNOTATIONS_PER_TYPE} annotations: "
                                + "; ".join(short))


# --- detection helpers ------------------------------------------------------------------------------


def _split_lines(body: bytes) -> list[bytes]:
    """The documents of a ONE_DOC_PER_LINE file (a final line break ends the last line, adds none)."""
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def _detect_document(model: Any, raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_DETECTION_DOCUMENT_BYTES:
        return {"ErrorCode": "DOCUMENT_SIZE_EXCEEDED",
                "ErrorMessage": f"Document size {len(raw)} bytes exceeds the limit of {MAX_DETECTION_DOCUMENT_BYTES}"}
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"ErrorCode": "UNSUPPORTED_ENCODING", "ErrorMessage": "The document is not valid UTF-8"}
    return {"Entities": [entity.to_comprehend() for entity in model.detect(text)]}


def _tar_gz(member: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo(member)
        info.size = len(content)
        info.mtime = int(utcnow().timestamp())
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


__all__ = ["ComprehendStandIn", "TrainingDataError", "check_minimums", "parse_annotations", "read_training_data"]
