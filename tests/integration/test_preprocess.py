"""Stage 1 — preprocess: from a raw/*.txt "Object Created" event to a batch, the pool, and (with a
workteam) a Ground Truth labeling job."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import ANY
from moto.events.models import EventPattern

from nerloop import aws as nerloop_aws
from nerloop import settings
from nerloop.constants import MAX_DOCUMENT_BYTES
from nerloop.documents import Span, document_hash, utf8_size
from nerloop.labeling import labeling_job_name, labeling_job_request, start_labeling_job
from nerloop.quarantine import MAX_KEPT_CHARS
from nerloop.settings import SettingsError
from nerloop.stages.preprocess import batch_name
from nerloop.state import WAITING, GoldDocument

RAW_KEY = "raw/aws-service-offerings.txt"
WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/nerloop-team"
LABELING_ROLE = "arn:aws:iam::123456789012:role/nerloop-labeling"


def upload(emulated: Any, event: Any, body: bytes, key: str = RAW_KEY) -> dict[str, Any]:
    """Put `body` under `key` and return the sample event adjusted to that write."""
    reply = emulated.s3.put_object(Bucket=emulated.bucket, Key=key, Body=body)
    created = event("preprocess")
    obj = created["detail"]["object"]
    obj.update(key=key, etag=reply["ETag"].strip('"'), size=len(body))  # EventBridge: the key as it is
    obj.pop("version-id")
    if reply.get("VersionId"):
        obj["version-id"] = reply["VersionId"]
    return created


def read_lines(emulated: Any, key: str) -> list[str]:
    return emulated.s3.get_object(Bucket=emulated.bucket, Key=key)["Body"].read().decode("utf-8").splitlines()


def keys_under(emulated: Any, prefix: str) -> list[str]:
    listing = emulated.s3.list_objects_v2(Bucket=emulated.bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


CANDIDATE_END = re.compile(r"[.!?]\s")  # where a line may hold more than one sentence

# Lines of the sample, read by hand, and the sentences they hold.
DLAMI = ("The AWS Deep Learning AMIs are prebuilt with CUDA 8, 9 and 10, and several deep learning frameworks.",
         "The DLAMI uses the Anaconda Platform with both Python2 and Python3 to easily switch between frameworks.")
REDSHIFT = ("This release of Amazon Redshift adds connection limits for users and for databases and support for "
            "UTF-8 multibyte characters in object names.",
            "In addition, ANALYZE COMPRESSION now reports an estimate of potential reduction.",
            "Also, a COPY command enhancement enables you to reduce vacuum times.")
# No white space after "setup.": the sample glues two sentences, and they stay one document.
GLUED = ("The Deep Learning Base AMIs are prebuilt with CUDA 8 and 9 and ready for your custom deep learning "
         "setup.The AWS Deep Learning AMIs are prebuilt with CUDA 8 and 9, and several deep learning frameworks.")


def in_file_order(documents: list[str], lines: list[str]) -> bool:
    """True when each document is found in a line at or after the one that held the previous one."""
    number = 0
    for text in documents:
        while number < len(lines) and text not in lines[number]:
            number += 1
        if number == len(lines):
            return False
    return True


@pytest.fixture
def sample_text(sample_dir: Path) -> bytes:
    return (sample_dir / "aws-service-offerings.txt").read_bytes()


def test_the_sample_event_matches_the_functions_rule(stack: Any, event: Any) -> None:
    pattern = stack.resolve(stack.functions()["PreprocessFunction"]["Properties"]["Events"]
                            ["RawTextCreated"]["Properties"]["Pattern"])
    matcher = EventPattern.load(json.dumps(pattern))
    sample = event("preprocess")
    assert matcher.matches_event(sample)
    sample["detail"]["object"]["key"] = "batches/x/documents.txt"
    assert not matcher.matches_event(sample)


def test_the_sample_becomes_one_batch_of_its_distinct_sentences(emulated, event, lambda_context, sample_text):
    created = upload(emulated, event, sample_text)

    result = emulated.handler("PreprocessFunction")(created, lambda_context)

    lines = sample_text.decode("utf-8").removesuffix("\n").split("\n")
    documents = read_lines(emulated, result["documents_key"])
    hashes = [document_hash(text) for text in documents]
    # Every sentence found is a new document or a duplicate; nothing is rejected.
    assert result["lines"] == len(lines) and result["empty"] == sum(not line.strip() for line in lines)
    assert result["documents"] == len(documents) == len(set(hashes))
    assert result["sentences"] == result["documents"] + result["duplicates"]
    assert result["duplicates"] > 0 and result["rejected"] == result["known"] == 0
    # Each document is a stripped sentence of the file that fits Comprehend, in the file's order.
    assert all(text == text.strip() and 0 < utf8_size(text) <= MAX_DOCUMENT_BYTES for text in documents)
    assert in_file_order(documents, lines) and not in_file_order(documents[::-1], lines)
    # A line with no place to cut is one document; a line of several sentences is not.
    assert {document_hash(line) for line in lines if line.strip() and not CANDIDATE_END.search(line.strip())} \
        <= set(hashes)
    assert lines[21] == " ".join(DLAMI) and lines[988] == " ".join(REDSHIFT) and lines[93].startswith(GLUED)
    assert document_hash(lines[21]) not in hashes and document_hash(lines[988]) not in hashes
    start = documents.index(REDSHIFT[0])
    assert documents[start:start + 3] == list(REDSHIFT)
    start = documents.index(DLAMI[0])
    assert documents[start:start + 2] == list(DLAMI)  # its first line; later copies are duplicates
    assert GLUED in documents and documents.count(DLAMI[1]) == 1
    # The manifest and the pool hold the same documents.
    assert [json.loads(line) for line in read_lines(emulated, result["manifest_key"])] == [
        {"source": text} for text in documents
    ]
    pool = list(emulated.state.pool.documents())
    assert sorted(doc.doc for doc in pool) == sorted(hashes)
    assert {(doc.status, doc.batch) for doc in pool} == {(WAITING, result["batch"])}
    assert result["labeling_job"] is None and result["quarantine"] is None


def test_a_second_delivery_adds_nothing(emulated, event, lambda_context, sample_text):
    created = upload(emulated, event, sample_text)
    handler = emulated.handler("PreprocessFunction")
    first = handler(created, lambda_context)
    written = {key: emulated.s3.head_object(Bucket=emulated.bucket, Key=key)["ETag"]
               for key in keys_under(emulated, "batches/")}

    second = handler(created, lambda_context)

    assert second == first
    assert sum(1 for _ in emulated.state.pool.documents()) == first["documents"]
    assert {key: emulated.s3.head_object(Bucket=emulated.bucket, Key=key)["ETag"]
            for key in keys_under(emulated, "batches/")} == written


def test_a_batch_of_new_documents_is_announced_once_to_the_detect_rule(emulated, event, lambda_context):
    queue = emulated.capture_rule("DetectFunction", "DocumentsAdded")
    text = b"Amazon S3 adds a storage class.\nAmazon EC2 adds an instance type.\n"
    handler = emulated.handler("PreprocessFunction")
    created = upload(emulated, event, text)

    result = handler(created, lambda_context)
    handler(created, lambda_context)  # a redelivery
    handler(upload(emulated, event, text, key="raw/copy.txt"), lambda_context)  # nothing new in it

    (announced,) = emulated.received(queue)
    assert announced["detail"] == {"batch": result["batch"], "documents": 2, "documentsKey": result["documents_key"]}


def test_the_same_text_under_another_name_adds_no_documents(emulated, event, lambda_context):
    text = b"Amazon S3 adds a storage class.\nAmazon EC2 adds an instance type.\n"
    handler = emulated.handler("PreprocessFunction")
    handler(upload(emulated, event, text), lambda_context)
    before = keys_under(emulated, "batches/")

    again = handler(upload(emulated, event, text, key="raw/copy of offerings.txt"), lambda_context)

    assert again["documents"] == 0 and again["known"] == 2
    assert again["documents_key"] is None and keys_under(emulated, "batches/") == before


def test_gold_documents_are_not_pooled_again(emulated, event, lambda_context):
    labelled = "Amazon S3 adds a storage class."
    emulated.state.gold.put(GoldDocument(doc=document_hash(labelled), text=labelled,
                                         spans=[Span(0, 9, "SERVICE")], origin="labeling:earlier"))
    created = upload(emulated, event, f"{labelled}\nAmazon EC2 adds an instance type.\n".encode())

    result = emulated.handler("PreprocessFunction")(created, lambda_context)

    assert result["documents"] == 1 and result["known"] == 1
    assert read_lines(emulated, result["documents_key"]) == ["Amazon EC2 adds an instance type."]
    assert emulated.state.pool.get(document_hash(labelled)) is None


def test_bad_records_are_quarantined_and_the_rest_land(emulated, event, lambda_context):
    # Given a file with a line that is not UTF-8 and a line holding a sentence too long to be a
    # document between two that fit
    too_long = "An endless sentence" + " without any end" * 400 + "."  # ~6,400 bytes
    body = b"\n".join([
        b"Amazon S3 adds a storage class. It is cheaper.",
        b"Caf\xe9 is Latin-1",
        f"Before it. {too_long} After it.".encode(),
        b"",
        b"Amazon EC2 adds an instance type.\r",
    ])

    result = emulated.handler("PreprocessFunction")(upload(emulated, event, body), lambda_context)

    assert read_lines(emulated, result["documents_key"]) == [
        "Amazon S3 adds a storage class.", "It is cheaper.", "Before it.", "After it.",
        "Amazon EC2 adds an instance type.",
    ]
    assert result["lines"] == 5 and result["empty"] == 1 and result["sentences"] == 6
    assert result["documents"] == 5 and result["rejected"] == 2
    report = [json.loads(line) for line in read_lines(emulated, result["quarantine"])]
    rejected = [(row["line"], row["reason"], row["record"]) for row in report if row["kind"] == "rejected"]
    assert rejected[0][:2] == (2, "invalid UTF-8 at byte 3")
    assert rejected[1][0] == 3 and f"{utf8_size(too_long):,} UTF-8 bytes" in rejected[1][1]
    assert rejected[1][2] == too_long[:MAX_KEPT_CHARS]  # the sentence, not its whole line
    assert result["quarantine"] == f"quarantine/preprocess/{result['batch']}.jsonl"


def test_an_object_overwritten_since_its_event_is_left_to_the_newer_event(emulated, event, lambda_context):
    created = upload(emulated, event, b"Amazon S3 adds a storage class.\n")
    upload(emulated, event, b"Amazon EC2 adds an instance type.\n")

    result = emulated.handler("PreprocessFunction")(created, lambda_context)

    assert result["skipped"] and result["documents_key"] is None
    assert list(emulated.state.pool.documents()) == []


# --- with a workteam: the first batch goes to Ground Truth ---------------------------------------


def handler_with_workteam(emulated: Any, role: str = LABELING_ROLE) -> Any:
    """The preprocess handler imported with a workteam (and a labeling role) configured."""
    emulated.use_environment("PreprocessFunction")
    emulated.monkeypatch.setenv("WORKTEAM_ARN", WORKTEAM)
    emulated.monkeypatch.setenv("LABELING_ROLE_ARN", role)
    settings.get_settings.cache_clear()
    return emulated.stack.load_handler("PreprocessFunction")


def test_with_a_workteam_and_no_gold_set_a_labeling_job_starts(
    emulated, event, lambda_context, sagemaker_stub
):
    created = upload(emulated, event, b"Amazon S3 adds a storage class.\nAmazon EC2 adds an instance.\n")
    batch = batch_name(RAW_KEY, created["detail"]["object"]["etag"])
    job = labeling_job_name(emulated.stack.labeling_job_prefix(), batch)
    bucket = emulated.bucket
    sagemaker_stub.add_response(
        "create_labeling_job",
        {"LabelingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{job}"},
        expected_params={
            "LabelingJobName": job,
            "LabelAttributeName": job,
            "InputConfig": {"DataSource": {"S3DataSource": {
                "ManifestS3Uri": f"s3://{bucket}/batches/{batch}/input.manifest"}}},
            "OutputConfig": {"S3OutputPath": f"s3://{bucket}/labeling/"},
            "RoleArn": LABELING_ROLE,
            "LabelCategoryConfigS3Uri": f"s3://{bucket}/batches/{batch}/label-categories.json",
            "HumanTaskConfig": {
                "WorkteamArn": WORKTEAM,
                "UiConfig": {"HumanTaskUiArn":
                             "arn:aws:sagemaker:us-east-1:394669845002:human-task-ui/NamedEntityRecognition"},
                "PreHumanTaskLambdaArn":
                    "arn:aws:lambda:us-east-1:432418664414:function:PRE-NamedEntityRecognition",
                "AnnotationConsolidationConfig": {"AnnotationConsolidationLambdaArn":
                                                  "arn:aws:lambda:us-east-1:432418664414:function:"
                                                  "ACS-NamedEntityRecognition"},
                "TaskKeywords": ANY,
                "TaskTitle": ANY,
                "TaskDescription": ANY,
                "NumberOfHumanWorkersPerDataObject": 1,
                "TaskTimeLimitInSeconds": ANY,
            },
        },
    )

    result = handler_with_workteam(emulated)(created, lambda_context)

    sagemaker_stub.assert_no_pending_responses()
    assert result["labeling_job"].endswith(f"labeling-job/{job}") and job.startswith("nerloop-")
    categories = json.loads(emulated.s3.get_object(
        Bucket=bucket, Key=f"batches/{batch}/label-categories.json")["Body"].read())
    assert categories["document-version"] == "2018-11-28"
    assert categories["labels"] == [{"label": "SERVICE"}, {"label": "VERSION"}]
    assert categories["instructions"]["shortInstruction"]


def test_no_labeling_job_once_there_is_a_gold_set(emulated, event, lambda_context, sagemaker_stub):
    emulated.state.gold.put(GoldDocument(doc=document_hash("Amazon S3"), text="Amazon S3",
                                         spans=[Span(0, 9, "SERVICE")], origin="labeling:earlier"))
    created = upload(emulated, event, b"Amazon EC2 adds an instance type.\n")

    result = handler_with_workteam(emulated)(created, lambda_context)

    assert result["documents"] == 1 and result["labeling_job"] is None
    sagemaker_stub.assert_no_pending_responses()  # and no call was made: none was expected


def test_a_workteam_without_a_labeling_role_is_named(emulated, event, lambda_context, sagemaker_stub):
    created = upload(emulated, event, b"Amazon EC2 adds an instance type.\n")
    with pytest.raises(SettingsError, match="LABELING_ROLE_ARN"):
        handler_with_workteam(emulated, role="")(created, lambda_context)


def test_a_retried_start_finds_the_job_it_started(emulated, sagemaker_stub):
    # Given a job already created for the batch (a crash came after CreateLabelingJob)
    job = labeling_job_name("nerloop", "offers-0123456789")
    arn = f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{job}"
    sagemaker_stub.add_client_error("create_labeling_job", service_error_code="ResourceInUse",
                                    service_message=f"Labeling job {job} already exists")
    sagemaker_stub.add_response("describe_labeling_job", described_job(job, "InProgress"),
                                expected_params={"LabelingJobName": job})

    # When the start is tried again, Then it answers with the existing job
    started = start_labeling_job(
        nerloop_aws.client("sagemaker"), emulated.s3, bucket=emulated.bucket, batch="offers-0123456789",
        manifest_key="batches/offers-0123456789/input.manifest", entity_types=("SERVICE", "VERSION"),
        workteam_arn=WORKTEAM, role_arn=LABELING_ROLE, prefix="nerloop")
    assert started == arn
    sagemaker_stub.assert_no_pending_responses()


def described_job(job: str, status: str) -> dict[str, Any]:
    """DescribeLabelingJob's answer for `job` in `status`."""
    request = labeling_job_request(
        job_name=job, region="us-east-1", manifest_uri="s3://b/batches/x/input.manifest",
        output_uri="s3://b/labeling/", categories_uri="s3://b/batches/x/label-categories.json",
        workteam_arn=WORKTEAM, role_arn=LABELING_ROLE)
    return {
        **{name: request[name] for name in ("LabelingJobName", "LabelAttributeName", "InputConfig",
                                            "OutputConfig", "RoleArn", "HumanTaskConfig")},
        "LabelingJobStatus": status, "LabelCounters": {}, "JobReferenceCode": "a1b2",
        "CreationTime": datetime(2026, 11, 28, tzinfo=UTC), "LastModifiedTime": datetime(2026, 11, 28, tzinfo=UTC),
        "LabelingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{job}",
    }


def start_first_batch(emulated: Any, event: Any, lambda_context: Any, sagemaker_stub: Any) -> str:
    """The first batch starts the seed labeling job; returns that job's name."""
    created = upload(emulated, event, b"Amazon S3 adds a storage class.\n")
    job = labeling_job_name(emulated.stack.labeling_job_prefix(),
                            batch_name(RAW_KEY, created["detail"]["object"]["etag"]))
    sagemaker_stub.add_response("create_labeling_job", {
        "LabelingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{job}"})
    assert handler_with_workteam(emulated)(created, lambda_context)["labeling_job"]
    return job


def test_a_batch_arriving_while_the_seed_is_labelled_waits_for_the_model(
    emulated, event, lambda_context, sagemaker_stub
):
    first_job = start_first_batch(emulated, event, lambda_context, sagemaker_stub)
    sagemaker_stub.add_response("describe_labeling_job", described_job(first_job, "InProgress"),
                                expected_params={"LabelingJobName": first_job})

    later = handler_with_workteam(emulated)(
        upload(emulated, event, b"Amazon EC2 adds an instance type.\n", key="raw/later.txt"), lambda_context)

    sagemaker_stub.assert_no_pending_responses()  # no second CreateLabelingJob
    assert later["documents"] == 1 and later["labeling_job"] is None


def test_after_a_failed_seed_job_the_next_batch_is_labelled(emulated, event, lambda_context, sagemaker_stub):
    first_job = start_first_batch(emulated, event, lambda_context, sagemaker_stub)
    sagemaker_stub.add_response("describe_labeling_job", described_job(first_job, "Failed"),
                                expected_params={"LabelingJobName": first_job})
    created = upload(emulated, event, b"Amazon EC2 adds an instance type.\n", key="raw/later.txt")
    job = labeling_job_name(emulated.stack.labeling_job_prefix(),
                            batch_name("raw/later.txt", created["detail"]["object"]["etag"]))
    sagemaker_stub.add_response("create_labeling_job", {
        "LabelingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:labeling-job/{job}"})

    later = handler_with_workteam(emulated)(created, lambda_context)

    sagemaker_stub.assert_no_pending_responses()
    assert later["labeling_job"].endswith(f"labeling-job/{job}")
    assert emulated.state.seed_labeling.batch() == batch_name("raw/later.txt", created["detail"]["object"]["etag"])


def test_a_key_delivered_url_encoded_reads_the_object_it_names(emulated, event, lambda_context):
    # Given a raw file whose name has a space, a "+" and a non-ASCII letter, and an event carrying its key
    # URL-encoded, as S3 encodes keys in its notifications to SQS, SNS and Lambda
    from urllib.parse import quote_plus

    key = "raw/C++ notes - été.txt"
    text = "Amazon EC2 adds C++ builds in Zürich.\n"
    created = upload(emulated, event, text.encode("utf-8"), key=key)
    created["detail"]["object"]["key"] = quote_plus(key, safe="/")

    # When preprocess takes it
    result = emulated.handler("PreprocessFunction")(created, lambda_context)

    # Then the batch holds that file's sentence, under the key S3 stores
    assert result["batch"] == batch_name(key, created["detail"]["object"]["etag"])
    assert read_lines(emulated, result["documents_key"]) == [text.strip()]
