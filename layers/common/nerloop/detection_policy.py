"""Which pool documents a model version detects in a round: pure decisions, no I/O.

A round is the detection that follows a training's end (the detect stage's `start_detection`). Without
a cap it covers every document still waiting and every accepted one the detecting version has not
seen, so its inference (billed by the character) grows with the whole pool. `DetectionDocumentsPerRound`
caps it; when more documents are eligible than the cap, those most worth a look go first, by tier:

0. never detected by any version (new text that arrived before a version was active, or whose own
   batch detection has not been routed yet): oldest in the pool first;
1. waiting: found uncertain but left over by the review budget, or sent back by a human loop that
   ended without an answer, or failed in Comprehend: longest waiting first (since its last detection);
2. accepted now but found uncertain by an earlier version: least recently detected first;
3. accepted and never found uncertain: least recently detected first.

Ties go by document hash (uniform, and stable between attempts, so a retried start chooses the same).

Fairness: of the room the never-detected documents leave, a share (`ROTATION_SHARE`: a tenth of the
cap) goes to the documents already detected that waited longest since their last detection, whatever
their tier. Detection restamps a document, so each round moves the stalest to the back of that line:
however many documents wait, every document already detected is looked at again within
ceil(E / (cap // 10)) rounds once the new ones are through, E being the eligible documents (100
rounds for 100,000 documents under a cap of 10,000). When the waiting documents leave room for the
accepted ones, which go stalest first as well, a full pass takes ceil(E / cap) rounds (10). New
documents come first in every round: each is new only once, so they cannot hold the line for ever
(and a batch that arrives while a version is active is detected on arrival, outside the cap). A cap
under 10 reserves no share: its rounds go by tier alone.

The selection keeps at most cap + cap // 10 documents in memory, however large the pool.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from nerloop.state import WAITING

NEVER_DETECTED = 0
WAITING_TIER = 1
ONCE_UNCERTAIN = 2
CONFIDENT = 3
TIER_NAMES = {NEVER_DETECTED: "never_detected", WAITING_TIER: "waiting", ONCE_UNCERTAIN: "once_uncertain",
              CONFIDENT: "confident"}
ROTATION_SHARE = 10  # one round's cap in this many goes to the documents detected longest ago

Rank = tuple[int, str, str]  # (tier, since, document hash): the smaller, the sooner detected


class PoolEntry(Protocol):
    """What the policy reads of a pool item (`nerloop.state.PoolDocument` has it)."""

    @property
    def doc(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def seen_by(self) -> str: ...  # the version that detected it last ("" = none yet)
    @property
    def detected_at(self) -> str: ...  # when that detection was routed (ISO 8601, UTC)
    @property
    def uncertain_by(self) -> str: ...  # the last version that found it uncertain ("" = none)
    @property
    def updated_at(self) -> str: ...  # the item's last change (for a document never detected: its arrival)


E = TypeVar("E", bound=PoolEntry)


def detection_tier(entry: PoolEntry) -> int:
    """The tier of an eligible document (waiting, or accepted): see the module's docstring."""
    if not entry.seen_by:
        return NEVER_DETECTED
    if entry.status == WAITING:
        return WAITING_TIER
    return ONCE_UNCERTAIN if entry.uncertain_by else CONFIDENT


def detection_rank(entry: PoolEntry) -> Rank:
    """The order in which eligible documents are detected under a cap (smallest first).

    `since` is the last detection's time, or, for a document never detected (or recorded before the
    time was kept), the item's last change; ISO 8601 strings in UTC sort as times do."""
    return detection_tier(entry), entry.detected_at or entry.updated_at, entry.doc


class _Worst(Generic[E]):
    """A heap entry ordered backwards, so heapq's min-heap keeps the largest rank on top."""

    __slots__ = ("entry", "key")

    def __init__(self, key: tuple[str, ...] | Rank, entry: E) -> None:
        self.key = key
        self.entry = entry

    def __lt__(self, other: _Worst[E]) -> bool:
        return self.key > other.key


class _Smallest(Generic[E]):
    """The `size` entries of smallest key offered so far (bounded memory)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._heap: list[_Worst[E]] = []

    def offer(self, key: tuple[str, ...] | Rank, entry: E) -> None:
        if self.size <= 0:
            return
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, _Worst(key, entry))
        elif key < self._heap[0].key:
            heapq.heapreplace(self._heap, _Worst(key, entry))

    def ordered(self) -> list[E]:
        return [worst.entry for worst in sorted(self._heap, key=lambda worst: worst.key)]


@dataclass
class RoundSelection(Generic[E]):
    """The documents one round detects under `cap` (at least 1; without a cap the detect stage
    streams every eligible document instead), offered one by one as the pool is read. `chosen()`
    gives them most wanted first."""

    cap: int
    offered: int = 0
    _by_rank: _Smallest[E] = field(init=False)
    _stalest: _Smallest[E] = field(init=False)

    def __post_init__(self) -> None:
        if self.cap < 1:
            raise ValueError("a round's detection cap must be at least 1")
        self._by_rank = _Smallest(self.cap)
        self._stalest = _Smallest(self.cap // ROTATION_SHARE)

    def offer(self, entry: E) -> None:
        """Offer an eligible document (waiting, or accepted and not seen by the detecting version)."""
        self.offered += 1
        rank = detection_rank(entry)
        self._by_rank.offer(rank, entry)
        if rank[0] != NEVER_DETECTED:
            self._stalest.offer((rank[1], rank[2]), entry)

    def chosen(self) -> list[E]:
        """At most `cap` documents: those never detected; in the room they leave, the stalest share,
        then the rest by rank."""
        ranked = self._by_rank.ordered()
        new = [entry for entry in ranked if detection_tier(entry) == NEVER_DETECTED]
        stalest = self._stalest.ordered()[: self.cap - len(new)]
        taken = {entry.doc for entry in stalest}
        rest = [entry for entry in ranked[len(new):] if entry.doc not in taken]
        return new + stalest + rest[: self.cap - len(new) - len(stalest)]

    def left(self) -> int:
        """Eligible documents this round leaves for later rounds."""
        return max(0, self.offered - self.cap)


def tier_counts(entries: Iterable[PoolEntry]) -> dict[str, int]:
    """How many of `entries` are in each tier, by tier name (for logs and results)."""
    counts = Counter(TIER_NAMES[detection_tier(entry)] for entry in entries)
    return {name: counts[name] for name in TIER_NAMES.values()}
