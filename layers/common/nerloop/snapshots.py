"""Training snapshots: the whole gold set written as Comprehend training files under
training/<version>/. Retraining is not incremental, so every snapshot is the full, de-duplicated set."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from typing import Any

from nerloop.comprehend_training import TrainingStats, write_training_files
from nerloop.constants import ANNOTATIONS_FILE, DOCUMENTS_FILE, TRAINING_PREFIX
from nerloop.state import StateTable

SNAPSHOT_COUNTER = "SNAPSHOT"


@dataclass
class Snapshot:
    """A training snapshot written: its version, its two files' keys and what they hold."""

    version: str
    documents_key: str
    annotations_key: str
    stats: TrainingStats


def snapshot_keys(version: str) -> tuple[str, str]:
    base = f"{TRAINING_PREFIX}{version}/"
    return base + DOCUMENTS_FILE, base + ANNOTATIONS_FILE


def write_snapshot(state: StateTable, s3: Any, bucket: str, version: str) -> Snapshot:
    """Write the gold set as training/<version>/. The annotations CSV goes last: its arrival
    starts training, so the documents file must already be there."""
    documents_key, annotations_key = snapshot_keys(version)
    with tempfile.TemporaryFile("w+b") as documents_raw, tempfile.TemporaryFile("w+b") as annotations_raw:
        documents_out = io.TextIOWrapper(documents_raw, encoding="utf-8", newline="")
        annotations_out = io.TextIOWrapper(annotations_raw, encoding="utf-8", newline="")
        stats = write_training_files(
            ((gold.text, gold.spans) for gold in state.iter_gold()),
            documents_out,
            annotations_out,
            documents_file_name=DOCUMENTS_FILE,
        )
        for wrapper, raw, key, content_type in (
            (documents_out, documents_raw, documents_key, "text/plain"),
            (annotations_out, annotations_raw, annotations_key, "text/csv"),
        ):
            wrapper.flush()
            wrapper.detach()  # hand the bytes back to the raw file without closing it
            raw.seek(0)
            s3.upload_fileobj(raw, bucket, key, ExtraArgs={"ContentType": content_type})
    return Snapshot(version, documents_key, annotations_key, stats)
