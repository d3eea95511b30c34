"""When to write a new training snapshot: after `RetrainBatchSize` new reviews, or when a labeling
job added gold documents, and never while another training is in flight (a single-flight lock).

Counters (state table, COUNTER family):
- REVIEWS              reviews merged so far (atomic ADD, once per human loop)
- REVIEWS_AT_SNAPSHOT  the REVIEWS value the latest snapshot included
- RETRAIN_REQUESTED    raised when gold changed outside reviews; a snapshot clears it
"""

from __future__ import annotations

import uuid
from typing import Any

from nerloop.observability import logger
from nerloop.snapshots import SNAPSHOT_COUNTER, Snapshot, write_snapshot
from nerloop.state import StateTable

REVIEWS = "REVIEWS"
REVIEWS_AT_SNAPSHOT = "REVIEWS_AT_SNAPSHOT"
RETRAIN_REQUESTED = "RETRAIN_REQUESTED"
RETRAIN_DONE = "RETRAIN_DONE"


def count_review(state: StateTable) -> int:
    """Count one merged review; return the new total."""
    return state.add_to_counter(REVIEWS)


def request_retrain(state: StateTable) -> None:
    """Ask for a retrain regardless of the review count (gold changed another way)."""
    state.add_to_counter(RETRAIN_REQUESTED)


def settle(state: StateTable, owed: dict[str, int]) -> None:
    """Raise each counter to what a written snapshot settled (never lowers: safe to repeat)."""
    for name, value in owed.items():
        state.set_counter(name, value)


def release_training(state: StateTable, holder: str) -> None:
    """The training of `holder` ended (trained, failed or rejected): settle what its snapshot owed,
    in case the call that wrote it failed before it could, then free the lock."""
    settle(state, state.training_lock_owed(holder))
    state.release_training_lock(holder)


def pending_reviews(state: StateTable) -> int:
    return state.get_counter(REVIEWS) - state.get_counter(REVIEWS_AT_SNAPSHOT)


def retrain_due(state: StateTable, batch_size: int) -> bool:
    requested = state.get_counter(RETRAIN_REQUESTED) > state.get_counter(RETRAIN_DONE)
    return requested or pending_reviews(state) >= batch_size


def maybe_start_retrain(state: StateTable, s3: Any, bucket: str, batch_size: int) -> Snapshot | None:
    """Write training/<version>/ when a retrain is due and no training holds the lock.

    Exactly one caller wins the lock, so concurrent reviews completing a batch start one training.
    The lock stays with the new version until the detect stage sees it TRAINED or IN_ERROR.
    """
    if not retrain_due(state, batch_size):
        return None
    token = f"pending-{uuid.uuid4().hex}"
    if not state.acquire_training_lock(token):
        logger.info("retrain due but a training is in flight", holder=state.training_lock_holder())
        return None
    holder = token
    written = False
    try:
        reviews = state.get_counter(REVIEWS)
        requested = state.get_counter(RETRAIN_REQUESTED)
        if not (requested > state.get_counter(RETRAIN_DONE)
                or reviews - state.get_counter(REVIEWS_AT_SNAPSHOT) >= batch_size):
            state.release_training_lock(token)  # another caller snapshotted between our checks
            return None
        # The number is taken under the lock and counted only once the snapshot is written, so a
        # snapshot that failed half way is written again under the same name: no gaps in v1, v2, ...
        # What the snapshot settles is recorded with the lock, so that it is settled even when
        # this call fails after writing: at the latest when the training ends (`release_training`).
        number = state.get_counter(SNAPSHOT_COUNTER) + 1
        version = f"v{number}"
        owed = {SNAPSHOT_COUNTER: number, REVIEWS_AT_SNAPSHOT: reviews, RETRAIN_DONE: requested}
        state.rename_training_lock(token, version, **owed)
        holder = version
        snapshot = write_snapshot(state, s3, bucket, version)
        written = True  # its annotations file starts the training: from here the lock must stay
        settle(state, owed)
    except Exception:
        if not written:
            state.release_training_lock(holder)
        raise
    logger.info("training snapshot written", version=version, documents=snapshot.stats.documents,
                reviews=reviews)
    return snapshot
