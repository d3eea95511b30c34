"""The stable test set's hash split and the gate's paired decision (nerloop.test_set, nerloop.gate)."""

from __future__ import annotations

import pytest

from nerloop.documents import Span, document_hash
from nerloop.gate import DocumentResult, decide, micro_f1, score_document, sign_test_p
from nerloop.test_set import is_test_document, problems_of_test_set, split_position


def docs(start: int, stop: int) -> list[str]:
    return [document_hash(f"Amazon S3 version {n}.0 is now available.") for n in range(start, stop)]


# --- the hash split -------------------------------------------------------------------------------


def test_the_split_is_stable_as_the_gold_set_grows():
    first = docs(0, 1000)
    before = {doc: is_test_document(doc, 0.2) for doc in first}

    grown = docs(0, 5000)  # four times as many documents
    after = {doc: is_test_document(doc, 0.2) for doc in grown}

    assert all(after[doc] == side for doc, side in before.items())  # nobody moved
    share = sum(after.values()) / len(after)
    assert 0.18 < share < 0.22  # and the test set grew with the gold set, at its share


def test_a_side_depends_on_the_document_alone():
    doc = docs(7, 8)[0]
    assert split_position(doc) == split_position(doc)
    assert 0.0 <= split_position(doc) < 1.0
    # A larger share only adds documents to the test side: none leaves it.
    few, more = ({d for d in docs(0, 500) if is_test_document(d, share)} for share in (0.1, 0.3))
    assert few <= more


def test_a_test_set_is_usable_with_enough_documents_and_each_type_annotated():
    assert problems_of_test_set(12, {"SERVICE": 9, "VERSION": 4}, ["SERVICE", "VERSION"], minimum=10) == []
    assert problems_of_test_set(9, {"SERVICE": 9, "VERSION": 4}, ["SERVICE", "VERSION"], minimum=10) == [
        "9 test documents; TestSetMinimum is 10"]
    (problem,) = problems_of_test_set(30, {"SERVICE": 9}, ["SERVICE", "VERSION"], minimum=10)
    assert "VERSION" in problem


# --- scoring --------------------------------------------------------------------------------------


def test_a_document_is_scored_by_exact_span_and_type():
    gold = [Span(0, 9, "SERVICE"), Span(18, 21, "VERSION")]
    predicted = [Span(0, 9, "SERVICE"), Span(18, 21, "SERVICE"), Span(30, 33, "VERSION")]
    assert score_document(gold, predicted, "x") == DocumentResult(tp=1, fp=2, fn=1, labels="x")
    assert micro_f1([DocumentResult(1, 2, 1, "x"), DocumentResult(3, 0, 0, "y")]) == pytest.approx(8 / 11)


def test_the_sign_test_is_exact_for_few_documents():
    assert sign_test_p(5, 0) == pytest.approx(1 / 32)
    assert sign_test_p(0, 5) == 1.0
    assert sign_test_p(3, 3) == pytest.approx(42 / 64)
    # The normal approximation takes over for many documents and agrees with the exact tail.
    assert sign_test_p(2100, 1900) == pytest.approx(0.0008, abs=0.0003)


# --- the decision on constructed pairs of versions --------------------------------------------------

GOOD = DocumentResult(tp=2, fp=0, fn=0, labels="a")  # every entity found
ONE_MISS = DocumentResult(tp=1, fp=0, fn=1, labels="a")


def results(good: int, missing: int, offset: int = 0) -> dict[str, DocumentResult]:
    """`good` documents right, then `missing` with one entity missed; keyed by document."""
    out = {f"d{offset + n}": GOOD for n in range(good)}
    out.update({f"d{offset + good + n}": ONE_MISS for n in range(missing)})
    return out


ACTIVE = results(30, 10)  # 40 shared documents; misses on d30..d39


def test_a_better_version_is_activated():
    better = {**ACTIVE, **{f"d{n}": GOOD for n in range(30, 38)}}  # fixes 8 of the 10 misses
    decision = decide("v2", better, "v1", ACTIVE, tolerance=0.02, minimum=10)
    assert decision.activate and decision.reason == "not worse on the shared test documents"
    assert (decision.better_documents, decision.worse_documents, decision.shared_documents) == (8, 0, 40)
    assert decision.candidate_f1 > decision.active_f1


def test_a_worse_version_stays_inactive():
    worse = {**ACTIVE, **{f"d{n}": ONE_MISS for n in range(0, 12)}}  # 12 documents it used to get right
    decision = decide("v2", worse, "v1", ACTIVE, tolerance=0.02, minimum=10)
    assert not decision.activate and decision.reason.startswith("worse on the shared test documents")
    assert (decision.better_documents, decision.worse_documents) == (0, 12)
    assert decision.p_worse == pytest.approx(1 / 4096, rel=1e-3)


def test_a_version_worse_within_noise_is_activated():
    # 3 documents worse, 1 better: F1 a little lower, but a sign test cannot tell that from chance.
    noisy = {**ACTIVE, "d0": ONE_MISS, "d1": ONE_MISS, "d2": ONE_MISS, "d30": GOOD}
    decision = decide("v2", noisy, "v1", ACTIVE, tolerance=0.02, minimum=10)
    assert decision.candidate_f1 < decision.active_f1
    assert decision.activate and decision.reason.startswith("within noise")
    assert decision.p_worse == pytest.approx(5 / 16)


def test_a_significant_drop_within_f1_tolerance_is_activated():
    worse = {**ACTIVE, **{f"d{n}": ONE_MISS for n in range(0, 12)}}
    decision = decide("v2", worse, "v1", ACTIVE, tolerance=0.5, minimum=10)
    assert decision.activate and decision.reason.startswith("within F1Tolerance")


def test_only_documents_scored_by_both_with_the_same_labels_are_compared():
    # v2's test set grew (d40..d59, all wrong) and one old document's labels were replaced by a review.
    grown = {**results(30, 10), **{f"d{n}": DocumentResult(0, 3, 2, "a") for n in range(40, 60)},
             "d0": DocumentResult(0, 0, 2, "relabelled")}
    decision = decide("v2", grown, "v1", ACTIVE, tolerance=0.02, minimum=10)
    assert decision.shared_documents == 39 and decision.activate


def test_too_few_shared_documents_activate():
    decision = decide("v2", results(5, 0), "v1", results(5, 0), tolerance=0.02, minimum=10)
    assert decision.activate and decision.shared_documents == 5
    assert decide("v1", results(5, 0), None, None, tolerance=0.02, minimum=10).activate
