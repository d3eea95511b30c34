"""Which documents people review: pure decisions, no I/O.

A document is uncertain when ANY of its entities scores below the confidence threshold (every
entity counts, not only the first); a score exactly at the threshold is confident. Without a review
budget every uncertain document goes to review and the others are accepted.

A review budget caps the human loops of one detection job, and is spent in two parts:
1. Uncertain documents, most expected errors first: the sum over a document's entities of
   (1 - score), the number of its predicted entities a reviewer can expect to correct
   (`expected_errors`). It prefers a document with several doubtful entities to one with a single
   one. Offline (`python -m bench.selection`, 10 % of the pool a round) it beat the lowest minimum
   score by +0.016 / +0.017 / +0.009 F1 after 10 / 20 / 30 % of CoNLL-2003 train (3,000 sentences,
   5 seeds), +0.021 / +0.023 / +0.003 on CoNLL-2003 validation, and was within noise of it on the
   sample (-0.001 to -0.004, 10 seeds); bench/README.md, "Choosing the selection".
2. When fewer documents are uncertain than the budget, the rest of it goes to the other documents
   (`fill_priority`): the most expected errors among their confident entities first, then the
   longest among those with no predicted entity. Those hold the entities the model misses, which a
   threshold on its own predictions can never send to a person; and a budget that always fills
   keeps every round's retrain batch full while unreviewed documents remain.

Both parts short-list a multiple of their share with a bounded heap while the output streams past,
then choose passing over a document whose words mostly repeat one already chosen (`pick_diverse`):
near-duplicate headlines teach the model the same thing twice. The documents left over stay waiting
(uncertain) or accepted (the others), so the next model version sees them again.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, Protocol, TypeVar

REVIEW = "review"
ACCEPT = "accept"
# The short list holds this many times the budget: enough near-duplicates can be passed over while
# memory stays bounded by the budget, not by the detection job's size.
SHORTLIST_FACTOR = 4
# Two documents sharing more than this share of their distinct words (Jaccard) are near-duplicates.
# Measured on the sample with the local recognizer (10 seeds, 3 rounds): passing them over raised
# test F1 over plain least-confident-first in round 1 and did not lower it later.
MAX_WORD_OVERLAP = 0.3
_WORD = re.compile(r"\w+")

T = TypeVar("T")


class Scored(Protocol):
    @property
    def score(self) -> float: ...


def min_score(entities: Iterable[Scored]) -> float | None:
    """The lowest score among `entities`; None when there are none."""
    return min((entity.score for entity in entities), default=None)


def route_decision(entities: Iterable[Scored], threshold: float) -> str:
    """REVIEW when any entity scores below `threshold`, else ACCEPT."""
    lowest = min_score(entities)
    return REVIEW if lowest is not None and lowest < threshold else ACCEPT


def expected_errors(entities: Iterable[Scored]) -> float:
    """The number of `entities` a reviewer can expect to correct: the sum of (1 - score)."""
    return sum(1.0 - entity.score for entity in entities)


def fill_priority(entities: Sequence[Scored], text: str) -> float:
    """How much a document the model is confident about is worth a review when the budget has room:
    its expected errors; a document with no predicted entity ranks below any with one, longer first
    (more words the model may have missed)."""
    if entities:
        return 1.0 + expected_errors(entities)
    words = len(_WORD.findall(text))
    return words / (words + 1.0)  # in [0, 1): below every document with an entity


class ReviewBudget(Generic[T]):
    """Keeps the `capacity` (= `limit` * `shortlist_factor`) documents of highest priority offered
    to it; `limit` 0 means no limit.

    Memory holds at most `capacity` items. Ties on the priority keep the document offered first (the
    lower `order`), so the choice does not depend on heap internals.
    """

    def __init__(self, limit: int, shortlist_factor: int = 1) -> None:
        if limit < 0:
            raise ValueError("a review budget cannot be negative")
        if shortlist_factor < 1:
            raise ValueError("the short list must hold at least the budget")
        self.limit = limit
        self.capacity = limit * shortlist_factor
        # A min-heap on (priority, -order): its top is the first to give up its place.
        self._heap: list[tuple[float, int, T]] = []

    @property
    def unlimited(self) -> bool:
        return self.limit == 0

    def offer(self, priority: float, order: int, item: T) -> T | None:
        """Offer a document; return the item that is now over budget (maybe this one), or None.

        `order` must be unique per offer (e.g. the document's line).
        """
        if self.unlimited:
            return None
        entry = (priority, -order, item)
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, entry)
            return None
        if entry[:2] > self._heap[0][:2]:  # wanted more, or as much and offered earlier
            return heapq.heapreplace(self._heap, entry)[2]
        return item

    def selected(self) -> list[T]:
        """The kept items, highest priority first."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]

    def __len__(self) -> int:
        return len(self._heap)

    def entries(self) -> list[tuple[float, int, T]]:
        """What the budget holds, as (priority, -order, item): a checkpoint's copy for `load`."""
        return list(self._heap)

    def load(self, entries: Sequence[tuple[float, int, T]]) -> None:
        """Hold what `entries` copied (the budget of a run going on from a checkpoint)."""
        self._heap = [(priority, order, item) for priority, order, item in entries]
        heapq.heapify(self._heap)


def word_set(text: str) -> frozenset[str]:
    """The distinct words of `text`, case folded."""
    return frozenset(_WORD.findall(text.casefold()))


def word_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    """Jaccard similarity of two word sets, in [0, 1]; 0 when both are empty."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def pick_diverse(
    ranked: Sequence[T],
    limit: int,
    words: Callable[[T], frozenset[str]],
    max_overlap: float = MAX_WORD_OVERLAP,
) -> tuple[list[T], list[T]]:
    """Choose up to `limit` of `ranked` (most wanted first), passing over an item whose words overlap
    one already chosen by more than `max_overlap`; when too few remain, the budget is filled with the
    passed-over ones in rank order, so diversity never costs a review. Returns (chosen, the rest),
    each in rank order."""
    chosen: list[int] = []
    chosen_words: list[frozenset[str]] = []
    passed: list[int] = []
    for index, item in enumerate(ranked):
        if len(chosen) == limit:
            break
        mine = words(item)
        if any(word_overlap(mine, other) > max_overlap for other in chosen_words):
            passed.append(index)
            continue
        chosen.append(index)
        chosen_words.append(mine)
    chosen += passed[: max(0, limit - len(chosen))]
    taken = set(chosen)
    return [ranked[i] for i in sorted(chosen)], [item for i, item in enumerate(ranked) if i not in taken]
