"""Which documents people review: pure decisions, no I/O.

A document goes to review when ANY of its entities scores below the confidence threshold (every
entity counts, not only the first); otherwise the model's entities are accepted. A score exactly at
the threshold is confident. A document with no entities has nothing uncertain and is accepted.

A review budget caps the human loops of one detection job: the budget's least confident documents
(lowest minimum score) are kept with a bounded heap while the output streams past; the rest stay
waiting so that the next model version sees them again.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

REVIEW = "review"
ACCEPT = "accept"

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


class ReviewBudget(Generic[T]):
    """Keeps the `limit` least confident documents offered to it; `limit` 0 means no limit.

    Memory holds at most `limit` items. Ties on the score keep the document offered first (the
    lower `order`), so the choice does not depend on heap internals.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("a review budget cannot be negative")
        self.limit = limit
        # A max-heap on (score, order) by negation: its top is the first to give up its place.
        self._heap: list[tuple[float, int, T]] = []

    @property
    def unlimited(self) -> bool:
        return self.limit == 0

    def offer(self, score: float, order: int, item: T) -> T | None:
        """Offer a document; return the item that is now over budget (maybe this one), or None.

        `order` must be unique per offer (e.g. the document's line).
        """
        if self.unlimited:
            return None
        entry = (-score, -order, item)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, entry)
            return None
        if entry > self._heap[0]:  # less confident, or as confident and offered earlier
            return heapq.heapreplace(self._heap, entry)[2]
        return item

    def selected(self) -> list[T]:
        """The kept items, least confident first."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: (-e[0], -e[1]))]

    def __len__(self) -> int:
        return len(self._heap)
