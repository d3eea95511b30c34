"""Make moto's DynamoDB writes atomic, as the real service's are.

moto checks a write's condition and then applies it in two steps, so two threads can both pass
the same `attribute_not_exists` check. DynamoDB never lets that happen, and the loop relies on it
(the training lock, loop records, counters). One process-wide lock around moto's write paths
restores the guarantee; reads stay concurrent.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_LOCK = threading.RLock()
_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item")


def make_dynamodb_writes_atomic() -> None:
    """Patch moto's DynamoDB backend once per process (later calls do nothing)."""
    from moto.dynamodb.models import DynamoDBBackend

    for name in _WRITES:
        method = getattr(DynamoDBBackend, name, None)
        if method is None or getattr(method, "_nerloop_atomic", False):
            continue

        def atomic(self: Any, *args: Any, __method: Any = method, **kwargs: Any) -> Any:
            with _LOCK:
                return __method(self, *args, **kwargs)

        functools.update_wrapper(atomic, method)
        atomic._nerloop_atomic = True  # type: ignore[attr-defined]
        setattr(DynamoDBBackend, name, atomic)
