"""What reviewers did to the model's spans, the production calibration and threshold, and agreement between
reviewers: pure functions on cases worked out by hand."""

from __future__ import annotations

from collections import Counter

import pytest

from nerloop.documents import Span
from nerloop_local.report.review_analysis import (
    ADDED,
    KEPT,
    MOVED,
    RELABELLED,
    REMOVED,
    ModelSpan,
    SpanOutcome,
    as_predictions,
    bootstrap_interval,
    compare_spans,
    confidence_bin,
    evidence_at,
    pair_agreement,
    pooled_f1,
    recommend_threshold,
    tally_by_bin,
    tally_by_type,
    wilson_interval,
)

S, V = "SERVICE", "VERSION"


def m(begin: int, end: int, type_: str = S, score: float = 0.9) -> ModelSpan:
    return ModelSpan(begin, end, type_, score)


# --- outcomes ---------------------------------------------------------------------------------------------


def test_each_model_span_gets_one_outcome_and_left_over_reviewer_spans_are_added() -> None:
    model = [m(0, 5, score=0.91), m(10, 15, S, 0.55), m(20, 25, V, 0.7), m(30, 35, S, 0.4)]
    reviewed = [Span(0, 5, S), Span(10, 15, V), Span(21, 25, V), Span(40, 44, V)]

    outcomes = compare_spans(model, reviewed)

    assert [o.outcome for o in outcomes] == [KEPT, RELABELLED, MOVED, REMOVED, ADDED]
    assert [o.score for o in outcomes] == [0.91, 0.55, 0.7, 0.4, None]
    assert outcomes[1].reviewed_type == V and outcomes[1].type == S
    assert outcomes[4].type == V  # an added span counts under the reviewer's type


def test_an_exact_match_is_taken_before_an_overlap() -> None:
    # The reviewer kept the second span exactly; the first, which overlaps it, was removed, not moved.
    outcomes = compare_spans([m(0, 8), m(4, 8)], [Span(4, 8, S)])

    assert [o.outcome for o in outcomes] == [REMOVED, KEPT]


def test_two_model_spans_the_reviewer_joined_are_one_moved_and_one_removed() -> None:
    outcomes = compare_spans([m(0, 6), m(7, 10)], [Span(0, 10, S)])

    assert [o.outcome for o in outcomes] == [MOVED, REMOVED]


def test_a_moved_span_whose_type_changed_says_so() -> None:
    [outcome] = compare_spans([m(0, 6, S)], [Span(0, 5, V)])

    assert outcome.outcome == MOVED and outcome.type_changed


def test_a_duplicated_reviewer_span_is_one_span() -> None:
    assert [o.outcome for o in compare_spans([m(0, 5)], [Span(0, 5, S), Span(0, 5, S)])] == [KEPT]


def test_tallies_by_type_and_by_confidence_bin() -> None:
    outcomes = compare_spans([m(0, 5, S, 0.95), m(10, 15, V, 0.55), m(20, 25, S, 0.58)],
                             [Span(0, 5, S), Span(30, 33, V)])

    assert tally_by_type(outcomes) == {S: Counter({KEPT: 1, REMOVED: 1}), V: Counter({REMOVED: 1, ADDED: 1})}
    bins = tally_by_bin(outcomes)
    assert bins[9] == Counter({KEPT: 1}) and bins[5] == Counter({REMOVED: 2})
    assert sum(sum(b.values()) for b in bins) == 3  # added spans have no confidence
    assert confidence_bin(1.0) == 9 and confidence_bin(0.0) == 0


def test_as_predictions_marks_only_kept_spans_correct_and_numbers_reviews() -> None:
    reviews = [compare_spans([m(0, 5, score=0.8)], [Span(0, 5, S)]),
               compare_spans([m(0, 5, score=0.6)], [Span(0, 5, V), Span(9, 12, S)])]

    predictions = as_predictions(reviews)

    assert [(x.doc, x.score, x.correct) for x in predictions] == [(0, 0.8, True), (1, 0.6, False)]


# --- uncertainty ------------------------------------------------------------------------------------------


def test_wilson_interval_matches_the_closed_form_at_known_points() -> None:
    # Wilson (1927), z = 1.96: 8 of 10 → [0.490, 0.943]; 0 of 10 → [0, 0.278]; 10 of 10 → [0.722, 1].
    low, high = wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_bootstrap_resamples_whole_reviews_and_is_repeatable() -> None:
    groups = [(3, 3), (0, 3), (2, 2), (1, 2)]

    first = bootstrap_interval(groups, seed=7)
    assert first == bootstrap_interval(groups, seed=7)
    assert first is not None and 0.0 <= first[0] < 0.6 < first[1] <= 1.0
    assert bootstrap_interval([(5, 5), (4, 4)]) == (1.0, 1.0)  # every span kept in every draw
    assert bootstrap_interval([]) is None


# --- the threshold ----------------------------------------------------------------------------------------


def outcomes(kept: list[tuple[float, bool]]) -> list[SpanOutcome]:
    return [SpanOutcome(KEPT if k else REMOVED, S, score) for score, k in kept]


def test_evidence_at_counts_the_spans_at_or_above_the_threshold_and_the_reviews_holding_them() -> None:
    reviews = [outcomes([(0.5, False), (0.9, True)]), outcomes([(0.7, True)]), outcomes([(0.95, True)])]

    evidence = evidence_at(reviews, 0.7)

    assert (evidence.spans, evidence.kept, evidence.reviews) == (3, 3, 3)
    assert evidence.wilson == pytest.approx(wilson_interval(3, 3))
    assert evidence.bootstrap == (1.0, 1.0)


def test_the_recommended_threshold_is_the_lowest_whose_lower_bound_meets_the_target() -> None:
    # 13 reviews: three spans at 0.5, all removed; 30 from 0.6 up, all kept. By the estimate 0.5 meets
    # 0.9 already (30 of 33 kept, 0.909), but Wilson's lower bound there is 0.764, and at 0.6 (30 of 30)
    # 0.886: no threshold is supported with confidence. Ten more kept spans at 0.8 make 0.6's 40 of 40,
    # whose lower bound is 0.912.
    low = [outcomes([(0.5, False)]) for _ in range(3)]
    high = [outcomes([(0.6 + 0.01 * i, True), (0.7, True), (0.9, True)]) for i in range(10)]

    advice = recommend_threshold([*low, *high], target=0.9)

    assert advice.reviews == 13 and advice.spans == 33
    assert advice.point is not None and advice.point.threshold == 0.5 and advice.point.kept == 30
    assert advice.confident is None

    more = [*low, *high, *[outcomes([(0.8, True)]) for _ in range(10)]]
    advice = recommend_threshold(more, target=0.9)
    assert advice.confident is not None
    assert advice.confident.threshold == 0.6 and (advice.confident.spans, advice.confident.kept) == (40, 40)
    assert advice.confident.wilson is not None and advice.confident.wilson[0] >= 0.9
    assert advice.confident.bootstrap == (1.0, 1.0)


def test_a_threshold_needs_a_target_in_zero_to_one() -> None:
    with pytest.raises(ValueError, match="target"):
        recommend_threshold([], target=0.0)
    advice = recommend_threshold([], target=0.9)
    assert (advice.point, advice.confident, advice.spans) == (None, None, 0)


# --- agreement --------------------------------------------------------------------------------------------


def test_pair_agreement_is_span_f1_per_pair_and_per_type() -> None:
    answers = {"bob": [Span(0, 5, S), Span(10, 14, V)], "alice": [Span(0, 5, S), Span(10, 14, S)],
               "carol": [Span(0, 5, S), Span(10, 14, V)]}

    pairs = pair_agreement(answers)

    assert [p.workers for p in pairs] == [("alice", "bob"), ("alice", "carol"), ("bob", "carol")]
    assert [p.f1 for p in pairs] == pytest.approx([0.5, 0.5, 1.0])
    assert pooled_f1(pairs) == (pytest.approx(8 / 12), 3)
    assert [p.f1 for p in pair_agreement(answers, V)] == [0.0, 0.0, 1.0]
    assert pooled_f1(pair_agreement({"a": [], "b": []})) == (None, 0)
