"""The retrain trigger: exact review counts, one snapshot per due batch, none while training."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest

from nerloop.documents import Span, document_hash
from nerloop.retrain import (
    RETRAIN_REQUESTED,
    RetrainPolicy,
    maybe_start_retrain,
    merge_review_counted,
    pending_reviews,
)
from nerloop.state import GoldDocument, Loop, StateTable
from nerloop.state.coordination import CounterRepository

TEN = RetrainPolicy(batch_size=10)


def table(emulated) -> StateTable:
    return StateTable(boto3.resource("dynamodb").Table(emulated.table_name))


def add_gold(state: StateTable, count: int) -> None:
    for i in range(count):
        text = f"Amazon Service{i} launches"
        state.gold.put(GoldDocument(document_hash(text), text, [Span(0, 6 + 1 + len(f"Service{i}"), "SERVICE")],
                                    origin="test"))


_loop_numbers = itertools.count(1)


def merge_a_review(state: StateTable) -> None:
    """One review merged as the merge stage merges it (`merge_review_counted`): a human loop over a gold
    document (add_gold's first) completes, its labels are written again and the review counted, in one
    transaction. The gold set keeps its size, so snapshots count the same documents."""
    text = "Amazon Service0 launches"
    loop = Loop(f"v0-review-{next(_loop_numbers)}", document_hash(text), "v0", "InProgress")
    assert state.loops.put(loop)
    gold = GoldDocument(loop.doc, text, [Span(0, len("Amazon Service0"), "SERVICE")], origin=f"review:{loop.name}")
    assert merge_review_counted(state, loop.name, gold)


def keep_a_loop_open(state: StateTable) -> None:
    """A human loop still in review: more reviews may come, so only a full batch is due."""
    state.loops.put(Loop("v0-open", "doc-open", "v0", "InProgress"))


def snapshot_keys(emulated) -> list[str]:
    listing = emulated.s3.list_objects_v2(Bucket=emulated.bucket, Prefix="training/")
    # The training files only: a snapshot's test files (nerloop.test_set) come and go with its gold set.
    return sorted(item["Key"] for item in listing.get("Contents", []) if "/test-" not in item["Key"])


def test_concurrent_reviews_start_exactly_one_training(emulated):
    state = table(emulated)
    add_gold(state, 5)
    keep_a_loop_open(state)

    def review(_: int) -> str | None:
        own = table(emulated)  # each worker its own resource, as separate Lambda invocations would have
        merge_a_review(own)
        snapshot = maybe_start_retrain(own, boto3.client("s3"), emulated.bucket, RetrainPolicy(10))
        return snapshot.version if snapshot else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = [v for v in pool.map(review, range(40)) if v]

    assert versions == ["v1"]
    assert state.counters.get("REVIEWS") == 40
    assert snapshot_keys(emulated) == ["training/v1/annotations.csv", "training/v1/documents.txt"]
    assert state.training_lock.holder() == "v1"
    # The snapshot was due (at least one full batch) and what came after it is still owed a training
    assert 10 <= state.counters.get("REVIEWS_AT_SNAPSHOT") <= 40
    assert pending_reviews(state) == 40 - state.counters.get("REVIEWS_AT_SNAPSHOT")


def test_the_next_batch_waits_for_the_lock(emulated):
    state = table(emulated)
    add_gold(state, 3)
    for _ in range(10):
        merge_a_review(state)
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN).version == "v1"
    for _ in range(10):
        merge_a_review(state)

    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN) is None  # v1 still training
    state.training_lock.release("v1")
    snapshot = maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN)
    assert snapshot is not None and snapshot.version == "v2" and snapshot.stats.documents == 3
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN) is None  # nothing new is due


def test_a_request_starts_a_retrain_without_reviews(emulated):
    state = table(emulated)
    add_gold(state, 3)
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN) is None
    state.counters.count_once("retrain-request/convert/job-1", RETRAIN_REQUESTED)  # as the convert stage asks
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN).version == "v1"
    state.training_lock.release("v1")
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN) is None


def write_snapshot_whose_bookkeeping_fails(emulated, monkeypatch) -> StateTable:
    """Ten reviews due; the snapshot v1 is written, then recording what it settled fails."""
    from nerloop.retrain import REVIEWS_AT_SNAPSHOT

    state = table(emulated)
    add_gold(state, 3)
    for _ in range(10):
        merge_a_review(state)
    real_set_counter = CounterRepository.set
    failures = iter([RuntimeError("throttled past the retries")])

    def set_counter_failing_once(self, name, value):
        if name == REVIEWS_AT_SNAPSHOT:
            for failure in failures:
                raise failure
        real_set_counter(self, name, value)

    monkeypatch.setattr(CounterRepository, "set", set_counter_failing_once)
    with pytest.raises(RuntimeError, match="throttled"):
        maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN)
    return state


def test_a_snapshot_whose_bookkeeping_failed_keeps_the_lock_and_is_settled_when_its_training_ends(
    emulated, monkeypatch
):
    from nerloop.retrain import REVIEWS_AT_SNAPSHOT, release_training

    state = write_snapshot_whose_bookkeeping_fails(emulated, monkeypatch)

    # The training keeps the lock (nothing else starts), and when it ends nothing is due again
    assert state.training_lock.holder() == "v1"
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN) is None
    release_training(state, "v1")
    assert state.counters.get(REVIEWS_AT_SNAPSHOT) == 10
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN) is None
    assert snapshot_keys(emulated) == ["training/v1/annotations.csv", "training/v1/documents.txt"]


def test_the_train_stage_taking_the_lock_of_its_version_keeps_what_the_snapshot_owes(emulated, monkeypatch):
    # Found by `make chaos` (an outage at fault seed 5): the train stage re-took the lock with a new
    # item, the owed counters were lost, and the end of the training started a needless retrain.
    from nerloop.retrain import REVIEWS_AT_SNAPSHOT, release_training

    state = write_snapshot_whose_bookkeeping_fails(emulated, monkeypatch)

    assert state.training_lock.acquire("v1") is True  # what the train stage does for the snapshot v1
    assert state.training_lock.acquire("v2") is False
    release_training(state, "v1")
    assert state.counters.get(REVIEWS_AT_SNAPSHOT) == 10
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, TEN) is None


# --- the time limit: from the oldest review not yet in a snapshot ---------------------------------------


def test_the_time_limit_counts_from_the_oldest_review_not_yet_in_a_snapshot(emulated, monkeypatch):
    from nerloop import retrain

    state = table(emulated)
    add_gold(state, 3)
    keep_a_loop_open(state)
    policy = RetrainPolicy(batch_size=3, max_wait_minutes=60)
    clock = {"now": 1_000_000}
    monkeypatch.setattr(retrain, "epoch_seconds", lambda: clock["now"])

    # Three reviews an hour apart fill a batch: v1 takes them all, and nothing is left waiting
    for _ in range(3):
        merge_a_review(state)
        clock["now"] += 3600
    assert retrain.retrain_due(state, policy) == retrain.BATCH
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, policy).version == "v1"
    state.training_lock.release("v1")
    assert state.counters.get_stamped("REVIEWS") == (3, None)

    # A review merged ten hours later waits its own hour, not one from the snapshot
    clock["now"] += 10 * 3600
    merge_a_review(state)
    merged = clock["now"]
    assert retrain.retrain_due(state, policy, now=merged + 3599) is None
    assert retrain.retrain_due(state, policy, now=merged + 3600) == retrain.WAITED


def test_a_review_merged_while_the_snapshot_was_written_waits_from_the_snapshot(emulated, monkeypatch):
    from nerloop import retrain

    state = table(emulated)
    add_gold(state, 3)
    keep_a_loop_open(state)
    policy = RetrainPolicy(batch_size=2, max_wait_minutes=60)
    monkeypatch.setattr(retrain, "epoch_seconds", lambda: 1_000_000)
    merge_a_review(state)
    merge_a_review(state)
    real_write = retrain.write_snapshot

    def write_while_a_review_arrives(*args, **kwargs):
        merge_a_review(state)  # merged after the snapshot read REVIEWS: the next snapshot's
        return real_write(*args, **kwargs)

    monkeypatch.setattr(retrain, "write_snapshot", write_while_a_review_arrives)
    monkeypatch.setattr(retrain, "epoch_seconds", lambda: 1_000_500)
    assert maybe_start_retrain(state, emulated.s3, emulated.bucket, policy).version == "v1"

    assert pending_reviews(state) == 1
    assert state.counters.get_stamped("REVIEWS") == (3, 1_000_500)  # not the first review's 1_000_000
    state.training_lock.release("v1")
    assert retrain.retrain_due(state, policy, now=1_000_500 + 3599) is None
    assert retrain.retrain_due(state, policy, now=1_000_500 + 3600) == retrain.WAITED


def test_a_snapshot_of_a_gold_set_past_comprehends_maxima_holds_the_newest_documents_that_fit(emulated):
    from nerloop.comprehend_training import check_training_minimums
    from nerloop.documents import Span, document_hash
    from nerloop.snapshots import SnapshotLimits, write_snapshot
    from nerloop.state import GoldDocument

    # Given five gold documents labelled on five days, and a maximum of three documents
    texts = [f"Amazon S3 version {n}.0 is now available in region {n}." for n in range(5)]
    for day, text in enumerate(texts, start=1):
        emulated.state.gold.put(GoldDocument(document_hash(text), text, [Span(0, 9, "SERVICE")], origin="review:x",
                                             updated_at=f"2026-01-0{day}T00:00:00Z"))

    snapshot = write_snapshot(emulated.state, emulated.s3, emulated.bucket, "v9",
                              SnapshotLimits(max_documents=3, max_corpus_bytes=10**6), test_share=0.0)

    # Then it holds the three labelled last, in the gold set's (hash) order, with their annotations
    lines = emulated.s3.get_object(Bucket=emulated.bucket, Key=snapshot.documents_key)["Body"].read().decode()
    newest = sorted(texts[2:], key=document_hash)
    assert lines.splitlines() == newest
    rows = emulated.s3.get_object(Bucket=emulated.bucket, Key=snapshot.annotations_key)["Body"].read().decode()
    assert rows.splitlines()[1:] == [f"documents.txt,{line},0,9,SERVICE" for line in range(3)]
    assert (snapshot.stats.documents, snapshot.stats.left_out) == (3, 2)
    assert snapshot.stats.annotations == {"SERVICE": 3}
    assert snapshot.stats.corpus_bytes == len(lines.encode())
    # And what the gold set left out stays in it
    assert sum(1 for _ in emulated.state.gold.documents()) == 5
    assert not [p for p in check_training_minimums(snapshot.stats, ["SERVICE"]) if "at most" in p]
