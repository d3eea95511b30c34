"""Issue 13 in local mode: the runtime's Lambda context runs down with the function's Timeout, and a
stage that runs short of time continues through the event pump like any other rule's event."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop.deadline import RESERVE_MS
from nerloop.stages import convert
from nerloop_local.emulator.deployment import LOCAL_PARAMETERS
from nerloop_local.emulator.invocation import LambdaContext
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.stack import Stack

QUIET = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
OTHERS = ("TrainFunction", "DetectFunction", "RouteFunction", "MergeFunction", "WatchFunction")


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack.load(LOCAL_PARAMETERS)


@pytest.fixture
def runtime(tmp_path: Path, stack: Stack) -> Iterator[LocalRuntime]:
    started = LocalRuntime(tmp_path / "workspace", stack=stack, environment=QUIET, autosave=False).start()
    for function in OTHERS:  # only convert runs: the rest of the loop is not what this is about
        started.override_handler(function, lambda event, context: {})
    try:
        yield started
    finally:
        started.close(save=False)


def test_the_context_counts_down_from_the_functions_timeout(runtime: LocalRuntime, stack: Stack) -> None:
    context = runtime.lambda_context("ConvertFunction")
    timeout = int(stack.function_setting("ConvertFunction", "Timeout", 3))

    left = context.get_remaining_time_in_millis()

    assert timeout * 1000 - 1000 < left <= timeout * 1000
    context.started -= 10
    assert context.get_remaining_time_in_millis() <= left - 10_000


def gold_after_conversion(workspace: Path, stack: Stack, manifest: bytes) -> tuple[dict[str, Any], list[Any]]:
    """Label with `manifest` in a fresh local stack (convert real, the rest of the loop idle); the gold
    set and convert's deliveries."""
    with LocalRuntime(workspace, stack=stack, environment=QUIET, autosave=False) as runtime:
        for function in OTHERS:
            runtime.override_handler(function, lambda event, context: {})
        runtime.label_with_manifest(manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-big")
        result = runtime.run_until_idle(max_cycles=60)
        assert result.idle and not result.failures and not runtime.dead_letters()
        converts = [d for d in result.deliveries if d.function == "ConvertFunction"]
        gold = {g.doc: (g.text, g.spans, g.origin) for g in runtime.state.gold.documents()}
    return gold, converts


def test_a_conversion_short_of_time_goes_on_through_the_pump(
    tmp_path: Path, stack: Stack, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the sample manifest converted 3 documents a batch, once with all the time it needs
    monkeypatch.setattr(convert, "GOLD_BUFFER", 3)
    manifest = (sample_dir / "output.manifest").read_bytes()
    clean_gold, clean_runs = gold_after_conversion(tmp_path / "clean", stack, manifest)
    assert len(clean_runs) == 1

    # When every invocation's time runs out after a few batches (the clock jumps each time it is read)
    def remaining(context: Any) -> int:
        context.started -= (context.timeout_seconds - RESERVE_MS / 1000) / 8
        return max(0, int((context.timeout_seconds - (time.monotonic() - context.started)) * 1000))

    monkeypatch.setattr(LambdaContext, "get_remaining_time_in_millis", remaining)
    gold, runs = gold_after_conversion(tmp_path / "short", stack, manifest)

    # Then the pump delivered its continuations to convert, and the gold set is the clean run's
    assert len(runs) >= 3
    assert [run.detail_type for run in runs][1:] == ["Stage Continued"] * (len(runs) - 1)
    assert all(run.outcome == "ok" for run in runs)
    assert gold == clean_gold
