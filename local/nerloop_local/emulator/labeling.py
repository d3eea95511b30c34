"""A Ground Truth labeling job run from a finished output manifest, through the SageMaker API as the
preprocess stage's jobs are, so the convert rule hears of it as it would on AWS."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from nerloop.constants import LABELING_PREFIX
from nerloop_local.emulator.deployment import LOCAL_WORKTEAM
from nerloop_local.emulator.isolation import ACCOUNT
from nerloop_local.emulator.stack import Stack
from nerloop_local.standins.groundtruth import label_attribute_of

LOCAL_ROLE = f"arn:aws:iam::{ACCOUNT}:role/nerloop-local"
# Ground Truth's built-in NER task (us-east-1), as a real labeling job would name it.
GT_NER_PRE_LAMBDA = "arn:aws:lambda:us-east-1:432418664414:function:PRE-NamedEntityRecognition"
GT_NER_ACS_LAMBDA = "arn:aws:lambda:us-east-1:432418664414:function:ACS-NamedEntityRecognition"
GT_NER_TASK_UI = "arn:aws:sagemaker:us-east-1:394669845002:human-task-ui/NamedEntityRecognition"


def label_with_manifest(stack: Stack, bucket: str, clients: tuple[Any, Any], groundtruth: Any,
                        manifest: Path | str | bytes, job_name: str | None = None) -> str:
    """Run a labeling job that ends with `manifest` (see LocalRuntime.label_with_manifest); `clients` are
    the emulated account's (s3, sagemaker). Returns the job ARN."""
    s3, sagemaker = clients
    body = (manifest.read_bytes() if isinstance(manifest, Path)
            else manifest.encode("utf-8") if isinstance(manifest, str) else bytes(manifest))
    prefix = stack.labeling_job_prefix()
    name = job_name or f"{prefix}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    if not name.startswith(f"{prefix}-"):  # the convert rule would never hear of the job
        raise ValueError(f"labeling job {name!r}: the stack's convert rule takes only jobs named {prefix}-…")
    sources = [json.dumps({"source": json.loads(line)["source"]}, ensure_ascii=False)
               for line in body.decode("utf-8").splitlines() if line.strip()]
    input_key = f"{LABELING_PREFIX}{name}/input.manifest"
    s3.put_object(Bucket=bucket, Key=input_key, Body=("\n".join(sources) + "\n").encode("utf-8"),
                  ContentType="application/x-ndjson")
    labels_key = f"{LABELING_PREFIX}{name}/label-categories.json"
    types = stack.names["EntityTypes"]
    labels = json.dumps({"document-version": "2018-11-28", "labels": [{"label": t} for t in types]})
    s3.put_object(Bucket=bucket, Key=labels_key, Body=labels.encode("utf-8"), ContentType="application/json")
    reply = sagemaker.create_labeling_job(
        LabelingJobName=name,
        LabelAttributeName=label_attribute_of(body),
        InputConfig={"DataSource": {"S3DataSource": {"ManifestS3Uri": f"s3://{bucket}/{input_key}"}}},
        OutputConfig={"S3OutputPath": f"s3://{bucket}/{LABELING_PREFIX}"},
        RoleArn=LOCAL_ROLE,
        LabelCategoryConfigS3Uri=f"s3://{bucket}/{labels_key}",
        HumanTaskConfig={
            "WorkteamArn": stack.parameters.get("WorkteamArn") or LOCAL_WORKTEAM,
            "UiConfig": {"HumanTaskUiArn": GT_NER_TASK_UI},
            "PreHumanTaskLambdaArn": GT_NER_PRE_LAMBDA,
            "TaskTitle": "Label the entities", "TaskDescription": "Mark every entity in the text",
            "NumberOfHumanWorkersPerDataObject": 1, "TaskTimeLimitInSeconds": 600,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": GT_NER_ACS_LAMBDA},
        },
    )
    groundtruth.complete_job_from_manifest(name, body)
    return str(reply["LabelingJobArn"])
