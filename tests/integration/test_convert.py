"""Stage 2 — convert: from a "Labeling Job State Change" event to the gold set, the quarantine
report and a training snapshot. moto has no labeling jobs: DescribeLabelingJob is stubbed."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from typing import Any

import pytest
from botocore.stub import Stubber
from moto.events.models import EventPattern

from nerloop.comprehend_training import ANNOTATIONS_HEADER
from nerloop.documents import document_hash
from nerloop.retrain import RETRAIN_REQUESTED
from nerloop.stages import convert
from nerloop.state import GOLD

SAMPLE_ATTRIBUTE = "a2i-comprehend-gtner7c0bf6de-b5a1-11ea-bf5f-12acee018271"


def completed_job(emulated: Any, event: Any, stub: Stubber, manifest: bytes,
                  attribute: str = SAMPLE_ATTRIBUTE) -> str:
    """Put `manifest` where Ground Truth writes it and stub DescribeLabelingJob for the sample event's
    job; return the manifest's URI."""
    return str(emulated.completed_labeling_job(stub, manifest, attribute))


def read(emulated: Any, key: str) -> str:
    return emulated.s3.get_object(Bucket=emulated.bucket, Key=key)["Body"].read().decode("utf-8")


def reference_spans(reference_annotations: list) -> Counter[tuple[str, int, int, str]]:
    """The reference spans per document text; a document on several manifest lines gets every span
    any of them has."""
    return Counter({(text, span.begin, span.end, span.type) for _, text, span in reference_annotations})


def test_the_sample_event_matches_the_functions_rule(stack: Any, event: Any) -> None:
    pattern = stack.resolve(stack.functions()["ConvertFunction"]["Properties"]["Events"]
                            ["LabelingJobCompleted"]["Properties"]["Pattern"])
    matcher = EventPattern.load(json.dumps(pattern))
    sample = event("convert")
    assert matcher.matches_event(sample)
    sample["resources"] = ["arn:aws:sagemaker:us-east-1:123456789012:labeling-job/someone-elses-job"]
    assert not matcher.matches_event(sample)


# Gold documents are written in batches: 1 writes each document before the next line is read (a
# repeat is always read back from the table), 3 puts most repeats of the sample in a flushed batch
# and some in the pending one, the default keeps nearby repeats pending.
@pytest.mark.parametrize("buffer", [1, 3, convert.GOLD_BUFFER])
def test_the_sample_manifest_fills_the_gold_set_and_writes_a_snapshot(
    emulated, event, lambda_context, sagemaker_stub, sample_dir, reference_annotations, monkeypatch, buffer
):
    monkeypatch.setattr(convert, "GOLD_BUFFER", buffer)
    manifest = (sample_dir / "output.manifest").read_bytes()
    completed_job(emulated, event, sagemaker_stub, manifest)

    result = emulated.handler("ConvertFunction")(event("convert"), lambda_context)

    # Every line is a document; repeated texts are one gold document each
    texts = [json.loads(line)["source"] for line in manifest.decode("utf-8").splitlines()]
    gold = list(emulated.state.gold.documents())
    assert len(gold) == len(set(texts)) == result["documents"]
    assert result["lines"] == len(texts) == result["documents"] + result["repeated"]
    assert result["quarantined"] == 0 and result["trimmed"] == 54
    assert {doc.origin for doc in gold} == {"labeling:" + event("convert")["resources"][0].rsplit("/", 1)[-1]}

    # The snapshot's training and test files (nerloop.test_set) hold the reference spans, trimmed, one row each
    assert result["snapshot"] == "v1"
    written: Counter[tuple[str, int, int, str]] = Counter()
    rows_written = 0
    for prefix in ("", "test-"):
        documents = read(emulated, f"training/v1/{prefix}documents.txt").split("\n")[:-1]
        rows = list(csv.reader(io.StringIO(read(emulated, f"training/v1/{prefix}annotations.csv"))))
        assert rows[0] == ANNOTATIONS_HEADER
        written.update((documents[int(line)], int(begin), int(end), kind) for _, line, begin, end, kind in rows[1:])
        rows_written += len(rows) - 1
    assert written == reference_spans(reference_annotations)
    assert rows_written == result["spans"]


def test_the_quarantine_report_lists_each_repair(emulated, event, lambda_context, sagemaker_stub, sample_dir):
    completed_job(emulated, event, sagemaker_stub, (sample_dir / "output.manifest").read_bytes())

    result = emulated.handler("ConvertFunction")(event("convert"), lambda_context)

    report = [json.loads(line) for line in read(emulated, result["quarantine"]).splitlines()]
    assert result["quarantine"] == f"quarantine/convert/{result['job']}.jsonl"
    assert not [row for row in report if row["kind"] == "rejected"]
    reasons = Counter("trimmed" if "trimmed" in row["reason"]
                      else "repeat" if "same document" in row["reason"] else "other" for row in report)
    assert reasons == {"trimmed": 54, "repeat": result["repeated"]}


def test_a_second_delivery_writes_no_second_snapshot(
    emulated, event, lambda_context, sagemaker_stub, sample_dir
):
    completed_job(emulated, event, sagemaker_stub, (sample_dir / "output.manifest").read_bytes())
    handler = emulated.handler("ConvertFunction")
    first = handler(event("convert"), lambda_context)

    second = handler(event("convert"), lambda_context)

    assert second == first
    listing = emulated.s3.list_objects_v2(Bucket=emulated.bucket, Prefix="training/")
    assert sorted(item["Key"] for item in listing["Contents"]) == [
        "training/v1/annotations.csv", "training/v1/documents.txt", "training/v1/test-annotations.csv",
        "training/v1/test-documents.txt"]
    sagemaker_stub.assert_no_pending_responses()


def test_bad_lines_are_quarantined_and_good_lines_still_land(
    emulated, event, lambda_context, sagemaker_stub, sample_dir
):
    # Given the sample's first five lines with three bad ones among them
    good = (sample_dir / "output.manifest").read_bytes().splitlines(keepends=True)[:5]
    out_of_range = json.loads(good[0])
    out_of_range[SAMPLE_ATTRIBUTE]["annotations"]["entities"][0]["endOffset"] = 10_000
    unknown_label = json.loads(good[1])
    unknown_label[SAMPLE_ATTRIBUTE]["annotations"]["entities"][0]["label"] = "REGION"
    lines = [good[0], b'{"source": "cut short\n', good[1], json.dumps(out_of_range).encode() + b"\n",
             good[2], good[3], json.dumps(unknown_label).encode() + b"\n", good[4]]
    completed_job(emulated, event, sagemaker_stub, b"".join(lines))

    result = emulated.handler("ConvertFunction")(event("convert"), lambda_context)

    assert result["lines"] == 8 and result["quarantined"] == 3 and result["documents"] == 5
    assert sum(1 for _ in emulated.state.gold.documents()) == 5
    report = [json.loads(line) for line in read(emulated, result["quarantine"]).splitlines()]
    rejected = {row["line"]: row["reason"] for row in report if row["kind"] == "rejected"}
    assert sorted(rejected) == [2, 4, 7]
    assert "invalid JSON" in rejected[2] and "beyond the text" in rejected[4] and "'REGION'" in rejected[7]
    assert all(row["file"].endswith("output.manifest") for row in report)


def test_a_job_that_did_not_complete_is_not_converted(emulated, event, lambda_context, sagemaker_stub):
    stopped = event("convert")
    stopped["detail"]["LabelingJobStatus"] = "Stopped"

    result = emulated.handler("ConvertFunction")(stopped, lambda_context)

    assert result["skipped"] == "status Stopped"
    assert list(emulated.state.gold.documents()) == []


@pytest.mark.parametrize("buffer", [1, convert.GOLD_BUFFER])
def test_a_document_on_two_lines_gets_the_spans_of_both(
    emulated, event, lambda_context, sagemaker_stub, monkeypatch, buffer
):
    monkeypatch.setattr(convert, "GOLD_BUFFER", buffer)

    def labelled(entities: list[tuple[int, int, str]]) -> bytes:
        return json.dumps({
            "source": "Amazon S3 version 2 is out",
            "job": {"annotations": {"entities": [{"startOffset": b, "endOffset": e, "label": t}
                                                 for b, e, t in entities]}},
            "job-metadata": {"type": "groundtruth/text-span", "job-name": "labeling-job/job"},
        }).encode() + b"\n"

    completed_job(emulated, event, sagemaker_stub,
                  labelled([(0, 9, "SERVICE")]) + labelled([(10, 19, "VERSION"), (7, 9, "SERVICE")]),
                  attribute="job")

    result = emulated.handler("ConvertFunction")(event("convert"), lambda_context)

    (gold,) = emulated.state.gold.documents()
    assert [(s.begin, s.end, s.type) for s in gold.spans] == [(0, 9, "SERVICE"), (10, 19, "VERSION")]
    assert result["documents"] == 1 and result["repeated"] == 1 and result["spans"] == 2
    report = read(emulated, result["quarantine"])
    assert "same document as line 1; labels merged (1 span(s) added" in report
    assert "SERVICE span [7, 9) dropped: overlaps SERVICE span [0, 9)" in report


def test_the_batched_gold_writes_mark_pooled_documents_gold(
    emulated, event, lambda_context, sagemaker_stub, sample_dir
):
    manifest = (sample_dir / "output.manifest").read_bytes()
    texts = list(dict.fromkeys(json.loads(line)["source"] for line in manifest.decode("utf-8").splitlines()))
    pooled = {document_hash(text) for text in texts[:3]}  # three of the manifest's documents wait in the pool
    for text in texts[:3]:
        emulated.state.pool.add(document_hash(text), text, "b1")
    completed_job(emulated, event, sagemaker_stub, manifest)

    emulated.handler("ConvertFunction")(event("convert"), lambda_context)

    assert {doc.doc for doc in emulated.state.pool.documents()} == pooled
    assert {doc.status for doc in emulated.state.pool.documents()} == {GOLD}


def test_a_retry_after_a_failure_past_the_retrain_request_asks_for_one_retrain(
    emulated, event, lambda_context, sagemaker_stub, sample_dir, monkeypatch
):
    completed_job(emulated, event, sagemaker_stub, (sample_dir / "output.manifest").read_bytes())
    completed_job(emulated, event, sagemaker_stub, (sample_dir / "output.manifest").read_bytes())
    real = convert.maybe_start_retrain
    calls = []

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("snapshot upload failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(convert, "maybe_start_retrain", fails_once)
    handler = emulated.handler("ConvertFunction")
    with pytest.raises(RuntimeError):
        handler(event("convert"), lambda_context)

    result = handler(event("convert"), lambda_context)  # the redelivery runs the effect again

    assert len(calls) == 2 and result["snapshot"] == "v1"
    assert emulated.state.counters.get(RETRAIN_REQUESTED) == 1
