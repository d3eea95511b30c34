"""Stage 2 — convert: a Ground Truth labeling job completed → its labels join the gold set.

The job's output manifest is streamed from S3 and validated line by line (nerloop.gt_manifest);
every good document is written to the gold set, bad lines are quarantined, and a retrain is
requested, which writes the next training snapshot unless a training is in flight.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from nerloop.aws import Aws
from nerloop.documents import Span
from nerloop.errors import NerloopError
from nerloop.gt_manifest import (
    MAX_MANIFEST_LINE_BYTES,
    LabelledDocument,
    ParseStats,
    iter_byte_lines,
    parse_manifest,
    union_spans,
)
from nerloop.idempotency import run_once
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.retrain import maybe_start_retrain, request_retrain
from nerloop.settings import Settings
from nerloop.state import GoldDocument, StateTable

COMPLETED = "Completed"


class LabelingJobOutputMissing(NerloopError):
    """DescribeLabelingJob names no output manifest for a job said to be complete."""


def job_name_from_arn(job_arn: str) -> str:
    """`arn:aws:sagemaker:<region>:<account>:labeling-job/<name>` → `<name>`."""
    return job_arn.rsplit("/", 1)[-1]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` → (bucket, key)."""
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise ValueError(f"not an S3 object URI: {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


def convert_labeling_job(
    job_arn: str, aws: Aws, settings: Settings, status: str = COMPLETED
) -> dict[str, Any]:
    """Put a completed labeling job's documents into the gold set; once per (job ARN, status).

    Labels replace what the gold set held for a document before. A document on several lines of
    the manifest gets the union of their spans (overlaps resolved, noted): in the walkthrough's
    sample the repeats that differ are a labelled line and an unlabelled one.

    Returns counts: lines, documents (distinct documents written), repeated (lines repeating an
    earlier one's document), spans, quarantined, trimmed, the quarantine report's key, and the
    training snapshot version written (or None when none was).
    """
    job_name = job_name_from_arn(job_arn)
    if status != COMPLETED:
        logger.info("labeling job not completed; nothing to convert", job=job_name, status=status)
        return {"job": job_name, "skipped": f"status {status}"}
    return run_once(settings.state_table, "convert", {"job_arn": job_arn, "status": status},
                    lambda: _convert(job_name, aws, settings))


def _convert(job_name: str, aws: Aws, settings: Settings) -> dict[str, Any]:
    described = aws.sagemaker.describe_labeling_job(LabelingJobName=job_name)
    manifest_uri = (described.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
    if not manifest_uri:
        raise LabelingJobOutputMissing(f"labeling job {job_name} ({described.get('LabelingJobStatus')}) "
                                       "has no LabelingJobOutput.OutputDatasetS3Uri")
    label_attribute = described.get("LabelAttributeName") or None
    bucket, key = split_s3_uri(manifest_uri)

    state = StateTable(aws.table)
    quarantine = Quarantine(stage="convert", source=job_name)
    stats = ParseStats()
    origin = f"labeling:{job_name}"
    first_line: dict[str, int] = {}
    spans_of: dict[str, int] = {}
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"]
    lines = iter_byte_lines(body.iter_chunks(), max_bytes=MAX_MANIFEST_LINE_BYTES)
    for document in parse_manifest(lines, manifest_uri, settings.entity_types, quarantine,
                                   label_attribute=label_attribute, stats=stats):
        spans = document.spans
        if document.doc in first_line:
            first = first_line[document.doc]
            spans = _merge_repeat(state, document, first, origin, quarantine, manifest_uri)
        else:
            first_line[document.doc] = document.line
        spans_of[document.doc] = len(spans)
        state.put_gold(GoldDocument(doc=document.doc, text=document.text, spans=spans, origin=origin))

    report = quarantine.write(aws.s3, settings.data_bucket)
    snapshot = None
    if first_line:
        request_retrain(state)
        snapshot = maybe_start_retrain(state, aws.s3, settings.data_bucket, settings.retrain_batch_size)

    span_total = sum(spans_of.values())
    metrics.add_metric(name="DocumentsConverted", unit=MetricUnit.Count, value=len(first_line))
    metrics.add_metric(name="SpansConverted", unit=MetricUnit.Count, value=span_total)
    metrics.add_metric(name="LinesQuarantined", unit=MetricUnit.Count, value=stats.rejected)
    result: dict[str, Any] = {
        "job": job_name,
        "manifest": manifest_uri,
        "label_attribute": stats.label_attribute,
        "lines": stats.lines,
        "documents": len(first_line),
        "repeated": stats.documents - len(first_line),
        "spans": span_total,
        "quarantined": stats.rejected,
        "trimmed": stats.trimmed,
        "quarantine": report,
        "snapshot": snapshot.version if snapshot else None,
    }
    logger.info("labeling job converted", **result)
    return result


def _merge_repeat(state: StateTable, document: LabelledDocument, first: int, origin: str,
                  quarantine: Quarantine, file: str) -> list[Span]:
    """The spans of a document met again in the same manifest: the union with what its earlier
    line(s) put in the gold set."""
    earlier = state.get_gold(document.doc)
    if earlier is None or earlier.origin != origin:  # changed by someone else meanwhile: ours wins
        return document.spans
    if earlier.text != document.text:
        # The same words spaced differently: the offsets do not carry over, so this line replaces.
        quarantine.note(file, document.line, f"same document as line {first} but spaced differently; "
                                             "this line's labels replace that line's")
        return document.spans
    merged, dropped = union_spans(earlier.spans, document.spans)
    if merged == sorted(earlier.spans) and not dropped:
        quarantine.note(file, document.line, f"same document as line {first}; no new labels")
        return merged
    added = len(set(merged) - set(earlier.spans))
    reason = f"same document as line {first}; labels merged ({added} span(s) added"
    reason += "".join(f"; {span.type} span [{span.begin}, {span.end}) dropped: overlaps {clash.type} span "
                      f"[{clash.begin}, {clash.end})" for span, clash in dropped)
    quarantine.note(file, document.line, reason + ")")
    return merged
