"""Run an effect once per business key, with Powertools Idempotency on the state table.

Keys are business keys (bucket + key + etag, job ARN + status, loop name + status), never event
ids: S3 events redelivered by moto share one id, and real redeliveries get new ones.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

from nerloop.aws import RETRY_CONFIG
from nerloop.observability import logger
from nerloop.stages.results import StageResult, from_dict
from nerloop.state import IDEMPOTENCY_PK

T = TypeVar("T")
R = TypeVar("R", bound=StageResult)

# A record outlives any redelivery window of EventBridge (24 h) and A2I.
CONFIG = IdempotencyConfig(expires_after_seconds=7 * 24 * 3600)


@functools.cache
def persistence(table_name: str, action: str) -> DynamoDBPersistenceLayer:
    # One store per action: Powertools keeps the key prefix on the store itself, so a store
    # shared by two actions could mix their prefixes when threads interleave.
    return DynamoDBPersistenceLayer(
        table_name=table_name,
        key_attr="pk",
        sort_key_attr="sk",
        static_pk_value=IDEMPOTENCY_PK,
        boto_config=RETRY_CONFIG,
    )


SAVE_ATTEMPTS = 4  # recording a completed effect again, after DynamoDB failed the first time


def run_once(table_name: str, action: str, key: dict[str, Any], effect: Callable[[], T]) -> T:
    """Call `effect` once for (`action`, `key`); a repeat returns the first call's result.

    The result must be JSON-serialisable. A failed call leaves no record, so a retry runs again.
    When the effect succeeded but its record could not be marked done, marking it is tried again
    here (`_record_success`): otherwise the record stays in progress, every redelivery is refused
    until it expires, and the loop's later events overtake this one.
    """
    ran: list[T] = []  # the effect's result, once it returned

    def once(business_key: dict[str, Any]) -> T:
        ran.append(effect())
        return ran[-1]

    store = persistence(table_name, action)
    guarded = idempotent_function(
        once,
        data_keyword_argument="business_key",
        persistence_store=store,
        config=CONFIG,
        key_prefix=action,
    )
    try:
        return guarded(business_key=key)  # type: ignore[no-any-return]
    except IdempotencyPersistenceLayerError:
        if not ran:  # the effect did not complete: Powertools' own handling stands
            raise
        _record_success(store, key, ran[-1])
        return ran[-1]


def run_stage_once(table_name: str, action: str, key: dict[str, Any], effect: Callable[[], R],
                   *variants: type[StageResult]) -> R:
    """`run_once` for a stage's effect with a typed result: the record stores its `to_dict()` (the JSON
    the handler returns); a repeat returns it rebuilt as one of `variants` (those `effect` may return)."""
    ran: list[R] = []

    def once() -> dict[str, Any]:
        ran.append(effect())
        return ran[-1].to_dict()

    stored = run_once(table_name, action, key, once)
    if ran:
        return ran[-1]
    return cast(R, from_dict(stored, variants))  # one of the effect's own variants, by its keys


def _record_success(store: DynamoDBPersistenceLayer, key: dict[str, Any], result: Any) -> None:
    """Mark (`key`)'s record completed with `result`, as Powertools would have, pausing between tries;
    the last failure is raised (the event is then retried, as before)."""
    for attempt in range(SAVE_ATTEMPTS):
        try:
            store.save_success(data=key, result=result)
            return
        except Exception:  # whatever DynamoDB raised, the same write is tried again
            if attempt == SAVE_ATTEMPTS - 1:
                raise
            logger.warning("idempotency record not marked done; trying again", attempt=attempt + 1)
            time.sleep(0.2 * 2 ** attempt)


def forget_persistence() -> None:
    """Drop cached persistence layers (tests recreate the emulated table)."""
    persistence.cache_clear()


def bind_lambda_context(context: Any) -> None:
    """Tell Powertools how long this invocation may run, so the in-progress record of a run that
    timed out expires with it and a retry can go ahead (without it, the record blocks until expiry)."""
    CONFIG.register_lambda_context(context)
