"""The figures behind `nerloop report`: pure computations over a demo run's records, no I/O but reading.

Input is the JSON `nerloop demo --json FILE` writes (see `RunFigures`). Everything the report shows is
derived here from that record, so the page can never show a number the run did not produce:

- the learning curve: test F1 against documents reviewed, beside the random-selection and
  full-supervision references trained in the same run;
- reliability bins over the entities a round's model predicts on the test set (its `calibration`);
- the threshold search: the lowest confidence threshold that keeps the precision of the entities
  accepted without review at or above a target, using the loop's own routing rule
  (`nerloop.routing.route_decision`: a document goes to review when any entity scores below it).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from nerloop.routing import REVIEW, route_decision

DEFAULT_TARGET_PRECISION = 0.95
DEFAULT_BINS = 10


class FiguresError(ValueError):
    """A figures file that cannot be read: names the file and the problem in one line."""

    def __init__(self, file: str | Path, reason: str) -> None:
        self.file = str(file)
        self.reason = reason
        super().__init__(f"{file}: {reason}")


# --- the run's record ----------------------------------------------------------------------------


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class TypeScores(_Record):
    precision: float
    recall: float
    f1: float


class Prediction(_Record):
    """One entity a round's model predicts on the test set, and whether it is right."""

    doc: int = Field(ge=0)  # index of the test document
    score: float = Field(ge=0.0, le=1.0)
    correct: bool  # exactly matches a gold span of the same type
    type: str


class RoundFigures(_Record):
    round: int
    model_version: str
    active: bool = False
    reviewed_documents: int
    training_documents: int
    documents_detected: int
    routed_to_review: int
    reviewed_this_round: int
    precision: float
    recall: float
    f1: float
    per_type: dict[str, TypeScores] = Field(default_factory=dict)
    calibration: list[Prediction] | None = None
    test_documents: int | None = Field(default=None, ge=0)


class Reference(_Record):
    f1: float
    documents: int | None = None
    precision: float | None = None
    recall: float | None = None
    per_type: dict[str, TypeScores] = Field(default_factory=dict)


class RandomPoint(_Record):
    reviewed_documents: int
    f1: float
    draws: list[float] = Field(default_factory=list)


class RunFigures(_Record):
    """What `nerloop demo --json` writes (the keys the report reads; others are ignored)."""

    pool_size: int = Field(ge=0)
    threshold: float
    entity_types: list[str]
    rounds: list[RoundFigures] = Field(min_length=1)
    full_supervision: Reference
    random_selection: list[RandomPoint]
    test_documents: int | None = Field(default=None, ge=0)
    seed: int | None = None
    seconds: float | None = None
    manifest: str | None = None

    @model_validator(mode="after")
    def _documents_in_range(self) -> RunFigures:
        for entry in self.rounds:
            known = entry.test_documents if entry.test_documents is not None else self.test_documents
            if known is None or not entry.calibration:
                continue
            beyond = max(p.doc for p in entry.calibration)
            if beyond >= known:
                raise ValueError(f"round {entry.round}: calibration names test document {beyond}, "
                                 f"but there are {known} test documents")
        return self

    def documents_in_test(self, entry: RoundFigures) -> int:
        """How many test documents `entry`'s calibration covers (those with no entity included)."""
        if entry.test_documents is not None:
            return entry.test_documents
        if self.test_documents is not None:
            return self.test_documents
        return max((p.doc for p in entry.calibration or ()), default=-1) + 1


def _location(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "top level"


ModelT = TypeVar("ModelT", bound=BaseModel)


def validate_figures(model: type[ModelT], data: Any, file: str | Path, made_by: str) -> ModelT:
    """Validate already-decoded JSON as `model`; raise FiguresError naming the first problem
    (`made_by` tells what writes such a file)."""
    if not isinstance(data, dict):
        raise FiguresError(file, f"expected a JSON object ({made_by}), found {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise FiguresError(file, describe_validation_error(exc)) from exc


def parse_figures(data: Any, file: str | Path) -> RunFigures:
    """Validate already-decoded JSON; raise FiguresError naming the first problem."""
    return validate_figures(RunFigures, data, file, "the figures of `nerloop demo --json`")


def describe_validation_error(exc: ValidationError) -> str:
    """The first problem pydantic found, in one line: where it is and what is wrong."""
    errors = exc.errors()
    first = errors[0]
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{_location(first['loc'])}: {message}{more}"


def read_json(path: Path) -> Any:
    """A figures file's decoded JSON; raise FiguresError (one line, naming the file) if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FiguresError(path, "no such file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise FiguresError(path, f"cannot be read ({exc})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FiguresError(path, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc


def load_figures(path: Path) -> RunFigures:
    """Read and validate a figures file; raise FiguresError (one line, naming the file) if unusable."""
    return parse_figures(read_json(path), path)


# --- learning curve ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    model_version: str
    reviewed: int
    f1: float
    random_f1: float | None  # the random-selection reference at the same number of reviews
    random_draws: tuple[float, ...]
    pool_share: float | None  # reviewed / pool size
    of_full: float | None  # f1 / full-supervision f1


@dataclass(frozen=True)
class LearningCurve:
    points: tuple[CurvePoint, ...]
    full_f1: float
    full_documents: int | None
    pool_size: int


def learning_curve(run: RunFigures) -> LearningCurve:
    """Each round's test F1 against its reviewed documents, in round order, with the references."""
    random_at = {point.reviewed_documents: point for point in run.random_selection}
    full = run.full_supervision.f1
    points = []
    for entry in sorted(run.rounds, key=lambda r: r.round):
        rand = random_at.get(entry.reviewed_documents)
        points.append(CurvePoint(
            model_version=entry.model_version, reviewed=entry.reviewed_documents, f1=entry.f1,
            random_f1=rand.f1 if rand else None, random_draws=tuple(rand.draws) if rand else (),
            pool_share=entry.reviewed_documents / run.pool_size if run.pool_size else None,
            of_full=entry.f1 / full if full else None,
        ))
    return LearningCurve(tuple(points), full, run.full_supervision.documents, run.pool_size)


# --- calibration -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    correct: int
    mean_score: float | None  # None for an empty bin

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.count if self.count else None


def reliability_bins(predictions: Sequence[Prediction], bins: int = DEFAULT_BINS) -> list[ReliabilityBin]:
    """`bins` equal-width score bins over [0, 1]: [k/n, (k+1)/n), the last one closed at 1.0."""
    if bins < 1:
        raise ValueError("at least one bin")
    counts = [0] * bins
    correct = [0] * bins
    totals = [0.0] * bins
    for prediction in predictions:
        index = min(bins - 1, math.floor(prediction.score * bins))
        counts[index] += 1
        correct[index] += prediction.correct
        totals[index] += prediction.score
    return [ReliabilityBin(lower=k / bins, upper=(k + 1) / bins, count=counts[k], correct=correct[k],
                           mean_score=totals[k] / counts[k] if counts[k] else None) for k in range(bins)]


def expected_calibration_error(bins: Sequence[ReliabilityBin]) -> float | None:
    """Mean |accuracy - confidence| over the bins, weighted by their counts; None with no predictions."""
    total = sum(b.count for b in bins)
    if not total:
        return None
    return sum(b.count * abs((b.accuracy or 0.0) - (b.mean_score or 0.0)) for b in bins) / total


# --- threshold search ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdOutcome:
    """What routing the test set at `threshold` would do."""

    threshold: float
    documents: int
    to_review: int  # documents with an entity scoring below the threshold
    accepted_entities: int  # entities in the documents accepted without review
    accepted_correct: int

    @property
    def precision(self) -> float | None:
        """Precision of the auto-accepted entities; None when none would be accepted."""
        return self.accepted_correct / self.accepted_entities if self.accepted_entities else None

    def meets(self, target: float) -> bool:
        """Whether the auto-accepted entities are at least `target` precise (vacuously so when none are)."""
        precision = self.precision
        return precision is None or precision >= target - 1e-12


def _by_document(predictions: Sequence[Prediction]) -> dict[int, list[Prediction]]:
    documents: dict[int, list[Prediction]] = defaultdict(list)
    for prediction in predictions:
        documents[prediction.doc].append(prediction)
    return documents


def review_outcome(predictions: Sequence[Prediction], threshold: float, documents: int) -> ThresholdOutcome:
    """Route every test document at `threshold` with the loop's own rule and count the result."""
    to_review = accepted = correct = 0
    grouped = _by_document(predictions)
    for entities in grouped.values():
        if route_decision(entities, threshold) == REVIEW:
            to_review += 1
        else:
            accepted += len(entities)
            correct += sum(1 for entity in entities if entity.correct)
    return ThresholdOutcome(threshold, max(documents, len(grouped)), to_review, accepted, correct)


def candidate_thresholds(predictions: Sequence[Prediction]) -> list[float]:
    """Every threshold that routes differently, lowest first.

    Each distinct score s stands for the thresholds in (previous score, s], which all route alike
    (entities scoring below s go to review, those at s are accepted); one more, just above the
    highest score, sends every document with an entity to review.
    """
    scores = sorted({p.score for p in predictions})
    if not scores:
        return []
    return [*scores, math.nextafter(scores[-1], math.inf)]


@dataclass(frozen=True)
class ThresholdAnalysis:
    target: float
    chosen: ThresholdOutcome | None  # None when the round predicted no entity at all
    run: ThresholdOutcome  # at the threshold the run used
    # Held out (`choose_threshold_held_out`): the chosen threshold's outcome on the documents it was chosen
    # on; `chosen` and `run` are then measured on the other documents. None: chosen and scored in-sample.
    choice: ThresholdOutcome | None = None

    @property
    def saved(self) -> int | None:
        """Reviews saved by the chosen threshold against the run's (negative: more reviews needed)."""
        return None if self.chosen is None else self.run.to_review - self.chosen.to_review

    @property
    def saved_share(self) -> float | None:
        """`saved` as a share of the run's reviews; None when the run's threshold sent none."""
        saved = self.saved
        return None if saved is None or not self.run.to_review else saved / self.run.to_review

    @property
    def everything_reviewed(self) -> bool:
        """Whether the target is only met by reviewing every document that has an entity (on the
        documents the threshold was chosen on)."""
        decided = self.choice if self.choice is not None else self.chosen
        return decided is not None and decided.accepted_entities == 0


def choose_threshold(predictions: Sequence[Prediction], documents: int, target: float,
                     run_threshold: float) -> ThresholdAnalysis:
    """The lowest threshold (so the fewest reviews) whose auto-accepted precision is at least `target`."""
    if not 0.0 < target <= 1.0:
        raise ValueError("the target precision must be in (0, 1]")
    run = review_outcome(predictions, run_threshold, documents)
    for threshold in candidate_thresholds(predictions):
        outcome = review_outcome(predictions, threshold, documents)
        if outcome.meets(target):
            return ThresholdAnalysis(target, outcome, run)
    return ThresholdAnalysis(target, None, run)


def split_documents(predictions: Sequence[Prediction], documents: int
                    ) -> tuple[tuple[list[Prediction], int], tuple[list[Prediction], int]]:
    """The test documents in two parts, each with its document count: the even-numbered ones (to choose
    a threshold on) and the odd-numbered ones (to score it on). The demo's test set is a grouped random
    draw, so its numbering carries no order of difficulty."""
    choose = [p for p in predictions if p.doc % 2 == 0]
    score = [p for p in predictions if p.doc % 2 == 1]
    return (choose, (documents + 1) // 2), (score, documents // 2)


def choose_threshold_held_out(predictions: Sequence[Prediction], documents: int, target: float,
                              run_threshold: float) -> ThresholdAnalysis:
    """`choose_threshold` on the even-numbered test documents, its result and the run's threshold measured
    on the odd-numbered ones: a threshold chosen and scored on the same predictions flatters itself
    (it is picked where the target happens to be met)."""
    (choose, choose_documents), (score, score_documents) = split_documents(predictions, documents)
    picked = choose_threshold(choose, choose_documents, target, run_threshold)
    run = review_outcome(score, run_threshold, score_documents)
    if picked.chosen is None:
        return ThresholdAnalysis(target, None, run)
    return ThresholdAnalysis(target, review_outcome(score, picked.chosen.threshold, score_documents), run,
                             choice=picked.chosen)


def headline_round(run: RunFigures) -> RoundFigures | None:
    """The round the calibration section leads with: the active model's, else the latest with data."""
    with_data = [entry for entry in sorted(run.rounds, key=lambda r: r.round) if entry.calibration is not None]
    active = [entry for entry in with_data if entry.active]
    if active:
        return active[-1]
    return with_data[-1] if with_data else None


__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_TARGET_PRECISION",
    "CurvePoint",
    "FiguresError",
    "LearningCurve",
    "Prediction",
    "RandomPoint",
    "Reference",
    "ReliabilityBin",
    "RoundFigures",
    "RunFigures",
    "ThresholdAnalysis",
    "ThresholdOutcome",
    "TypeScores",
    "candidate_thresholds",
    "choose_threshold",
    "choose_threshold_held_out",
    "describe_validation_error",
    "expected_calibration_error",
    "headline_round",
    "learning_curve",
    "load_figures",
    "parse_figures",
    "read_json",
    "reliability_bins",
    "review_outcome",
    "split_documents",
]
