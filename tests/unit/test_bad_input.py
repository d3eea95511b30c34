"""The bad-input corpus (tests/data/bad_input/cases.csv): every broken file is rejected naming file,
line and reason, set aside in a Quarantine, the valid rest goes on, count in = count out + count
quarantined, and `nerloop validate FILE` says the same and exits non-zero.

The parsers are called here as the stages call them; tests/integration/test_bad_input_stages.py
sends the same files through the real handlers.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from nerloop import review_answers
from nerloop.comprehend_output import DocumentEntities, DocumentFailure, iter_detection_output, job_id_from_key
from nerloop.errors import InvalidEvent, InvalidRecord
from nerloop.event_catalog import (
    DetectTrigger,
    HumanLoopStatusChange,
    LabelingJobStateChange,
    S3ObjectCreated,
    ScheduledEvent,
    describe_event_error,
    model_for,
)
from nerloop.gt_manifest import MAX_MANIFEST_LINE_BYTES, ParseStats, iter_byte_lines, parse_manifest
from nerloop.quarantine import MAX_KEPT_CHARS, Quarantine
from nerloop_local import cli
from nerloop_local.emulator.stack import load_module
from tests.unit.test_quarantine import written_report

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_input"
TYPES = ("SERVICE", "VERSION")  # the stack's entity types, as the stages get them from settings
NOT_OK = ("rejected", "file", "refused")


CORPUS_GENERATOR = load_module(CORPUS / "make_corpus.py", "bad_input_corpus")
ENTITY_TEXTS = set(CORPUS_GENERATOR.ENTITY_TEXTS)


Row = CORPUS_GENERATOR.Row


CASES: list[Any] = CORPUS_GENERATOR.read_table()
FILES = [row for row in CASES if row.kind != "event"]
EVENTS = [row for row in CASES if row.kind == "event"]
# A manifest's parser has no notion of an empty file; `nerloop validate` reports one (see test_validate_*).
PARSED = [row for row in FILES if not (row.kind == "manifest" and row.outcome == "file")]


def ids(rows: list[Any]) -> list[str]:
    return [row.id for row in rows]


# --- the corpus itself ---------------------------------------------------------------------------


def _inflated(data: bytes) -> bytes | None:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


def test_the_committed_corpus_is_what_make_corpus_writes(tmp_path: Path) -> None:
    CORPUS_GENERATOR.build(tmp_path)

    files = CORPUS_GENERATOR.corpus_files(CORPUS)
    assert files == CORPUS_GENERATOR.corpus_files(tmp_path)
    for name in files:
        committed, fresh = (CORPUS / name).read_bytes(), (tmp_path / name).read_bytes()
        # Another zlib may compress the same tar differently: the same content is enough.
        same = committed == fresh or (_inflated(committed) is not None and _inflated(committed) == _inflated(fresh))
        assert same, f"{name} differs from what make_corpus.py writes: run it and commit the result"


def test_the_corpus_covers_at_least_30_kinds_of_every_family_of_input() -> None:
    assert len({(row.kind, row.case) for row in CASES}) == len(CASES) >= 30
    assert {row.kind for row in CASES} == {"manifest", "archive", "answer", "event"}
    assert {row.outcome for row in CASES} <= {"rejected", "file", "repaired", "accepted", "refused"}


# --- each file through its parser, as the stages call them -----------------------------------------


@dataclass
class Outcome:
    quarantine: Quarantine
    records: int
    valid: int
    spans: list[str]  # the text under each span of the records that went on


def parse_case(row: Row) -> Outcome:
    quarantine = Quarantine(stage="test", source=row.case)
    if row.kind == "manifest":
        return _parse_manifest(row, quarantine)
    if row.kind == "archive":
        return _parse_archive(row, quarantine)
    return _parse_answer(row, quarantine)


def _parse_manifest(row: Row, quarantine: Quarantine) -> Outcome:
    stats = ParseStats()
    with row.path.open("rb") as handle:
        lines = iter_byte_lines(iter(lambda: handle.read(1 << 16), b""), max_bytes=MAX_MANIFEST_LINE_BYTES)
        documents = list(parse_manifest(lines, str(row.path), TYPES, quarantine, stats=stats))
    spans = [doc.text[span.begin:span.end] for doc in documents for span in doc.spans]
    assert stats.lines == stats.documents + stats.rejected
    return Outcome(quarantine, stats.lines, len(documents), spans)


def _parse_archive(row: Row, quarantine: Quarantine) -> Outcome:
    records = valid = 0
    spans: list[str] = []
    try:
        with row.path.open("rb") as handle:
            for record in iter_detection_output(handle, str(row.path)):
                records += 1
                if isinstance(record, InvalidRecord):
                    quarantine.reject(record)
                elif isinstance(record, DocumentFailure):
                    quarantine.reject(record.as_invalid_record())
                else:
                    assert isinstance(record, DocumentEntities)
                    valid += 1
                    spans += [entity.text for entity in record.entities]
    except InvalidRecord as error:
        quarantine.reject(error)
    return Outcome(quarantine, records, valid, spans)


def _parse_answer(row: Row, quarantine: Quarantine) -> Outcome:
    file = str(row.path)
    try:
        output = review_answers.parse_output(row.path.read_bytes(), file)
        text = review_answers.input_text(output, file)
        answer = review_answers.review_answer(output, file, text, TYPES)
    except InvalidRecord as error:
        quarantine.reject(error, row.path.read_text(encoding="utf-8", errors="replace"))
        return Outcome(quarantine, 1, 0, [])
    for note in answer.notes:
        quarantine.note(file, None, note)
    return Outcome(quarantine, 1, 1, [text[span.begin:span.end] for span in answer.spans])


@pytest.mark.parametrize("row", PARSED, ids=ids(PARSED))
def test_the_error_names_file_line_and_reason(row: Row) -> None:
    outcome = parse_case(row)

    problems, notes = outcome.quarantine.problems, outcome.quarantine.notes
    if row.outcome in ("rejected", "file"):
        assert [(p.file, p.line) for p in problems] == [(row.error_file, row.line)], row.description
        assert row.reason in problems[0].reason
    elif row.outcome == "repaired":
        assert not problems
        assert [(n.file, n.line) for n in notes if row.reason in n.reason] == [(row.error_file, row.line)], notes
    else:
        assert not problems and not notes


@pytest.mark.parametrize("row", [r for r in PARSED if r.line is not None and r.outcome == "rejected"],
                         ids=ids([r for r in PARSED if r.line is not None and r.outcome == "rejected"]))
def test_the_bad_record_is_quarantined_with_what_it_was(row: Row) -> None:
    outcome = parse_case(row)

    (problem,) = outcome.quarantine.problems
    if row.kind == "manifest":  # the line itself is kept (its first characters) beside the reason
        raw = row.path.read_bytes().split(b"\n")[row.line - 1]
        assert problem.record == raw.decode("utf-8", errors="replace")[:MAX_KEPT_CHARS]
    (reported,) = [json.loads(line) for line in written_report(outcome.quarantine).splitlines()]
    assert (reported["kind"], reported["file"], reported["line"]) == ("rejected", row.error_file, row.line)
    assert row.reason in reported["reason"]


@pytest.mark.parametrize("row", PARSED, ids=ids(PARSED))
def test_the_valid_rest_goes_on_and_every_record_is_counted(row: Row) -> None:
    outcome = parse_case(row)

    rejected_records = sum(1 for p in outcome.quarantine.problems if p.line is not None or row.kind == "answer")
    assert (outcome.records, outcome.valid) == (row.records, row.valid)
    assert outcome.records == outcome.valid + rejected_records
    # What goes on is right: every span still covers an entity's text (no offsets shifted)
    assert set(outcome.spans) <= ENTITY_TEXTS
    assert bool(outcome.spans) == (row.valid > 0)


# --- nerloop validate FILE ---------------------------------------------------------------------------


@pytest.fixture
def validate(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """`nerloop validate ...` in process: (exit status, stdout lines). The CLI's offline environment is undone."""
    saved = dict(os.environ)

    def run(*argv: str) -> tuple[int, list[str]]:
        status = cli.main(["validate", *argv])
        return status, capsys.readouterr().out.splitlines()

    yield run
    os.environ.clear()
    os.environ.update(saved)


def expected_messages(row: Row) -> list[str]:
    """What the parsers (or an event's model) say about the file, as `nerloop validate` must print it."""
    if row.kind == "event":
        event = json.loads(row.path.read_bytes())
        if model_for(event) is not MODELS[row.target]:
            # No rule takes its detail-type (validate cannot know which handler it was meant for), or the
            # handler takes a union of models (its errors name the member): the reason is checked alone.
            return []
        return [f"error: {row.path}: {event_error(row)}"]
    if row.kind == "manifest" and row.outcome == "file":
        return [f"error: {row.path}: {row.reason}"]
    outcome = parse_case(row)
    return [f"error: {problem}" for problem in outcome.quarantine.problems] + \
           [f"repaired: {note}" for note in outcome.quarantine.notes]


@pytest.mark.parametrize("row", CASES, ids=ids(CASES))
def test_validate_prints_the_same_messages_and_exits_non_zero_on_a_problem(row: Row, validate: Any) -> None:
    status, out = validate(str(row.path))

    assert (status != 0) == (row.outcome in NOT_OK)
    messages = expected_messages(row)
    assert all(message in out for message in messages), (messages, out)
    assert any(row.reason in line and row.where in line for line in out) or row.outcome == "accepted"
    assert out[-1].startswith(f"{row.path}: ") and f"{row.records} record(s), {row.valid} valid" in out[-1]


def test_validate_names_every_repair_by_file_line_what_and_why(tmp_path: Path, sample_dir: Path,
                                                                validate: Any) -> None:
    # Given the sample with an empty span added on line 6 and an overlapping one on line 9
    lines = (sample_dir / "output.manifest").read_text(encoding="utf-8").splitlines()
    for number, extra in ((6, lambda first: {"startOffset": 3, "endOffset": 3, "label": "SERVICE"}),
                          (9, lambda first: {**first, "endOffset": first["endOffset"] + 2, "label": "VERSION"})):
        record = json.loads(lines[number - 1])
        (attribute,) = [key for key in record if key != "source" and not key.endswith("-metadata")]
        entities = record[attribute]["annotations"]["entities"]
        entities.append(extra(entities[0]))
        lines[number - 1] = json.dumps(record)
    manifest = tmp_path / "repairs.manifest"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")

    status, out = validate(str(manifest))

    # Then each repair is listed as errors are, and the summary counts them all
    assert status == 0
    assert f"repaired: {manifest}:6: SERVICE span [3, 3) dropped: empty (it covers no text)" in out
    (overlap,) = [line for line in out if line.startswith(f"repaired: {manifest}:9: ") and "overlaps" in line]
    assert "which is kept (training data takes no overlapping spans)" in overlap
    repairs = [line for line in out if line.startswith("repaired: ")]
    assert all(line.startswith(f"repaired: {manifest}:") for line in repairs)
    assert f"{len(repairs)} repaired, ok" in out[-1]


# --- events of the wrong shape ---------------------------------------------------------------------

# The model each handler's event_parser is given (functions/<stage>/app.py).
MODELS: dict[str, Any] = {
    "ConvertFunction": LabelingJobStateChange, "MergeFunction": HumanLoopStatusChange,
    "RouteFunction": S3ObjectCreated, "PreprocessFunction": S3ObjectCreated, "TrainFunction": S3ObjectCreated,
    "DetectFunction": DetectTrigger, "WatchFunction": ScheduledEvent,
}


def event_error(row: Row) -> str:
    """What the handler's parser model (then, for route, its key check) says is wrong with the event."""
    event = json.loads(row.path.read_bytes())
    try:
        parsed = TypeAdapter(MODELS[row.target]).validate_python(event)
    except ValidationError as exc:
        return describe_event_error(exc)
    assert row.target == "RouteFunction", "the model took an event the corpus says is refused"
    assert isinstance(parsed, S3ObjectCreated)
    with pytest.raises(InvalidEvent) as caught:
        job_id_from_key(parsed.detail.object.key)
    return str(caught.value)


@pytest.mark.parametrize("row", EVENTS, ids=ids(EVENTS))
def test_an_event_of_the_wrong_shape_is_refused_naming_what_is_wrong(row: Row) -> None:
    assert row.reason in event_error(row)


def test_every_handler_with_an_event_model_has_a_wrong_shaped_event_in_the_corpus() -> None:
    assert {row.target for row in EVENTS} == set(MODELS)
