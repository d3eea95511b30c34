"""Stage 2 — convert: a Ground Truth labeling job completed → its labels join the gold set.

The job's output manifest is streamed from S3 and validated line by line (nerloop.gt_manifest);
every good document is written to the gold set, bad lines are quarantined, and a retrain is
requested, which writes the next training snapshot unless a training is in flight.
"""

from __future__ import annotations

from array import array
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from nerloop.aws import Aws
from nerloop.cost_records import record_labeling_job
from nerloop.documents import Span
from nerloop.errors import NerloopError
from nerloop.gt_manifest import (
    MAX_MANIFEST_LINE_BYTES,
    READ_CHUNK_BYTES,
    LabelledDocument,
    ParseStats,
    iter_byte_lines,
    parse_manifest,
    union_spans,
)
from nerloop.idempotency import run_once
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.retrain import RETRAIN_REQUESTED, RetrainPolicy, maybe_start_retrain
from nerloop.settings import Settings
from nerloop.state import GoldBatchWriter, GoldDocument, StateTable

COMPLETED = "Completed"
GOLD_BUFFER = 100  # gold documents held before a batched write (memory stays bounded)


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


class SeenDocuments:
    """The documents met so far in one manifest, each with the line it was first met on.

    A manifest may hold a million lines, so this is not a dict of hashes (about 200 bytes an entry)
    but an open-addressing table of the hashes' first 64 bits in two arrays: 12 bytes a slot, at
    most 70 % full, about 24 MB for a million documents. Two documents sharing 64 bits (odds about
    1 in 30 million for a million documents) look alike here; the caller tells them apart by the
    gold set's text (see `_convert`).
    """

    MAX_LOAD = 0.7

    def __init__(self, capacity: int = 1024) -> None:
        if capacity & (capacity - 1):
            raise ValueError("capacity must be a power of two")
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        self.count = 0

    @staticmethod
    def _key(doc: str) -> int:
        return int(doc[:16], 16) or 1  # 0 marks an empty slot

    def first_seen(self, doc: str, line: int) -> int | None:
        """The line `doc` was first met on; None (and `line` remembered) when this is the first time."""
        key = self._key(doc)
        keys, mask = self._keys, self._mask
        slot = key & mask
        while keys[slot]:
            if keys[slot] == key:
                return self._lines[slot]
            slot = (slot + 1) & mask
        keys[slot] = key
        self._lines[slot] = line
        self.count += 1
        if self.count > self.MAX_LOAD * (mask + 1):
            self._grow()
        return None

    def _grow(self) -> None:
        old_keys, old_lines = self._keys, self._lines
        capacity = 2 * len(old_keys)
        self._keys = array("Q", bytes(8 * capacity))
        self._lines = array("I", bytes(4 * capacity))
        self._mask = capacity - 1
        keys, lines, mask = self._keys, self._lines, self._mask
        for key, line in zip(old_keys, old_lines, strict=True):
            if key:
                slot = key & mask
                while keys[slot]:
                    slot = (slot + 1) & mask
                keys[slot] = key
                lines[slot] = line

    def __len__(self) -> int:
        return self.count


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
    record_labeling_job(aws.table, job_name, described)  # the objects Ground Truth bills (round_cost)
    quarantine = Quarantine(stage="convert", source=job_name)
    stats = ParseStats()
    origin = f"labeling:{job_name}"
    # Memory must not grow with the manifest: no per-document dicts, only the compact table of
    # what was seen, and running totals.
    seen = SeenDocuments()
    documents = 0  # distinct documents written
    span_total = 0  # spans those documents hold now
    body = aws.s3.get_object(Bucket=bucket, Key=key)["Body"]
    lines = iter_byte_lines(body.iter_chunks(READ_CHUNK_BYTES), max_bytes=MAX_MANIFEST_LINE_BYTES)
    # Gold documents are written GOLD_BUFFER at a time (25 to a request); a repeated document still
    # in the buffer is merged with the buffered labels, one already written is read back.
    pending: dict[str, GoldDocument] = {}
    gold_writer = GoldBatchWriter(state)
    for document in parse_manifest(lines, manifest_uri, settings.entity_types, quarantine,
                                   label_attribute=label_attribute, stats=stats):
        spans = document.spans
        first = seen.first_seen(document.doc, document.line)
        earlier = None
        if first is not None:
            earlier = pending.get(document.doc) or state.get_gold(document.doc)
        if earlier is None:  # new here (or only its first 64 bits were seen before)
            documents += 1
            span_total += len(spans)
        else:
            spans = _merge_repeat(earlier, document, first or 0, origin, quarantine, manifest_uri)
            span_total += len(spans) - len(earlier.spans)
        pending[document.doc] = GoldDocument(doc=document.doc, text=document.text, spans=spans, origin=origin)
        if len(pending) >= GOLD_BUFFER:
            gold_writer.put_gold_many(pending.values())
            pending.clear()
    gold_writer.put_gold_many(pending.values())
    pending.clear()

    report = quarantine.write(aws.s3, settings.data_bucket)
    quarantine.close()
    snapshot = None
    if documents:
        # Counted once per job: a retry of this effect (it failed after this line) asks again for
        # nothing, so a training that the first attempt started is not followed by a needless one.
        state.count_once(f"retrain-request/convert/{job_name}", RETRAIN_REQUESTED)
        snapshot = maybe_start_retrain(state, aws.s3, settings.data_bucket, RetrainPolicy.of(settings))

    metrics.add_metric(name="DocumentsConverted", unit=MetricUnit.Count, value=documents)
    metrics.add_metric(name="SpansConverted", unit=MetricUnit.Count, value=span_total)
    metrics.add_metric(name="LinesQuarantined", unit=MetricUnit.Count, value=stats.rejected)
    result: dict[str, Any] = {
        "job": job_name,
        "manifest": manifest_uri,
        "label_attribute": stats.label_attribute,
        "lines": stats.lines,
        "documents": documents,
        "repeated": stats.documents - documents,
        "spans": span_total,
        "quarantined": stats.rejected,
        "trimmed": stats.trimmed,
        "quarantine": report,
        "snapshot": snapshot.version if snapshot else None,
    }
    logger.info("labeling job converted", **result)
    return result


def _merge_repeat(earlier: GoldDocument, document: LabelledDocument, first: int, origin: str,
                  quarantine: Quarantine, file: str) -> list[Span]:
    """The spans of a document met again in the same manifest: the union with what its earlier
    line(s) put in the gold set (`earlier`)."""
    if earlier.origin != origin:  # changed by someone else meanwhile: ours wins
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
