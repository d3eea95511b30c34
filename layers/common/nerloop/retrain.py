"""When to write a new training snapshot, and never while another training is in flight (a
single-flight lock).

A retrain is due when any of these holds (`retrain_reason`, a pure decision):
- requested     gold changed outside reviews (a labeling job added documents);
- batch         `RetrainBatchSize` reviews are pending (merged, not yet in a snapshot);
- loops-ended   at least one review is pending and no human loop is open: every loop routed so far
                was answered, failed, expired or stopped, so no more reviews can come until the next
                version routes again (without this, fewer uncertain documents than a batch would
                leave the reviews unused for ever);
- waited        at least one review is pending and the oldest pending review was merged
                `RetrainMaxWaitMinutes` ago or more (0 turns this off).

Who checks: merge, after every loop that ends (Completed, Failed or Stopped, and on a redelivery);
detect, when a training ends and frees the lock; convert, after a labeling job; watch, every minute
(the only one that sees time pass with no event, and a backstop for a lock freed with no check
after it, such as a rejected snapshot). Each check that finds a retrain due while a training holds
the lock does nothing: the end of that training (detect) checks again, as does the next minute's
watch, so a due retrain always starts once the lock is free.

Counters (state table, COUNTER family):
- REVIEWS              reviews merged so far (atomic ADD, once per human loop); it remembers when the
                       oldest pending review was merged (`first_epoch`, see CounterRepository.restamp)
- REVIEWS_AT_SNAPSHOT  the REVIEWS value the latest snapshot included
- RETRAIN_REQUESTED    raised when gold changed outside reviews; a snapshot clears it
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from nerloop.observability import logger
from nerloop.settings import Settings
from nerloop.snapshots import SNAPSHOT_COUNTER, Snapshot, write_snapshot
from nerloop.state import COUNTER_FIRST, GoldDocument, StateTable
from nerloop.test_set import DEFAULT_TEST_SHARE

REVIEWS = "REVIEWS"
REVIEWS_AT_SNAPSHOT = "REVIEWS_AT_SNAPSHOT"
RETRAIN_REQUESTED = "RETRAIN_REQUESTED"
RETRAIN_DONE = "RETRAIN_DONE"
# Recorded with the lock beside the counters a snapshot settles: when it read REVIEWS (not a counter).
# The suffix marks it a time for whoever compares states (nerloop_local.commands.chaos_state).
TAKEN_EPOCH = "taken_epoch"
# A training lock older than this is taken over (TrainingLock.acquire's default).
LOCK_STALE_SECONDS = 24 * 3600

REQUESTED = "requested"
BATCH = "batch"
LOOPS_ENDED = "loops-ended"
WAITED = "waited"


def epoch_seconds() -> int:
    """Now, in whole seconds since the epoch (one place, so tests can move the clock)."""
    return int(time.time())


@dataclass(frozen=True)
class RetrainPolicy:
    """The retrain triggers' settings: `RetrainBatchSize` and `RetrainMaxWaitMinutes` (0 = no limit)."""

    batch_size: int
    max_wait_minutes: int = 0
    test_share: float = DEFAULT_TEST_SHARE  # of the gold set held out for testing (nerloop.test_set)

    @classmethod
    def of(cls, settings: Settings) -> RetrainPolicy:
        return cls(settings.retrain_batch_size, settings.retrain_max_wait_minutes, settings.test_share)


def retrain_reason(policy: RetrainPolicy, *, requested: bool, pending: int, loops_open: bool,
                   pending_since: int | None, now: int) -> str | None:
    """Why a retrain is due (REQUESTED, BATCH, LOOPS_ENDED or WAITED), or None when it is not.

    `pending`: reviews merged and not yet in a snapshot; `loops_open`: any human loop InProgress;
    `pending_since`: when the oldest pending review was merged (None when unknown: reviews merged
    before the time was kept count as having waited long enough)."""
    if requested:
        return REQUESTED
    if pending <= 0:
        return None
    if pending >= policy.batch_size:
        return BATCH
    if not loops_open:
        return LOOPS_ENDED
    if policy.max_wait_minutes and (pending_since is None or now - pending_since >= policy.max_wait_minutes * 60):
        return WAITED
    return None


@dataclass
class _Reading:
    reviews: int
    requested: int
    snapshots: int
    reason: str | None
    lock_held: bool  # by a training not yet stale (see TrainingLock.acquire)


# What a retrain decision reads, in one strongly consistent BatchGetItem (`StateTable.get_items`; keys of
# any partition, up to 100 a request, `ConsistentRead`:
# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html): the
# counters and the training lock. Whether a loop is open is a Query of its own (OPEN-LOOP markers), made
# only when it can change the decision.
_COUNTERS = (REVIEWS, RETRAIN_REQUESTED, RETRAIN_DONE, REVIEWS_AT_SNAPSHOT, SNAPSHOT_COUNTER)
_DECISION_KEYS = [*(("COUNTER", name) for name in _COUNTERS), ("LOCK", "TRAINING")]


def _read_due(state: StateTable, policy: RetrainPolicy, now: int, *, lock_decides: bool = False) -> _Reading:
    """The counters and the lock in one read, and why a retrain is due. With `lock_decides`, a lock
    held by a training skips the open-loop read: no retrain can start then, whatever it would say."""
    items = state.get_items(_DECISION_KEYS)
    counters = {name: int(items.get(("COUNTER", name), {}).get("value", 0)) for name in _COUNTERS}
    first = items.get(("COUNTER", REVIEWS), {}).get(COUNTER_FIRST)
    lock = items.get(("LOCK", "TRAINING"))
    lock_held = lock is not None and int(lock.get("acquired_epoch", 0)) >= now - LOCK_STALE_SECONDS
    reviews, requested = counters[REVIEWS], counters[RETRAIN_REQUESTED]
    requested_pending = requested > counters[RETRAIN_DONE]
    pending = reviews - counters[REVIEWS_AT_SNAPSHOT]
    # The open-loop read only when it can decide: reviews pending, short of a batch (and no lock held).
    loops_open = (requested_pending or not 0 < pending < policy.batch_size or (lock_decides and lock_held)
                  or state.loops.any_open())
    return _Reading(reviews, requested, counters[SNAPSHOT_COUNTER], retrain_reason(
        policy, requested=requested_pending, pending=pending, loops_open=loops_open,
        pending_since=int(first) if first is not None else None, now=now), lock_held)


def merge_review_counted(state: StateTable, loop_name: str, gold: GoldDocument) -> bool:
    """Record the human loop Completed, write its gold labels (the pool item marked gold) and count
    its review, in one transaction (False, and nothing changed, when it had already finished)."""
    return state.loops.merge_review(loop_name, gold, REVIEWS, first_epoch=epoch_seconds())


def settle(state: StateTable, owed: dict[str, int]) -> None:
    """Raise each counter to what a written snapshot settled (never lowers: safe to repeat), and
    move the oldest pending review's time past the reviews the snapshot took."""
    for name, value in owed.items():
        if name != TAKEN_EPOCH:
            state.counters.set(name, value)
    if REVIEWS_AT_SNAPSHOT in owed and TAKEN_EPOCH in owed:
        state.counters.restamp(REVIEWS, owed[REVIEWS_AT_SNAPSHOT], owed[TAKEN_EPOCH])


def release_training(state: StateTable, holder: str) -> None:
    """The training of `holder` ended (trained, failed or rejected): settle what its snapshot owed,
    in case the call that wrote it failed before it could, then free the lock."""
    settle(state, state.training_lock.owed(holder))
    state.training_lock.release(holder)


def pending_reviews(state: StateTable) -> int:
    return state.counters.get(REVIEWS) - state.counters.get(REVIEWS_AT_SNAPSHOT)


def retrain_due(state: StateTable, policy: RetrainPolicy, now: int | None = None) -> str | None:
    """Why a retrain is due now (see `retrain_reason`), or None; whether a training holds the lock
    is not asked."""
    return _read_due(state, policy, epoch_seconds() if now is None else now).reason


@dataclass(frozen=True)
class RetrainCheck:
    """What a retrain check found: the snapshot it wrote (None when none was due or a training holds
    the lock) and the REVIEWS count it read."""

    snapshot: Snapshot | None
    reviews: int

    @property
    def version(self) -> str | None:
        return self.snapshot.version if self.snapshot else None


def maybe_start_retrain(state: StateTable, s3: Any, bucket: str, policy: RetrainPolicy) -> Snapshot | None:
    """Write training/<version>/ when a retrain is due and no training holds the lock (see
    `check_retrain`)."""
    return check_retrain(state, s3, bucket, policy).snapshot


def check_retrain(state: StateTable, s3: Any, bucket: str, policy: RetrainPolicy) -> RetrainCheck:
    """Write training/<version>/ when a retrain is due and no training holds the lock.

    Exactly one caller wins the lock, so concurrent reviews completing a batch start one training.
    The lock stays with the new version until the detect stage sees its training end, however it ends
    (recognizers.TRAINING_END_STATUSES), or the train stage rejects the snapshot. One BatchGetItem
    decides in the common cases (nothing due, or a training holds the lock).
    """
    first = _read_due(state, policy, epoch_seconds(), lock_decides=True)
    if first.reason is None:
        return RetrainCheck(None, first.reviews)
    if first.lock_held:
        # The lock was read with the counters: asking for it (a conditional put that fails) would change nothing.
        logger.info("retrain due but a training is in flight", reason=first.reason)
        return RetrainCheck(None, first.reviews)
    token = f"pending-{uuid.uuid4().hex}"
    if not state.training_lock.acquire(token, LOCK_STALE_SECONDS):
        logger.info("retrain due but a training is in flight", holder=state.training_lock.holder())
        return RetrainCheck(None, first.reviews)
    holder = token
    written = False
    try:
        # Read again under the lock: another caller may have snapshotted between our checks. REVIEWS
        # is read before the time is taken, so every review the snapshot includes was merged before it.
        reading = _read_due(state, policy, epoch_seconds())
        if reading.reason is None:
            state.training_lock.release(token)
            return RetrainCheck(None, first.reviews)
        reviews, requested = reading.reviews, reading.requested
        # The number is taken under the lock and counted only once the snapshot is written, so a
        # snapshot that failed half way is written again under the same name: no gaps in v1, v2, ...
        # What the snapshot settles is recorded with the lock, so that it is settled even when
        # this call fails after writing: at the latest when the training ends (`release_training`).
        number = reading.snapshots + 1
        version = f"v{number}"
        owed = {SNAPSHOT_COUNTER: number, REVIEWS_AT_SNAPSHOT: reviews, RETRAIN_DONE: requested,
                TAKEN_EPOCH: epoch_seconds()}
        state.training_lock.rename(token, version, **owed)
        holder = version
        snapshot = write_snapshot(state, s3, bucket, version, test_share=policy.test_share)
        written = True  # its annotations file starts the training: from here the lock must stay
        settle(state, owed)
    except Exception:
        if not written:
            state.training_lock.release(holder)
        raise
    if snapshot.stats.left_out:  # the gold set outgrew Comprehend's maxima (nerloop.snapshots' policy)
        logger.warning("training snapshot left out the oldest gold documents", version=version,
                       left_out=snapshot.stats.left_out, documents=snapshot.stats.documents)
    logger.info("training snapshot written", version=version, documents=snapshot.stats.documents,
                reviews=reviews, reason=reading.reason)
    return RetrainCheck(snapshot, first.reviews)
