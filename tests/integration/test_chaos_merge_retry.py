"""A merge that fails after finishing its loop is retried without losing or doubling anything: the
loop's end and its count are one transaction, and the retry still starts a retrain that was due."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nerloop import retrain
from nerloop import settings as nerloop_settings
from nerloop.a2i import loop_name
from nerloop.documents import document_hash
from nerloop.retrain import REVIEWS
from nerloop.state import IN_REVIEW, Loop
from nerloop_local.emulator.stack import load_event

TEXT = "Amazon Comprehend custom entity recognition now supports Spanish documents."


def given_a_completed_loop(emulated: Any) -> dict[str, Any]:
    doc = document_hash(TEXT)
    name = loop_name(doc, "v1")
    state = emulated.state
    state.pool.add(doc, TEXT, "batch-1")
    state.loops.put(Loop(name, doc, "v1", "InProgress"))
    state.pool.mark(doc, IN_REVIEW, loop=name, seen_by="v1")
    key = f"reviews/flow/{name}/output.json"
    emulated.s3.put_object(Bucket=emulated.bucket, Key=key, Body=json.dumps({
        "humanLoopName": name, "inputContent": {"document": doc, "version": "v1", "text": TEXT},
        "humanAnswers": [{"workerId": "w", "answerContent": {"crowd-entity-annotation": {"entities": [
            {"label": "SERVICE", "startOffset": 0, "endOffset": 17}]}}}]}).encode())
    event = load_event("merge")
    event["detail"].update({"humanLoopName": name, "humanLoopOutput": {"outputS3Uri": f"s3://{emulated.bucket}/{key}"}})
    return event


def test_a_retry_after_a_failed_retrain_check_counts_once_and_starts_the_retrain(
        emulated: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a review completing a batch of one, and a retrain check that fails the first time
    event = given_a_completed_loop(emulated)
    handler = emulated.handler("MergeFunction", RETRAIN_BATCH_SIZE="1")
    from nerloop.stages import merge

    real = retrain.check_retrain
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("S3 outage while writing the snapshot")
        return real(*args, **kwargs)

    monkeypatch.setattr(merge, "check_retrain", flaky)
    # When the first delivery fails after the loop was finished, and the event is retried
    with pytest.raises(RuntimeError):
        handler(event, lambda_context)
    nerloop_settings.get_settings.cache_clear()
    result = handler(event, lambda_context)
    # Then the review is counted once and the due retrain started on the retry
    state = emulated.state
    assert state.counters.get(REVIEWS) == 1
    assert state.loops.get(event["detail"]["humanLoopName"]).status == "Completed"
    assert result["snapshot"] == "v1" and state.training_lock.holder() == "v1"


def test_finishing_a_loop_counts_it_once(emulated: Any) -> None:
    state = emulated.state
    state.loops.put(Loop("v1-abc", "doc", "v1", "InProgress"))

    assert state.loops.complete_counted("v1-abc", REVIEWS) is True
    assert state.loops.complete_counted("v1-abc", REVIEWS) is False
    assert state.counters.get(REVIEWS) == 1 and state.loops.get("v1-abc").status == "Completed"


def test_a_failed_snapshot_leaves_no_gap_in_version_names(emulated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    state = emulated.state
    state.counters.add(REVIEWS, 5)
    failures = [RuntimeError("S3 outage")]

    def flaky_write(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real_write(*args, **kwargs)

    real_write = retrain.write_snapshot
    monkeypatch.setattr(retrain, "write_snapshot", flaky_write)
    with pytest.raises(RuntimeError):
        retrain.maybe_start_retrain(state, emulated.s3, emulated.bucket, retrain.RetrainPolicy(5))
    snapshot = retrain.maybe_start_retrain(state, emulated.s3, emulated.bucket, retrain.RetrainPolicy(5))

    assert snapshot is not None and snapshot.version == "v1"
