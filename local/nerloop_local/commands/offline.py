"""One stage run offline, outside the event loop: for commands that want a stage's output now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from nerloop import aws as nerloop_aws
from nerloop import idempotency
from nerloop.aws import Aws
from nerloop.constants import ANNOTATIONS_FILE, DOCUMENTS_FILE
from nerloop.settings import load_settings
from nerloop.snapshots import snapshot_keys
from nerloop.stages.convert import convert_labeling_job
from nerloop.stages.results import Converted
from nerloop_local.emulator.deployment import create_stack_resources
from nerloop_local.emulator.stack import Stack

JOB_NAME = "nerloop-convert"


class _CompletedLabelingJob:
    """DescribeLabelingJob for one job that has finished with the given manifest (moto has no Ground Truth)."""

    def __init__(self, manifest_uri: str) -> None:
        self.manifest_uri = manifest_uri

    def describe_labeling_job(self, LabelingJobName: str) -> dict[str, Any]:
        return {"LabelingJobName": LabelingJobName, "LabelingJobStatus": "Completed",
                "LabelingJobOutput": {"OutputDatasetS3Uri": self.manifest_uri}}


def convert_manifest(manifest: Path, entity_types: list[str]) -> tuple[Converted, dict[str, bytes]]:
    """Run the convert stage on `manifest` in an emulated account; return its result and the files
    it wrote: documents.txt, annotations.csv and, when there is one, quarantine.jsonl."""
    stack = Stack.load({"EntityTypes": ",".join(entity_types)})
    with mock_aws():
        nerloop_aws.reset_clients()
        idempotency.forget_persistence()
        bucket, table = create_stack_resources(stack)
        s3 = boto3.client("s3")
        key = f"labeling/{JOB_NAME}/manifests/output/output.manifest"
        s3.upload_file(str(manifest), bucket, key)
        settings = load_settings(stack.function_environment("ConvertFunction"))
        job_arn = f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{JOB_NAME}"
        aws = Aws(table, overrides={"sagemaker": _CompletedLabelingJob(f"s3://{bucket}/{key}")})
        result = convert_labeling_job(job_arn, aws, settings)
        if not isinstance(result, Converted):  # a completed job, and no deadline: converted whole
            raise RuntimeError(f"the convert stage did not finish: {result}")
        files: dict[str, bytes] = {}
        if result.snapshot:
            documents_key, annotations_key = snapshot_keys(result.snapshot)
            files[DOCUMENTS_FILE] = s3.get_object(Bucket=bucket, Key=documents_key)["Body"].read()
            files[ANNOTATIONS_FILE] = s3.get_object(Bucket=bucket, Key=annotations_key)["Body"].read()
        if result.quarantine:
            report = s3.get_object(Bucket=bucket, Key=result.quarantine)["Body"].read()
            files["quarantine.jsonl"] = _local_file_names(report, f"s3://{bucket}/{key}", str(manifest))
        nerloop_aws.reset_clients()
        idempotency.forget_persistence()
    return result, files


def _local_file_names(report: bytes, uri: str, path: str) -> bytes:
    """The quarantine report with the emulated bucket's URI of the manifest replaced by its local
    path, so that every problem names the file the person gave."""
    rows = [json.loads(line) for line in report.splitlines() if line.strip()]
    for row in rows:
        if row.get("file") == uri:
            row["file"] = path
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
