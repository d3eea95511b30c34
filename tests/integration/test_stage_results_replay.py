"""run_stage_once on the emulated state table: a repeat gets the first run's typed result back, rebuilt
from the idempotency record (the JSON the handler returned), without running the effect again."""

from __future__ import annotations

from typing import Any

import pytest

from nerloop.idempotency import run_stage_once
from nerloop.stages.results import TrainingRejected, TrainingStarted

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

KEY = {"bucket": "b", "key": "training/v1/annotations.csv", "etag": "1"}


def test_a_repeat_returns_the_first_result_as_its_own_variant(emulated: Any) -> None:
    calls: list[int] = []

    def effect() -> TrainingStarted | TrainingRejected:
        calls.append(1)
        return TrainingRejected(version="v1", status="REJECTED", problems=["too few documents"],
                                report="reports/training/v1.json")

    first = run_stage_once(emulated.table_name, "test-typed", KEY, effect, TrainingStarted, TrainingRejected)
    again = run_stage_once(emulated.table_name, "test-typed", KEY, effect, TrainingStarted, TrainingRejected)

    assert isinstance(again, TrainingRejected) and again == first and again is not first
    assert len(calls) == 1
