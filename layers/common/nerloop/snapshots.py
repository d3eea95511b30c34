"""Training snapshots: the gold set written as Comprehend training files under training/<version>/.
Retraining is not incremental, so every snapshot is the full, de-duplicated set, as long as it fits.

Comprehend trains on at most MAX_TRAINING_DOCUMENTS documents and MAX_CORPUS_BYTES of text (the quotas
page; nerloop.constants); a larger set would end IN_ERROR at every retrain. When the gold set outgrows
either maximum, a snapshot holds the most recently labelled documents that fit (`choose_documents`):
newest `updated_at` first (a review replaces a document's labels and its time), the document hash
breaking ties, up to the first that would pass a maximum. The older ones stay in the gold set, left out
of this snapshot only; the snapshot's stats count them (`left_out`) and the retrain logs it. Newest
first because the latest labels are the reviews of what the latest model found uncertain, and follow
the labeling guidelines people use now.

The gold set's test documents (nerloop.test_set, by document hash) are never written to the training
files: they go to training/<version>/test-documents.txt and test-annotations.csv, whole, before the
annotations file that starts the training.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from nerloop.comprehend_training import TrainingStats, one_line, write_training_files
from nerloop.constants import (
    ANNOTATIONS_FILE,
    DOCUMENTS_FILE,
    MAX_CORPUS_BYTES,
    MAX_TRAINING_DOCUMENTS,
    TRAINING_PREFIX,
)
from nerloop.documents import utf8_size
from nerloop.state import StateTable
from nerloop.test_set import DEFAULT_TEST_SHARE, TEST_ANNOTATIONS_FILE, TEST_DOCUMENTS_FILE, is_test_document

SNAPSHOT_COUNTER = "SNAPSHOT"


@dataclass(frozen=True)
class SnapshotLimits:
    """The most a snapshot may hold: Comprehend's maxima unless a test asks for less."""

    max_documents: int = MAX_TRAINING_DOCUMENTS
    max_corpus_bytes: int = MAX_CORPUS_BYTES


@dataclass
class Snapshot:
    """A training snapshot written: its version, its two files' keys and what they hold."""

    version: str
    documents_key: str
    annotations_key: str
    stats: TrainingStats
    test: TrainingStats = field(default_factory=TrainingStats)  # the test set's files


def snapshot_keys(version: str) -> tuple[str, str]:
    base = f"{TRAINING_PREFIX}{version}/"
    return base + DOCUMENTS_FILE, base + ANNOTATIONS_FILE


def snapshot_test_keys(version: str) -> tuple[str, str]:
    """The keys of a snapshot's test documents and test annotations."""
    base = f"{TRAINING_PREFIX}{version}/"
    return base + TEST_DOCUMENTS_FILE, base + TEST_ANNOTATIONS_FILE


def line_bytes(text: str) -> int:
    """The bytes a document takes in the documents file (its line and line break)."""
    line = one_line(text) + "\n"
    return len(line) if line.isascii() else utf8_size(line)


def choose_documents(entries: Iterable[tuple[str, str, int]], limits: SnapshotLimits) -> set[str] | None:
    """Which documents a snapshot holds, from (document hash, updated_at, line bytes): None when every
    one fits within `limits`, else the newest that fit (see the module's policy)."""
    entries = list(entries)
    if len(entries) <= limits.max_documents and sum(size for _, _, size in entries) <= limits.max_corpus_bytes:
        return None
    kept: set[str] = set()
    used = 0
    for doc, _, size in sorted(entries, key=lambda entry: (entry[1], entry[0]), reverse=True):
        if len(kept) == limits.max_documents or used + size > limits.max_corpus_bytes:
            break
        kept.add(doc)
        used += size
    return kept


def write_snapshot(state: StateTable, s3: Any, bucket: str, version: str,
                   limits: SnapshotLimits | None = None, test_share: float = DEFAULT_TEST_SHARE) -> Snapshot:
    """Write the gold set's training side (or the part of it that fits `limits`, default Comprehend's
    maxima) and its test side (`test_share`, by document hash) as training/<version>/, in the gold set's
    order (document hash), so a snapshot is repeatable. The annotations CSV goes last: its arrival starts
    training, so every other file must already be there."""
    limits = limits or SnapshotLimits()
    documents_key, annotations_key = snapshot_keys(version)
    entries: list[tuple[str, str, int]] = []
    test_documents: list[tuple[str, list[Any]]] = []

    def every_gold() -> Iterable[tuple[str, list[Any]]]:
        for gold in state.gold.documents():
            if is_test_document(gold.doc, test_share):
                test_documents.append((gold.text, gold.spans))
                continue
            entries.append((gold.doc, gold.updated_at, line_bytes(gold.text)))
            yield gold.text, gold.spans

    with tempfile.TemporaryFile("w+b") as documents_raw, tempfile.TemporaryFile("w+b") as annotations_raw:
        stats = _write(every_gold(), documents_raw, annotations_raw)
        kept = choose_documents(entries, limits)
        if kept is not None:  # over a maximum: written again, holding only the chosen documents
            chosen = ((gold.text, gold.spans) for gold in state.gold.documents() if gold.doc in kept)
            stats = _write(chosen, documents_raw, annotations_raw)
            stats.left_out = len(entries) - len(kept)
        test_stats = TrainingStats()
        if test_documents:
            test_stats = _upload_test_set(s3, bucket, version, test_documents)
        for raw, key, content_type in ((documents_raw, documents_key, "text/plain"),
                                       (annotations_raw, annotations_key, "text/csv")):
            raw.seek(0)
            s3.upload_fileobj(raw, bucket, key, ExtraArgs={"ContentType": content_type})
    return Snapshot(version, documents_key, annotations_key, stats, test_stats)


def _upload_test_set(s3: Any, bucket: str, version: str, documents: list[tuple[str, list[Any]]]) -> TrainingStats:
    """The test side's two files (Comprehend's format; File names the test documents file)."""
    documents_key, annotations_key = snapshot_test_keys(version)
    with tempfile.TemporaryFile("w+b") as documents_raw, tempfile.TemporaryFile("w+b") as annotations_raw:
        stats = _write(documents, documents_raw, annotations_raw, TEST_DOCUMENTS_FILE)
        for raw, key, content_type in ((documents_raw, documents_key, "text/plain"),
                                       (annotations_raw, annotations_key, "text/csv")):
            raw.seek(0)
            s3.upload_fileobj(raw, bucket, key, ExtraArgs={"ContentType": content_type})
    return stats


def _write(documents: Iterable[tuple[str, list[Any]]], documents_raw: IO[bytes], annotations_raw: IO[bytes],
           documents_file_name: str = DOCUMENTS_FILE) -> TrainingStats:
    """Write both files from the start of `documents_raw` and `annotations_raw` (emptied first)."""
    for raw in (documents_raw, annotations_raw):
        raw.seek(0)
        raw.truncate()
    documents_out = io.TextIOWrapper(documents_raw, encoding="utf-8", newline="")
    annotations_out = io.TextIOWrapper(annotations_raw, encoding="utf-8", newline="")
    stats = write_training_files(documents, documents_out, annotations_out, documents_file_name=documents_file_name)
    for wrapper in (documents_out, annotations_out):
        wrapper.flush()
        wrapper.detach()  # hand the bytes back to the raw file without closing it
    return stats
