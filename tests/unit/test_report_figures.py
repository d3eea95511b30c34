"""The report's pure figures: reliability bins, the threshold search and the learning curve, on small
cases worked out by hand, and the one-line errors for figures files that cannot be used."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from nerloop_local.report.figures import (
    FiguresError,
    Prediction,
    candidate_thresholds,
    choose_threshold,
    choose_threshold_held_out,
    expected_calibration_error,
    headline_round,
    learning_curve,
    load_figures,
    parse_figures,
    reliability_bins,
    review_outcome,
    split_documents,
)


def p(doc: int, score: float, correct: bool, type_: str = "SERVICE") -> Prediction:
    return Prediction(doc=doc, score=score, correct=correct, type=type_)


def round_(number: int, reviewed: int, f1: float, **extra: Any) -> dict[str, Any]:
    return {"round": number, "model_version": f"v{number}", "active": False, "reviewed_documents": reviewed,
            "training_documents": 10 + reviewed, "documents_detected": 5, "routed_to_review": 2,
            "reviewed_this_round": 2, "precision": f1, "recall": f1, "f1": f1,
            "per_type": {"SERVICE": {"precision": f1, "recall": f1, "f1": f1}}, **extra}


def figures(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pool_size": 40, "threshold": 0.95, "entity_types": ["SERVICE"],
        "rounds": [round_(1, 0, 0.5), round_(2, 10, 0.6)],
        "full_supervision": {"documents": 50, "f1": 0.8},
        "random_selection": [{"reviewed_documents": 0, "f1": 0.5, "draws": [0.5]},
                             {"reviewed_documents": 10, "f1": 0.55, "draws": [0.5, 0.6]}],
    }
    base.update(extra)
    return base


# --- reliability ----------------------------------------------------------------------------------


def test_reliability_bins_count_correct_and_mean_score_per_bin() -> None:
    bins = reliability_bins([p(0, 0.05, True), p(0, 0.15, False), p(1, 0.9, True), p(1, 0.95, True),
                             p(2, 1.0, False)], bins=10)

    assert [b.count for b in bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert [b.correct for b in bins] == [1, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[9].mean_score == pytest.approx((0.9 + 0.95 + 1.0) / 3)
    assert bins[9].accuracy == pytest.approx(2 / 3)
    assert bins[2].mean_score is None and bins[2].accuracy is None
    assert (bins[0].lower, bins[0].upper, bins[9].upper) == pytest.approx((0.0, 0.1, 1.0))


def test_a_score_on_a_bin_edge_belongs_to_the_upper_bin() -> None:
    bins = reliability_bins([p(0, 0.5, True)], bins=2)

    assert [b.count for b in bins] == [0, 1]


def test_expected_calibration_error_weights_each_bin_gap_by_its_count() -> None:
    # Bin [0.8, 1.0]: confidence 0.9, half right → gap 0.4; bin [0.0, 0.2): confidence 0.1, none right → 0.1.
    bins = reliability_bins([p(0, 0.9, True), p(0, 0.9, False), p(1, 0.1, False), p(1, 0.1, False)], bins=5)

    assert expected_calibration_error(bins) == pytest.approx((2 * 0.4 + 2 * 0.1) / 4)


def test_expected_calibration_error_is_none_without_predictions() -> None:
    assert expected_calibration_error(reliability_bins([])) is None


# --- threshold search ---------------------------------------------------------------------------------

# Five test documents: A has one wrong entity at 0.5; B two right ones at 0.7 and 0.9; C one right at
# 0.8; D one right at 0.95; E none.
CASE = [p(0, 0.5, False), p(1, 0.7, True), p(1, 0.9, True), p(2, 0.8, True), p(3, 0.95, True)]


def test_review_outcome_routes_a_document_on_its_least_confident_entity() -> None:
    outcome = review_outcome(CASE, 0.8, documents=5)

    # A (0.5) and B (0.7 < 0.8) go to review; C at exactly 0.8 is confident; D and E are accepted.
    assert (outcome.to_review, outcome.accepted_entities, outcome.accepted_correct) == (2, 2, 2)
    assert outcome.documents == 5
    assert outcome.precision == 1.0


def test_review_outcome_precision_is_none_when_nothing_is_accepted() -> None:
    outcome = review_outcome(CASE, 1.0, documents=5)

    assert (outcome.to_review, outcome.accepted_entities, outcome.precision) == (4, 0, None)


def test_candidate_thresholds_are_the_distinct_scores_and_one_above_the_highest() -> None:
    assert candidate_thresholds([p(0, 0.5, True), p(1, 0.2, True), p(2, 0.5, False)]) == [
        0.2, 0.5, math.nextafter(0.5, math.inf)]
    assert candidate_thresholds([]) == []


def test_choose_threshold_takes_the_lowest_threshold_meeting_the_target() -> None:
    # At 0.5 nothing is reviewed and 4 of 5 accepted entities are right (0.8 < 0.9); at 0.7 A goes to
    # review and the 4 accepted are all right. The run's 0.95 reviews A, B and C: 2 reviews saved.
    analysis = choose_threshold(CASE, 5, target=0.9, run_threshold=0.95)

    assert analysis.chosen is not None
    assert analysis.chosen.threshold == 0.7
    assert (analysis.chosen.to_review, analysis.chosen.accepted_entities) == (1, 4)
    assert analysis.run.to_review == 3
    assert analysis.saved == 2
    assert analysis.saved_share == pytest.approx(2 / 3)
    assert not analysis.everything_reviewed


def test_choose_threshold_reviews_nothing_when_every_entity_already_meets_the_target() -> None:
    analysis = choose_threshold(CASE, 5, target=0.8, run_threshold=0.95)

    assert analysis.chosen is not None
    assert (analysis.chosen.threshold, analysis.chosen.to_review) == (0.5, 0)
    assert analysis.saved == 3


def test_choose_threshold_keeps_the_lowest_even_when_a_higher_one_dips_below_the_target() -> None:
    # 0.6: 2/4 right; 0.7: A reviewed, 2/3 right (meets 0.6); 0.8 would give 1/2.
    dipping = [p(0, 0.6, False), p(1, 0.7, True), p(2, 0.8, False), p(3, 0.9, True)]

    analysis = choose_threshold(dipping, 4, target=0.6, run_threshold=0.95)

    assert analysis.chosen is not None and analysis.chosen.threshold == 0.7
    assert analysis.chosen.precision == pytest.approx(2 / 3)


def test_when_no_threshold_accepts_precisely_enough_every_document_with_an_entity_is_reviewed() -> None:
    wrong_at_top = [*CASE[:4], p(3, 0.95, False)]

    analysis = choose_threshold(wrong_at_top, 5, target=0.9, run_threshold=0.8)

    assert analysis.everything_reviewed
    assert analysis.chosen is not None
    assert analysis.chosen.threshold > 0.95
    assert analysis.chosen.to_review == 4
    # The run's 0.8 reviewed only A and B: meeting the target costs 2 more reviews.
    assert analysis.saved == -2
    assert analysis.saved_share == pytest.approx(-1.0)


def test_the_saved_share_is_none_when_the_run_reviewed_nothing() -> None:
    analysis = choose_threshold(CASE, 5, target=0.9, run_threshold=0.1)

    assert analysis.saved == -1
    assert analysis.saved_share is None


def test_choose_threshold_without_predictions_has_no_choice() -> None:
    analysis = choose_threshold([], 3, target=0.9, run_threshold=0.95)

    assert analysis.chosen is None and analysis.saved is None
    assert analysis.run.to_review == 0


@pytest.mark.parametrize("target", [0.0, 1.5, -0.1])
def test_choose_threshold_rejects_a_target_outside_zero_to_one(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        choose_threshold(CASE, 5, target=target, run_threshold=0.95)


def test_split_documents_puts_even_numbered_documents_on_one_side_and_odd_on_the_other() -> None:
    (choose, choose_docs), (score, score_docs) = split_documents(CASE, 5)

    assert {x.doc for x in choose} <= {0, 2, 4} and {x.doc for x in score} <= {1, 3}
    assert len(choose) + len(score) == len(CASE)
    assert (choose_docs, score_docs) == (3, 2)


def test_a_held_out_threshold_is_chosen_on_one_half_and_measured_on_the_other() -> None:
    # Even documents choose: 0 (0.5 wrong), 2 (0.8 right) → 0.8 (document 0 reviewed, 2 accepted). Odd
    # documents measure it: 1 (0.4 right) reviewed, 3 (0.9 wrong, 0.95 right) accepted: 1 of 2 right.
    # The half it was chosen on flatters it (1.0); the held-out half shows 0.5.
    predictions = [p(0, 0.5, False), p(1, 0.4, True), p(2, 0.8, True), p(3, 0.9, False), p(3, 0.95, True)]

    held_out = choose_threshold_held_out(predictions, 4, target=0.9, run_threshold=0.95)

    assert held_out.choice is not None and held_out.choice.threshold == 0.8
    assert held_out.choice.documents == 2 and held_out.choice.precision == 1.0
    assert held_out.chosen is not None and held_out.chosen.documents == 2
    assert (held_out.chosen.to_review, held_out.chosen.accepted_entities) == (1, 2)
    assert held_out.chosen.precision == pytest.approx(0.5)
    assert held_out.run.to_review == 2  # the run's 0.95 on the odd half
    assert not held_out.everything_reviewed


def test_a_held_out_threshold_that_meets_the_target_only_by_reviewing_everything_says_so() -> None:
    predictions = [p(0, 0.9, False), p(1, 0.95, True), p(2, 0.8, False)]

    held_out = choose_threshold_held_out(predictions, 3, target=0.9, run_threshold=0.5)

    assert held_out.everything_reviewed
    assert held_out.chosen is not None and held_out.chosen.accepted_entities == 1  # the other half's 0.95


# --- learning curve and the run's record ------------------------------------------------------------


def test_learning_curve_orders_rounds_and_pairs_each_with_random_selection_at_the_same_reviews() -> None:
    data = figures(rounds=[round_(2, 10, 0.6), round_(1, 0, 0.5), round_(3, 20, 0.7)])

    curve = learning_curve(parse_figures(data, "f.json"))

    assert [pt.model_version for pt in curve.points] == ["v1", "v2", "v3"]
    assert [pt.reviewed for pt in curve.points] == [0, 10, 20]
    assert [pt.random_f1 for pt in curve.points] == [0.5, 0.55, None]
    assert curve.points[1].random_draws == (0.5, 0.6)
    assert curve.points[1].pool_share == pytest.approx(10 / 40)
    assert curve.points[2].of_full == pytest.approx(0.7 / 0.8)
    assert (curve.full_f1, curve.full_documents, curve.pool_size) == (0.8, 50, 40)


def test_headline_round_prefers_the_active_model_with_calibration() -> None:
    calibration = [{"doc": 0, "score": 0.9, "correct": True, "type": "SERVICE"}]
    run = parse_figures(figures(rounds=[round_(1, 0, 0.5, active=True, calibration=calibration),
                                        round_(2, 10, 0.6, calibration=calibration)]), "f.json")

    headline = headline_round(run)

    assert headline is not None and headline.round == 1


def test_headline_round_falls_back_to_the_latest_round_with_calibration() -> None:
    calibration = [{"doc": 0, "score": 0.9, "correct": True, "type": "SERVICE"}]
    run = parse_figures(figures(rounds=[round_(1, 0, 0.5, calibration=calibration),
                                        round_(2, 10, 0.6, active=True)]), "f.json")

    headline = headline_round(run)

    assert headline is not None and headline.round == 1
    assert headline_round(parse_figures(figures(), "f.json")) is None


def test_test_documents_come_from_the_round_then_the_run_then_the_highest_index() -> None:
    calibration = [{"doc": 3, "score": 0.9, "correct": True, "type": "SERVICE"}]
    run = parse_figures(figures(test_documents=8, rounds=[round_(1, 0, 0.5, calibration=calibration,
                                                                 test_documents=6),
                                                          round_(2, 10, 0.6, calibration=calibration)]), "f")
    bare = parse_figures(figures(rounds=[round_(1, 0, 0.5, calibration=calibration)]), "f")

    assert [run.documents_in_test(entry) for entry in run.rounds] == [6, 8]
    assert bare.documents_in_test(bare.rounds[0]) == 4


def test_a_missing_key_is_named_with_its_place() -> None:
    data = figures()
    del data["rounds"][1]["f1"]

    with pytest.raises(FiguresError) as caught:
        parse_figures(data, "run.json")

    assert str(caught.value).startswith("run.json: rounds[1].f1:")


def test_a_calibration_entity_outside_the_test_set_is_refused() -> None:
    calibration = [{"doc": 5, "score": 0.9, "correct": True, "type": "SERVICE"}]

    with pytest.raises(FiguresError, match=r"test document 5"):
        parse_figures(figures(test_documents=5, rounds=[round_(1, 0, 0.5, calibration=calibration)]), "f")


def test_a_score_outside_zero_to_one_is_refused() -> None:
    calibration = [{"doc": 0, "score": 1.2, "correct": True, "type": "SERVICE"}]

    with pytest.raises(FiguresError, match=r"rounds\[0\]\.calibration\[0\]\.score"):
        parse_figures(figures(rounds=[round_(1, 0, 0.5, calibration=calibration)]), "f")


def test_figures_must_be_a_json_object() -> None:
    with pytest.raises(FiguresError, match="expected a JSON object"):
        parse_figures([1, 2], "f.json")


def test_load_figures_names_the_file_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(FiguresError) as caught:
        load_figures(path)

    assert caught.value.file == str(path)
    assert "not JSON" in caught.value.reason
    assert "\n" not in str(caught.value)


def test_load_figures_reads_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(figures()), encoding="utf-8")

    run = load_figures(path)

    assert [entry.f1 for entry in run.rounds] == [0.5, 0.6]
    assert all(entry.calibration is None for entry in run.rounds)
