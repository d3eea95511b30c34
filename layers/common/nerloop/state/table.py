"""`StateTable`: the one object the stages receive, its attributes the repositories of each item family."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nerloop.state._table import TableAccess
from nerloop.state.coordination import CounterRepository, SeedLabeling, TrainingLock
from nerloop.state.gold import GoldRepository
from nerloop.state.jobs import JobRepository
from nerloop.state.loops import LoopRepository
from nerloop.state.pool import PoolRepository
from nerloop.state.versions import VersionRepository


class StateTable:
    """The state table, one repository an item family: `gold`, `pool`, `versions`, `jobs`, `loops`,
    `counters`, `training_lock`, `seed_labeling`."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.access = TableAccess(table)
        self.pool = PoolRepository(self.access)
        self.gold = GoldRepository(self.access, self.pool)
        self.versions = VersionRepository(self.access)
        self.jobs = JobRepository(self.access)
        self.loops = LoopRepository(self.access)
        self.counters = CounterRepository(self.access)
        self.training_lock = TrainingLock(self.access)
        self.seed_labeling = SeedLabeling(self.access)

    def get_items(self, keys: Iterable[tuple[str, str]],
                  consistent: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """The items at `keys` ((pk, sk) pairs, of any families; missing ones left out), 100 keys a
        BatchGetItem request, unprocessed keys asked again; strongly consistent unless told otherwise."""
        return self.access.get_items(keys, consistent)
