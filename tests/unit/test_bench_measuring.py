"""The benchmark machinery works on tiny sizes: the table stand-in behaves like DynamoDB for the calls
StateTable makes, the convert stage's compact repeat table, and workloads run in child processes."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from bench.generate import load_sample, write_manifest
from bench.measure import run_workload
from bench.run import Row, render
from bench.standins import LocalS3, SqliteTable
from nerloop.documents import Span
from nerloop.stages.convert import SeenDocuments
from nerloop.state import GOLD, GoldDocument, Loop, StateTable


@pytest.fixture
def state(tmp_path: Path) -> StateTable:
    return StateTable(SqliteTable(tmp_path / "state.sqlite"))


def test_the_table_stand_in_stores_and_returns_gold_documents(state: StateTable) -> None:
    gold = GoldDocument(doc="a" * 64, text="Amazon S3", spans=[Span(0, 9, "SERVICE")], origin="labeling:x")
    state.gold.put(gold)
    assert state.gold.get("a" * 64) == gold
    assert state.gold.get("b" * 64) is None


def test_the_table_stand_in_enforces_conditions_as_dynamodb_does(state: StateTable) -> None:
    assert state.pool.mark("c" * 64, GOLD) is False  # attribute_exists(pk) on a missing item
    assert state.loops.put(Loop(name="v1-x", doc="d", version="v1", status="InProgress")) is True
    assert state.loops.put(Loop(name="v1-x", doc="d", version="v1", status="InProgress")) is False
    assert state.loops.finish("v1-x", "Completed") is True
    assert state.loops.finish("v1-x", "Completed") is False  # #status = :open no longer holds


def test_the_table_stand_in_raises_the_client_error_dynamodb_raises(tmp_path: Path) -> None:
    table = SqliteTable(tmp_path / "t.sqlite")
    table.put_item(Item={"pk": "A", "sk": "1"})
    with pytest.raises(ClientError) as raised:
        table.put_item(Item={"pk": "A", "sk": "1"}, ConditionExpression="attribute_not_exists(pk)")
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_the_table_stand_in_counts_atomically_and_takes_the_training_lock_once(state: StateTable) -> None:
    assert [state.counters.add("REVIEWS") for _ in range(3)] == [1, 2, 3]
    state.counters.set("REVIEWS", 2)  # never lowers
    assert state.counters.get("REVIEWS") == 3
    assert state.training_lock.acquire("one") is True
    assert state.training_lock.acquire("two") is False
    state.training_lock.release("one")
    assert state.training_lock.holder() is None


def test_the_table_stand_in_pages_queries_in_sort_key_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.standins.PAGE_BYTES", 200)  # a few items a page
    table = SqliteTable(tmp_path / "t.sqlite")
    docs = [f"{n:064x}" for n in random.Random(1).sample(range(10**6), 50)]
    table.load_items({"pk": "GOLD", "sk": doc, "text": "x", "spans": "[]", "origin": ""} for doc in docs)
    listed = [gold.doc for gold in StateTable(table).gold.documents()]
    assert listed == sorted(docs)
    assert table.calls["query"] > 1


def test_local_s3_streams_what_was_put(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path)
    s3.put_object(Bucket="b", Key="k/one.txt", Body=b"x" * 3000)
    chunks = list(s3.get_object(Bucket="b", Key="k/one.txt")["Body"].iter_chunks())
    assert [len(chunk) for chunk in chunks] == [1024, 1024, 952]


def test_seen_documents_remembers_the_first_line_of_each_document_through_growth() -> None:
    seen = SeenDocuments(capacity=8)
    docs = [f"{random.Random(n).getrandbits(256):064x}" for n in range(5000)]
    assert all(seen.first_seen(doc, line) is None for line, doc in enumerate(docs, start=1))
    assert [seen.first_seen(doc, 99999) for doc in docs[::500]] == list(range(1, 5001, 500))
    assert len(seen) == 5000


def test_seen_documents_uses_about_twelve_bytes_a_slot() -> None:
    seen = SeenDocuments()
    for n in range(100_000):
        seen.first_seen(f"{random.Random(n).getrandbits(256):064x}", n)
    held = seen._keys.itemsize * len(seen._keys) + seen._lines.itemsize * len(seen._lines)
    assert held <= 12 * 2 * 100_000 / SeenDocuments.MAX_LOAD


def test_the_table_renders_one_row_a_result() -> None:
    text = render([Row("convert time", "10 lines", "1 s", "0.5 s", "2.00", "<= 1.5", False)])
    assert text.splitlines()[2].split("|")[-2].strip() == "NO"


@pytest.mark.slow
def test_the_convert_workloads_run_in_a_child_and_report_time_memory_and_counts(tmp_path: Path) -> None:
    manifest = tmp_path / "output.manifest"
    info = write_manifest(manifest, 300, seed=4)
    params = {"manifest": str(manifest), "label_attribute": load_sample().label_attribute}
    stage = run_workload("convert_stage", params)
    reference = run_workload("convert_reference", params)
    result = stage["result"]
    assert result["lines"] == 300 == result["documents"] + result["repeated"] + result["quarantined"]
    assert result["quarantined"] == info.bad_lines and result["snapshot"] == "v1"
    assert stage["gold"] == result["documents"]
    assert stage["seconds"] > 0 and stage["peak_mb"] >= stage["base_mb"] > 0
    assert reference["annotations"] > 0


def test_the_table_stand_in_keeps_open_loops_and_counter_times_as_dynamodb_does(state: StateTable) -> None:
    assert state.loops.put_many([Loop(name=f"v1-{i}", doc="d", version="v1", status="InProgress")
                                for i in range(3)]) == [True] * 3
    assert state.loops.any_open() is True
    assert state.loops.complete_counted("v1-0", "REVIEWS", first_epoch=100) is True
    assert state.loops.complete_counted("v1-1", "REVIEWS", first_epoch=200) is True
    assert state.counters.get_stamped("REVIEWS") == (2, 100)  # if_not_exists keeps the first
    assert state.loops.finish("v1-2", "Failed") is True
    assert state.loops.any_open() is False
    state.counters.restamp("REVIEWS", 2, 300)  # REMOVE: nothing came after the counts taken
    assert state.counters.get_stamped("REVIEWS") == (2, None)
