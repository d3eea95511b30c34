"""Stage 2 — convert: a Ground Truth labeling job completed → its labels join the gold set.

The job's output manifest is streamed from S3 and validated line by line (nerloop.gt_manifest);
every good document is written to the gold set, bad lines are quarantined, and a retrain is
requested, which writes the next training snapshot unless a training is in flight.

Requests come in batches: GOLD_BUFFER distinct documents are held, then the earlier labels of those
among them met before in the manifest are read in one BatchGetItem, and all are written 25 a
BatchWriteItem, a few requests at a time (`GoldBatchWriter`). Between batches the stage looks at
the time left (`Deadline`): when it runs short, it checkpoints (the manifest's byte offset and line
reached, the counts, the table of documents seen, the quarantine so far) and continues in a fresh
invocation from there (`nerloop.continuation`), reading the rest of the manifest with a ranged GET.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from aws_lambda_powertools.metrics import MetricUnit

from nerloop.aws import Aws
from nerloop.continuation import checkpoint_prefix, get_checkpoint, publish_continuation, put_checkpoint
from nerloop.cost_records import record_labeling_job
from nerloop.deadline import Deadline
from nerloop.documents import Span
from nerloop.errors import NerloopError
from nerloop.gt_manifest import (
    MAX_MANIFEST_LINE_BYTES,
    READ_CHUNK_BYTES,
    LabelledDocument,
    LongLine,
    ParseStats,
    iter_byte_lines,
    parse_manifest,
    union_spans,
)
from nerloop.idempotency import run_stage_once
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.retrain import RETRAIN_REQUESTED, RetrainPolicy, maybe_start_retrain
from nerloop.s3_uri import split_s3_uri
from nerloop.seen_documents import SeenDocuments
from nerloop.settings import Settings
from nerloop.stages.results import ConversionContinued, ConversionResult, ConversionSkipped, Converted
from nerloop.state import GoldBatchWriter, GoldDocument, StateTable

__all__ = ["ConversionContinued", "ConversionResult", "ConversionSkipped", "Converted", "SeenDocuments",
           "continue_conversion", "convert_labeling_job"]

COMPLETED = "Completed"
GOLD_BUFFER = 100  # distinct gold documents held before a batched write (memory stays bounded)
STAGE = "convert"


class LabelingJobOutputMissing(NerloopError):
    """DescribeLabelingJob names no output manifest for a job said to be complete."""


def job_name_from_arn(job_arn: str) -> str:
    """`arn:aws:sagemaker:<region>:<account>:labeling-job/<name>` → `<name>`."""
    return job_arn.rsplit("/", 1)[-1]


def convert_labeling_job(
    job_arn: str, aws: Aws, settings: Settings, status: str = COMPLETED, *, deadline: Deadline | None = None
) -> ConversionResult:
    """Put a completed labeling job's documents into the gold set; once per (job ARN, status).

    Labels replace what the gold set held for a document before. A document on several lines of
    the manifest gets the union of their spans (overlaps resolved, noted): in the walkthrough's
    sample the repeats that differ are a labelled line and an unlabelled one.

    Returns `Converted` (counts, the quarantine report's key, the training snapshot version written);
    `ConversionContinued` (the counts so far and the continuation) when `deadline` comes first;
    `ConversionSkipped` for a job that did not complete.
    """
    job_name = job_name_from_arn(job_arn)
    if status != COMPLETED:
        logger.info("labeling job not completed; nothing to convert", job=job_name, status=status)
        return ConversionSkipped(job=job_name, skipped=f"status {status}")
    key = {"job_arn": job_arn, "status": status}
    conversion = Conversion(job_name, key, aws, settings, deadline or Deadline.never())
    return run_stage_once(settings.state_table, STAGE, key, conversion.run, *_VARIANTS)


def continue_conversion(key: dict[str, str], sequence: int, checkpoint: str, aws: Aws, settings: Settings, *,
                        deadline: Deadline | None = None) -> ConversionResult:
    """Go on converting the job of business `key` from `checkpoint`; once per (key, `sequence`).

    Its own idempotency record (not the original event's): a continuation delivered twice has one
    effect, and the original event, delivered again, finds its record and starts nothing."""
    job_name = job_name_from_arn(key["job_arn"])
    conversion = Conversion(job_name, key, aws, settings, deadline or Deadline.never(), sequence=sequence)
    return run_stage_once(settings.state_table, f"{STAGE}-continued", {**key, "sequence": str(sequence)},
                          lambda: conversion.run(checkpoint), *_VARIANTS)


_VARIANTS = (ConversionContinued, Converted)  # what a run returns


class Conversion:
    """One labeling job's manifest into the gold set; `run` is the effect under the idempotency key."""

    def __init__(self, job_name: str, key: dict[str, str], aws: Aws, settings: Settings, deadline: Deadline,
                 sequence: int = 0) -> None:
        self.job_name = job_name
        self.key = key
        self.aws = aws
        self.settings = settings
        self.deadline = deadline
        self.sequence = sequence  # 0 for the run the job's event started, n for its n-th continuation
        self.state = StateTable(aws.table)
        self.quarantine = Quarantine(stage=STAGE, source=job_name)
        self.stats = ParseStats()
        self.origin = f"labeling:{job_name}"
        # Memory must not grow with the manifest: no per-document dicts, only the compact table of
        # what was seen, and running totals.
        self.seen = SeenDocuments()
        self.documents = 0  # distinct documents written
        self.span_total = 0  # spans those documents hold now
        self.offset = 0  # bytes of the manifest read, up to the end of the last line parsed
        self.line = 0  # lines of the manifest read
        self.strict = True  # the label attribute is detected from the lines (not given by the job)
        self.manifest_uri = ""
        self.etag = ""
        self.size = -1  # the manifest's size in bytes (-1: not known)
        self.resumed = False  # going on from a checkpoint
        # The documents of the batch, each with its lines in order (and the line it was first met on,
        # None when new), and those whose earlier labels are in the gold set already, to read.
        self.buffer: dict[str, list[tuple[LabelledDocument, int | None]]] = {}
        self.to_read: set[str] = set()

    def run(self, checkpoint: str | None = None) -> ConversionContinued | Converted:
        if checkpoint is None:
            self.describe_job()
        else:
            self.restore(checkpoint)
        bucket, key = split_s3_uri(self.manifest_uri)
        with GoldBatchWriter(self.state) as writer:
            self.writer = writer
            for document in parse_manifest(self.manifest_lines(bucket, key), self.manifest_uri,
                                           self.settings.entity_types, self.quarantine,
                                           label_attribute=self.stats.label_attribute or None, stats=self.stats,
                                           first_line=self.line + 1, strict=self.strict):
                self.add(document)
                if len(self.buffer) >= GOLD_BUFFER:
                    self.flush()
                    if self.deadline.expired():
                        return self.stop()
            self.flush()
        return self.finish()

    # --- reading --------------------------------------------------------------------------------

    def describe_job(self) -> None:
        described = self.aws.sagemaker.describe_labeling_job(LabelingJobName=self.job_name)
        manifest_uri = (described.get("LabelingJobOutput") or {}).get("OutputDatasetS3Uri")
        if not manifest_uri:
            raise LabelingJobOutputMissing(f"labeling job {self.job_name} ({described.get('LabelingJobStatus')}) "
                                           "has no LabelingJobOutput.OutputDatasetS3Uri")
        self.manifest_uri = manifest_uri
        record_labeling_job(self.aws.table, self.job_name, described)  # the objects Ground Truth bills (round_cost)
        label_attribute = described.get("LabelAttributeName") or None
        self.strict = label_attribute is None
        self.stats.label_attribute = label_attribute or ""

    def manifest_lines(self, bucket: str, key: str) -> Iterator[bytes]:
        """The manifest's lines from the offset reached, each counted as it is handed to the parser."""
        if self.resumed and 0 <= self.size <= self.offset:
            return iter(())
        if self.resumed:
            # The rest of the same object version: a ranged GET ("GetObject", Range and IfMatch:
            # https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
            condition = {"IfMatch": self.etag} if self.etag else {}
            reply = self.aws.s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={self.offset}-", **condition)
        else:
            reply = self.aws.s3.get_object(Bucket=bucket, Key=key)
            self.etag, self.size = str(reply.get("ETag", "")), int(reply.get("ContentLength", -1))
        lines = iter_byte_lines(reply["Body"].iter_chunks(READ_CHUNK_BYTES), max_bytes=MAX_MANIFEST_LINE_BYTES)
        return self.counted(lines)

    def counted(self, lines: Iterable[bytes]) -> Iterator[bytes]:
        for raw in lines:
            self.offset += (raw.size if isinstance(raw, LongLine) else len(raw)) + 1  # and its LF
            self.line += 1
            yield raw

    # --- writing --------------------------------------------------------------------------------

    def add(self, document: LabelledDocument) -> None:
        first = self.seen.first_seen(document.doc, document.line)
        occurrences = self.buffer.get(document.doc)
        if occurrences is not None:
            occurrences.append((document, first))
            return
        self.buffer[document.doc] = [(document, first)]
        if first is not None:  # met in an earlier batch: its labels so far are in the gold set
            self.to_read.add(document.doc)

    def flush(self) -> None:
        """Write the batch: one read of the earlier labels of its repeats, then the gold documents,
        each with the union of its lines' labels."""
        if not self.buffer:
            return
        earlier_of = self.state.gold.get_many(self.to_read) if self.to_read else {}
        golds = []
        for doc, occurrences in self.buffer.items():
            current = earlier_of.get(doc)
            for document, first in occurrences:
                spans = document.spans
                earlier = None if first is None else current
                if earlier is None:  # new here (or only its first 64 bits were seen before)
                    self.documents += 1
                    self.span_total += len(spans)
                else:
                    spans = _merge_repeat(earlier, document, first or 0, self.origin, self.quarantine,
                                          self.manifest_uri)
                    self.span_total += len(spans) - len(earlier.spans)
                current = GoldDocument(doc=doc, text=document.text, spans=spans, origin=self.origin)
            if current is not None and not _same_labels(earlier_of.get(doc), current):
                golds.append(current)
        self.writer.put_gold_many(golds)
        self.buffer.clear()
        self.to_read.clear()

    # --- stopping early, going on ---------------------------------------------------------------

    def stop(self) -> ConversionContinued:
        """Checkpoint what is done and ask for a continuation (the buffer is written)."""
        sequence = self.sequence + 1
        bucket = self.settings.data_bucket
        prefix = checkpoint_prefix(STAGE, self.job_name, sequence)
        seen_key = prefix + "seen.bin"
        self.aws.s3.put_object(Bucket=bucket, Key=seen_key, Body=self.seen.to_bytes())
        checkpoint = put_checkpoint(self.aws, bucket, prefix, {
            "job": self.job_name, "manifest": self.manifest_uri, "etag": self.etag, "size": self.size,
            "offset": self.offset, "line": self.line, "strict": self.strict,
            "documents": self.documents, "spans": self.span_total, "stats": self.stats.as_dict(),
            "seen": seen_key, "seen_count": self.seen.count,
            "quarantine": self.quarantine.save(self.aws.s3, bucket, prefix),
        })
        self.quarantine.close()
        continued = publish_continuation(self.aws, STAGE, self.key, sequence, checkpoint)
        result = ConversionContinued(job=self.job_name, manifest=self.manifest_uri, lines=self.stats.lines,
                                     documents=self.documents, continued=continued)
        logger.info("labeling job conversion continues in a new invocation", offset=self.offset, **result.to_dict())
        return result

    def restore(self, checkpoint: str) -> None:
        bucket = self.settings.data_bucket
        saved = get_checkpoint(self.aws, bucket, checkpoint)
        self.manifest_uri, self.etag, self.size = saved["manifest"], saved["etag"], int(saved["size"])
        self.offset, self.line, self.strict = int(saved["offset"]), int(saved["line"]), bool(saved["strict"])
        self.documents, self.span_total = int(saved["documents"]), int(saved["spans"])
        self.stats = ParseStats(**saved["stats"])
        seen = self.aws.s3.get_object(Bucket=bucket, Key=saved["seen"])["Body"].read()
        self.seen = SeenDocuments.from_bytes(seen, int(saved["seen_count"]))
        self.quarantine.restore(self.aws.s3, bucket, saved["quarantine"])
        self.resumed = True
        logger.info("labeling job conversion goes on", job=self.job_name, sequence=self.sequence,
                    line=self.line, offset=self.offset)

    # --- the end --------------------------------------------------------------------------------

    def finish(self) -> Converted:
        state, stats = self.state, self.stats
        report = self.quarantine.write(self.aws.s3, self.settings.data_bucket)
        self.quarantine.close()
        snapshot = None
        if self.documents:
            # Counted once per job: a retry of this effect (it failed after this line) asks again for
            # nothing, so a training that the first attempt started is not followed by a needless one.
            state.counters.count_once(f"retrain-request/convert/{self.job_name}", RETRAIN_REQUESTED)
            snapshot = maybe_start_retrain(state, self.aws.s3, self.settings.data_bucket,
                                           RetrainPolicy.of(self.settings))

        metrics.add_metric(name="DocumentsConverted", unit=MetricUnit.Count, value=self.documents)
        metrics.add_metric(name="SpansConverted", unit=MetricUnit.Count, value=self.span_total)
        metrics.add_metric(name="LinesQuarantined", unit=MetricUnit.Count, value=stats.rejected)
        result = Converted(
            job=self.job_name,
            manifest=self.manifest_uri,
            label_attribute=stats.label_attribute,
            lines=stats.lines,
            documents=self.documents,
            repeated=stats.documents - self.documents,
            spans=self.span_total,
            quarantined=stats.rejected,
            trimmed=stats.trimmed,
            quarantine=report,
            snapshot=snapshot.version if snapshot else None,
        )
        logger.info("labeling job converted", **result.to_dict())
        return result


def _same_labels(stored: GoldDocument | None, gold: GoldDocument) -> bool:
    """True when the gold set already holds `gold` as it is (a repeat that added no label): writing it
    again would change nothing but its time, and cost a write and a pool look-up."""
    return (stored is not None and (stored.text, stored.origin) == (gold.text, gold.origin)
            and sorted(stored.spans) == sorted(gold.spans))


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
