"""Merge's AWS requests per review (issue 13): the loop item, the answer, one transaction holding the
labels, the pool's status, the loop's end and the count, and one read of what the retrain decision
needs; and that transaction's all-or-nothing promise."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from nerloop import retrain
from nerloop.documents import Span, document_hash
from nerloop.retrain import REVIEWS
from tests.integration.test_merge import OTHER_TEXT, TEXT, given_a_loop_in_review, merge

IDEMPOTENCY = ("dynamodb.PutItem", "dynamodb.UpdateItem")  # Powertools' record: one put, one update an event


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Every AWS request any client makes from here on, as "service.Operation" (botocore's names)."""
    made: Counter[str] = Counter()
    call = BaseClient._make_api_call

    def counted(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        made[f"{client.meta.service_model.endpoint_prefix}.{operation}"] += 1
        return call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counted)
    yield made


def merge_counted(emulated: Any, lambda_context: Any, event: dict[str, Any], requests: Counter[str]) -> Counter[str]:
    requests.clear()
    result = merge(emulated, lambda_context, event)
    assert result["merged"] is True
    made = Counter(requests)
    for operation in IDEMPOTENCY:
        made[operation] -= 1
    return +made


def test_a_review_while_a_training_holds_the_lock_takes_four_requests(
    emulated: Any, lambda_context: Any, requests: Counter[str]
) -> None:
    # Given a training in flight (its lock held) and a loop in review
    assert emulated.state.training_lock.acquire("v1") is True
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])

    made = merge_counted(emulated, lambda_context, event, requests)

    assert made == Counter({"dynamodb.GetItem": 1, "s3.GetObject": 1, "dynamodb.TransactWriteItems": 1,
                            "dynamodb.BatchGetItem": 1})


def test_a_review_short_of_a_batch_with_loops_open_adds_one_open_loop_query(
    emulated: Any, lambda_context: Any, requests: Counter[str]
) -> None:
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    given_a_loop_in_review(emulated, OTHER_TEXT, [("AWS Lambda", "SERVICE")])  # still open afterwards

    made = merge_counted(emulated, lambda_context, event, requests)

    assert made == Counter({"dynamodb.GetItem": 1, "s3.GetObject": 1, "dynamodb.TransactWriteItems": 1,
                            "dynamodb.BatchGetItem": 1, "dynamodb.Query": 1})
    assert emulated.state.counters.get(REVIEWS) == 1


def test_a_failed_merge_transaction_leaves_no_labels_and_the_loop_open(
    emulated: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the merge's transaction fails (throttled past the client's retries)
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    name, doc = event["detail"]["humanLoopName"], document_hash(TEXT)
    call = BaseClient._make_api_call
    failing = {"left": 1}

    def throttled(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "TransactWriteItems" and failing["left"]:
            failing["left"] -= 1
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, operation)
        return call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", throttled)
    with pytest.raises(ClientError):
        merge(emulated, lambda_context, event)

    # Then nothing of the review was written: no labels for a loop still open
    assert emulated.state.gold.get(doc) is None
    assert emulated.state.loops.get(name).status == "InProgress"
    assert emulated.state.counters.get(REVIEWS) == 0
    # and the event's retry merges it whole
    assert merge(emulated, lambda_context, event)["merged"] is True
    assert emulated.state.gold.get(doc).spans == [Span(0, 17, "SERVICE")]
    assert (emulated.state.loops.get(name).status, emulated.state.counters.get(REVIEWS)) == ("Completed", 1)


def test_a_review_of_a_document_no_longer_pooled_is_merged_without_a_pool_item(
    emulated: Any, lambda_context: Any
) -> None:
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])
    doc = document_hash(TEXT)
    emulated.state.table.delete_item(Key={"pk": "POOL", "sk": doc})

    result = merge(emulated, lambda_context, event)

    assert (result["merged"], result["counted"], result["reviews"]) == (True, True, 1)
    assert emulated.state.gold.get(doc).spans == [Span(0, 17, "SERVICE")]
    assert emulated.state.pool.get(doc) is None  # not recreated half-empty by the status update


def test_a_lock_left_stale_by_a_lost_release_does_not_stop_a_due_retrain(
    emulated: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lock taken more than a day ago (its release lost) and a review completing a batch of one
    assert emulated.state.training_lock.acquire("v0") is True
    taken = int(time.time()) - retrain.LOCK_STALE_SECONDS - 60
    emulated.state.table.update_item(Key={"pk": "LOCK", "sk": "TRAINING"}, UpdateExpression="SET acquired_epoch = :at",
                                     ExpressionAttributeValues={":at": taken})
    event = given_a_loop_in_review(emulated, TEXT, [("Amazon Comprehend", "SERVICE")])

    result = merge(emulated, lambda_context, event, RETRAIN_BATCH_SIZE="1")

    assert result["snapshot"] == "v1" and emulated.state.training_lock.holder() == "v1"
