"""Stage 1 — preprocess: a raw/*.txt object → a batch of new documents, and their place in the pool.

Every sentence of a non-empty line is one document (`nerloop.documents.split_sentences` finds them;
each document is the stripped slice of its line, so white space inside it stays as written). A
sentence over Comprehend's 5,000-byte limit cannot be a document: it is quarantined and the line's
other sentences are kept. Documents already seen (in this file, the pool or the gold set) are
dropped, the rest are written to batches/<batch>/documents.txt and input.manifest and registered in
the pool, and a "Documents Added" event tells the detect stage. With a workteam and no gold set yet,
a Ground Truth labeling job is started on the batch, unless another batch's job is labelling the seed.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError

from nerloop.aws import Aws
from nerloop.bus import publish
from nerloop.comprehend_training import one_line
from nerloop.constants import (
    BATCHES_PREFIX,
    DOCUMENTS_ADDED_DETAIL_TYPE,
    DOCUMENTS_FILE,
    INPUT_MANIFEST_FILE,
    MAX_DOCUMENT_BYTES,
    RAW_PREFIX,
)
from nerloop.documents import document_hash, split_sentences, utf8_size
from nerloop.errors import InvalidRecord
from nerloop.gt_manifest import READ_CHUNK_BYTES, iter_byte_lines
from nerloop.idempotency import run_stage_once
from nerloop.labeling import start_seed_labeling
from nerloop.observability import logger, metrics
from nerloop.quarantine import Quarantine
from nerloop.settings import Settings, require
from nerloop.stages.results import Preprocessed, PreprocessResult, PreprocessSkipped
from nerloop.state import StateTable

POOL_CHUNK = 100  # documents checked against the gold set per BatchGetItem
MAX_SLUG = 40


# --- pure: documents from a line --------------------------------------------------------------


@dataclass(frozen=True)
class SplitResult:
    """The documents a line gives, and its sentences too long to be one, each in line order."""

    documents: list[str] = field(default_factory=list)
    too_long: list[str] = field(default_factory=list)


def split_document(line: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> SplitResult:
    """Cut a raw line into documents: one per sentence, as `split_sentences` finds them.

    Each document is the stripped slice of `line` its sentence came from, so white space inside it
    is kept as written. A sentence over `max_bytes` UTF-8 bytes cannot be a document: it goes to
    `too_long` and the line's other sentences are still documents. A blank line gives nothing.
    """
    result = SplitResult()
    for sentence in _sentence_slices(line):
        if utf8_size(sentence) > max_bytes:
            result.too_long.append(sentence)
        else:
            result.documents.append(sentence)
    return result


def _sentence_slices(line: str) -> list[str]:
    """The sentences of `line` as slices of it.

    `split_sentences` may change white space (it joins the pieces of "e.g. this" with one space)
    but gives every other character of the line, in order; so each sentence is found by counting
    its characters that are not white space (`str.isspace` and the regex `\\s` agree on which).
    """
    slices: list[str] = []
    cursor = 0
    for sentence in split_sentences(line):
        while line[cursor].isspace():
            cursor += 1
        start = cursor
        remaining = sum(not char.isspace() for char in sentence)
        while remaining:
            remaining -= not line[cursor].isspace()
            cursor += 1
        slices.append(line[start:cursor])
    return slices


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
) -> PreprocessResult:
    """Turn one raw text object into a batch; once per object version (bucket, key, ETag, version).

    Returns counts and the keys written. Counts of lines: lines, empty. Counts of sentences (found
    in the lines that are valid UTF-8): sentences, and where each went — documents (new),
    duplicates (earlier in the file), known (already in the pool or gold set). rejected counts the
    quarantined records: lines that are not UTF-8 and sentences over the size limit. So
    sentences = documents + duplicates + known + the rejected sentences.
    """
    if settings.workteam_arn:
        require(settings.labeling_role_arn, "LABELING_ROLE_ARN")
    key = stored_key(aws.s3, bucket, key)
    if not etag:
        etag = aws.s3.head_object(Bucket=bucket, Key=key)["ETag"]
    etag = etag.strip('"')
    business_key = {"bucket": bucket, "key": key, "etag": etag, "version": version_id}
    return run_stage_once(settings.state_table, "preprocess", business_key,
                          lambda: _preprocess(bucket, key, etag, version_id, aws, settings),
                          PreprocessSkipped, Preprocessed)


def stored_key(s3: Any, bucket: str, key: str) -> str:
    """The key of the object an event names, as S3 stores it.

    The key is taken as EventBridge delivers it: S3's EventBridge page shows no URL encoding
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/ev-events.html), where its notifications to
    SQS, SNS and Lambda encode keys ("red flower.jpg" → "red+flower.jpg",
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html). No page
    says so outright, so a key that could be encoded, names no object and whose decoded form does, is
    read decoded: a raw file is processed either way, at the cost of a HEAD for keys with "+" or "%".
    """
    decoded = urllib.parse.unquote_plus(key)
    if decoded == key:
        return key
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return key
    except ClientError as exc:
        # A missing key is 404, or 403 without s3:ListBucket on the bucket
        # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html)
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound", "403", "AccessDenied"):
            raise
    try:
        s3.head_object(Bucket=bucket, Key=decoded)
    except ClientError:
        return key  # neither exists: the read below names the key as delivered
    return decoded


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
        gold = self.state.gold.hashes(doc for doc, _ in self.pending)
        for doc, text in self.pending:
            if doc in gold or not self._claim(doc, text):
                self.known += 1
                continue
            self.documents.write(one_line(text) + "\n")
            self.manifest.write(json.dumps({"source": text}, ensure_ascii=False) + "\n")
            self.added += 1
        self.pending.clear()

    def _claim(self, doc: str, text: str) -> bool:
        if self.state.pool.add(doc, text, self.batch):
            return True
        # A retry after a crash finds the documents it pooled the first time: they are still ours.
        pooled = self.state.pool.get(doc)
        return pooled is not None and pooled.batch == self.batch


def _line_text(raw: bytes, number: int, key: str, quarantine: Quarantine, counts: Counter[str]) -> str | None:
    """A line as text (UTF-8, no byte order mark, carriage returns as spaces), or None when it is
    empty or not UTF-8 (then quarantined)."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        counts["rejected"] += 1
        quarantine.reject(InvalidRecord(key, number, f"invalid UTF-8 at byte {exc.start}"),
                          raw.decode("utf-8", errors="replace"))
        return None
    if number == 1 and line.startswith("\ufeff"):
        line = line[1:]
        quarantine.note(key, number, "byte order mark at the start of the file removed")
    line = line.replace("\r", " ")  # CRLF ends and stray CRs are white space
    if not line.strip():
        counts["empty"] += 1
        return None
    return line


def _pool_lines(body: Any, key: str, writer: _BatchWriter, quarantine: Quarantine, counts: Counter[str]) -> None:
    """Split each line of `body` into documents and hand the new ones to `writer`; quarantine
    sentences over Comprehend's size limit."""
    seen: set[str] = set()
    for number, raw in enumerate(iter_byte_lines(body.iter_chunks(READ_CHUNK_BYTES)), start=1):
        counts["lines"] += 1
        line = _line_text(raw, number, key, quarantine, counts)
        if line is None:
            continue
        pieces = split_document(line)
        counts["sentences"] += len(pieces.documents) + len(pieces.too_long)
        for sentence in pieces.too_long:
            counts["rejected"] += 1
            quarantine.reject(InvalidRecord(
                key, number, f"a sentence of {utf8_size(sentence):,} UTF-8 bytes is over Comprehend's "
                             f"limit of {MAX_DOCUMENT_BYTES:,} bytes a document; the line's other "
                             "sentences are kept"), sentence)
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


def _write_batch(body: Any, key: str, batch: str, state: StateTable, quarantine: Quarantine,
                 counts: Counter[str], aws: Aws, settings: Settings) -> int:
    """Pool the new documents of `body` and, when there are any, upload the batch's documents and
    manifest and announce them; returns how many were added."""
    documents_key, manifest_key = batch_keys(batch)
    with tempfile.TemporaryFile("w+b") as documents_raw, tempfile.TemporaryFile("w+b") as manifest_raw:
        documents_out = io.TextIOWrapper(documents_raw, encoding="utf-8", newline="")
        manifest_out = io.TextIOWrapper(manifest_raw, encoding="utf-8", newline="")
        writer = _BatchWriter(state, batch, documents_out, manifest_out)
        _pool_lines(body, key, writer, quarantine, counts)
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
            # Once a model is active, the detect stage starts detection on the batch at once.
            publish(aws, DOCUMENTS_ADDED_DETAIL_TYPE, {"batch": batch, "documents": writer.added,
                                                       "documentsKey": documents_key})
    return writer.added


def _preprocess(
    bucket: str, key: str, etag: str, version_id: str, aws: Aws, settings: Settings
) -> PreprocessResult:
    batch = batch_name(key, etag)
    documents_key, manifest_key = batch_keys(batch)
    quarantine = Quarantine(stage="preprocess", source=batch)
    counts: Counter[str] = Counter()
    written: tuple[str | None, str | None] = (None, None)  # the batch's documents and manifest keys
    labeling_job: str | None = None

    # The current object, compared by ETag rather than read by version: that needs no
    # s3:GetObjectVersion and works on unversioned buckets too.
    obj = aws.s3.get_object(Bucket=bucket, Key=key)
    if obj.get("ETag", "").strip('"') != etag:
        # Overwritten since the event: that write has its own event and will be processed then.
        logger.warning("object changed since the event; skipped", key=key, etag=etag, version=version_id)
        obj["Body"].close()
        return PreprocessSkipped(batch=batch)

    state = StateTable(aws.table)
    added = _write_batch(obj["Body"], key, batch, state, quarantine, counts, aws, settings)
    if added:
        written = (documents_key, manifest_key)

    if added and settings.workteam_arn and not state.gold.has_any():
        labeling_job = start_seed_labeling(
            state, aws.sagemaker, aws.s3,
            bucket=settings.data_bucket, batch=batch, manifest_key=manifest_key,
            entity_types=settings.entity_types, workteam_arn=settings.workteam_arn,
            role_arn=require(settings.labeling_role_arn, "LABELING_ROLE_ARN"),
            prefix=settings.labeling_job_prefix,
        )
    report = quarantine.write(aws.s3, settings.data_bucket)

    metrics.add_metric(name="DocumentsAdded", unit=MetricUnit.Count, value=counts["documents"])
    metrics.add_metric(name="DocumentsRejected", unit=MetricUnit.Count, value=counts["rejected"])
    summary = Preprocessed(
        batch=batch, documents_key=written[0], manifest_key=written[1], labeling_job=labeling_job,
        quarantine=report, lines=counts["lines"], empty=counts["empty"], sentences=counts["sentences"],
        documents=counts["documents"], duplicates=counts["duplicates"], known=counts["known"],
        rejected=counts["rejected"],
    )
    logger.info("batch preprocessed", key=key, **summary.to_dict())
    return summary
