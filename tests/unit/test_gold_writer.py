"""Issue 13: the gold set's batch writes go a few requests at a time; DynamoDB's UnprocessedItems are
sent again (with back-off) until every item is written, and nothing is lost."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from nerloop.documents import Span
from nerloop.state import GoldBatchWriter, GoldDocument, StateTable, StateWriteIncomplete
from nerloop.state import gold as state_module


class FlakyClient:
    """BatchWriteItem that leaves the last item of each request unprocessed for its first
    `unprocessed_rounds` tries, and records the requests in flight at once."""

    def __init__(self, unprocessed_rounds: int = 2) -> None:
        self.unprocessed_rounds = unprocessed_rounds
        self.stored: dict[str, dict[str, Any]] = {}
        self.tries: dict[str, int] = {}
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.requests = 0

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.requests += 1
        try:
            time.sleep(0.01)
            (table, writes), = RequestItems.items()
            assert len(writes) <= 25
            *done, last = writes
            key = last["PutRequest"]["Item"]["sk"]
            with self.lock:
                self.tries[key] = self.tries.get(key, 0) + 1
                held_back = self.tries[key] <= self.unprocessed_rounds
                for write in done if held_back else writes:
                    item = write["PutRequest"]["Item"]
                    self.stored[item["sk"]] = item
            return {"UnprocessedItems": {table: [last]}} if held_back else {"UnprocessedItems": {}}
        finally:
            with self.lock:
                self.in_flight -= 1

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        (table, _), = RequestItems.items()
        return {"Responses": {table: []}, "UnprocessedKeys": {}}  # no document is in the pool


class Meta:
    def __init__(self, client: FlakyClient) -> None:
        self.client = client


class Table:
    name = "state"

    def __init__(self, client: FlakyClient) -> None:
        self.meta = Meta(client)


def golds(count: int) -> list[GoldDocument]:
    return [GoldDocument(doc=f"{index:064x}", text=f"document {index}", spans=[Span(0, 8, "THING")], origin="test")
            for index in range(count)]


def test_every_item_is_written_though_dynamodb_leaves_some_unprocessed(monkeypatch):
    monkeypatch.setattr(state_module.time, "sleep", lambda seconds: None)  # the back-off, not the fake's
    client = FlakyClient(unprocessed_rounds=2)

    with GoldBatchWriter(StateTable(Table(client)), writers=4) as writer:
        writer.put_gold_many(golds(200))

    assert sorted(client.stored) == sorted(gold.doc for gold in golds(200))
    assert client.requests == 8 * 3  # 8 requests of 25, each last item sent twice more


def test_the_requests_go_a_few_at_a_time():
    client = FlakyClient(unprocessed_rounds=0)

    with GoldBatchWriter(StateTable(Table(client)), writers=4) as writer:
        writer.put_gold_many(golds(200))

    assert 1 < client.most_in_flight <= 4
    assert len(client.stored) == 200


def test_items_still_unprocessed_after_every_attempt_fail_the_write(monkeypatch):
    monkeypatch.setattr(state_module.time, "sleep", lambda seconds: None)
    client = FlakyClient(unprocessed_rounds=GoldBatchWriter.ATTEMPTS)

    with GoldBatchWriter(StateTable(Table(client)), writers=4) as writer, pytest.raises(StateWriteIncomplete):
        writer.put_gold_many(golds(60))
