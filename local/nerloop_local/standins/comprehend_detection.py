"""Comprehend's entities detection jobs: the job record, and the output a job writes from its input.

A job writes `<OutputDataConfig.S3Uri>/<account>-NER-<jobId>/output/output.tar.gz`, a gzip tar with
one member named `output` holding JSON Lines `{"File", "Line", "Entities": [...]}` (ONE_DOC_PER_LINE)
or `{"File", "Entities": [...]}` (ONE_DOC_PER_FILE); a document that cannot be read gets
`{"File", "Line", "ErrorCode", "ErrorMessage"}` instead (the error codes are inferred, not documented).
"""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nerloop_local.recognizer.crf import CrfRecognizer
from nerloop_local.standins.base import StandInContext, drop_none, split_s3_uri, utcnow
from nerloop_local.standins.comprehend_training_data import split_lines

MAX_DETECTION_DOCUMENT_BYTES = 1024 * 1024  # AWS-FACTS: each document at most 1 MB in a detection job
OUTPUT_MEMBER = "output"
JOB_IN_FLIGHT = ("SUBMITTED", "IN_PROGRESS", "STOP_REQUESTED")


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


def detection_output(context: StandInContext, model: CrfRecognizer, input_config: dict[str, Any],
                     keys: list[str]) -> bytes:
    """output.tar.gz of a job over the objects `keys` found at `input_config["S3Uri"]` (each file, or each line)."""
    bucket, _ = split_s3_uri(input_config["S3Uri"])
    one_per_line = input_config.get("InputFormat") == "ONE_DOC_PER_LINE"
    lines: list[str] = []
    for key in sorted(keys):
        body = context.read_s3(f"s3://{bucket}/{key}")
        name = key.rsplit("/", 1)[-1]
        documents = split_lines(body) if one_per_line else [body]
        for number, raw in enumerate(documents):
            record: dict[str, Any] = {"File": name, "Line": number} if one_per_line else {"File": name}
            record.update(_detect_document(model, raw))
            lines.append(json.dumps(record, ensure_ascii=False))
    return _tar_gz(OUTPUT_MEMBER, ("\n".join(lines) + "\n").encode("utf-8"))


def _detect_document(model: CrfRecognizer, raw: bytes) -> dict[str, Any]:
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
