"""The live report's figures from records made here: loop endings, reviews per day, time to answer, which
version the threshold is for, and agreement between workers."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from nerloop.documents import Span
from nerloop.state import Loop, Version
from nerloop_local.report.live_figures import (
    answer_times,
    headline_version,
    live_figures,
    loop_endings,
    reviews_per_day,
)
from nerloop_local.report.loop_records import (
    LoopRecords,
    ReviewRecord,
    VersionRecord,
    WorkerAnswer,
    reviews_in_snapshot,
)
from nerloop_local.report.review_analysis import ModelSpan

START = datetime(2026, 12, 3, 23, 50, tzinfo=UTC)
S = "SERVICE"


def review(name: str, version: str, answers: list[tuple[str, float, list[Span]]],
           model: tuple[ModelSpan, ...] = (ModelSpan(0, 5, S, 0.9),)) -> ReviewRecord:
    """A review of a loop started at START; each answer (worker, minutes after START, spans)."""
    given = tuple(WorkerAnswer(worker, START + timedelta(minutes=minutes), tuple(spans))
                  for worker, minutes, spans in answers)
    return ReviewRecord(name, f"doc-{name}", version, "Amazon S3 is here", model, given[-1].spans, given, START,
                        START + timedelta(minutes=max(m for _, m, _ in answers)), f"reviews/{name}/output.json")


def version(name: str, active: bool) -> VersionRecord:
    return VersionRecord(Version(name, "TRAINED", metrics={"f1": 0.8, "per_type": {S: {"f1": 0.8}}}), active, 0)


def test_loops_are_counted_by_how_they_ended() -> None:
    records = LoopRecords([], [Loop("a", "d", "v1", "Completed"), Loop("b", "d", "v1", "Failed", "Expired: late"),
                               Loop("c", "d", "v1", "Failed", "invalid answer: span 0"),
                               Loop("d", "d", "v1", "InProgress"), Loop("e", "d", "v1", "Failed", "Expired: x")], [])

    assert loop_endings(records) == {"Completed": 1, "Failed (Expired)": 2, "Failed (invalid answer)": 1,
                                     "InProgress": 1}


def test_reviews_fall_on_the_day_of_their_last_answer_and_times_run_from_the_loops_start() -> None:
    reviews = [review("a", "v1", [("w1", 5, [])]), review("b", "v1", [("w1", 5, []), ("w2", 20, [])]),
               review("c", "v1", [("w1", 60 * 24, [])])]

    assert reviews_per_day(reviews) == [(date(2026, 12, 3), 1), (date(2026, 12, 4), 2)]
    times = answer_times(reviews)
    assert times.count == 4
    assert times.median == pytest.approx(12.5 * 60)
    assert times.longest == pytest.approx(24 * 3600)


def test_the_threshold_is_for_the_active_version_when_its_spans_were_reviewed_else_for_all_pooled() -> None:
    versions = [version("v1", False), version("v2", True)]

    assert headline_version(versions, {"v1", "v2"}) == ("v2", "model v2 (the active one)")
    assert headline_version(versions, {"v1"})[0] is None
    assert "v2, has no reviews yet" in headline_version(versions, {"v1"})[1]


def test_agreement_counts_only_documents_with_several_workers_and_orders_the_worst_first() -> None:
    same, other = [Span(0, 5, S)], [Span(6, 8, S)]
    records = LoopRecords([version("v1", True)], [], [
        review("one", "v1", [("w1", 1, same)]),
        review("agree", "v1", [("w1", 1, same), ("w2", 2, same)]),
        review("split", "v1", [("w1", 1, same), ("w2", 2, other), ("w3", 3, same)]),
    ])

    figures = live_figures(records, target=0.9)

    found = figures.agreement
    assert (found.documents, found.single, found.workers, found.pairs) == (2, 1, 3, 4)
    assert [d.review.loop for d in found.worst] == ["split", "agree"]
    assert found.worst[0].f1 == pytest.approx(1 / 3)  # one pair of three agrees: 2·1 / 6
    assert found.overall == pytest.approx(2 * 2 / 8)
    assert found.per_type[S] == (pytest.approx(0.5), 4)


def test_live_figures_count_the_models_spans_against_the_merged_answer() -> None:
    model = (ModelSpan(0, 5, S, 0.95), ModelSpan(6, 8, S, 0.4))
    records = LoopRecords([version("v1", True)], [], [review("a", "v1", [("w1", 1, [Span(0, 5, S)])], model)])

    figures = live_figures(records, target=0.9, threshold=0.5)

    assert figures.by_type[S] == {"kept": 1, "removed": 1}
    assert figures.headline is not None and figures.headline.name == "v1"
    assert [b.count for b in figures.headline.bins if b.count] == [1, 1]
    assert figures.advice is not None and figures.advice.point is not None
    assert figures.advice.point.threshold == 0.95
    with pytest.raises(ValueError, match="target"):
        live_figures(records, target=1.5)


def test_reviews_in_a_snapshot_are_those_finished_before_the_version_was_recorded() -> None:
    loops = [Loop("a", "d1", "v1", "Completed", finished_at="2026-12-03T10:00:00Z"),
             Loop("b", "d2", "v1", "Completed", finished_at="2026-12-03T12:00:00Z"),
             Loop("c", "d3", "v1", "Failed", finished_at="2026-12-03T09:00:00Z")]

    recorded = datetime(2026, 12, 3, 11, tzinfo=UTC)
    assert reviews_in_snapshot({"d1", "d2", "d3", "seed"}, loops, recorded) == 1
    assert reviews_in_snapshot({"d1", "d2"}, loops, None) == 2
