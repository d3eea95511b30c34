"""The emulator's TransactWriteItems: all or nothing as DynamoDB documents it, at the cost of the
items it touches (moto's own copies every named table before each transaction)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends

TABLE = "state"


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        created = resource.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        created.put_item(Item={"pk": "POOL", "sk": "a", "status": "waiting"})
        created.put_item(Item={"pk": "POOL", "sk": "b", "status": "gold"})
        created.put_item(Item={"pk": "COUNTER", "sk": "REVIEWS", "value": 5})
        yield created


def _transact(table: Any, *actions: dict[str, Any]) -> None:
    table.meta.client.transact_write_items(
        TransactItems=[{name: {"TableName": TABLE, **body}} for action in actions for name, body in action.items()])


def _mark(doc: str, status: str) -> dict[str, Any]:
    return {"Update": {"Key": {"pk": "POOL", "sk": doc}, "UpdateExpression": "SET #s = :s",
                       "ConditionExpression": "attribute_exists(pk) AND #s <> :gold",
                       "ExpressionAttributeNames": {"#s": "status"},
                       "ExpressionAttributeValues": {":s": status, ":gold": "gold"}}}


def _items(table: Any) -> list[dict[str, Any]]:
    return sorted(table.scan()["Items"], key=lambda item: (item["pk"], item["sk"]))


def test_a_transaction_applies_every_action(table: Any) -> None:
    _transact(table, _mark("a", "accepted"),
              {"Put": {"Item": {"pk": "LOOP", "sk": "l1"}, "ConditionExpression": "attribute_not_exists(pk)"}},
              {"Update": {"Key": {"pk": "COUNTER", "sk": "REVIEWS"}, "UpdateExpression": "ADD #v :one",
                          "ExpressionAttributeNames": {"#v": "value"}, "ExpressionAttributeValues": {":one": 1}}})
    assert table.get_item(Key={"pk": "POOL", "sk": "a"})["Item"]["status"] == "accepted"
    assert "Item" in table.get_item(Key={"pk": "LOOP", "sk": "l1"})
    assert table.get_item(Key={"pk": "COUNTER", "sk": "REVIEWS"})["Item"]["value"] == 6


def test_one_failed_condition_cancels_every_write_before_and_after_it(table: Any) -> None:
    before = _items(table)
    with pytest.raises(ClientError) as raised:
        _transact(table,
                  _mark("a", "accepted"),  # applied, then undone
                  {"Put": {"Item": {"pk": "LOOP", "sk": "new"}}},  # a new item, then removed
                  _mark("b", "accepted"),  # gold: the condition fails
                  {"Delete": {"Key": {"pk": "COUNTER", "sk": "REVIEWS"}}})  # never applied
    response = raised.value.response
    assert response["Error"]["Code"] == "TransactionCanceledException"
    assert [reason["Code"] for reason in response["CancellationReasons"]] == [
        "None", "None", "ConditionalCheckFailed", "None"]
    assert _items(table) == before


def test_a_failed_condition_returns_the_old_item_when_asked(table: Any) -> None:
    action = _mark("b", "accepted")
    action["Update"]["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    with pytest.raises(ClientError) as raised:
        _transact(table, action)
    assert raised.value.response["CancellationReasons"][0]["Item"]["status"] == {"S": "gold"}


def test_two_actions_on_one_item_are_refused_before_anything_is_written(table: Any) -> None:
    before = _items(table)
    with pytest.raises(ClientError) as raised:
        _transact(table, {"Put": {"Item": {"pk": "LOOP", "sk": "x"}}}, _mark("a", "accepted"),
                  _mark("a", "gold"))
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert _items(table) == before


def test_more_than_100_actions_are_refused(table: Any) -> None:
    with pytest.raises(ClientError) as raised:
        _transact(table, *({"Put": {"Item": {"pk": "LOOP", "sk": str(n)}}} for n in range(101)))
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "Item" not in table.get_item(Key={"pk": "LOOP", "sk": "0"})


def test_a_cancelled_transaction_leaves_the_items_it_did_not_name_untouched(table: Any) -> None:
    # Given the table's in-memory objects (moto's own rollback swaps in a copy of the whole table)
    backend = dynamodb_backends["123456789012"]["us-east-1"]
    stored = backend.tables[TABLE]
    untouched = stored.items[next(iter(stored.items))]
    # When a transaction is cancelled
    with pytest.raises(ClientError):
        _transact(table, _mark("a", "accepted"), _mark("b", "accepted"))
    # Then the table and the items the transaction did not name are the very same objects
    assert backend.tables[TABLE] is stored
    assert stored.items[next(iter(stored.items))] is untouched
