"""The emulator's speed-ups answer exactly as moto does, at the cost of what a call touches."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Attr, Key
from moto import mock_aws
from moto.core.utils import unix_time_millis
from moto.dynamodb.models.table import Table

from nerloop_local.emulator.scaling import _ORIGINAL_QUERY, epoch_millis


@pytest.fixture
def table() -> Iterator[Any]:
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        created = resource.create_table(
            TableName="t", BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}])
        with created.batch_writer() as batch:
            for n in range(300):
                batch.put_item(Item={"pk": "POOL", "sk": f"doc-{n:04d}", "status": "gold" if n % 3 else "waiting",
                                     "text": "x" * 5000})
            for n in range(500):
                batch.put_item(Item={"pk": "LOOP", "sk": f"loop-{n}"})
        yield created


def _all_pages(table: Any, **params: Any) -> list[list[str]]:
    pages = []
    while True:
        page = table.query(**params)
        pages.append([item["sk"] for item in page["Items"]])
        if "LastEvaluatedKey" not in page:
            return pages
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


QUERIES: list[dict[str, Any]] = [
    {"KeyConditionExpression": Key("pk").eq("POOL")},  # 1.5 MB: two pages
    {"KeyConditionExpression": Key("pk").eq("POOL"), "Limit": 7},
    {"KeyConditionExpression": Key("pk").eq("POOL"), "ScanIndexForward": False, "Limit": 50},
    {"KeyConditionExpression": Key("pk").eq("POOL") & Key("sk").begins_with("doc-01")},
    {"KeyConditionExpression": Key("pk").eq("POOL") & Key("sk").between("doc-0100", "doc-0120"),
     "FilterExpression": Attr("status").eq("waiting")},
    {"KeyConditionExpression": Key("pk").eq("NOTHING")},
]


@pytest.mark.parametrize("params", QUERIES)
def test_a_query_answers_as_moto_does(table: Any, params: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ours = _all_pages(table, **params)
    monkeypatch.setattr(Table, "query", _ORIGINAL_QUERY)
    assert ours == _all_pages(table, **params)


def test_a_query_looks_at_its_own_partition_only(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = Table.all_items

    def counting(self: Table) -> list[Any]:
        items = original(self)
        seen.append(len(items))
        return items

    monkeypatch.setattr(Table, "all_items", counting)
    assert len(table.query(KeyConditionExpression=Key("pk").eq("LOOP"))["Items"]) == 500
    assert seen == [500]  # not the 800 items of the table


def test_the_sqs_clock_reads_as_moto_does() -> None:
    assert abs(epoch_millis() - unix_time_millis()) < 50
    naive = datetime.datetime(2026, 12, 4, 12, 30, 15, 250000)
    assert epoch_millis(naive) == unix_time_millis(naive)
    aware = naive.replace(tzinfo=datetime.UTC)
    assert epoch_millis(aware) == unix_time_millis(naive)


def test_what_moto_copies_for_a_call_is_not_kept_after_it(table: Any) -> None:
    # Given a table of 800 items, read and updated many times over
    import gc

    from moto.dynamodb.models.dynamo_type import Item

    def live_items() -> int:
        gc.collect()
        return sum(1 for obj in gc.get_objects() if isinstance(obj, Item))

    before = live_items()
    # When each call copies items (a query returns deep copies; an update copies the item it changes)
    for _ in range(20):
        _all_pages(table, KeyConditionExpression=Key("pk").eq("POOL"))
        table.update_item(Key={"pk": "LOOP", "sk": "loop-1"}, UpdateExpression="SET n = if_not_exists(n, :z) + :one",
                          ExpressionAttributeValues={":z": 0, ":one": 1})
    # Then the copies go with the calls: what stays alive is what the table holds
    assert live_items() - before < 10
    assert not Item.instances_tracked  # type: ignore[attr-defined]
