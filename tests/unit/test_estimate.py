"""`nerloop estimate`'s model of the rounds: what each version detects and routes, before deploying."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from nerloop.pricing import with_overrides
from nerloop_local.commands.estimate import Plan, estimate, plan_usages, sample_measure


def plan(**given: object) -> Plan:
    values: dict[str, object] = {"pool": 100, "rounds": 3, "review_budget": 10,
                                 "units_per_document": Decimal(3), "chars_per_document": Decimal(120)}
    values.update(given)
    return Plan(**values)  # type: ignore[arg-type]


def test_each_version_detects_what_is_not_yet_reviewed_and_routes_its_budget():
    usages = plan_usages(plan())
    assert [(u.documents, u.loops_reviewed) for u in usages] == [(100, 10), (90, 10), (80, 10)]
    assert [u.units for u in usages] == [300, 270, 240]


def test_a_detection_cap_bounds_each_round_s_documents():
    assert [u.documents for u in plan_usages(plan(detect_cap=50))] == [50, 50, 50]


def test_without_a_budget_the_uncertain_share_is_reviewed():
    usages = plan_usages(plan(review_budget=0, review_share=0.25))
    assert [(u.documents, u.loops_reviewed) for u in usages] == [(100, 25), (75, 19), (56, 14)]


def test_the_seed_is_labeled_before_the_first_round_only():
    assert [u.labeled_objects for u in plan_usages(plan(seed_labels=40))] == [40, 0, 0]


def test_the_pool_running_out_stops_detection_and_reviews():
    usages = plan_usages(plan(pool=15))
    assert [(u.documents, u.loops_reviewed, u.detection_jobs) for u in usages] == [(15, 10, 1), (5, 5, 1), (0, 0, 0)]


def test_training_minutes_are_priced_when_given():
    summary = estimate(plan(training_minutes=20), with_overrides({}), models_kept=3, months=2)
    assert [row["usd"]["comprehend_training_hour"] for row in summary["rounds"]] == [1.0, 1.0, 1.0]
    management = summary["model_management"]
    assert (management["models"], management["usd_per_month"]) == (6, 3.0)  # 3 versions for 2 months


def test_a_sample_s_units_are_counted_document_by_document(tmp_path: Path):
    sample = tmp_path / "sample.txt"
    sample.write_text("a" * 50 + "\n" + "b" * 450 + "\n\n", encoding="utf-8")
    chars, units = sample_measure(sample)
    assert (chars, units) == (Decimal(250), Decimal(4))  # (3 + 5) / 2 units, not ceil(250 / 100) = 3
