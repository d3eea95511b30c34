"""The arithmetic of the price table: Comprehend's units with their per-document minimum, monthly tiers,
prices given by a user, and a round's cost from its records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from nerloop.cost_records import InputMeasure, LabelingRecord, measure_lines, training_times
from nerloop.pricing import (
    INFERENCE_UNIT,
    LABEL_OBJECT,
    PRICES,
    REVIEW_OBJECT,
    TRAINING_HOUR,
    PriceError,
    Tier,
    inference_units,
    parse_tiers,
    tiered_cost,
    with_overrides,
)
from nerloop.round_cost import NEXT_ROUND, price_rounds, round_usages
from nerloop.state import Job, Loop, Version


@pytest.mark.parametrize(("characters", "units"), [
    (0, 3), (1, 3), (299, 3), (300, 3), (301, 4), (400, 4), (401, 5), (5000, 50),
])
def test_a_document_is_billed_in_100_character_units_with_3_at_least(characters, units):
    assert inference_units(characters) == units


def test_an_input_is_measured_document_by_document_not_as_one_text():
    # Given three short lines: 10 + 250 + 420 characters, 680 in all
    lines = [b"a" * 10 + b"\n", "é".encode() * 250 + b"\r\n", b"b" * 420]

    measure = measure_lines(lines)

    # Then each line has its own minimum: 3 + 3 + 5 units, not ceil(680 / 100) = 7
    assert measure == InputMeasure(documents=3, characters=680, units=11)


TIERED = with_overrides({REVIEW_OBJECT: "0.08:50000,0.04:1000000,0.02"})[REVIEW_OBJECT]


@pytest.mark.parametrize(("count", "already", "usd"), [
    (10, 0, "0.80"),
    (50_000, 0, "4000"),
    (50_001, 0, "4000.04"),
    (10, 49_995, "0.60"),  # 5 at the first tier, 5 at the second
    (1, 2_000_000, "0.02"),
    (1_000_000, 50_000, "39000.00"),  # 950,000 at 0.04 (38,000), then 50,000 at 0.02 (1,000)
])
def test_tiers_price_each_object_at_the_tier_its_monthly_count_falls_in(count, already, usd):
    assert tiered_cost(TIERED, count, already) == Decimal(usd)


def test_a_price_not_found_prices_nothing_rather_than_zero():
    assert not PRICES[INFERENCE_UNIT].known
    assert tiered_cost(PRICES[INFERENCE_UNIT], 100) is None
    assert PRICES[INFERENCE_UNIT].describe() == "not found"


def test_training_is_priced_by_the_second():
    assert tiered_cost(PRICES[TRAINING_HOUR], 90 / 3600) == Decimal("0.075")


@pytest.mark.parametrize("text", ["abc", "0.08:100", "0.08,0.04", "0.08:100,0.04:50,0.02", "-1", "0.1:0,0.2"])
def test_a_bad_price_is_refused_naming_the_key(text):
    with pytest.raises(PriceError, match=REVIEW_OBJECT):
        parse_tiers(REVIEW_OBJECT, text)


def test_an_unknown_price_key_is_refused():
    with pytest.raises(PriceError, match="no such price"):
        with_overrides({"lambda_request": "0.2"})


def test_a_given_price_replaces_the_listed_one_and_says_so():
    given = with_overrides({INFERENCE_UNIT: "0.0005"})[INFERENCE_UNIT]
    assert given.tiers == (Tier(None, Decimal("0.0005")),)
    assert given.source == "given by the user"


def test_training_times_are_kept_as_iso_strings_when_comprehend_gives_them():
    start = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    assert training_times({"TrainingStartTime": start, "Status": "TRAINING"}) == {
        "training_started_at": "2026-12-05T08:00:00+00:00"}


def _version(name: str, created: str, minutes: float | None, status: str = "TRAINED") -> Version:
    start = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
    end = start.replace(minute=int(minutes)) if minutes is not None else None
    return Version(version=name, status=status, created_at=created, training_started_at=start.isoformat(),
                   training_ended_at=end.isoformat() if end else "")


def test_a_round_gathers_its_version_s_training_jobs_loops_and_the_labeling_before_it():
    # Given two versions, v1's two jobs (one measured before measures were kept), loops under each,
    # and a labeling job converted before v1 and one after v2
    versions = [_version("v2", "2026-12-05T09:00:00Z", None, "IN_ERROR"), _version("v1", "2026-12-05T08:00:00Z", 30)]
    jobs = [Job("j1", "COMPLETED", "v1", "in/a"), Job("j2", "COMPLETED", "v1", "in/old"),
            Job("j3", "COMPLETED", "v2", "in/b")]
    inputs = {"in/a": InputMeasure(2, 350, 7), "in/b": InputMeasure(1, 10, 3)}
    loops = [Loop("l1", "d1", "v1", "Completed"), Loop("l2", "d2", "v1", "Failed"), Loop("l3", "d3", "v2", "Completed")]
    labeling = [LabelingRecord("seed", 45, "2026-12-05T07:59:00Z"), LabelingRecord("late", 5, "2026-12-05T10:00:00Z")]

    usages = round_usages(versions, jobs, inputs, loops, labeling)

    assert [(u.round, u.version) for u in usages] == [(1, "v1"), (2, "v2"), (3, NEXT_ROUND)]
    first, second, following = usages
    assert (first.training_seconds, first.detection_jobs, first.unmeasured_jobs) == (1800.0, 2, 1)
    assert (first.documents, first.characters, first.units) == (2, 350, 7)
    assert (first.loops_started, first.loops_reviewed, first.labeled_objects) == (2, 1, 45)
    assert second.training_seconds is None and second.units == 3 and second.loops_reviewed == 1
    assert following.labeled_objects == 5


def test_rounds_of_one_month_share_its_tiers():
    # Given A2I's tiers given as 0.08 up to 2 objects a month, then 0.04, and three rounds of 2 reviews,
    # the first two in December, the third in January
    prices = with_overrides({REVIEW_OBJECT: "0.08:2,0.04", LABEL_OBJECT: "0.1"})
    versions = [_version("v1", "2026-12-05T08:00:00Z", 6), _version("v2", "2026-12-20T08:00:00Z", 6),
                _version("v3", "2027-01-02T08:00:00Z", 6)]
    loops = [Loop(f"l{v}{i}", "d", f"v{v}", "Completed") for v in (1, 2, 3) for i in (1, 2)]

    costs = price_rounds(round_usages(versions, [], {}, loops, []), prices)

    reviews = [next(line.usd for line in cost.lines if line.key == REVIEW_OBJECT) for cost in costs]
    # Then December's second round is priced past the first tier, January starts again
    assert reviews == [Decimal("0.16"), Decimal("0.08"), Decimal("0.16")]
    # And each round's known total adds its training: 6 minutes at $3 an hour
    assert costs[0].known_usd == Decimal("0.16") + Decimal("0.3")
    assert costs[0].unpriced == ()


def test_a_round_names_what_it_used_but_could_not_price():
    versions = [_version("v1", "2026-12-05T08:00:00Z", 1)]
    costs = price_rounds(round_usages(versions, [Job("j", "COMPLETED", "v1", "in")], {"in": InputMeasure(1, 5, 3)},
                                      [Loop("l", "d", "v1", "Completed")], []), PRICES)
    assert set(costs[0].unpriced) == {INFERENCE_UNIT, REVIEW_OBJECT}
    assert costs[0].known_usd == Decimal("0.05")  # one minute of training
