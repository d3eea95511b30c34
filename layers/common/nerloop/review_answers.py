"""The reviewer's answer to an entity-review human loop: A2I's `output.json`, checked and repaired.

A2I writes `output.json` with `humanAnswers[].answerContent["crowd-entity-annotation"].entities`
(`label`, `startOffset`, `endOffset` in code points) and echoes `inputContent`.

Answer policy (`review_answer`):
- no answer at all: the answer is rejected;
- several answers (the flow definition's TaskCount gives each loop to several workers; A2I lists
  one entry per worker): each is checked as below, then they are consolidated by
  `nerloop.review_consensus` (a span kept when more than half the reviewers marked it; a tie sends
  the document to a further review);
- a span outside the text, with reversed offsets or with a label that is not an entity type, in
  any of the answers: the WHOLE output is rejected. A reviewed document enters the gold set as completely labelled, so
  dropping one span would teach the model that an entity is not one; the loop is recorded as
  Failed and the document goes back to waiting, to be reviewed again;
- white space at either end of a span is trimmed; a span that is empty or only white space is
  dropped; exact duplicates are dropped; of overlapping spans the longest is kept (then the
  earliest, then the label first in alphabetical order), since Comprehend trains on no overlaps.
  Each repair is noted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError

from nerloop.constants import CROWD_ELEMENT_NAME
from nerloop.documents import Span, resolve_overlaps, trim_span, utf16_hint
from nerloop.errors import InvalidRecord
from nerloop.review_consensus import WorkerAnswer, consolidate_answers


class _AnsweredSpan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: str
    startOffset: StrictInt
    endOffset: StrictInt


class _EntityAnnotation(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entities: list[_AnsweredSpan]


class _HumanAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    answerContent: dict[str, Any]
    submissionTime: str = ""
    workerId: str = ""


class HumanLoopOutputFile(BaseModel):
    """A2I's output.json."""

    model_config = ConfigDict(extra="ignore")

    flowDefinitionArn: str = ""
    humanLoopName: str = ""
    humanAnswers: list[_HumanAnswer] | None = None
    inputContent: dict[str, Any] | str | None = None

    def input(self) -> dict[str, Any]:
        """inputContent as an object (A2I may echo it as a JSON string)."""
        if isinstance(self.inputContent, str):
            decoded = json.loads(self.inputContent)
            return decoded if isinstance(decoded, dict) else {}
        return self.inputContent or {}


@dataclass
class ReviewedAnswer:
    """A validated answer: the spans, and what was repaired on the way (for the quarantine notes)."""

    spans: list[Span]
    notes: list[str] = field(default_factory=list)
    worker: str = ""
    submitted: str = ""


def parse_output(output_json: bytes | str, file: str) -> HumanLoopOutputFile:
    """Parse output.json; InvalidRecord naming `file` when it is not the A2I output shape."""
    try:
        json.loads(output_json)
    except json.JSONDecodeError as exc:  # json says on which line; pydantic does not
        raise InvalidRecord(file, exc.lineno, f"not an A2I output file: invalid JSON: {exc.msg} "
                                              f"(column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise InvalidRecord(file, None, f"not an A2I output file: invalid UTF-8 at byte {exc.start}") from exc
    try:
        output = HumanLoopOutputFile.model_validate_json(output_json)
        output.input()
    except (ValidationError, ValueError) as exc:
        raise InvalidRecord(file, None, f"not an A2I output file: {_short(exc)}") from exc
    return output


def input_text(output: HumanLoopOutputFile, file: str) -> str:
    """The document text the reviewer saw (the `text` of the loop's input)."""
    text = output.input().get("text")
    if not isinstance(text, str):
        raise InvalidRecord(file, None, "inputContent has no text")
    return text


def review_answer(
    output: HumanLoopOutputFile, file: str, text: str, entity_types: Iterable[str]
) -> ReviewedAnswer:
    """Check every worker's spans against `text`, repair what can be repaired, and consolidate several
    workers' answers (ReviewersTied, an InvalidRecord, on a tie)."""
    answers = output.humanAnswers or []
    if not answers:
        raise InvalidRecord(file, None, "no human answers")
    known = set(entity_types)
    checked = [_check_answer(answer, file, text, known) for answer in answers]
    if len(checked) == 1:
        return checked[0]
    consensus = consolidate_answers(
        [WorkerAnswer(a.worker, _submitted_at(a.submitted).isoformat(), tuple(a.spans)) for a in checked], file)
    notes = [f"{len(checked)} answers from {len(consensus.workers)} workers "
             f"({', '.join(w or '?' for w in consensus.workers)}); kept the spans more than half marked"]
    notes += [note for answer in checked for note in answer.notes] + consensus.notes
    latest = max(checked, key=lambda a: _submitted_at(a.submitted))
    return ReviewedAnswer(consensus.spans, notes, ",".join(consensus.workers), latest.submitted)


def _check_answer(answer: _HumanAnswer, file: str, text: str, known: set[str]) -> ReviewedAnswer:
    """One worker's spans, checked against `text` and repaired (see the module's policy)."""
    notes: list[str] = []
    who = f"worker {answer.workerId}: " if answer.workerId else ""
    element = answer.answerContent.get(CROWD_ELEMENT_NAME)
    try:
        annotation = _EntityAnnotation.model_validate(element)
    except ValidationError as exc:
        raise InvalidRecord(
            file, None, f"{who}answer has no valid {CROWD_ELEMENT_NAME}.entities: {_short(exc)}"
        ) from exc
    spans: list[Span] = []
    for index, item in enumerate(annotation.entities):
        where = f"{who}span {index} ({item.label} {item.startOffset}..{item.endOffset})"
        if item.label not in known:
            raise InvalidRecord(file, None, f"{where}: label {item.label!r} is not one of {sorted(known)}")
        if item.startOffset > item.endOffset:
            raise InvalidRecord(file, None, f"{where}: reversed offsets")
        if item.startOffset < 0 or item.endOffset > len(text):
            raise InvalidRecord(file, None, f"{where}: outside the text ({len(text)} characters"
                                            f"{utf16_hint(text, item.endOffset)})")
        trimmed = trim_span(text, Span(item.startOffset, item.endOffset, item.label))
        if trimmed is None:
            notes.append(f"{where}: empty or only white space; dropped")
            continue
        if (trimmed.begin, trimmed.end) != (item.startOffset, item.endOffset):
            notes.append(f"{where}: trimmed white space to {trimmed.begin}..{trimmed.end}")
        spans.append(trimmed)
    resolved, dropped = resolve_overlaps(spans)
    notes += [
        f"{who}span {span.type} {span.begin}..{span.end}: "
        + ("duplicate" if span == clash else f"overlaps {clash.type} {clash.begin}..{clash.end}")
        + "; dropped"
        for span, clash in dropped
    ]
    return ReviewedAnswer(resolved, notes, answer.workerId, answer.submissionTime)


def _submitted_at(value: str) -> datetime:
    """A submission time in UTC; an answer without one (or unreadable) counts as the oldest."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _short(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()[:3]
        )
    return str(exc)
