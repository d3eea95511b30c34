"""Stage 1 — preprocess: a raw/*.txt object → a batch of new documents, and their place in the pool.

Each non-empty line of the text is one document. A line over Comprehend's 5,000-byte limit is cut
at sentence boundaries into documents that fit; a sentence that is itself too long is quarantined.
Documents already seen (in this file, the pool or the gold set) are dropped, the rest are written
to batches/<batch>/documents.txt and input.manifest and registered in the pool. With a workteam and
no gold set yet, a Ground Truth labeling job is started on the batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from aws_lambda_powertools.metrics import MetricUnit

from nerloop.aws import Aws
from nerloop.comprehend_training import one_line
from nerloop.constants import (
    BATCHES_PREFIX,
    DOCUMENTS_FILE,
    INPUT_MANIFEST_FILE,
    MAX_DOCUMENT_BYTES,
    RAW_PREFIX,
)
from nerloop.documents import document_hash, split_sentences, utf8_size
from nerloop.errors import InvalidRecord
from nerloop.gt_manifest import iter_byte_lines
from nerloop.idempotency import run_once
from nerloop.labeling import start_labeling_job
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.settings import Settings, require
from nerloop.state import StateTable

POOL_CHUNK = 100  # documents checked against the gold set per BatchGetItem
MAX_SLUG = 40


# --- pure: documents from a line --------------------------------------------------------------


@dataclass(frozen=True)
class SplitResult:
    """The documents a line gives, and the UTF-8 sizes of sentences too long to be one."""

    documents: list[str] = field(default_factory=list)
    too_long: list[int] = field(default_factory=list)


def split_document(text: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> SplitResult:
    """Cut `text` into documents of at most `max_bytes` UTF-8 bytes at sentence boundaries.

    A text that fits is one document (stripped). Otherwise consecutive sentences are packed
    greedily, each piece keeping the original text between its sentences; a sentence over the
    limit cannot be cut and is reported in `too_long` instead.
    """
    text = text.strip()
    if not text:
        return SplitResult()
    if utf8_size(text) <= max_bytes:
        return SplitResult([text])
    bounds: list[tuple[int, int]] = []
    cursor = 0
    for sentence in split_sentences(text):
        start = text.index(sentence, cursor)
        cursor = start + len(sentence)
        bounds.append((start, cursor))
    result = SplitResult()
    piece: tuple[int, int] | None = None
    for start, end in bounds:
        size = utf8_size(text[start:end])
        if size > max_bytes:
            if piece:
                result.documents.append(text[piece[0]:piece[1]])
                piece = None
            result.too_long.append(size)
        elif piece is None:
            piece = (start, end)
        elif utf8_size(text[piece[0]:end]) <= max_bytes:
            piece = (piece[0], end)
        else:
            result.documents.append(text[piece[0]:piece[1]])
            piece = (start, end)
    if piece:
        result.documents.append(text[piece[0]:piece[1]])
    return result


def batch_name(key: str, etag: str) -> str:
    """A batch's name: a slug of the raw key and a hash of key and ETag, so a re-upload with new
    content is a new batch and the same upload always the same one."""
    stem = key.removeprefix(RAW_PREFIX).removesuffix(".txt")
    slug = "-".join(re.findall(r"[a-z0-9]+", stem.lower()))[:MAX_SLUG].strip("-") or "batch"
    digest = hashlib.sha256(f"{key}\n{etag.strip(chr(34))}".encode()).hexdigest()[:10]
    return f"{slug}-{digest}"


def batch_keys(batch: str) -> tuple[str, str]:
    base = f"{BATCHES_PREFIX}{batch}/"
    return base + DOCUMENTS_FILE, base + INPUT_MANIFEST_FILE


# --- the stage --------------------------------------------------------------------------------


def preprocess_object(
    bucket: str, key: str, aws: Aws, settings: Settings, etag: str = "", version_id: str = ""
) -> dict[str, Any]:
    """Turn one raw text object into a batch; once per object version (bucket, key, ETag, version).

    Returns counts: lines, documents (new), duplicates (within the file), known (already in the
    pool or gold set), empty, split (lines cut in pieces), rejected, and the keys written.
    """
    if settings.workteam_arn:
        require(settings.labeling_role_arn, "LABELING_ROLE_ARN")
    if not etag:
        etag = aws.s3.head_object(Bucket=bucket, Key=key)["ETag"]
    etag = etag.strip('"')
    business_key = {"bucket": bucket, "key": key, "etag": etag, "version": version_id}
    return run_once(settings.state_table, "preprocess", business_key,
                    lambda: _preprocess(bucket, key, etag, version_id, aws, settings))


class _BatchWriter:
    """Registers new documents in the pool and writes them to the batch's two files."""

    def __init__(self, state: StateTable, batch: str, documents: IO[str], manifest: IO[str]) -> None:
        self.state = state
        self.batch = batch
        self.documents = documents
        self.manifest = manifest
        self.pending: list[tuple[str, str]] = []
        self.added = 0
        self.known = 0

    def add(self, doc: str, text: str) -> None:
        self.pending.append((doc, text))
        if len(self.pending) >= POOL_CHUNK:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        # add_to_pool refuses documents in the pool; gold documents need not be there.
        gold = self.state.gold_hashes(doc for doc, _ in self.pending)
        for doc, text in self.pending:
            if doc in gold or not self._claim(doc, text):
                self.known += 1
                continue
            self.documents.write(one_line(text) + "\n")
            self.manifest.write(json.dumps({"source": text}, ensure_ascii=False) + "\n")
            self.added += 1
        self.pending.clear()

    def _claim(self, doc: str, text: str) -> bool:
        if self.state.add_to_pool(doc, text, self.batch):
            return True
        # A retry after a crash finds the documents it pooled the first time: they are still ours.
        pooled = self.state.get_pool(doc)
        return pooled is not None and pooled.batch == self.batch


def _preprocess(
    bucket: str, key: str, etag: str, version_id: str, aws: Aws, settings: Settings
) -> dict[str, Any]:
    batch = batch_name(key, etag)
    documents_key, manifest_key = batch_keys(batch)
    quarantine = Quarantine(stage="preprocess", source=batch)
    counts: Counter[str] = Counter()
    result: dict[str, Any] = {"batch": batch, "documents_key": None, "manifest_key": None,
                              "labeling_job": None, "quarantine": None}

    # The current object, compared by ETag rather than read by version: that needs no
    # s3:GetObjectVersion and works on unversioned buckets too.
    obj = aws.s3.get_object(Bucket=bucket, Key=key)
    if obj.get("ETag", "").strip('"') != etag:
        # Overwritten since the event: that write has its own event and will be processed then.
        logger.warning("object changed since the event; skipped", key=key, etag=etag, version=version_id)
        obj["Body"].close()
        return {**result, "skipped": "object changed since the event"}

    state = StateTable(aws.table)
    seen: set[str] = set()
    with tempfile.TemporaryFile("w+b") as documents_raw, tempfile.TemporaryFile("w+b") as manifest_raw:
        documents_out = io.TextIOWrapper(documents_raw, encoding="utf-8", newline="")
        manifest_out = io.TextIOWrapper(manifest_raw, encoding="utf-8", newline="")
        writer = _BatchWriter(state, batch, documents_out, manifest_out)
        for number, raw in enumerate(iter_byte_lines(obj["Body"].iter_chunks()), start=1):
            counts["lines"] += 1
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                counts["rejected"] += 1
                quarantine.reject(InvalidRecord(key, number, f"invalid UTF-8 at byte {exc.start}"),
                                  raw.decode("utf-8", errors="replace"))
                continue
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
                quarantine.note(key, number, "byte order mark at the start of the file removed")
            line = line.replace("\r", " ")  # CRLF ends and stray CRs are white space
            if not line.strip():
                counts["empty"] += 1
                continue
            pieces = split_document(line)
            if len(pieces.documents) > 1:
                counts["split"] += 1
                quarantine.note(key, number, f"line of {utf8_size(line.strip()):,} bytes cut at sentence "
                                             f"boundaries into {len(pieces.documents)} documents")
            for size in pieces.too_long:
                counts["rejected"] += 1
                quarantine.reject(InvalidRecord(
                    key, number, f"a sentence of {size:,} UTF-8 bytes is over Comprehend's limit of "
                                 f"{MAX_DOCUMENT_BYTES:,} and has no sentence boundary to cut at"), line)
            for text in pieces.documents:
                doc = document_hash(text)
                if doc in seen:
                    counts["duplicates"] += 1
                    continue
                seen.add(doc)
                writer.add(doc, text)
        writer.flush()
        counts["documents"] = writer.added
        counts["known"] = writer.known
        for wrapper in (documents_out, manifest_out):
            wrapper.flush()
            wrapper.detach()  # hand the bytes back to the raw file without closing it
        if writer.added:
            for raw_file, target, content_type in (
                (documents_raw, documents_key, "text/plain"),
                (manifest_raw, manifest_key, "application/x-ndjson"),
            ):
                raw_file.seek(0)
                aws.s3.upload_fileobj(raw_file, settings.data_bucket, target,
                                      ExtraArgs={"ContentType": content_type})
            result.update(documents_key=documents_key, manifest_key=manifest_key)

    if writer.added and settings.workteam_arn and next(state.iter_gold(), None) is None:
        result["labeling_job"] = start_labeling_job(
            aws.sagemaker, aws.s3,
            bucket=settings.data_bucket, batch=batch, manifest_key=manifest_key,
            entity_types=settings.entity_types, workteam_arn=settings.workteam_arn,
            role_arn=require(settings.labeling_role_arn, "LABELING_ROLE_ARN"),
            prefix=settings.labeling_job_prefix,
        )
    result["quarantine"] = quarantine.write(aws.s3, settings.data_bucket)

    metrics.add_metric(name="DocumentsAdded", unit=MetricUnit.Count, value=counts["documents"])
    metrics.add_metric(name="DocumentsRejected", unit=MetricUnit.Count, value=counts["rejected"])
    summary: dict[str, Any] = {
        **result,
        **{name: counts[name] for name in ("lines", "documents", "duplicates", "known", "empty", "split",
                                           "rejected")},
    }
    logger.info("batch preprocessed", key=key, **summary)
    return summary
