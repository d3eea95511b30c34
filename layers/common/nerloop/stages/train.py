"""Stage 3 — train: a training snapshot's annotations CSV lands → CreateEntityRecognizer.

Comprehend's minimums are checked first, so a set that would fail hours later in the service is
reported at once with exactly what is short.
"""

from __future__ import annotations

import codecs
import csv
import json
from array import array
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from nerloop.aws import Aws
from nerloop.comprehend_training import ANNOTATIONS_HEADER, TrainingStats, check_training_minimums
from nerloop.constants import ANNOTATIONS_FILE, DOCUMENTS_FILE, REPORTS_PREFIX, TRAINING_PREFIX
from nerloop.errors import InvalidRecord, UnknownJob
from nerloop.flywheel import create_datasets, flywheel_mode
from nerloop.idempotency import run_stage_once
from nerloop.observability import logger, metrics
from nerloop.recognizer_versions import MAX_NAME_LENGTH, VERSION_NAME
from nerloop.retrain import release_training
from nerloop.settings import Settings
from nerloop.snapshots import snapshot_test_keys
from nerloop.stages.results import TrainingRejected, TrainingResult, TrainingStarted
from nerloop.state import StateTable, Version
from nerloop.test_set import problems_of_test_set


def version_of_snapshot(key: str) -> str:
    """`training/<version>/annotations.csv` → `<version>`, checked against Comprehend's name rules."""
    parts = key.split("/")
    if len(parts) != 3 or f"{parts[0]}/" != TRAINING_PREFIX or parts[2] != ANNOTATIONS_FILE:
        raise InvalidRecord(key, None, f"not a training snapshot key ({TRAINING_PREFIX}<version>/{ANNOTATIONS_FILE})")
    version = parts[1]
    if len(version) > MAX_NAME_LENGTH or not VERSION_NAME.match(version):
        raise InvalidRecord(key, None, f"version name {version!r} breaks Comprehend's rules "
                                       "(1-63 letters, digits and hyphens, no leading hyphen)")
    return version


def measure_snapshot(s3: Any, bucket: str, documents_key: str, annotations_key: str) -> tuple[TrainingStats, list[str]]:
    """Stream both files; count documents and annotations, and check every row against its document."""
    stats = TrainingStats()
    lengths = array("l")  # code points per document: 8 bytes a document, however long the text
    body = s3.get_object(Bucket=bucket, Key=documents_key)["Body"]
    for raw_line in body.iter_lines(keepends=False):
        text = raw_line.decode("utf-8", errors="replace")
        lengths.append(len(text))
        stats.corpus_bytes += len(raw_line) + 1
        if len(raw_line) > 5000:
            stats.oversized_documents.append(stats.documents)
        stats.documents += 1

    problems: list[str] = []
    reader = csv.reader(codecs.iterdecode(
        s3.get_object(Bucket=bucket, Key=annotations_key)["Body"].iter_lines(keepends=True), "utf-8"))
    header = [cell.strip() for cell in next(reader, [])]
    if header != ANNOTATIONS_HEADER:
        return stats, [f"{annotations_key}: header is {header}, expected {ANNOTATIONS_HEADER}"]
    documents_name = documents_key.rsplit("/", 1)[-1]
    for row_number, row in enumerate(reader, start=2):
        where = f"{annotations_key}:{row_number}"
        if len(row) != 5:
            problems.append(f"{where}: {len(row)} columns, expected 5")
            continue
        file_name, line, begin, end, type_ = (cell.strip() for cell in row)
        if file_name != documents_name:
            problems.append(f"{where}: File {file_name!r} is not the snapshot's {documents_name!r}")
            continue
        try:
            line_no, begin_no, end_no = int(line), int(begin), int(end)
        except ValueError:
            problems.append(f"{where}: Line and offsets must be integers")
            continue
        if not 0 <= line_no < len(lengths):
            problems.append(f"{where}: Line {line_no} is outside the documents file ({len(lengths)} lines)")
            continue
        if not 0 <= begin_no < end_no <= lengths[line_no]:
            problems.append(f"{where}: offsets {begin_no}-{end_no} are outside line {line_no} "
                            f"({lengths[line_no]} characters)")
            continue
        stats.annotations[type_] += 1
    return stats, problems


def start_training(bucket: str, key: str, etag: str, aws: Aws, settings: Settings) -> TrainingResult:
    """Check the snapshot at `key` and start training it as a new recognizer version, once."""
    return run_stage_once(
        settings.state_table, "train", {"bucket": bucket, "key": key, "etag": etag},
        lambda: _start_training(bucket, key, aws, settings), TrainingStarted, TrainingRejected,
    )


def _start_training(bucket: str, key: str, aws: Aws, settings: Settings) -> TrainingResult:
    state = StateTable(aws.table)
    version = version_of_snapshot(key)
    documents_key = f"{TRAINING_PREFIX}{version}/{DOCUMENTS_FILE}"
    stats, problems = measure_snapshot(aws.s3, bucket, documents_key, key)
    problems += check_training_minimums(stats, settings.entity_types)
    if problems:
        return _reject(state, aws, bucket, version, stats, problems)

    test_set = measure_test_set(aws.s3, bucket, version, settings)

    # A snapshot dropped by hand has no lock yet: take it, so review batches wait for this training.
    state.training_lock.acquire(version)
    test_keys = snapshot_test_keys(version) if test_set["usable"] else None
    stored: dict[str, Any] = {"training_set": stats.as_dict(), "test_set": test_set}
    if flywheel_mode(settings):
        # TrainingMode Flywheel (nerloop.flywheel): datasets now; the watch stage starts the
        # iteration once Comprehend has ingested them, and the model's ARN comes with its end.
        arn = ""
        stored["flywheel"] = {"datasets": create_datasets(aws, settings, bucket, version, documents_key, key,
                                                          test_keys)}
    else:
        arn = _create_recognizer_version(aws, bucket, version, documents_key, key, settings, test_keys=test_keys)
    state.versions.put(Version(version=version, status="SUBMITTED", arn=arn,
                              snapshot=f"{TRAINING_PREFIX}{version}/", metrics=stored))
    metrics.add_metric(name="TrainingsStarted", unit=MetricUnit.Count, value=1)
    logger.info("training started", version=version, recognizer_arn=arn, documents=stats.documents,
                annotations=dict(stats.annotations), test_documents=test_set["documents"],
                test_set_used=test_set["usable"], problems_of_test_set=test_set["problems"])
    return TrainingStarted(version=version, status="SUBMITTED", arn=arn, training_mode=settings.training_mode,
                           documents=stats.documents, annotations=dict(stats.annotations),
                           test_documents=test_set["documents"], test_set_used=test_set["usable"])


def measure_test_set(s3: Any, bucket: str, version: str, settings: Settings) -> dict[str, Any]:
    """The snapshot's test set (nerloop.test_set): its size, and whether it is usable (given to
    Comprehend as TestS3Uri and scored by the gate); a snapshot without one has none."""
    documents_key, annotations_key = snapshot_test_keys(version)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=documents_key, MaxKeys=1).get("Contents") or []
    if any(item["Key"] == documents_key for item in listed):
        stats, problems = measure_snapshot(s3, bucket, documents_key, annotations_key)
    else:
        stats, problems = TrainingStats(), ["the snapshot has no test set"]
    problems += problems_of_test_set(stats.documents, stats.annotations, settings.entity_types, settings.test_minimum)
    return {"documents": stats.documents, "annotations": dict(stats.annotations), "usable": not problems,
            "problems": problems}


def _create_recognizer_version(aws: Aws, bucket: str, version: str, documents_key: str,
                               annotations_key: str, settings: Settings,
                               test_keys: tuple[str, str] | None = None) -> str:
    documents: dict[str, str] = {"S3Uri": f"s3://{bucket}/{documents_key}", "InputFormat": "ONE_DOC_PER_LINE"}
    annotations = {"S3Uri": f"s3://{bucket}/{annotations_key}"}
    if test_keys is not None:
        # The stable test set instead of Comprehend's own 10 % hold-out (EntityRecognizerDocuments /
        # EntityRecognizerAnnotations TestS3Uri, botocore's comprehend model; prep-training-data-cer.html).
        documents["TestS3Uri"] = f"s3://{bucket}/{test_keys[0]}"
        annotations["TestS3Uri"] = f"s3://{bucket}/{test_keys[1]}"
    try:
        reply = aws.comprehend.create_entity_recognizer(
            RecognizerName=settings.recognizer_name,
            VersionName=version,
            DataAccessRoleArn=settings.comprehend_role_arn,
            LanguageCode=settings.language_code,
            InputDataConfig={
                "DataFormat": "COMPREHEND_CSV",
                "EntityTypes": [{"Type": name} for name in settings.entity_types],
                "Documents": documents,
                "Annotations": annotations,
            },
        )
        return str(reply["EntityRecognizerArn"])
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        # The version exists already: an earlier attempt created it before failing to record it.
        return _existing_version_arn(aws, settings.recognizer_name, version)


def _existing_version_arn(aws: Aws, name: str, version: str) -> str:
    paginator = aws.comprehend.get_paginator("list_entity_recognizers")
    for page in paginator.paginate(Filter={"RecognizerName": name}):
        for props in page.get("EntityRecognizerPropertiesList", []):
            if props.get("VersionName") == version:
                return str(props["EntityRecognizerArn"])
    raise UnknownJob(f"Comprehend says version {version} of {name} exists but does not list it")


def _reject(state: StateTable, aws: Aws, bucket: str, version: str, stats: TrainingStats,
            problems: list[str]) -> TrainingRejected:
    report_key = f"{REPORTS_PREFIX}training/{version}.json"
    aws.s3.put_object(
        Bucket=bucket, Key=report_key, ContentType="application/json",
        Body=json.dumps({"version": version, "problems": problems, "training_set": stats.as_dict()},
                        indent=2).encode("utf-8"),
    )
    state.versions.put(Version(version=version, status="REJECTED", snapshot=f"{TRAINING_PREFIX}{version}/",
                              message="; ".join(problems)[:1000], metrics={"training_set": stats.as_dict()}))
    release_training(state, version)
    metrics.add_metric(name="TrainingsRejected", unit=MetricUnit.Count, value=1)
    logger.warning("training snapshot rejected", version=version, problems=problems, report=report_key)
    return TrainingRejected(version=version, status="REJECTED", problems=problems, report=report_key)
