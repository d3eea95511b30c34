"""Every way a training ends frees the training lock (botocore ModelStatus): TRAINED_WITH_WARNING is a
trained version that is activated and detects; STOPPED yields no model but must not strand the loop.
In local mode, through the very handlers that run on AWS."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop_local.emulator.runtime import LocalRuntime

SEED_LINES = 45


@pytest.fixture
def seed(sample_dir: Path) -> Iterator[Any]:
    """seed(start, end): lines [start, end) of the sample's Ground Truth output manifest."""
    lines = (sample_dir / "output.manifest").read_bytes().splitlines(keepends=True)
    yield lambda start, end: b"".join(itertools.islice(lines, start, end))


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[LocalRuntime]:
    # No test set held out: a 45-line seed is just enough to train on whole.
    local = LocalRuntime(tmp_path / "workspace", {"EntityTypes": "SERVICE,VERSION", "TestShare": "0"},
                         reviewer=lambda name, content: None,
                         environment={"POWERTOOLS_METRICS_DISABLED": "true"}, autosave=False)
    local.start()
    yield local
    local.close(save=False)


def settle(runtime: LocalRuntime) -> None:
    result = runtime.run_until_idle(max_cycles=200)
    assert result.idle and not result.failures, [d.line() for d in result.failures]


def test_a_version_trained_with_a_warning_is_activated_and_detects(runtime: LocalRuntime, seed: Any) -> None:
    # Given raw text waiting, and Comprehend ending v1's training with a warning
    runtime.put_text("raw/offerings.txt", "Amazon S3 version 2.0 is now available.\n")
    runtime.comprehend.warn_training("v1", "some training documents were skipped")

    # When the seed labels arrive and the loop runs
    runtime.label_with_manifest(seed(0, SEED_LINES),
                                job_name=f"{runtime.stack.labeling_job_prefix()}-warned-seed")
    settle(runtime)

    # Then v1 keeps its status and warning, is active, has detected, and the lock is free
    version = runtime.state.versions.get("v1")
    assert (version.status, version.message) == ("TRAINED_WITH_WARNING", "some training documents were skipped")
    assert runtime.state.versions.active()[0] == "v1"
    assert [job.version for job in runtime.state.jobs.list()] == ["v1"]
    assert runtime.state.training_lock.holder() is None


def test_a_stopped_training_frees_the_lock_and_the_next_labels_train(runtime: LocalRuntime, seed: Any) -> None:
    # Given v1 submitted for training, then stopped (StopTrainingEntityRecognizer)
    runtime.label_with_manifest(seed(0, SEED_LINES),
                                job_name=f"{runtime.stack.labeling_job_prefix()}-stopped-seed")
    for _ in range(20):
        if runtime.comprehend.recognizers:
            break
        runtime.cycle()
    (arn,) = runtime.comprehend.recognizers
    runtime.client("comprehend").stop_training_entity_recognizer(EntityRecognizerArn=arn)
    settle(runtime)

    # Then v1 is recorded STOPPED and no training holds the lock
    assert runtime.state.versions.get("v1").status == "STOPPED"
    assert runtime.state.training_lock.holder() is None

    # And the next labels train v2 at once, not a day later when the lock would go stale
    runtime.label_with_manifest(seed(SEED_LINES, 2 * SEED_LINES),
                                job_name=f"{runtime.stack.labeling_job_prefix()}-stopped-more")
    settle(runtime)
    assert runtime.state.versions.get("v2").status == "TRAINED"
    assert runtime.state.versions.active()[0] == "v2"
