"""The benchmark's latency model: the table is applied per stand-in call, calls from threads overlap,
the stand-ins stay correct under threads, and S3 bodies are read at the table's throughput."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from bench import standins
from bench.latency import AWS, PROFILES, CallLatency, LatencyModel, describe
from bench.standin_services import StandInA2I, StandInEventBridge
from bench.standins import CLOCK, LocalS3, SqliteTable, requests_of, use_latency

FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review"


@pytest.fixture(autouse=True)
def no_latency_after() -> Iterator[None]:
    yield
    use_latency(LatencyModel())


def model(seconds: float, **extra: CallLatency) -> LatencyModel:
    row = CallLatency(seconds, "https://example.invalid", "test")
    return LatencyModel({"dynamodb.GetItem": row, "dynamodb.PutItem": row, "a2i.StartHumanLoop": row, **extra},
                        name="test")


def test_a_stand_in_call_takes_at_least_its_latency(tmp_path: Path) -> None:
    table = SqliteTable(tmp_path / "t.sqlite")
    use_latency(model(0.05))
    started = time.perf_counter()
    table.get_item(Key={"pk": "A", "sk": "1"})
    assert time.perf_counter() - started >= 0.05
    assert table.calls["get_item"] == 1


def test_an_operation_without_a_row_takes_no_latency(tmp_path: Path) -> None:
    table = SqliteTable(tmp_path / "t.sqlite")
    use_latency(model(0.5))
    started = time.perf_counter()
    table.delete_item(Key={"pk": "A", "sk": "1"})  # no DeleteItem row in this model
    assert time.perf_counter() - started < 0.25


def test_concurrent_calls_overlap_as_on_aws(tmp_path: Path) -> None:
    # Given 8 threads each making one call of 0.1 s latency against one shared table
    table = SqliteTable(tmp_path / "t.sqlite")
    use_latency(model(0.1))
    CLOCK.reset()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: table.put_item(Item={"pk": "A", "sk": str(n)}), range(8)))
    wall = time.perf_counter() - started
    # Then they overlap (one after another would take 0.8 s), and the clock counts the overlap once
    assert 0.1 <= wall < 0.4
    assert CLOCK.seconds <= wall
    assert table.count("A") == 8 and table.calls["put_item"] == 8


def test_the_table_stand_in_is_safe_from_many_threads(tmp_path: Path) -> None:
    table = SqliteTable(tmp_path / "t.sqlite")

    def work(worker: int) -> None:
        for n in range(200):
            table.put_item(Item={"pk": "W", "sk": f"{worker}-{n}", "n": n})
            table.update_item(Key={"pk": "C", "sk": "count"}, UpdateExpression="ADD #n :one",
                              ExpressionAttributeNames={"#n": "n"}, ExpressionAttributeValues={":one": 1})
            table.meta.client.batch_get_item(RequestItems={table.name: {"Keys": [{"pk": "W", "sk": f"{worker}-{n}"}]}})

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert table.count("W") == 1200
    assert table.get_item(Key={"pk": "C", "sk": "count"})["Item"]["n"] == 1200
    assert table.calls["put_item"] == 1200 and table.calls["update_item"] == 1200
    assert table.calls["batch_get_item"] == 1200


def test_start_human_loop_calls_overlap_and_are_counted_once_each() -> None:
    a2i = StandInA2I()
    use_latency(model(0.05))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: a2i.start_human_loop(HumanLoopName=f"loop-{n}", FlowDefinitionArn=FLOW,
                                                     HumanLoopInput={"InputContent": "{}"}), range(12)))
    assert a2i.started == 12 and a2i.calls["start_human_loop"] == 12
    assert 2 <= a2i.most_at_once <= 4


def test_an_s3_body_is_read_no_faster_than_the_tables_throughput(tmp_path: Path) -> None:
    s3 = LocalS3(tmp_path)
    s3.put_object(Bucket="b", Key="k", Body=b"x" * 1_000_000)
    use_latency(LatencyModel({"s3.GetObject": CallLatency(0.01, "https://example.invalid", "test",
                                                          bytes_per_second=10e6)}))
    started = time.perf_counter()
    body = s3.get_object(Bucket="b", Key="k")["Body"]
    read = sum(len(chunk) for chunk in body.iter_chunks(64 * 1024))
    assert read == 1_000_000
    assert time.perf_counter() - started >= 0.01 + 0.1  # first byte, then 1 MB at 10 MB/s


def test_a_ranged_get_gives_the_rest_of_the_object_as_s3_does(tmp_path: Path) -> None:
    # A continued conversion asks for the manifest from the offset it reached (Range, IfMatch its ETag)
    s3 = LocalS3(tmp_path)
    s3.put_object(Bucket="b", Key="k", Body=b"0123456789")
    etag = s3.get_object(Bucket="b", Key="k")["ETag"]

    assert b"".join(s3.get_object(Bucket="b", Key="k", Range="bytes=4-", IfMatch=etag)["Body"].iter_chunks(3)) \
        == b"456789"
    assert s3.get_object(Bucket="b", Key="k", Range="bytes=2-4")["Body"].read() == b"234"
    with pytest.raises(ClientError) as failure:
        s3.get_object(Bucket="b", Key="k", Range="bytes=4-", IfMatch='"another"')
    assert failure.value.response["Error"]["Code"] == "PreconditionFailed"


def test_the_event_bridge_stand_in_keeps_what_is_published() -> None:
    events = StandInEventBridge()
    reply = events.put_events(Entries=[{"Source": "nerloop", "DetailType": "Continue", "Detail": "{}"}])
    assert reply["FailedEntryCount"] == 0 and events.entries[0]["DetailType"] == "Continue"
    assert requests_of(events=events) == {"events.put_events": 1}


def test_the_aws_profile_covers_every_call_the_issue_names_and_cites_each() -> None:
    wanted = {"dynamodb.GetItem", "dynamodb.PutItem", "dynamodb.UpdateItem", "dynamodb.Query",
              "dynamodb.BatchGetItem", "dynamodb.BatchWriteItem", "dynamodb.TransactWriteItems", "s3.GetObject",
              "s3.PutObject", "s3.HeadObject", "a2i.StartHumanLoop", "comprehend.Describe", "comprehend.Start",
              "sagemaker.DescribeLabelingJob", "events.PutEvents"}
    assert wanted <= set(AWS)
    for row in describe(AWS):
        assert str(row["source"]).startswith("https://") and row["basis"]
        assert 0 < float(row["ms"]) < 1000  # type: ignore[arg-type]
    # Documented rows quote AWS; the others say they are assumptions.
    assert all(row["documented"] or "assumption" in str(row["basis"]) for row in describe(AWS))
    assert PROFILES["none"] == {}


def test_an_unknown_profile_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"'fast'.*none, aws"):
        LatencyModel.profile("fast")


def test_the_model_scales_and_adds_the_body_transfer() -> None:
    latency = LatencyModel.profile("aws", scale=0.5)
    assert latency.seconds("dynamodb.GetItem") == pytest.approx(AWS["dynamodb.GetItem"].seconds / 2)
    full = LatencyModel.profile("aws")
    megabytes = full.seconds("s3.GetObject", 90_000_000) - full.seconds("s3.GetObject")
    assert megabytes == pytest.approx(90e6 / AWS["s3.GetObject"].bytes_per_second)
    assert standins.LATENCY.enabled is False  # the fixture restored the default


def test_the_readme_prints_the_table_the_code_uses() -> None:
    readme = (Path(__file__).resolve().parents[2] / "bench/README.md").read_text(encoding="utf-8")
    for row in describe(AWS):
        assert f"| `{row['operation']}` | {float(row['ms']):.0f} |" in readme  # type: ignore[arg-type]
