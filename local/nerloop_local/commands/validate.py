"""`nerloop validate FILE`: check a file the loop reads — a Ground Truth output manifest, a Comprehend
detection archive, an A2I output.json, or an EventBridge event — with the very parsers the stages and
handlers use, and name every problem by file, line and reason."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from nerloop import review_answers
from nerloop.comprehend_output import DocumentFailure, iter_detection_output, job_id_from_key
from nerloop.constants import DETECTION_OUTPUT_PREFIX
from nerloop.errors import InvalidEvent, InvalidRecord
from nerloop.event_catalog import S3ObjectCreated, describe_event_error, model_for
from nerloop.gt_manifest import MAX_MANIFEST_LINE_BYTES, ParseStats, iter_byte_lines, parse_manifest, read_label_set
from nerloop.quarantine import Problem, Quarantine
from nerloop_local.commands.entity_types import given_entity_types
from nerloop_local.usage import UsageError

MANIFEST, DETECTION_ARCHIVE, A2I_OUTPUT, EVENT = (
    "Ground Truth output manifest", "detection archive", "A2I output", "event")
_HEAD_BYTES = 65536


@dataclass
class Report:
    """What validating one file found. `records == valid + ` the problems that have a line; a problem
    without a line is about the whole file."""

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
        first = handle.read(_HEAD_BYTES).lstrip(b"\xef\xbb\xbf")
    if b'"humanAnswers"' in first or (b'"humanLoopName"' in first and b'"detail-type"' not in first):
        return A2I_OUTPUT
    if b'"detail-type"' in first and first.lstrip()[:1] in (b"{", b"["):
        return EVENT
    return MANIFEST


def validate_file(path: Path, entity_types: Sequence[str] | None = None) -> Report:
    """Check `path` as what it looks like (see kind_of). `entity_types` default: the labels the file
    offers itself (a manifest's job label set, an answer's input labels)."""
    kind = kind_of(path)
    if kind == DETECTION_ARCHIVE:
        return _validate_archive(path)
    if kind == A2I_OUTPUT:
        return _validate_answer(path, entity_types)
    if kind == EVENT:
        return _validate_event(path)
    return _validate_manifest(path, entity_types)


def _problem(error: InvalidRecord) -> Problem:
    return Problem(error.file, error.line, error.reason)


def _validate_manifest(path: Path, entity_types: Sequence[str] | None) -> Report:
    quarantine = Quarantine(stage="validate", source=path.name)
    stats = ParseStats()
    # Without types given, a label must be one of the job's own label set (as the convert stage
    # checks against the stack's entity types); a manifest that lists none accepts every label.
    types = list(entity_types) if entity_types else (_offered_labels(path) or None)
    with path.open("rb") as handle:
        chunks = iter(lambda: handle.read(1 << 16), b"")
        documents = parse_manifest(iter_byte_lines(chunks, max_bytes=MAX_MANIFEST_LINE_BYTES), str(path),
                                   types, quarantine, stats=stats)
        valid = sum(1 for _ in documents)
    report = Report(MANIFEST, records=stats.lines, valid=valid, problems=list(quarantine.problems),
                    repairs=list(quarantine.notes))
    if stats.lines == 0:
        report.problems.append(Problem(str(path), None, "the manifest holds no lines"))
    return report


def _validate_archive(path: Path) -> Report:
    report = Report(DETECTION_ARCHIVE)
    try:
        with path.open("rb") as handle:
            for record in iter_detection_output(handle, str(path)):
                report.records += 1
                if isinstance(record, InvalidRecord):
                    report.problems.append(_problem(record))
                elif isinstance(record, DocumentFailure):
                    report.problems.append(_problem(record.as_invalid_record()))
                else:
                    report.valid += 1
    except InvalidRecord as error:
        report.problems.append(_problem(error))
    return report


def _validate_answer(path: Path, entity_types: Sequence[str] | None) -> Report:
    report = Report(A2I_OUTPUT, records=1)
    raw = path.read_bytes()
    try:
        output = review_answers.parse_output(raw, str(path))
        text = review_answers.input_text(output, str(path))
        types = list(entity_types or _labels_offered(output))
        if not types:
            raise InvalidRecord(str(path), None, "inputContent offers the reviewer no labels; "
                                                 "pass --entity-types to check the answer's")
        answer = review_answers.review_answer(output, str(path), text, types)
    except InvalidRecord as error:
        report.problems.append(_problem(error))
        return report
    report.valid = 1
    report.repairs.extend(Problem(str(path), None, note) for note in answer.notes)
    return report


def _validate_event(path: Path) -> Report:
    """An event as the handler's parser model sees it (the model chosen by source and detail-type)."""
    report = Report(EVENT, records=1)
    try:
        event = json.loads(path.read_bytes())
        if not isinstance(event, dict):
            raise InvalidEvent("an event must be a JSON object")
        model = model_for(event)
        if model is None:
            raise InvalidEvent(f"no rule of the loop takes source {event.get('source')!r} with detail-type "
                               f"{event.get('detail-type')!r}")
        try:
            parsed = model.model_validate(event)
        except ValidationError as exc:
            raise InvalidEvent(describe_event_error(exc)) from exc
        if isinstance(parsed, S3ObjectCreated) and parsed.detail.object.key.startswith(
                DETECTION_OUTPUT_PREFIX):
            job_id_from_key(parsed.detail.object.key)  # the route stage's own check
    except (ValueError, InvalidEvent) as exc:
        report.problems.append(Problem(str(path), None, str(exc)))
        return report
    report.valid = 1
    return report


def _labels_offered(output: review_answers.HumanLoopOutputFile) -> list[str]:
    """The labels the worker was offered, from the loop's own input (route puts them there)."""
    return [item["label"] for item in output.input().get("labels", []) if isinstance(item, dict)]


def _offered_labels(path: Path) -> list[str]:
    """A manifest's label set: its jobs' `annotations.labels` only."""
    with path.open("rb") as handle:
        lines = iter_byte_lines(iter(lambda: handle.read(1 << 16), b""), max_bytes=MAX_MANIFEST_LINE_BYTES)
        return read_label_set(lines, used=False)


# --- the command -----------------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    types = given_entity_types(args.entity_types) if args.entity_types else None
    report = validate_file(path, types)
    for problem in report.problems:
        print(f"error: {problem}")
    for repair in report.repairs:  # each by file and line, what was done and why, as errors are
        print(f"repaired: {repair}")
    verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{path}: {report.kind}, {report.records} record(s), {report.valid} valid, "
          f"{len(report.repairs)} repaired, {verdict}")
    return 0 if report.ok else 1


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    validate = commands.add_parser("validate", help="check a manifest, detection archive, A2I output.json or event")
    validate.add_argument("file", type=Path)
    validate.add_argument("--entity-types", help="comma-separated; default: the labels the file offers")
    validate.set_defaults(run=cmd_validate)
