"""Routing decisions: review when any entity is uncertain; a bounded review budget."""

from __future__ import annotations

import random

import pytest

from nerloop.comprehend_output import DetectedEntity
from nerloop.routing import (
    ACCEPT,
    REVIEW,
    ReviewBudget,
    expected_errors,
    fill_priority,
    min_score,
    pick_diverse,
    route_decision,
    word_overlap,
    word_set,
)

THRESHOLD = 0.8


def entities(*scores: float) -> list[DetectedEntity]:
    return [DetectedEntity(begin=i * 10, end=i * 10 + 5, score=score, text="", type="SERVICE")
            for i, score in enumerate(scores)]


def test_a_document_whose_third_entity_alone_is_uncertain_goes_to_review() -> None:
    assert route_decision(entities(0.99, 0.97, 0.41, 0.95), THRESHOLD) == REVIEW


def test_a_document_whose_entities_are_all_confident_is_accepted() -> None:
    assert route_decision(entities(0.99, 0.81, 0.95), THRESHOLD) == ACCEPT


def test_a_score_exactly_at_the_threshold_is_confident() -> None:
    assert route_decision(entities(0.95, THRESHOLD), THRESHOLD) == ACCEPT


def test_a_score_just_below_the_threshold_goes_to_review() -> None:
    assert route_decision(entities(0.95, 0.7999999), THRESHOLD) == REVIEW


def test_a_document_without_entities_is_accepted() -> None:
    assert route_decision([], THRESHOLD) == ACCEPT


def test_the_minimum_score_looks_at_every_entity() -> None:
    assert min_score(entities(0.9, 0.8, 0.3, 0.7)) == 0.3
    assert min_score([]) is None


def test_expected_errors_add_up_what_each_entity_may_be_wrong_by() -> None:
    assert expected_errors(entities(0.9, 0.6, 0.5)) == pytest.approx(1.0)
    assert expected_errors([]) == 0.0


def test_several_doubtful_entities_outrank_a_single_more_doubtful_one() -> None:
    assert expected_errors(entities(0.7, 0.7, 0.7)) > expected_errors(entities(0.4, 0.99))


def test_the_fill_ranks_confident_entities_before_no_entities_and_longer_texts_first() -> None:
    with_entity = fill_priority(entities(0.99), "EC2")
    long_without = fill_priority([], "Amazon Sumerian now supports glTF models in every region")
    short_without = fill_priority([], "Hello world")

    assert with_entity > long_without > short_without > fill_priority([], "")
    assert fill_priority(entities(0.9), "x") > fill_priority(entities(0.99), "x")


# --- review budget ------------------------------------------------------------------------------


def test_the_budget_keeps_the_documents_of_highest_priority() -> None:
    budget: ReviewBudget[str] = ReviewBudget(2)
    over = [
        budget.offer(priority, order, name)
        for order, (name, priority) in enumerate([("a", 0.3), ("b", 0.8), ("c", 0.5), ("d", 0.4)])
    ]

    assert budget.selected() == ["b", "c"]
    assert [item for item in over if item is not None] == ["a", "d"]


def test_a_document_wanted_less_than_all_kept_ones_is_over_budget_at_once() -> None:
    budget: ReviewBudget[str] = ReviewBudget(1)
    budget.offer(0.9, 0, "kept")

    assert budget.offer(0.5, 1, "late") == "late"
    assert budget.selected() == ["kept"]


def test_ties_keep_the_document_offered_first() -> None:
    budget: ReviewBudget[str] = ReviewBudget(2)
    for order, name in enumerate(["first", "second", "third"]):
        budget.offer(0.5, order, name)

    assert budget.selected() == ["first", "second"]


def test_the_budget_never_holds_more_than_its_limit_and_picks_the_highest() -> None:
    rng = random.Random(7)
    scores = [rng.random() for _ in range(500)]
    budget: ReviewBudget[int] = ReviewBudget(10)
    over = 0
    for order, score in enumerate(scores):
        if budget.offer(score, order, order) is not None:
            over += 1
        assert len(budget) <= 10

    assert sorted(budget.selected()) == sorted(sorted(range(500), key=lambda i: -scores[i])[:10])
    assert over == 490


def test_a_budget_of_zero_means_no_limit_and_keeps_nothing_back() -> None:
    budget: ReviewBudget[str] = ReviewBudget(0)

    assert budget.unlimited
    assert budget.offer(0.1, 0, "a") is None
    assert budget.selected() == []


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        ReviewBudget(-1)


# --- diversity within the budget ------------------------------------------------------------------


def test_the_short_list_holds_a_multiple_of_the_budget() -> None:
    budget: ReviewBudget[int] = ReviewBudget(2, shortlist_factor=3)
    over = [budget.offer(1 - score, order, order) for order, score in enumerate([0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6])]

    assert budget.selected() == [1, 3, 5, 6, 4, 2]
    assert [item for item in over if item is not None] == [0]


def test_word_overlap_is_the_jaccard_similarity_of_case_folded_words() -> None:
    a = word_set("Amazon EC2 is now available in Paris.")
    b = word_set("amazon ec2 is now available in Tokyo")

    assert word_overlap(a, b) == 6 / 8
    assert word_overlap(a, a) == 1.0
    assert word_overlap(frozenset(), frozenset()) == 0.0


def test_a_near_duplicate_of_a_chosen_document_is_passed_over_for_a_different_one() -> None:
    ranked = ["Amazon EC2 now in Paris", "Amazon EC2 now in Tokyo", "AWS Lambda adds Java 21", "S3 gets cheaper"]

    chosen, rest = pick_diverse(ranked, 2, word_set, max_overlap=0.5)

    assert chosen == ["Amazon EC2 now in Paris", "AWS Lambda adds Java 21"]
    assert rest == ["Amazon EC2 now in Tokyo", "S3 gets cheaper"]


def test_passed_over_documents_fill_the_budget_when_nothing_else_is_left() -> None:
    ranked = ["EC2 in Paris", "EC2 in Paris now", "EC2 in Paris today"]

    chosen, rest = pick_diverse(ranked, 2, word_set, max_overlap=0.5)

    assert chosen == ["EC2 in Paris", "EC2 in Paris now"]
    assert rest == ["EC2 in Paris today"]


def test_without_near_duplicates_the_least_confident_are_chosen_in_order() -> None:
    ranked = ["alpha one", "beta two", "gamma three", "delta four"]

    assert pick_diverse(ranked, 3, word_set) == (ranked[:3], ranked[3:])


def test_a_short_list_shorter_than_the_budget_is_chosen_whole() -> None:
    assert pick_diverse(["only"], 5, word_set) == (["only"], [])
