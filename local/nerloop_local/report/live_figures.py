"""The live report's figures: computed from the loop's own records (`loop_records.LoopRecords`), no test
set, no I/O. Every number the page shows about reviews comes from here.

- per version: Comprehend's evaluation (overall and per entity type) and what it trained on;
- human loops by how they ended; reviews per day (by the day of the last answer a review took) and
  the time from a loop's start to each worker's answer;
- what the reviewers did to the model's spans (`review_analysis.compare_spans` against the merged,
  consolidated answer), by entity type and by confidence bin;
- the production calibration (share of the model's spans kept, per confidence bin, with a Wilson
  interval), per version and for the headline version, and a threshold for a target precision;
- agreement between workers on documents several answered.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from statistics import median

from nerloop.documents import Span
from nerloop_local.report.figures import (
    DEFAULT_BINS,
    DEFAULT_TARGET_PRECISION,
    Prediction,
    ReliabilityBin,
    expected_calibration_error,
    reliability_bins,
)
from nerloop_local.report.loop_records import LoopRecords, ReviewRecord, VersionRecord, version_order
from nerloop_local.report.review_analysis import (
    KEPT,
    PairAgreement,
    SpanOutcome,
    ThresholdAdvice,
    as_predictions,
    compare_spans,
    pair_agreement,
    pooled_f1,
    recommend_threshold,
    tally_by_bin,
    tally_by_type,
    wilson_interval,
)

DISAGREEMENTS_SHOWN = 10


@dataclass(frozen=True)
class Calibration:
    """The production calibration of one model version (or of all, pooled): from its reviews."""

    name: str
    reviews: int
    predictions: list[Prediction]
    bins: list[ReliabilityBin]
    intervals: list[tuple[float, float] | None]  # Wilson, per bin
    ece: float | None


@dataclass(frozen=True)
class Disagreement:
    """A document several workers answered, and how far they agreed."""

    review: ReviewRecord
    pairs: list[PairAgreement]
    f1: float | None  # micro F1 over its pairs


@dataclass(frozen=True)
class Agreement:
    """Agreement between workers, over the documents more than one answered."""

    documents: int  # reviews with two or more answers
    single: int  # reviews with one answer
    workers: int
    overall: float | None
    pairs: int
    per_type: dict[str, tuple[float | None, int]]
    worst: list[Disagreement]


@dataclass(frozen=True)
class AnswerTimes:
    """Seconds from a human loop's start to each worker's answer."""

    count: int
    median: float | None
    p90: float | None
    longest: float | None


@dataclass
class LiveFigures:
    records: LoopRecords
    target: float
    threshold: float | None  # the loop's ConfidenceThreshold, when known
    outcomes: list[list[SpanOutcome]]  # per review, in `records.reviews` order
    loops: Counter[str]
    per_day: list[tuple[date, int]]
    times: AnswerTimes
    by_type: dict[str, Counter[str]]
    by_bin: list[Counter[str]]
    calibrations: list[Calibration]
    headline: Calibration | None
    headline_note: str
    advice: ThresholdAdvice | None
    agreement: Agreement
    types: list[str] = field(default_factory=list)


def loop_endings(records: LoopRecords) -> Counter[str]:
    """Human loops by how they ended: Completed, Stopped, Failed (by failure code: `Expired`, or an
    answer the merge refused), or still InProgress."""
    endings: Counter[str] = Counter()
    for loop in records.loops:
        if loop.status == "Failed" and loop.failure:
            endings[f"Failed ({loop.failure.split(':', 1)[0]})"] += 1
        else:
            endings[loop.status] += 1
    return endings


def reviews_per_day(reviews: Sequence[ReviewRecord]) -> list[tuple[date, int]]:
    """Reviews per UTC day of their last answer (of the loop's end, when no answer has a time)."""
    days: Counter[date] = Counter()
    for review in reviews:
        times = [a.submitted for a in review.answers if a.submitted is not None]
        when = max(times) if times else review.finished
        if when is not None:
            days[when.date()] += 1
    return sorted(days.items())


def _quantile(values: Sequence[float], share: float) -> float:
    """The `share` quantile, linear between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def answer_times(reviews: Sequence[ReviewRecord]) -> AnswerTimes:
    """From each loop's start (the route stage's record) to each of its workers' answers."""
    seconds = [max(0.0, (answer.submitted - review.started).total_seconds())
               for review in reviews if review.started is not None
               for answer in review.answers if answer.submitted is not None]
    if not seconds:
        return AnswerTimes(0, None, None, None)
    return AnswerTimes(len(seconds), median(seconds), _quantile(seconds, 0.9), max(seconds))


def calibration(name: str, outcomes: Sequence[Sequence[SpanOutcome]], bins: int = DEFAULT_BINS) -> Calibration:
    predictions = as_predictions(outcomes)
    found = reliability_bins(predictions, bins)
    return Calibration(name, sum(1 for o in outcomes if any(s.score is not None for s in o)), predictions, found,
                       [wilson_interval(b.correct, b.count) for b in found], expected_calibration_error(found))


def agreement(records: LoopRecords, types: Sequence[str]) -> Agreement:
    """Pairwise span F1 between the workers of every document with two answers or more, tied ones included
    (the documents reviewers disagreed on most are often those)."""
    several = [review for review in [*records.reviews, *records.tied] if len(review.answers) > 1]
    documents = []
    every_pair: list[PairAgreement] = []
    for review in several:
        answers = _answers_by_worker(review)
        pairs = pair_agreement(answers)
        every_pair += pairs
        documents.append(Disagreement(review, pairs, pooled_f1(pairs)[0]))
    per_type = {name: pooled_f1([pair for review in several for pair in pair_agreement(_answers_by_worker(review),
                                                                                        name)]) for name in types}
    overall, pairs_counted = pooled_f1(every_pair)
    worst = sorted(documents, key=lambda d: (1.0 if d.f1 is None else d.f1, d.review.loop))[:DISAGREEMENTS_SHOWN]
    workers = {answer.worker for review in several for answer in review.answers}
    return Agreement(len(several), sum(1 for r in records.reviews if len(r.answers) == 1), len(workers), overall,
                     pairs_counted, per_type, worst)


def _answers_by_worker(review: ReviewRecord) -> dict[str, Sequence[Span]]:
    """Each worker's spans; a worker who answered twice is told apart by a suffix."""
    named: dict[str, Sequence[Span]] = {}
    for answer in review.answers:
        name, number = answer.worker, 2
        while name in named:
            name, number = f"{answer.worker} #{number}", number + 1
        named[name] = answer.spans
    return named


def entity_types(records: LoopRecords) -> list[str]:
    """The types the records name: the versions' evaluation, then the reviews', in that order."""
    seen: dict[str, None] = {}
    for entry in records.versions:
        seen.update(dict.fromkeys(entry.version.metrics.get("per_type") or {}))
    for review in records.reviews:
        seen.update(dict.fromkeys(span.type for span in review.model))
        seen.update(dict.fromkeys(span.type for span in review.consolidated))
    return list(seen)


def headline_version(versions: Sequence[VersionRecord], reviewed: set[str]) -> tuple[str | None, str]:
    """The version the threshold is recommended for: the active one when its spans were reviewed, else
    every version pooled; with the sentence that says which."""
    active = next((entry.version.version for entry in versions if entry.active), None)
    if active is not None and active in reviewed:
        return active, f"model {active} (the active one)"
    if active is None:
        return None, "every version's reviews pooled (no version is active)"
    return None, f"every version's reviews pooled (the active version, {active}, has no reviews yet)"


def live_figures(records: LoopRecords, *, target: float = DEFAULT_TARGET_PRECISION,
                 threshold: float | None = None) -> LiveFigures:
    """Everything the live report shows, from `records`."""
    if not 0.0 < target <= 1.0:
        raise ValueError("the target precision must be in (0, 1]")
    outcomes = [compare_spans(review.model, review.consolidated) for review in records.reviews]
    flat = [outcome for review in outcomes for outcome in review]
    versions = sorted({review.version for review in records.reviews}, key=version_order)
    calibrations = [calibration(name, [o for o, r in zip(outcomes, records.reviews, strict=True)
                                       if r.version == name]) for name in versions]
    pooled = calibration("all versions", outcomes)
    head, note = headline_version(records.versions, set(versions))
    headline_outcomes = [o for o, r in zip(outcomes, records.reviews, strict=True) if head is None or r.version == head]
    headline = next((c for c in calibrations if c.name == head), pooled if head is None else None)
    if headline is not None and not headline.predictions:
        headline = None
    advice = recommend_threshold(headline_outcomes, target) if headline is not None else None
    types = entity_types(records)
    return LiveFigures(
        records=records, target=target, threshold=threshold, outcomes=outcomes, loops=loop_endings(records),
        per_day=reviews_per_day(records.reviews), times=answer_times(records.reviews),
        by_type=tally_by_type(flat), by_bin=tally_by_bin(flat),
        calibrations=[*calibrations, pooled] if len(calibrations) > 1 else calibrations,
        headline=headline, headline_note=note, advice=advice, agreement=agreement(records, types), types=types)


def kept_share(counts: Counter[str]) -> float | None:
    """Kept model spans over all model spans (added spans are not the model's)."""
    model = sum(count for outcome, count in counts.items() if outcome != "added")
    return counts[KEPT] / model if model else None


__all__ = [
    "Agreement",
    "AnswerTimes",
    "Calibration",
    "Disagreement",
    "LiveFigures",
    "agreement",
    "answer_times",
    "calibration",
    "entity_types",
    "headline_version",
    "kept_share",
    "live_figures",
    "loop_endings",
    "reviews_per_day",
]
