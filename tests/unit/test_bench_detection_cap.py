"""bench/detection_cap.py: the capped rounds it measures run the real detect and route code."""

from __future__ import annotations

from pathlib import Path

from bench import detection_cap
from nerloop.stages import route


def test_rounds_stay_within_the_cap_and_go_back_to_detected_documents_once_the_new_ones_are_through(
        tmp_path: Path):
    # Given 150 new documents, a cap of 50 and the template's review budget (25 loops a round, never
    # answered here: those documents stay in review)
    guard = route.run_stage_once
    result = detection_cap.measure(pool=150, cap=50, rounds=5, seed=1, work=tmp_path)

    assert route.run_stage_once is guard  # the idempotency guard is put back
    rounds = result["rounds"]
    assert result["pass"] and [entry["detected"] for entry in rounds] == [50] * 5
    assert [entry["by_tier"]["never_detected"] for entry in rounds[:3]] == [50, 50, 50]
    assert result["detected_at_least_once"] == 150
    assert [entry["by_tier"]["never_detected"] for entry in rounds[3:]] == [0, 0]
    assert [entry["eligible"] for entry in rounds] == [150, 125, 100, 75, 50]
    assert result["uncapped_total"] == 500 > result["detected_total"] == 250
