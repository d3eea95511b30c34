"""run_once on the emulated state table: an effect whose record could not be marked done is recorded
again rather than left in progress (which would refuse every redelivery until it expired)."""

from __future__ import annotations

from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError
from botocore.exceptions import ClientError

from nerloop import idempotency
from nerloop.idempotency import SAVE_ATTEMPTS, run_once

pytestmark = pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")

KEY = {"bucket": "b", "key": "raw/x.txt", "etag": "1"}


class FailingUpdates:
    """DynamoDB refusing the first `failures` updates of an idempotency record (marking it done)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: int) -> None:
        self.left = failures
        update = DynamoDBPersistenceLayer._update_record

        def failing_update(store: DynamoDBPersistenceLayer, data_record: Any) -> None:
            if self.left:
                self.left -= 1
                raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")
            update(store, data_record)

        monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", failing_update)
        monkeypatch.setattr(idempotency.time, "sleep", lambda seconds: None)


def counting_effect(calls: list[int]) -> Any:
    def effect() -> dict[str, int]:
        calls.append(1)
        return {"written": len(calls)}
    return effect


def test_an_effect_whose_record_failed_to_close_is_recorded_and_not_run_again(
        emulated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    FailingUpdates(monkeypatch, failures=1)
    calls: list[int] = []

    first = run_once(emulated.table_name, "test", KEY, counting_effect(calls))
    again = run_once(emulated.table_name, "test", KEY, counting_effect(calls))

    assert first == again == {"written": 1}
    assert len(calls) == 1  # the redelivery got the recorded result instead of an "in progress" refusal


def test_a_record_that_cannot_be_closed_at_all_fails_the_event(emulated: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    FailingUpdates(monkeypatch, failures=1 + SAVE_ATTEMPTS)
    calls: list[int] = []

    with pytest.raises(ClientError):
        run_once(emulated.table_name, "test", KEY, counting_effect(calls))

    assert len(calls) == 1


def test_an_effect_that_fails_leaves_no_record_and_runs_again(emulated: Any) -> None:
    calls: list[int] = []

    def failing() -> dict[str, int]:
        calls.append(1)
        raise RuntimeError("effect failed")

    with pytest.raises(RuntimeError):
        run_once(emulated.table_name, "test", KEY, failing)
    assert run_once(emulated.table_name, "test", KEY, counting_effect(calls)) == {"written": 2}


def test_a_failure_before_the_effect_is_not_taken_for_one_after_it(emulated: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(store: DynamoDBPersistenceLayer, data_record: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem")

    monkeypatch.setattr(DynamoDBPersistenceLayer, "_put_record", refused)
    calls: list[int] = []

    with pytest.raises(IdempotencyPersistenceLayerError):
        run_once(emulated.table_name, "test", KEY, counting_effect(calls))
    assert calls == []
