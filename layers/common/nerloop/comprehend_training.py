"""Comprehend's custom recognizer training format: a documents file (one document per line) and an
annotations CSV `File,Line,Begin Offset,End Offset,Type` (Line 0-based, offsets within the line)."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO

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
from nerloop.documents import Span, utf8_size

ANNOTATIONS_HEADER = ["File", "Line", "Begin Offset", "End Offset", "Type"]

# What an entity type name must not contain: line break, carriage return, tab (raw or escaped as
# "\\n", "\\r", "\\t"), space and comma; at most 64 characters.
# https://docs.aws.amazon.com/comprehend/latest/APIReference/API_EntityRecognizerInputDataConfig.html
# https://docs.aws.amazon.com/comprehend/latest/APIReference/API_EntityTypesListItem.html
_FORBIDDEN_IN_TYPE_NAME = {"\n": "a line break", "\r": "a carriage return", "\t": "a tab", " ": "a space",
                           ",": "a comma", "\\n": "an escaped line break", "\\r": "an escaped carriage return",
                           "\\t": "an escaped tab"}


@dataclass
class TrainingStats:
    """What a written training set holds, for the minimum checks and for people."""

    documents: int = 0
    corpus_bytes: int = 0  # the documents file's size
    annotations: Counter[str] = field(default_factory=Counter)
    oversized_documents: list[int] = field(default_factory=list)  # 0-based lines
    left_out: int = 0  # gold documents a snapshot left out to stay within Comprehend's maxima

    def as_dict(self) -> dict[str, object]:
        return {"documents": self.documents, "corpus_bytes": self.corpus_bytes, "annotations": dict(self.annotations),
                "oversized_documents": self.oversized_documents, "left_out": self.left_out}


def one_line(text: str) -> str:
    """A document as one line of a ONE_DOC_PER_LINE file (line breaks become spaces; offsets keep)."""
    return text.replace("\r", " ").replace("\n", " ")


def write_training_files(
    documents: Iterable[tuple[str, list[Span]]],
    documents_out: IO[str],
    annotations_out: IO[str],
    documents_file_name: str,
) -> TrainingStats:
    """Stream (text, spans) pairs into the two files; return what was written."""
    stats = TrainingStats()
    writer = csv.writer(annotations_out, lineterminator="\n")
    writer.writerow(ANNOTATIONS_HEADER)
    annotations = stats.annotations
    for line_number, (text, spans) in enumerate(documents):
        line = one_line(text) + "\n"
        documents_out.write(line)
        # The text's size and one (one_line swaps one-byte characters only).
        size = len(line) if line.isascii() else utf8_size(line)
        stats.corpus_bytes += size
        if size - 1 > MAX_DOCUMENT_BYTES:
            stats.oversized_documents.append(line_number)
        ordered = sorted(spans)
        writer.writerows([documents_file_name, line_number, span.begin, span.end, span.type] for span in ordered)
        for span in ordered:
            annotations[span.type] += 1
        stats.documents += 1
    return stats


def entity_type_problem(name: str) -> str | None:
    """Why Comprehend would refuse `name` as an entity type, or None when it takes it."""
    if not name:
        return "an entity type name cannot be empty"
    if len(name) > MAX_TYPE_NAME_LENGTH:
        return f"an entity type name has at most {MAX_TYPE_NAME_LENGTH} characters ({len(name)} here)"
    found = [what for text, what in _FORBIDDEN_IN_TYPE_NAME.items() if text in name]
    if found:
        return f"a Comprehend entity type name cannot contain {' or '.join(found)}"
    return None


def check_training_minimums(stats: TrainingStats, entity_types: Iterable[str]) -> list[str]:
    """Everything that keeps Comprehend from training on this set (its minimums and maxima), said
    exactly; empty when none."""
    problems: list[str] = []
    types = list(entity_types)
    if not 1 <= len(types) <= MAX_ENTITY_TYPES:
        problems.append(f"{len(types)} entity types; Comprehend takes 1 to {MAX_ENTITY_TYPES}")
    for name in types:
        problem = entity_type_problem(name)
        if problem:
            problems.append(f"entity type {name!r} is not a valid name: {problem}")
    if stats.documents < MIN_TRAINING_DOCUMENTS:
        problems.append(f"{stats.documents} documents; at least {MIN_TRAINING_DOCUMENTS} are needed")
    if stats.documents > MAX_TRAINING_DOCUMENTS:
        problems.append(f"{stats.documents:,} documents; Comprehend trains on at most {MAX_TRAINING_DOCUMENTS:,}")
    if stats.corpus_bytes < MIN_CORPUS_BYTES:
        problems.append(f"the documents total {stats.corpus_bytes:,} bytes; Comprehend needs at least "
                        f"{MIN_CORPUS_BYTES:,}")
    if stats.corpus_bytes > MAX_CORPUS_BYTES:
        problems.append(f"the documents total {stats.corpus_bytes:,} bytes; Comprehend takes at most "
                        f"{MAX_CORPUS_BYTES:,}")
    for name in types:
        count = stats.annotations.get(name, 0)
        if count < MIN_ANNOTATIONS_PER_TYPE:
            problems.append(f"{name}: {count} annotations; at least {MIN_ANNOTATIONS_PER_TYPE} are needed "
                            f"({MIN_ANNOTATIONS_PER_TYPE - count} short)")
    unknown = sorted(set(stats.annotations) - set(types))
    if unknown:
        problems.append(f"annotations of types not in EntityTypes: {', '.join(unknown)}")
    if stats.oversized_documents:
        lines = ", ".join(str(n) for n in stats.oversized_documents[:10])
        problems.append(f"{len(stats.oversized_documents)} documents over {MAX_DOCUMENT_BYTES} bytes "
                        f"(lines {lines})")
    return problems
