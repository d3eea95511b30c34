"""The detection cap's policy (nerloop.detection_policy): which pool documents a round detects."""

from __future__ import annotations

import math
import random

import pytest

from nerloop.detection_policy import (
    CONFIDENT,
    NEVER_DETECTED,
    ONCE_UNCERTAIN,
    ROTATION_SHARE,
    WAITING_TIER,
    RoundSelection,
    detection_rank,
    detection_tier,
    tier_counts,
)
from nerloop.state import ACCEPTED, WAITING, PoolDocument


def doc(name: str, status: str = WAITING, seen_by: str = "", detected_at: str = "", uncertain_by: str = "",
        updated_at: str = "2026-12-01T00:00:00Z") -> PoolDocument:
    return PoolDocument(doc=name, text=f"text of {name}", status=status, seen_by=seen_by,
                        detected_at=detected_at, uncertain_by=uncertain_by, updated_at=updated_at)


def at(hour: int) -> str:
    return f"2026-12-01T{hour:02d}:00:00Z"


def choose(entries: list[PoolDocument], cap: int) -> list[str]:
    selection: RoundSelection[PoolDocument] = RoundSelection(cap)
    for entry in entries:
        selection.offer(entry)
    return [entry.doc for entry in selection.chosen()]


def test_each_kind_of_document_has_its_tier():
    assert detection_tier(doc("new")) == NEVER_DETECTED
    assert detection_tier(doc("over-budget", seen_by="v1", uncertain_by="v1")) == WAITING_TIER
    assert detection_tier(doc("sent-back", seen_by="v1")) == WAITING_TIER  # a loop ended unanswered
    assert detection_tier(doc("flipped", ACCEPTED, seen_by="v2", uncertain_by="v1")) == ONCE_UNCERTAIN
    assert detection_tier(doc("sure", ACCEPTED, seen_by="v2")) == CONFIDENT


def test_tiers_go_first_whatever_the_order_the_pool_is_read_in():
    # Given one document of each tier, the accepted ones detected long ago, the new one just arrived
    entries = [doc("d-sure", ACCEPTED, seen_by="v1", detected_at=at(1)),
               doc("c-flipped", ACCEPTED, seen_by="v2", detected_at=at(2), uncertain_by="v1"),
               doc("b-waiting", seen_by="v2", detected_at=at(3), uncertain_by="v2"),
               doc("a-new", updated_at=at(9))]
    for _ in range(5):
        random.Random(_).shuffle(entries)
        # When the cap takes all four (no share is reserved under 10), then the order is by tier
        assert choose(entries, 4) == ["a-new", "b-waiting", "c-flipped", "d-sure"]
        # and a cap of two takes the first two tiers
        assert choose(entries, 2) == ["a-new", "b-waiting"]


def test_within_a_tier_the_longest_waiting_goes_first_and_ties_go_by_hash():
    entries = [doc("w3", seen_by="v1", detected_at=at(5)), doc("w1", seen_by="v1", detected_at=at(2)),
               doc("w2b", seen_by="v1", detected_at=at(3)), doc("w2a", seen_by="v1", detected_at=at(3))]
    assert choose(entries, 3) == ["w1", "w2a", "w2b"]


def test_new_documents_go_oldest_arrival_first():
    entries = [doc("late", updated_at=at(8)), doc("early", updated_at=at(1)), doc("middle", updated_at=at(4))]
    assert choose(entries, 2) == ["early", "middle"]


def test_an_item_recorded_before_detection_times_were_kept_counts_from_its_last_change():
    legacy = doc("legacy", ACCEPTED, seen_by="v1", updated_at=at(1))  # no detected_at
    recent = doc("recent", ACCEPTED, seen_by="v1", detected_at=at(5), updated_at=at(5))
    assert detection_rank(legacy)[1] == at(1)
    assert choose([recent, legacy], 1) == ["legacy"]


def test_the_cap_bounds_the_round_and_counts_what_is_left():
    selection: RoundSelection[PoolDocument] = RoundSelection(30)
    for number in range(100):
        selection.offer(doc(f"d{number:03d}", updated_at=at(number % 24)))
    assert len(selection.chosen()) == 30 and selection.offered == 100 and selection.left() == 70
    small: RoundSelection[PoolDocument] = RoundSelection(30)
    small.offer(doc("only"))
    assert [entry.doc for entry in small.chosen()] == ["only"] and small.left() == 0


def test_a_tenth_of_the_cap_goes_to_the_stalest_even_when_waiting_documents_fill_it():
    # Given more waiting documents than the cap, detected recently, and accepted ones detected long ago
    waiting = [doc(f"w{n:02d}", seen_by="v3", detected_at=at(10), uncertain_by="v3") for n in range(40)]
    stale = [doc(f"s{n:02d}", ACCEPTED, seen_by="v1", detected_at=at(n % 5)) for n in range(10)]
    # When a round of 20 is chosen
    chosen = choose(waiting + stale, 20)
    # Then 2 (a tenth) are the stalest accepted ones, the other 18 the waiting ones by rank
    assert len(chosen) == 20
    assert chosen[:2] == ["s00", "s05"]  # detected at 00:00, ties by hash
    assert chosen[2:] == [f"w{n:02d}" for n in range(18)]


def test_never_detected_documents_come_before_the_stalest_share():
    # Given 30 new documents and one detected long ago
    entries = [doc(f"n{n:02d}", updated_at=at(0)) for n in range(30)]
    entries.append(doc("seen", ACCEPTED, seen_by="v1", detected_at=at(0)))
    # Then a round of 10 takes new ones only; once 9 or fewer are new, the share (1) goes to it
    assert choose(entries, 10) == [f"n{n:02d}" for n in range(10)]
    assert choose(entries[21:], 10) == [f"n{n:02d}" for n in range(21, 30)] + ["seen"]
    waiting = [doc(f"w{n:02d}", seen_by="v2", detected_at=at(9)) for n in range(20)]
    assert choose(entries[25:] + waiting, 10) == [f"n{n:02d}" for n in range(25, 30)] + ["seen"] + [
        f"w{n:02d}" for n in range(4)]


def test_the_cap_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        RoundSelection(0)


def test_memory_holds_the_cap_and_its_share_not_the_pool():
    selection: RoundSelection[PoolDocument] = RoundSelection(20)
    for number in range(5_000):
        selection.offer(doc(f"d{number:05d}", ACCEPTED, seen_by="v1", detected_at=at(number % 24)))
    assert len(selection._by_rank._heap) == 20 and len(selection._stalest._heap) == 20 // ROTATION_SHARE


def test_tier_counts_name_every_tier():
    assert tier_counts([doc("a"), doc("b", ACCEPTED, seen_by="v1")]) == {
        "never_detected": 1, "waiting": 0, "once_uncertain": 0, "confident": 1}


# --- fairness across rounds --------------------------------------------------------------------------


def simulate(pool: int, cap: int, rounds: int, stays_waiting: float, seed: int = 0) -> list[set[str]]:
    """Rounds of capped detection over a pool that starts new, each detected document routed as the
    route stage would: waiting (uncertain, over the review budget) with probability `stays_waiting`,
    else accepted; restamped either way. Returns the documents each round detected."""
    rng = random.Random(seed)
    entries = {f"{number:06x}": doc(f"{number:06x}", updated_at=at(0)) for number in range(pool)}
    detected: list[set[str]] = []
    for round_number in range(1, rounds + 1):
        version, stamp = f"v{round_number}", f"2026-12-{round_number:02d}T12:00:00Z"
        selection: RoundSelection[PoolDocument] = RoundSelection(cap)
        for entry in entries.values():
            if not (entry.status == ACCEPTED and entry.seen_by == version):
                selection.offer(entry)
        chosen = selection.chosen()
        assert len(chosen) <= cap
        for entry in chosen:
            uncertain = rng.random() < stays_waiting
            entry.status = WAITING if uncertain else ACCEPTED
            entry.seen_by, entry.detected_at = version, stamp
            entry.uncertain_by = version if uncertain else entry.uncertain_by
        detected.append({entry.doc for entry in chosen})
    return detected


def test_with_room_for_the_accepted_a_full_pass_takes_pool_over_cap_rounds():
    # Given 200 documents, a cap of 50 and a model confident on everything
    rounds = simulate(pool=200, cap=50, rounds=8, stays_waiting=0.0)
    # Then each round detects 50 different documents, and every 4 rounds the whole pool once
    for start in (0, 4):
        assert set().union(*rounds[start:start + 4]) == {f"{n:06x}" for n in range(200)}
        assert sum(len(r) for r in rounds[start:start + 4]) == 200


def test_when_waiting_documents_fill_every_round_the_stalest_share_still_reaches_everyone():
    # Given a model unsure of 60 % of what it sees (the waiting tier alone exceeds the cap)
    pool, cap = 300, 30
    rounds = simulate(pool=pool, cap=cap, rounds=60, stays_waiting=0.6, seed=3)
    # Then after the first pass over the new documents, every document is seen again within
    # ceil(pool / (cap // 10)) rounds, as the module promises
    first_pass = math.ceil(pool / cap)
    bound = math.ceil(pool / (cap // ROTATION_SHARE))
    window = rounds[first_pass:first_pass + bound]
    assert set().union(*window) == {f"{n:06x}" for n in range(pool)}
