"""Ground Truth named-entity labeling jobs: the request for the built-in NER task, and starting one.

The built-in task's worker UI, pre-annotation and consolidation Lambdas are AWS's own, published
per region (SageMaker API reference, HumanTaskConfig.PreHumanTaskLambdaArn,
AnnotationConsolidationConfig.AnnotationConsolidationLambdaArn and UiConfig.HumanTaskUiArn).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from nerloop.constants import LABELING_PREFIX
from nerloop.errors import NerloopError
from nerloop.observability import logger
from nerloop.state import StateTable

# The account that runs Ground Truth's built-in Lambdas (PRE-NamedEntityRecognition and
# ACS-NamedEntityRecognition) in each region, as the SageMaker API reference lists them.
BUILTIN_LAMBDA_ACCOUNTS = {
    "us-east-1": "432418664414",
    "us-east-2": "266458841044",
    "us-west-2": "081040173940",
    "ca-central-1": "918755190332",
    "eu-west-1": "568282634449",
    "eu-west-2": "487402164563",
    "eu-central-1": "203001061592",
    "ap-northeast-1": "477331159723",
    "ap-northeast-2": "845288260483",
    "ap-south-1": "565803892007",
    "ap-southeast-1": "377565633583",
    "ap-southeast-2": "454466003867",
}
# The NER worker UI is one account's in every region.
HUMAN_TASK_UI_ACCOUNT = "394669845002"

LABEL_CATEGORY_DOCUMENT_VERSION = "2018-11-28"
LABEL_CATEGORIES_FILE = "label-categories.json"
MAX_JOB_NAME = 63
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")

TASK_TITLE = "Label named entities"
TASK_DESCRIPTION = "Select each word or phrase that names one of the listed entity types."
TASK_KEYWORDS = ["Text", "Named entity recognition"]
SHORT_INSTRUCTION = "<p>Highlight every word or phrase that names an entity of one of the listed types.</p>"
FULL_INSTRUCTION = (
    "<p>Select whole names only: no spaces or punctuation at the start or end of a selection.</p>"
    "<p>Do not let two selections overlap. Leave text that names none of the types unlabelled.</p>"
)


class UnsupportedRegion(NerloopError):
    """Ground Truth's built-in NER task is not published for this region (or not in our table)."""


def builtin_ner_lambdas(region: str) -> tuple[str, str]:
    """(pre-annotation Lambda ARN, consolidation Lambda ARN) of the built-in NER task in `region`."""
    account = BUILTIN_LAMBDA_ACCOUNTS.get(region)
    if account is None:
        raise UnsupportedRegion(
            f"no Ground Truth built-in NER Lambdas known for region {region!r}; "
            f"known regions: {', '.join(sorted(BUILTIN_LAMBDA_ACCOUNTS))}"
        )
    base = f"arn:aws:lambda:{region}:{account}:function:"
    return base + "PRE-NamedEntityRecognition", base + "ACS-NamedEntityRecognition"


def ner_human_task_ui_arn(region: str) -> str:
    return f"arn:aws:sagemaker:{region}:{HUMAN_TASK_UI_ACCOUNT}:human-task-ui/NamedEntityRecognition"


def label_category_config(entity_types: Iterable[str]) -> dict[str, Any]:
    """The label category configuration file of a NER job. NER jobs also need worker instructions
    in it (CreateLabelingJob, LabelCategoryConfigS3Uri)."""
    labels = list(dict.fromkeys(entity_types))
    if not labels:
        raise ValueError("a labeling job needs at least one entity type")
    return {
        "document-version": LABEL_CATEGORY_DOCUMENT_VERSION,
        "labels": [{"label": name} for name in labels],
        "instructions": {"shortInstruction": SHORT_INSTRUCTION, "fullInstruction": FULL_INSTRUCTION},
    }


def labeling_job_name(prefix: str, batch: str) -> str:
    """A job name for a batch, `<prefix>-<batch>`, made to fit 63 characters of [a-zA-Z0-9-].

    The same batch always gets the same name, so a retried start finds its own job. A batch name
    that must be cut or cleaned gets a hash of itself at the end, so two batches cut to the same
    text stay apart.
    """
    if not JOB_NAME.match(prefix):
        raise ValueError(f"labeling job prefix {prefix!r} must match {JOB_NAME.pattern}")
    plain = f"{prefix}-{batch}"
    if len(plain) <= MAX_JOB_NAME and JOB_NAME.match(plain):
        return plain
    digest = hashlib.sha256(batch.encode("utf-8")).hexdigest()[:8]
    slug = "-".join(re.findall(r"[a-zA-Z0-9]+", batch))
    head = (f"{prefix}-{slug}" if slug else prefix)[: MAX_JOB_NAME - len(digest) - 1].rstrip("-")
    name = f"{head}-{digest}"
    if not JOB_NAME.match(name):
        raise ValueError(f"labeling job prefix {prefix!r} leaves no room for a job name")
    return name


def labeling_job_request(
    *,
    job_name: str,
    region: str,
    manifest_uri: str,
    output_uri: str,
    categories_uri: str,
    workteam_arn: str,
    role_arn: str,
) -> dict[str, Any]:
    """The CreateLabelingJob parameters for a built-in NER job (one worker per document)."""
    pre_lambda, consolidation_lambda = builtin_ner_lambdas(region)
    return {
        "LabelingJobName": job_name,
        "LabelAttributeName": job_name,
        "InputConfig": {"DataSource": {"S3DataSource": {"ManifestS3Uri": manifest_uri}}},
        "OutputConfig": {"S3OutputPath": output_uri},
        "RoleArn": role_arn,
        "LabelCategoryConfigS3Uri": categories_uri,
        "HumanTaskConfig": {
            "WorkteamArn": workteam_arn,
            "UiConfig": {"HumanTaskUiArn": ner_human_task_ui_arn(region)},
            "PreHumanTaskLambdaArn": pre_lambda,
            "TaskKeywords": TASK_KEYWORDS,
            "TaskTitle": TASK_TITLE,
            "TaskDescription": TASK_DESCRIPTION,
            "NumberOfHumanWorkersPerDataObject": 1,
            "TaskTimeLimitInSeconds": 3600,
            "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn": consolidation_lambda},
        },
    }


def start_labeling_job(
    sagemaker: Any,
    s3: Any,
    *,
    bucket: str,
    batch: str,
    manifest_key: str,
    entity_types: Iterable[str],
    workteam_arn: str,
    role_arn: str,
    prefix: str,
) -> str:
    """Start a Ground Truth NER job on a batch's input manifest; return the job's ARN.

    The label categories go beside the manifest; Ground Truth writes under labeling/. Starting
    the same batch twice returns the first job's ARN (its name is derived from the batch).
    """
    job_name = labeling_job_name(prefix, batch)
    categories_key = manifest_key.rsplit("/", 1)[0] + "/" + LABEL_CATEGORIES_FILE
    s3.put_object(Bucket=bucket, Key=categories_key, ContentType="application/json",
                  Body=json.dumps(label_category_config(entity_types), indent=2).encode("utf-8"))
    request = labeling_job_request(
        job_name=job_name,
        region=sagemaker.meta.region_name,
        manifest_uri=f"s3://{bucket}/{manifest_key}",
        output_uri=f"s3://{bucket}/{LABELING_PREFIX}",
        categories_uri=f"s3://{bucket}/{categories_key}",
        workteam_arn=workteam_arn,
        role_arn=role_arn,
    )
    try:
        arn = str(sagemaker.create_labeling_job(**request)["LabelingJobArn"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceInUse":
            raise
        arn = str(sagemaker.describe_labeling_job(LabelingJobName=job_name)["LabelingJobArn"])
        logger.info("labeling job already started", job=job_name)
        return arn
    logger.info("labeling job started", job=job_name, batch=batch)
    return arn


# A seed job in these states labelled nothing: another batch may take its place.
ENDED_WITHOUT_LABELS = ("Failed", "Stopped")


def start_seed_labeling(state: StateTable, sagemaker: Any, s3: Any, *, batch: str, prefix: str,
                        **job: Any) -> str | None:
    """Start the Ground Truth job that labels the seed set, for one batch only; return its ARN, or
    None when another batch's job is labelling the seed (this batch then waits in the pool for the
    first model, like every later batch). Human labelling is the loop's dearest step: batches that
    arrive before the first job ends must not each start one. If that job failed or was stopped,
    the next batch takes its place."""
    if not state.seed_labeling.claim(batch):
        holder = state.seed_labeling.batch() or ""
        status = _labeling_status(sagemaker, labeling_job_name(prefix, holder))
        if status not in ENDED_WITHOUT_LABELS or not state.seed_labeling.claim(batch, replacing=holder):
            logger.info("the seed is being labelled from another batch; this one waits for the model",
                        batch=batch, labeling_batch=holder, status=status)
            return None
        logger.info("the seed labeling job ended without labels; this batch takes its place",
                    batch=batch, previous_batch=holder, status=status)
    return start_labeling_job(sagemaker, s3, batch=batch, prefix=prefix, **job)


def _labeling_status(sagemaker: Any, job_name: str) -> str:
    """The job's LabelingJobStatus; "Failed" when it does not exist (its batch never started it)."""
    try:
        return str(sagemaker.describe_labeling_job(LabelingJobName=job_name)["LabelingJobStatus"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ResourceNotFound", "ValidationException"):
            raise
        return "Failed"
