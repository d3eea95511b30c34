"""What reviewers did to the model's spans, and what that says about the model: pure functions, no I/O.

A review compares two span sets over one document: the model's (the human loop's input, A2I's
InputContent: `predictions`, each with its score) and the reviewer's answer. Each model span gets
one outcome (`compare_spans`), matched one to one:

- kept        the reviewer has a span with the same offsets and the same type;
- relabelled  the same offsets, another type;
- moved       not the same offsets, but it overlaps a reviewer span not matched yet (the one it
              overlaps most; its type may have changed too: `relabelled` on the outcome says so);
- removed     it overlaps no reviewer span left;
and each reviewer span no model span was matched to is `added` (it has no score).

Exact matches are taken first, so a reviewer span that two model spans overlap (the reviewer joined
them) moves one and removes the other. The share of model spans kept is the model's precision as
Comprehend defines it (the entities "correctly identified and correctly labeled", tp / (tp + fp):
https://docs.aws.amazon.com/comprehend/latest/dg/cer-metrics.html), measured by the people who use the
model: per
confidence bin it is a reliability diagram from production (`report_figures.reliability_bins` on
`as_predictions`), and `recommend_threshold` turns it into a threshold for a target precision with
its uncertainty (a Wilson interval over spans, and a bootstrap over reviews: the spans of one
document are not independent). Agreement between reviewers of one document is span-level F1 between
each pair of workers (exact offsets and type), per entity type (`pair_agreement`).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from statistics import NormalDist

from nerloop.documents import Span
from nerloop_local.report.figures import DEFAULT_BINS, Prediction

KEPT, RELABELLED, MOVED, REMOVED, ADDED = "kept", "relabelled", "moved", "removed", "added"
OUTCOMES = (KEPT, RELABELLED, MOVED, REMOVED, ADDED)
CONFIDENCE = 0.95
BOOTSTRAP_DRAWS = 2000


@dataclass(frozen=True)
class ModelSpan:
    """A span the model predicted, with its confidence (Comprehend's `Score`)."""

    begin: int
    end: int
    type: str
    score: float


@dataclass(frozen=True)
class SpanOutcome:
    """What became of one span: `type` is the model's (the reviewer's for an added span); `reviewed_type`
    the type of the reviewer span it was matched to (None when removed)."""

    outcome: str
    type: str
    score: float | None  # None for an added span
    reviewed_type: str | None = None

    @property
    def type_changed(self) -> bool:
        return self.reviewed_type is not None and self.reviewed_type != self.type


def _overlap(a_begin: int, a_end: int, b: Span) -> int:
    return max(0, min(a_end, b.end) - max(a_begin, b.begin))


def compare_spans(model: Sequence[ModelSpan], reviewed: Sequence[Span]) -> list[SpanOutcome]:
    """One outcome per model span (in the model's order), then one `added` per reviewer span left over."""
    free = list(dict.fromkeys(reviewed))  # an exact duplicate in an answer is one span
    matched: dict[int, SpanOutcome] = {}
    for index, span in enumerate(model):
        exact = [r for r in free if (r.begin, r.end) == (span.begin, span.end)]
        if exact:
            same = next((r for r in exact if r.type == span.type), exact[0])
            free.remove(same)
            matched[index] = SpanOutcome(KEPT if same.type == span.type else RELABELLED, span.type, span.score,
                                         same.type)
    for index, span in enumerate(model):
        if index in matched:
            continue
        overlapping = [r for r in free if _overlap(span.begin, span.end, r)]
        if not overlapping:
            matched[index] = SpanOutcome(REMOVED, span.type, span.score)
            continue
        # The most overlap, then the same type, then the earliest: a stable, explainable choice.
        best = max(overlapping, key=lambda r: (_overlap(span.begin, span.end, r), r.type == span.type, -r.begin))
        free.remove(best)
        matched[index] = SpanOutcome(MOVED, span.type, span.score, best.type)
    return [matched[index] for index in range(len(model))] + [SpanOutcome(ADDED, r.type, None, r.type)
                                                              for r in free]


# --- tallies ---------------------------------------------------------------------------------------------


def confidence_bin(score: float, bins: int = DEFAULT_BINS) -> int:
    """The index of `score`'s equal-width bin over [0, 1] (the last closed at 1.0), as `reliability_bins`."""
    return min(bins - 1, math.floor(score * bins))


def bin_label(index: int, bins: int = DEFAULT_BINS) -> str:
    upper = "]" if index == bins - 1 else ")"
    return f"[{index / bins:.1f}, {(index + 1) / bins:.1f}{upper}"


def tally_by_type(outcomes: Iterable[SpanOutcome]) -> dict[str, Counter[str]]:
    """Outcome counts per entity type (the model's type; the reviewer's for added spans), types sorted."""
    table: dict[str, Counter[str]] = {}
    for outcome in outcomes:
        table.setdefault(outcome.type, Counter())[outcome.outcome] += 1
    return dict(sorted(table.items()))


def tally_by_bin(outcomes: Iterable[SpanOutcome], bins: int = DEFAULT_BINS) -> list[Counter[str]]:
    """Outcome counts of the model's spans per confidence bin (added spans have no score: not here)."""
    table: list[Counter[str]] = [Counter() for _ in range(bins)]
    for outcome in outcomes:
        if outcome.score is not None:
            table[confidence_bin(outcome.score, bins)][outcome.outcome] += 1
    return table


def as_predictions(reviews: Sequence[Sequence[SpanOutcome]]) -> list[Prediction]:
    """The model's spans as calibration records: `correct` when the reviewer kept the span; `doc` is the
    review's index (so the figures of `report_figures` apply unchanged)."""
    return [Prediction(doc=index, score=outcome.score, correct=outcome.outcome == KEPT, type=outcome.type)
            for index, outcomes in enumerate(reviews) for outcome in outcomes if outcome.score is not None]


# --- uncertainty -----------------------------------------------------------------------------------------


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (Wilson 1927); None with no trials. Unlike the normal
    approximation it stays within [0, 1] and is not empty at 0 or `trials` successes."""
    if trials <= 0:
        return None
    if not 0 <= successes <= trials:
        raise ValueError("successes must be between 0 and trials")
    z = _z(confidence)
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(groups: Sequence[tuple[int, int]], confidence: float = CONFIDENCE,
                       draws: int = BOOTSTRAP_DRAWS, seed: int = 0) -> tuple[float, float] | None:
    """A percentile bootstrap interval of sum(kept) / sum(total) over `groups` (kept, total), resampling
    whole groups (reviews), so the spans of one document move together; None without spans."""
    usable = [group for group in groups if group[1] > 0]
    if not usable:
        return None
    rng = random.Random(seed)  # nosec B311 # a resampling, not a secret
    shares = []
    for _ in range(draws):
        sample = rng.choices(usable, k=len(usable))
        shares.append(sum(k for k, _ in sample) / sum(t for _, t in sample))
    shares.sort()
    tail = (1 - confidence) / 2
    low = shares[min(draws - 1, math.floor(tail * draws))]
    high = shares[min(draws - 1, math.ceil((1 - tail) * draws) - 1)]
    return low, high


# --- a threshold from the reviews ----------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdEvidence:
    """What the reviews say about the model's spans scoring at or above `threshold`."""

    threshold: float
    spans: int
    kept: int
    reviews: int  # reviews holding at least one of those spans
    wilson: tuple[float, float] | None
    bootstrap: tuple[float, float] | None

    @property
    def precision(self) -> float | None:
        return self.kept / self.spans if self.spans else None


@dataclass(frozen=True)
class ThresholdAdvice:
    """The lowest threshold whose spans meet the target, by the estimate and with confidence."""

    target: float
    reviews: int  # reviews with at least one model span
    spans: int
    point: ThresholdEvidence | None  # lowest threshold whose kept share is at least the target
    confident: ThresholdEvidence | None  # lowest whose Wilson lower bound is at least the target
    candidates: list[ThresholdEvidence] = field(default_factory=list)


def evidence_at(reviews: Sequence[Sequence[SpanOutcome]], threshold: float, *, bootstrap: bool = True,
                seed: int = 0) -> ThresholdEvidence:
    """The kept share of the model's spans scoring at or above `threshold`, with its Wilson interval and
    (unless `bootstrap` is False) its bootstrap interval over reviews."""
    groups = []
    for outcomes in reviews:
        above = [o for o in outcomes if o.score is not None and o.score >= threshold]
        if above:
            groups.append((sum(1 for o in above if o.outcome == KEPT), len(above)))
    kept, spans = sum(k for k, _ in groups), sum(t for _, t in groups)
    return ThresholdEvidence(threshold, spans, kept, len(groups), wilson_interval(kept, spans),
                             bootstrap_interval(groups, seed=seed) if bootstrap else None)


def _candidates(reviews: Sequence[Sequence[SpanOutcome]]) -> list[ThresholdEvidence]:
    """The evidence at every distinct score, lowest first, without bootstrap: one pass from the top score
    down (a span counts for every threshold at or below its score), so it stays fast on many spans."""
    scored = sorted(((o.score, o.outcome == KEPT, index) for index, outcomes in enumerate(reviews)
                     for o in outcomes if o.score is not None), reverse=True)
    found: list[ThresholdEvidence] = []
    kept = spans = 0
    seen: set[int] = set()
    position = 0
    while position < len(scored):
        score = scored[position][0]
        while position < len(scored) and scored[position][0] == score:
            _, is_kept, index = scored[position]
            kept, spans = kept + is_kept, spans + 1
            seen.add(index)
            position += 1
        found.append(ThresholdEvidence(score, spans, kept, len(seen), wilson_interval(kept, spans), None))
    return found[::-1]


def recommend_threshold(reviews: Sequence[Sequence[SpanOutcome]], target: float, *,
                        seed: int = 0) -> ThresholdAdvice:
    """Search the distinct scores (each stands for the thresholds just above the score below it) for the
    lowest threshold at which the model's spans at or above it were kept at least `target` of the time:
    by the estimate (`point`), and by the Wilson interval's lower bound (`confident`: the target is met
    with 97.5 % one-sided confidence, were the spans independent; the bootstrap over reviews, computed
    for these two, says how far they are not). Entity-level: the loop routes a document on its least
    confident span, so the entities it would accept are a subset of these."""
    if not 0.0 < target <= 1.0:
        raise ValueError("the target precision must be in (0, 1]")
    candidates = _candidates(reviews)
    point = next((c for c in candidates if c.precision is not None and c.precision >= target - 1e-12), None)
    confident = next((c for c in candidates if c.wilson is not None and c.wilson[0] >= target - 1e-12), None)
    with_spans = candidates[0].reviews if candidates else 0
    return ThresholdAdvice(
        target, with_spans, candidates[0].spans if candidates else 0,
        None if point is None else evidence_at(reviews, point.threshold, seed=seed),
        None if confident is None else evidence_at(reviews, confident.threshold, seed=seed), candidates)


# --- agreement between reviewers -------------------------------------------------------------------------


@dataclass(frozen=True)
class PairAgreement:
    """Span-level agreement of two workers on one document: exact offsets and type."""

    workers: tuple[str, str]
    matched: int
    first: int  # spans of the first worker
    second: int

    @property
    def f1(self) -> float | None:
        """2·matched / (first + second); None when neither marked a span (nothing to agree on)."""
        total = self.first + self.second
        return 2 * self.matched / total if total else None


def pair_agreement(answers: Mapping[str, Sequence[Span]], entity_type: str | None = None) -> list[PairAgreement]:
    """Every pair of workers' agreement (restricted to `entity_type` when given), workers in name order."""
    sets = {worker: {s for s in spans if entity_type is None or s.type == entity_type}
            for worker, spans in answers.items()}
    return [PairAgreement((a, b), len(sets[a] & sets[b]), len(sets[a]), len(sets[b]))
            for a, b in combinations(sorted(sets), 2)]


def pooled_f1(pairs: Iterable[PairAgreement]) -> tuple[float | None, int]:
    """Micro-averaged F1 over pairs (matched and spans summed), and how many pairs had a span."""
    counted = [pair for pair in pairs if pair.first + pair.second]
    matched = sum(pair.matched for pair in counted)
    total = sum(pair.first + pair.second for pair in counted)
    return (2 * matched / total if total else None), len(counted)


__all__ = [
    "ADDED",
    "KEPT",
    "MOVED",
    "OUTCOMES",
    "RELABELLED",
    "REMOVED",
    "ModelSpan",
    "PairAgreement",
    "SpanOutcome",
    "ThresholdAdvice",
    "ThresholdEvidence",
    "as_predictions",
    "bin_label",
    "bootstrap_interval",
    "compare_spans",
    "confidence_bin",
    "evidence_at",
    "pair_agreement",
    "pooled_f1",
    "recommend_threshold",
    "tally_by_bin",
    "tally_by_type",
    "wilson_interval",
]
