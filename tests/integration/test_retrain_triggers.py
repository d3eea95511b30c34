"""Retrain triggers that cannot stall, in local mode through the very handlers that run on AWS: a batch
that cannot fill (fewer uncertain documents than RetrainBatchSize) still trains once every human loop
has ended, answered or expired, or once the oldest pending review waited RetrainMaxWaitMinutes."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop import retrain
from nerloop.state import LOOP_OPEN
from nerloop_local.emulator.runtime import LocalRuntime

BATCH = 50  # more reviews than the small pool can ever give
RAW_LINES = 12


def trained_versions(runtime: LocalRuntime) -> list[str]:
    return sorted(v.version for v in runtime.state.versions.list() if v.status == "TRAINED")


def open_loops(runtime: LocalRuntime) -> list[str]:
    return [loop.name for loop in runtime.state.loops.list((LOOP_OPEN,))]


class Reviewer:
    """Answers every loop with the model's own spans, except those of `hold_back` it is asked first
    about (left InProgress for a person who never comes); answers nothing while `paused`."""

    def __init__(self, hold_back: int = 0) -> None:
        self.hold_back = hold_back
        self.held: list[str] = []
        self.answered: list[str] = []
        self.texts: dict[str, list[str]] = {}  # version → texts answered
        self.paused = False

    def __call__(self, loop_name: str, content: dict[str, Any]) -> list[dict[str, Any]] | None:
        if loop_name in self.held or self.paused:
            return None
        if len(self.held) < self.hold_back:
            self.held.append(loop_name)
            return None
        self.answered.append(loop_name)
        self.texts.setdefault(content["version"], []).append(content["text"])
        return [dict(item) for item in content["initialValue"]]


@pytest.fixture
def start_loop(tmp_path: Path, sample_dir: Path) -> Iterator[Any]:
    """start_loop(reviewer, **parameters): a runtime that has trained v1 from a 45-line seed and routed
    every one of a few raw lines to review (ConfidenceThreshold 0.999), run until idle."""
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed_manifest = b"".join(itertools.islice(manifest, 45))
    raw = "\n".join((sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:RAW_LINES]) + "\n"
    runtimes: list[LocalRuntime] = []

    def start(reviewer: Reviewer, duplicate_events: bool = False, **parameters: str) -> LocalRuntime:
        runtime = LocalRuntime(tmp_path / f"workspace-{len(runtimes)}", {
            "EntityTypes": "SERVICE,VERSION", "ConfidenceThreshold": "0.999", "RetrainBatchSize": str(BATCH),
            "ReviewBudget": "0", "TestShare": "0", **parameters,
        }, reviewer=reviewer, environment={"POWERTOOLS_METRICS_DISABLED": "true"}, autosave=False,
            duplicate_events=duplicate_events)
        runtimes.append(runtime.start())
        runtime.put_text("raw/offerings.txt", raw)
        runtime.label_with_manifest(seed_manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-triggers-seed")
        settle(runtime)
        return runtime

    yield start
    for runtime in runtimes:
        runtime.close(save=False)


def settle(runtime: LocalRuntime) -> None:
    result = runtime.run_until_idle(max_cycles=200)
    assert result.idle and not result.failures, [d.line() for d in result.failures]
    assert runtime.dead_letters() == []


def test_fewer_uncertain_documents_than_a_batch_still_train_the_next_version(start_loop):
    # Given a pool with fewer uncertain documents than RetrainBatchSize, all reviewed
    reviewer = Reviewer()
    runtime = start_loop(reviewer)

    # Then once the last loop is answered the reviews train v2 (before: they waited for ever)
    reviewed = reviewer.texts["v1"]
    assert 0 < len(reviewed) < BATCH
    assert "v2" in trained_versions(runtime)
    documents = runtime.get_text("training/v2/documents.txt").splitlines()
    assert set(reviewed) <= set(documents)
    assert len(documents) == len(runtime.get_text("training/v1/documents.txt").splitlines()) + len(reviewed)
    # and so on for what later versions send to review, until no review is left unused
    assert open_loops(runtime) == []
    assert retrain.pending_reviews(runtime.state) == 0


def test_the_last_open_loop_expiring_starts_the_retrain(start_loop):
    # Given every loop answered but one, which nobody takes
    reviewer = Reviewer(hold_back=1)
    runtime = start_loop(reviewer)
    assert reviewer.answered and open_loops(runtime) == reviewer.held
    assert trained_versions(runtime) == ["v1"]  # a loop is still open: more reviews may come
    assert retrain.pending_reviews(runtime.state) == len(reviewer.answered)

    # When A2I ends it as Failed with failureCode Expired (its task availability lifetime passed)
    runtime.a2i.fail_loop(reviewer.held[0], code="Expired", reason="The human loop expired")
    reviewer.paused = True  # the next version's loops wait: this test is about v2 only
    settle(runtime)

    # Then the reviews pending train v2, and the expired loop's document waits for the next version
    assert trained_versions(runtime)[:2] == ["v1", "v2"]
    assert not [name for name in open_loops(runtime) if name.startswith("v1-")]
    loop = runtime.state.loops.get(reviewer.held[0])
    assert loop is not None and loop.status == "Failed" and loop.failure.startswith("Expired")


def test_pending_reviews_past_the_time_limit_train_through_the_watch(start_loop, monkeypatch):
    # Given reviews pending while a loop stays open, and a time limit of an hour
    reviewer = Reviewer(hold_back=1)
    runtime = start_loop(reviewer, RetrainMaxWaitMinutes="60")
    pending = retrain.pending_reviews(runtime.state)
    assert pending > 0 and trained_versions(runtime) == ["v1"]
    assert runtime.idle()  # nothing happens by itself before the hour is over

    # When the clock passes the hour (no event arrives: only the scheduled watch sees it)
    now = retrain.epoch_seconds()
    monkeypatch.setattr(retrain, "epoch_seconds", lambda: now + 3600)
    assert not runtime.idle()
    reviewer.paused = True
    result = runtime.run_until_idle(max_cycles=200)

    # Then the watch wrote the snapshot of the pending reviews, and v2 trained from it
    assert result.idle and not result.failures
    watch = [d for d in result.deliveries if d.function == "WatchFunction" and (d.result or {}).get("snapshot")]
    assert [d.result["snapshot"] for d in watch] == ["v2"]
    assert trained_versions(runtime)[:2] == ["v1", "v2"]
    assert reviewer.held[0] in open_loops(runtime)  # the open loop did not block it


def test_every_event_delivered_twice_trains_the_short_batch_once(start_loop):
    # Given the short batch, with every event (each loop's end, each status change) delivered twice
    reviewer = Reviewer(hold_back=1)
    runtime = start_loop(reviewer, duplicate_events=True)
    assert trained_versions(runtime) == ["v1"]

    # When the last loop expires (its Failed event delivered twice as well)
    runtime.a2i.fail_loop(reviewer.held[0], code="Expired", reason="The human loop expired")
    reviewer.paused = True
    settle(runtime)

    # Then one v2 trained, from one snapshot, with each review counted once
    assert runtime.duplicates_injected > 0
    assert trained_versions(runtime)[:2] == ["v1", "v2"]
    assert sorted({key.split("/")[1] for key in runtime.list_keys("training/")}) == ["v1", "v2"]
    state = runtime.state
    assert state.counters.get(retrain.REVIEWS) == len(reviewer.answered)
    assert state.counters.get(retrain.REVIEWS_AT_SNAPSHOT) == len(reviewer.answered)
