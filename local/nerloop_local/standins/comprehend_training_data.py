"""Comprehend's training data, read as CreateEntityRecognizer does (pure functions over what S3 holds).

The COMPREHEND_CSV input: a ONE_DOC_PER_LINE documents file (or every object under a prefix) and the
annotations CSV `File, Line, Begin Offset, End Offset, Type` (Line 0-based, offsets within the line, File
the documents file's name). Data that breaks Comprehend's rules (AWS-FACTS "Comprehend training limits")
raises TrainingDataError, whose message names what and where (the recognizer's Message).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections import Counter
from typing import Any

from nerloop.constants import (
    MAX_CORPUS_BYTES,
    MAX_DOCUMENT_BYTES,
    MAX_ENTITY_TYPES,
    MAX_TRAINING_DOCUMENTS,
    MAX_TYPE_NAME_LENGTH,
    MIN_ANNOTATIONS_PER_TYPE,
    MIN_CORPUS_BYTES,
    MIN_TRAINING_DOCUMENTS,
)
from nerloop.documents import Span
from nerloop_local.standins.base import StandInContext, StandInError, split_s3_uri

ANNOTATION_COLUMNS = ["File", "Line", "Begin Offset", "End Offset", "Type"]

Document = tuple[str, list[Span]]


class TrainingDataError(Exception):
    """The training data breaks one of Comprehend's rules; the message becomes the recognizer's Message."""


def split_lines(body: bytes) -> list[bytes]:
    """The documents of a ONE_DOC_PER_LINE file (a final line break ends the last line, adds none)."""
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def check_input_config(config: dict[str, Any]) -> None:
    """What CreateEntityRecognizer refuses at once (InvalidRequestException), before any training."""
    if config.get("DataFormat", "COMPREHEND_CSV") != "COMPREHEND_CSV" or config.get("EntityList"):
        raise StandInError("InvalidRequestException", "the local stand-in trains from COMPREHEND_CSV annotations "
                        "only (no AUGMENTED_MANIFEST, no EntityList)")
    if not config.get("Documents") or not config.get("Annotations"):
        raise StandInError("InvalidRequestException", "COMPREHEND_CSV training needs Documents and Annotations")
    if config["Documents"].get("InputFormat", "ONE_DOC_PER_LINE") != "ONE_DOC_PER_LINE":
        raise StandInError("InvalidRequestException", "the local stand-in trains from ONE_DOC_PER_LINE documents only")
    types = [item.get("Type", "") for item in config.get("EntityTypes", [])]
    if not 1 <= len(types) <= MAX_ENTITY_TYPES:
        raise StandInError("InvalidRequestException", f"{len(types)} entity types; 1 to {MAX_ENTITY_TYPES} are allowed")
    for name in types:
        if not name or len(name) > MAX_TYPE_NAME_LENGTH or re.search(r"[\s,]|\\[nrt]", name):
            raise StandInError("InvalidRequestException", f"entity type {name!r} is not valid: at most "
                            f"{MAX_TYPE_NAME_LENGTH} characters, no space, comma, tab or line break")
    if len(set(types)) != len(types):
        raise StandInError("InvalidRequestException", "entity types repeat")


def read_training_data(context: StandInContext, config: dict[str, Any], types: list[str]
                       ) -> tuple[list[Document], list[Document] | None]:
    """(train, test) documents from the COMPREHEND_CSV input; test is None without a test set."""
    documents, annotations = config["Documents"], config["Annotations"]
    train = read_set(context, documents["S3Uri"], annotations["S3Uri"], types)
    test = None
    if documents.get("TestS3Uri") or annotations.get("TestS3Uri"):
        if not (documents.get("TestS3Uri") and annotations.get("TestS3Uri")):
            raise TrainingDataError("a test set needs both Documents.TestS3Uri and Annotations.TestS3Uri")
        test = read_set(context, documents["TestS3Uri"], annotations["TestS3Uri"], types)
        # "the test data must include at least one annotation for each of the entity types specified in
        # the creation request" (https://docs.aws.amazon.com/comprehend/latest/dg/prep-training-data-cer.html)
        found = {span.type for _, spans in test for span in spans}
        missing = [name for name in types if name not in found]
        if missing:
            raise TrainingDataError(f"the test data has no annotation of {', '.join(missing)}; it needs at least "
                                    "one of each entity type")
    check_minimums(train, types)
    return train, test


def read_set(context: StandInContext, documents_uri: str, annotations_uri: str, types: list[str]) -> list[Document]:
    bucket, _ = split_s3_uri(documents_uri)
    document_keys = context.list_s3(documents_uri)
    if not document_keys:
        raise TrainingDataError(f"No documents were found at {documents_uri}")
    files: dict[str, list[str]] = {}
    for key in sorted(document_keys):
        name = key.rsplit("/", 1)[-1]
        try:
            files[name] = [raw.decode("utf-8") for raw in split_lines(context.read_s3(f"s3://{bucket}/{key}"))]
        except UnicodeDecodeError as exc:
            raise TrainingDataError(f"documents file {key} is not UTF-8: {exc}") from exc
    annotations_bucket, _ = split_s3_uri(annotations_uri)
    annotation_keys = context.list_s3(annotations_uri)
    if not annotation_keys:
        raise TrainingDataError(f"No annotations were found at {annotations_uri}")
    spans: dict[tuple[str, int], list[Span]] = {}
    for key in sorted(annotation_keys):
        text = context.read_s3(f"s3://{annotations_bucket}/{key}").decode("utf-8-sig", errors="strict")
        for file_name, line, span in parse_annotations(text, key, files, types):
            spans.setdefault((file_name, line), []).append(span)
    for (file_name, line), found in spans.items():
        _check_overlaps(file_name, line, found)
    return [(text, sorted(spans.get((name, number), [])))
            for name, lines in files.items() for number, text in enumerate(lines)
            if text.strip() or spans.get((name, number))]


def parse_annotations(text: str, key: str, files: dict[str, list[str]], types: list[str]
                      ) -> list[tuple[str, int, Span]]:
    """Rows of an annotations CSV as (file, 0-based line, span); TrainingDataError names the CSV row."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip() for cell in rows[0]] != ANNOTATION_COLUMNS:
        raise TrainingDataError(f"annotations file {key}: the header must be {', '.join(ANNOTATION_COLUMNS)}")
    known = set(types)
    found: list[tuple[str, int, Span]] = []
    for row_number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        where = f"annotations file {key} row {row_number}"
        if len(row) != len(ANNOTATION_COLUMNS):
            raise TrainingDataError(f"{where}: {len(row)} columns, expected {len(ANNOTATION_COLUMNS)}")
        file_name, line_text, begin_text, end_text, type_ = (cell.strip() for cell in row)
        if file_name not in files:
            raise TrainingDataError(f"{where}: File {file_name!r} is not one of the documents files "
                                    f"({', '.join(sorted(files))})")
        try:
            line, begin, end = int(line_text), int(begin_text), int(end_text)
        except ValueError as exc:
            raise TrainingDataError(f"{where}: Line, Begin Offset and End Offset must be integers") from exc
        if type_ not in known:
            raise TrainingDataError(f"{where}: entity type {type_!r} is not one of the recognizer's "
                                    f"EntityTypes ({', '.join(types)})")
        lines = files[file_name]
        if not 0 <= line < len(lines):
            raise TrainingDataError(f"{where}: Line {line} is outside {file_name} ({len(lines)} lines, 0-based)")
        if not 0 <= begin < end <= len(lines[line]):
            raise TrainingDataError(f"{where}: offsets {begin}-{end} are outside line {line} of {file_name} "
                                    f"({len(lines[line])} characters)")
        found.append((file_name, line, Span(begin, end, type_)))
    return found


def _check_overlaps(file_name: str, line: int, spans: list[Span]) -> None:
    ordered = sorted(spans)
    for before, after in itertools.pairwise(ordered):
        if after.begin < before.end:
            raise TrainingDataError(f"overlapping annotations in {file_name} line {line}: {before.begin}-"
                                    f"{before.end} {before.type} and {after.begin}-{after.end} {after.type}")


def check_minimums(documents: list[Document], types: list[str]) -> None:
    """Comprehend's training minimums and maxima (nerloop.constants, from the quotas page); the first
    broken rule raises TrainingDataError, so the version ends IN_ERROR as Comprehend's would."""
    if len(documents) < MIN_TRAINING_DOCUMENTS:
        raise TrainingDataError(f"{len(documents)} training documents; at least {MIN_TRAINING_DOCUMENTS} are required")
    if len(documents) > MAX_TRAINING_DOCUMENTS:
        raise TrainingDataError(f"{len(documents)} training documents; at most {MAX_TRAINING_DOCUMENTS} are allowed")
    sizes = [len(text.encode("utf-8")) for text, _ in documents]
    oversized = [index for index, size in enumerate(sizes) if size > MAX_DOCUMENT_BYTES]
    if oversized:
        raise TrainingDataError(f"{len(oversized)} documents are over {MAX_DOCUMENT_BYTES} bytes "
                                f"(the first is training document {oversized[0]})")
    if sum(sizes) < MIN_CORPUS_BYTES:
        raise TrainingDataError(f"the training documents total {sum(sizes)} bytes; at least {MIN_CORPUS_BYTES} "
                                "are required")
    if sum(sizes) > MAX_CORPUS_BYTES:
        raise TrainingDataError(f"the training documents total {sum(sizes)} bytes; at most {MAX_CORPUS_BYTES} "
                                "are allowed")
    counts = Counter(span.type for _, spans in documents for span in spans)
    short = [f"{name} has {counts.get(name, 0)}" for name in types if counts.get(name, 0) < MIN_ANNOTATIONS_PER_TYPE]
    if short:
        raise TrainingDataError(f"each entity type needs at least {MIN_ANNOTATIONS_PER_TYPE} annotations: "
                                + "; ".join(short))
