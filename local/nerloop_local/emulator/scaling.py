"""Make moto's costs grow with what a call touches, not with the table or the queue.

The local mode must carry pools of 10,000+ documents. Two of moto's paths cost O(everything stored)
on every call, and a profile of a 10,000-sentence demo put most of its time in them:
- `Table.query` compares the partition key of every item in the table, to answer a query on one
  partition (and again for every page). `query_one_partition` hands moto's own query a view of
  the table that holds just the queried partition, so its results, order, paging and filters stay
  moto's, at the cost of the partition.
- SQS messages decide whether they are visible by reading the clock through `datetime` objects, and
  every ReceiveMessage (10 messages at most) asks each message in the queue. The event pump receives
  thousands of messages a round, so the clock reads dominated. `epoch_millis` gives moto the same
  number (milliseconds since the epoch) from `time.time()`, about 30 times faster.

And one of moto's paths keeps memory growing with every call: `BaseModel.__new__` appends each model
object it makes (a DynamoDB `Item`, a `Table`, an SQS `Message`, an S3 `FakeKey`) to its class's
`instances_tracked` list, for moto's server dashboard, and never lets go. `copy.copy` and
`copy.deepcopy` make objects through `__new__` too, so every item moto copies for a query, an update
or a transaction, and every message ever sent, stayed alive: a demo grew by megabytes each round.
`make_models_untracked` makes `__new__` create without keeping. Nothing here uses the dashboard; the
only other reader, S3's reset, closes the files of keys it still lists, and an unlisted key closes its
file when it is collected.

`make_moto_scale` installs all three once per process (later calls do nothing).
"""

from __future__ import annotations

import copy
import datetime
import functools
import time
from typing import Any

import moto.sqs.models as sqs_models
from moto.core.common_models import BaseModel
from moto.dynamodb.models.table import Table

_ORIGINAL_QUERY = Table.query


def make_moto_scale() -> None:
    """Patch moto's DynamoDB query, SQS clock and model tracking (idempotent)."""
    if not getattr(Table.query, "_nerloop_partition", False):
        Table.query = query_one_partition  # type: ignore[method-assign]
    if sqs_models.unix_time_millis is not epoch_millis:
        sqs_models.unix_time_millis = epoch_millis
    make_models_untracked()


def make_models_untracked() -> None:
    """moto's models are made as before, but no longer kept in `instances_tracked` (idempotent)."""
    if not getattr(BaseModel.__new__, "_nerloop_untracked", False):
        BaseModel.__new__ = staticmethod(_new_untracked)  # type: ignore[assignment]


def _new_untracked(cls: type, *args: Any, **kwargs: Any) -> Any:
    return super(BaseModel, cls).__new__(cls)  # type: ignore[misc]  # BaseModel.__new__ minus the append


_new_untracked._nerloop_untracked = True  # type: ignore[attr-defined]


@functools.wraps(_ORIGINAL_QUERY)
def query_one_partition(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    """moto's `Table.query`, run on a view of the table holding only the queried partition.

    A query on an index (or without a partition key) is left to moto as it is."""
    if kwargs.get("index_name") or (len(args) > 6 and args[6]) or hash_key is None:
        return _ORIGINAL_QUERY(self, hash_key, *args, **kwargs)
    view = copy.copy(self)  # shares everything with the table but the `items` mapping below
    partition = self.items.get(hash_key)
    view.items = {} if partition is None else {hash_key: partition}  # type: ignore[assignment]
    return _ORIGINAL_QUERY(view, hash_key, *args, **kwargs)


query_one_partition._nerloop_partition = True  # type: ignore[attr-defined]


def epoch_millis(dt: Any = None) -> float:
    """Milliseconds since the epoch, as `moto.core.utils.unix_time_millis` returns them."""
    if dt is None:
        return time.time() * 1000.0
    seconds = dt.timestamp() if dt.tzinfo else (dt - _EPOCH).total_seconds()  # moto's naive times are UTC
    return seconds * 1000.0


_EPOCH = datetime.datetime(1970, 1, 1)
