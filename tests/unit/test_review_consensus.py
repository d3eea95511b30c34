"""Several reviewers' answers made one (nerloop.review_consensus): the strict-majority rule, ties."""

from __future__ import annotations

import pytest

from nerloop.documents import Span
from nerloop.review_consensus import ReviewersTied, WorkerAnswer, consolidate_answers

FILE = "s3://bucket/reviews/loop/output.json"
A, B, C = Span(0, 6, "SERVICE"), Span(10, 13, "VERSION"), Span(20, 26, "SERVICE")


def answer(worker: str, *spans: Span, submitted: str = "2026-12-05T08:00:00+00:00") -> WorkerAnswer:
    return WorkerAnswer(worker, submitted, spans)


def test_one_reviewer_s_answer_stands() -> None:
    assert consolidate_answers([answer("w1", B, A)], FILE).spans == [A, B]


def test_a_span_two_of_three_reviewers_marked_is_kept_and_one_marked_by_one_is_dropped() -> None:
    result = consolidate_answers([answer("w1", A, B), answer("w2", A), answer("w3", A, B, C)], FILE)

    assert result.spans == [A, B]
    assert result.workers == ["w1", "w2", "w3"]
    assert result.notes == ["span SERVICE 20..26: marked by 1 of 3 reviewers; dropped"]


def test_the_same_offsets_with_another_label_is_another_span() -> None:
    relabelled = Span(A.begin, A.end, "VERSION")

    result = consolidate_answers([answer("w1", A), answer("w2", relabelled), answer("w3", A)], FILE)

    assert result.spans == [A]


def test_two_reviewers_who_agree_keep_their_spans() -> None:
    assert consolidate_answers([answer("w1", A, B), answer("w2", B, A)], FILE).spans == [A, B]


def test_a_span_exactly_half_the_reviewers_marked_is_a_tie_naming_the_file_and_span() -> None:
    with pytest.raises(ReviewersTied) as caught:
        consolidate_answers([answer("w1", A, B), answer("w2", A)], FILE)

    assert caught.value.file == FILE
    assert "VERSION 10..13" in caught.value.reason and "SERVICE 0..6" not in caught.value.reason


def test_a_worker_listed_twice_counts_once_with_the_later_answer() -> None:
    result = consolidate_answers([answer("w1", A, submitted="2026-12-05T09:00:00+00:00"),
                                  answer("w1", B, submitted="2026-12-05T08:00:00+00:00"),
                                  answer("w2", A), answer("w3", A, C)], FILE)

    assert result.spans == [A]
    assert result.workers == ["w1", "w2", "w3"]
    assert "worker w1 answered twice; counted the later answer" in result.notes


def test_answers_without_a_worker_id_count_separately() -> None:
    assert consolidate_answers([answer("", A), answer("", A), answer("", B)], FILE).spans == [A]


def test_a_span_marked_twice_in_one_answer_counts_once() -> None:
    with pytest.raises(ReviewersTied):
        consolidate_answers([answer("w1", A, A), answer("w2")], FILE)
