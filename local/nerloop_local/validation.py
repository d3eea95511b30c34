"""`nerloop validate FILE`: check a file the loop reads — a Ground Truth output manifest, a Comprehend
detection archive, or an A2I output.json — with the very parsers the stages use, and name every
problem by file, line and reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nerloop import a2i
from nerloop.comprehend_output import DocumentFailure, iter_detection_output
from nerloop.errors import InvalidRecord
from nerloop.gt_manifest import MAX_MANIFEST_LINE_BYTES, ParseStats, iter_byte_lines, parse_manifest, read_label_set
from nerloop.quarantine import Problem, Quarantine

MANIFEST, DETECTION_ARCHIVE, A2I_OUTPUT = "Ground Truth output manifest", "detection archive", "A2I output"


@dataclass
class Report:
    kind: str
    records: int = 0
    valid: int = 0
    problems: list[Problem] = field(default_factory=list)
    repairs: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def kind_of(path: Path) -> str:
    """What the file is, from its name and, failing that, its first bytes."""
    name = path.name.lower()
    if name.endswith((".tar.gz", ".tgz")):
        return DETECTION_ARCHIVE
    with path.open("rb") as handle:
        head = handle.read(2)
        if head == b"\x1f\x8b":
            return DETECTION_ARCHIVE
        handle.seek(0)
        first = handle.read(65536).lstrip(b"\xef\xbb\xbf")
    if b'"humanAnswers"' in first or b'"humanLoopName"' in first:
        return A2I_OUTPUT
    return MANIFEST


def validate_file(path: Path, entity_types: Sequence[str] | None = None) -> Report:
    kind = kind_of(path)
    if kind == DETECTION_ARCHIVE:
        return _validate_archive(path)
    if kind == A2I_OUTPUT:
        return _validate_answer(path, entity_types)
    return _validate_manifest(path, entity_types)


def _validate_manifest(path: Path, entity_types: Sequence[str] | None) -> Report:
    quarantine = Quarantine(stage="validate", source=path.name)
    stats = ParseStats()
    with path.open("rb") as handle:
        chunks = iter(lambda: handle.read(1 << 16), b"")
        documents = parse_manifest(iter_byte_lines(chunks, max_bytes=MAX_MANIFEST_LINE_BYTES), str(path),
                                   entity_types, quarantine, stats=stats)
        valid = sum(1 for _ in documents)
    return Report(MANIFEST, records=stats.lines, valid=valid, problems=quarantine.problems,
                  repairs=quarantine.notes)


def _validate_archive(path: Path) -> Report:
    report = Report(DETECTION_ARCHIVE)
    try:
        with path.open("rb") as handle:
            for record in iter_detection_output(handle, str(path)):
                report.records += 1
                if isinstance(record, InvalidRecord):
                    report.problems.append(Problem(record.file, record.line, record.reason))
                elif isinstance(record, DocumentFailure):
                    error = record.as_invalid_record()
                    report.problems.append(Problem(error.file, error.line, error.reason))
                else:
                    report.valid += 1
    except InvalidRecord as error:
        report.problems.append(Problem(error.file, error.line, error.reason))
    return report


def _validate_answer(path: Path, entity_types: Sequence[str] | None) -> Report:
    report = Report(A2I_OUTPUT, records=1)
    raw = path.read_bytes()
    try:
        output = a2i.parse_output(raw, str(path))
        text = a2i.input_text(output, str(path))
        types = list(entity_types or _labels_offered(output))
        answer = a2i.review_answer(output, str(path), text, types)
    except InvalidRecord as error:
        report.problems.append(Problem(error.file, error.line, error.reason))
        return report
    report.valid = 1
    report.repairs.extend(Problem(str(path), None, note) for note in answer.notes)
    return report


def _labels_offered(output: a2i.HumanLoopOutputFile) -> list[str]:
    """The labels the worker was offered, from the loop's own input (route puts them there)."""
    return [item["label"] for item in output.input().get("labels", []) if isinstance(item, dict)]


def manifest_entity_types(path: Path) -> list[str]:
    """The entity types a manifest uses (its jobs' label sets), for runs without --entity-types."""
    with path.open("rb") as handle:
        return read_label_set(iter_byte_lines(iter(lambda: handle.read(1 << 16), b"")))
