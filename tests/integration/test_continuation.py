"""Issue 13: a stage that runs short of time checkpoints and continues in a fresh invocation, and the
end state is a clean run's, however the events arrive (the continuation twice, the original again).

The time left is injected through the Lambda context: it drops by a fixed step each time it is read,
so the stage's deadline (time left under `nerloop.deadline.RESERVE_MS`) comes after a few batches.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import tarfile
import threading
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from nerloop.deadline import RESERVE_MS
from nerloop.documents import document_hash
from nerloop.stages import convert, route
from nerloop.state import IDEMPOTENCY_PK, Job
from nerloop_local.emulator.stack import load_event

SAMPLE_ATTRIBUTE = "a2i-comprehend-gtner7c0bf6de-b5a1-11ea-bf5f-12acee018271"
MAX_INVOCATIONS = 60  # far more than the runs below need: a continuation that redoes its work never ends


def volatile(name: str) -> bool:
    """An attribute that holds the time it was written (differs between any two runs)."""
    return name.endswith(("_at", "_epoch"))


@dataclass
class RunningOutContext:
    """A Lambda context whose time left falls by `step` ms at each reading, from `total` ms."""

    total: int = 300_000
    step: int = 0
    reads: int = 0
    function_name: str = "nerloop-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:nerloop-test"
    aws_request_id: str = "test-request-id"
    log_group_name: str = "/aws/lambda/nerloop-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        self.reads += 1
        return max(0, self.total - self.step * self.reads)


def manifest_with_bad_lines(sample_dir: Any) -> bytes:
    """The sample manifest with a bad line near the start and one in the middle (quarantined), and
    no newline at the end."""
    lines = (sample_dir / "output.manifest").read_bytes().splitlines()
    lines.insert(5, b"{not json")
    lines.insert(len(lines) // 2, b'{"source": ""}')
    return b"\n".join(lines)


def end_state(emulated: Any) -> dict[str, Any]:
    """What a conversion leaves: every table item but the idempotency records (times left out), and
    every object but the checkpoints."""
    table = boto3.resource("dynamodb").Table(emulated.table_name)
    items, start = [], {}
    while True:
        page = table.scan(**start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            break
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}
    kept = sorted(json.dumps({k: (str(v) if isinstance(v, Decimal) else v) for k, v in item.items()
                               if not volatile(k)}, sort_keys=True, default=str)
                   for item in items if item["pk"] != IDEMPOTENCY_PK)
    objects = {}
    for page in emulated.s3.get_paginator("list_objects_v2").paginate(Bucket=emulated.bucket):
        for entry in page.get("Contents", []):
            if not entry["Key"].startswith("checkpoints/"):
                objects[entry["Key"]] = emulated.s3.get_object(Bucket=emulated.bucket, Key=entry["Key"])["Body"].read()
    return {"items": kept, "objects": objects}


def wipe(emulated: Any) -> None:
    """Empty the table and the bucket (the same moto account runs the clean run, then the continued one)."""
    table = boto3.resource("dynamodb").Table(emulated.table_name)
    for item in table.scan()["Items"]:
        table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    assert not table.scan()["Items"]
    for page in emulated.s3.get_paginator("list_objects_v2").paginate(Bucket=emulated.bucket):
        for entry in page.get("Contents", []):
            emulated.s3.delete_object(Bucket=emulated.bucket, Key=entry["Key"])


def received(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    events = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return events


def test_a_conversion_that_runs_out_of_time_continues_to_a_clean_runs_end(
    emulated, event, lambda_context, sagemaker_stub, sample_dir, monkeypatch
):
    # Given a manifest of ~200 lines written 3 documents a batch (about 40 batches)
    monkeypatch.setattr(convert, "GOLD_BUFFER", 3)
    manifest = manifest_with_bad_lines(sample_dir)
    handler = emulated.handler("ConvertFunction")
    emulated.completed_labeling_job(sagemaker_stub, manifest, SAMPLE_ATTRIBUTE)
    clean = handler(event("convert"), lambda_context)
    clean_state = end_state(emulated)
    assert clean["quarantined"] == 2 and clean["snapshot"] == "v1" and "continued" not in clean
    wipe(emulated)
    continued_url = emulated.capture_rule("ConvertFunction", "ConversionContinued")

    # When every invocation has time for about 12 batches
    def short_context() -> RunningOutContext:
        return RunningOutContext(step=(300_000 - RESERVE_MS) // 12)

    emulated.completed_labeling_job(sagemaker_stub, manifest, SAMPLE_ATTRIBUTE)
    first = handler(event("convert"), short_context())
    assert first["continued"] == {"sequence": 1, "checkpoint": first["continued"]["checkpoint"]}
    results, published = [first], []
    while "continued" in results[-1]:
        assert len(results) < MAX_INVOCATIONS, "no end in sight: each continuation must make progress"
        (continuation,) = received(continued_url)  # one event per checkpoint, never two
        published.append(continuation)
        # the continuation is delivered twice, and the original event again after it started
        results.append(handler(continuation, short_context()))
        assert handler(continuation, short_context()) == results[-1]
        assert handler(event("convert"), short_context()) == first
    assert not received(continued_url)

    # Then it took several invocations, each going on from the last, and ended as the clean run did
    assert [e["detail"]["sequence"] for e in published] == list(range(1, len(published) + 1))
    assert len(published) >= 3
    assert results[-1] == clean
    assert end_state(emulated) == clean_state


def test_a_continuation_that_finds_nothing_left_finishes_the_job(
    emulated, event, sagemaker_stub, sample_dir, monkeypatch
):
    # Given a conversion stopped after its last batch (the deadline came with the last line read)
    lines = (sample_dir / "output.manifest").read_bytes().splitlines()[:6]
    texts = {json.loads(line)["source"] for line in lines}
    monkeypatch.setattr(convert, "GOLD_BUFFER", len(texts))
    handler = emulated.handler("ConvertFunction")
    emulated.completed_labeling_job(sagemaker_stub, b"\n".join(lines), SAMPLE_ATTRIBUTE)
    url = emulated.capture_rule("ConvertFunction", "ConversionContinued")
    first = handler(event("convert"), RunningOutContext(step=300_000))
    assert first["continued"]["sequence"] == 1

    # When its continuation comes
    (continuation,) = received(url)
    done = handler(continuation, RunningOutContext())

    # Then the job is converted, without reading past the manifest's end
    assert "continued" not in done
    assert done["lines"] == len(lines) and done["documents"] == len(texts)
    assert len(list(emulated.state.gold.documents())) == len(texts)


@pytest.mark.parametrize("delivered", ["original", "continuation"])
def test_a_repeated_event_publishes_no_second_continuation(
    emulated, event, sagemaker_stub, sample_dir, monkeypatch, delivered
):
    monkeypatch.setattr(convert, "GOLD_BUFFER", 3)
    handler = emulated.handler("ConvertFunction")
    emulated.completed_labeling_job(sagemaker_stub, (sample_dir / "output.manifest").read_bytes(), SAMPLE_ATTRIBUTE)
    url = emulated.capture_rule("ConvertFunction", "ConversionContinued")
    step = (300_000 - RESERVE_MS) // 5
    handler(event("convert"), RunningOutContext(step=step))
    (continuation,) = received(url)
    again = continuation if delivered == "continuation" else event("convert")
    if delivered == "continuation":
        handler(continuation, RunningOutContext(step=step))
        assert len(received(url)) == 1  # the continuation's own next one

    handler(again, RunningOutContext(step=step))

    assert not received(url)


# --- route ----------------------------------------------------------------------------------------------

ROUTE_EVENT = load_event("route")
ROUTE_KEY = ROUTE_EVENT["detail"]["object"]["key"]
ROUTE_JOB = ROUTE_KEY.split("-NER-")[1].split("/")[0]
ROUTE_INPUT = "detection/input/v1-20261127T231000/documents.txt"
WORDS = ("Amazon", "Comprehend", "Lambda", "launches", "support", "for", "new", "regions", "tables", "streams",
         "models", "Kendra", "Textract", "adds", "faster", "queries", "Bedrock", "agents", "in", "Europe")


class CountingA2I:
    """StartHumanLoop that remembers each loop; a name started before is a ConflictException, as on
    A2I. Safe to call from several threads."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def start_human_loop(self, HumanLoopName: str, FlowDefinitionArn: str, HumanLoopInput: dict[str, str]
                         ) -> dict[str, Any]:
        with self.lock:
            self.calls[HumanLoopName] += 1
            if self.calls[HumanLoopName] > 1:
                raise ClientError({"Error": {"Code": "ConflictException", "Message": "exists"}}, "StartHumanLoop")
        return {"HumanLoopArn": f"arn:aws:sagemaker:us-east-1:123456789012:human-loop/{HumanLoopName}"}


def detection_documents(count: int) -> list[tuple[str, list[dict[str, Any]]]]:
    """`count` distinct documents with their detected entities: a third uncertain, a third confident,
    a third with none."""
    pick = random.Random(7)
    docs = []
    for index in range(count):
        words = pick.sample(WORDS, 6)
        text = f"{' '.join(words)} {index}."
        entities = []
        if index % 3 != 2:
            score = 0.4 + pick.random() * 0.3 if index % 3 == 0 else 0.99
            entities = [{"BeginOffset": 0, "EndOffset": len(words[0]), "Score": score, "Text": words[0],
                         "Type": "SERVICE"}]
        docs.append((text, entities))
    return docs


def finished_detection(emulated: Any, docs: list[tuple[str, list[dict[str, Any]]]]) -> None:
    state = emulated.state
    for text, _ in docs:
        state.pool.add(document_hash(text), text, "batch-1")
    emulated.s3.put_object(Bucket=emulated.bucket, Key=ROUTE_INPUT,
                           Body="".join(text + "\n" for text, _ in docs).encode("utf-8"))
    state.jobs.put(Job(job_id=ROUTE_JOB, status="COMPLETED", version="v1", input_key=ROUTE_INPUT, documents=len(docs)))
    lines = "".join(json.dumps({"File": "documents.txt", "Line": n, "Entities": entities}) + "\n"
                    for n, (_, entities) in enumerate(docs))
    lines += "not json\n"  # quarantined
    buffer = io.BytesIO()
    # gzip's header holds a time: fixed, so both runs route the same bytes
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as archive:
        info = tarfile.TarInfo("output")
        info.size = len(lines.encode())
        archive.addfile(info, io.BytesIO(lines.encode()))
    emulated.s3.put_object(Bucket=emulated.bucket, Key=ROUTE_KEY, Body=buffer.getvalue())


@pytest.mark.parametrize("budget", ["0", "40"])
def test_a_routing_that_runs_out_of_time_continues_to_a_clean_runs_end(
    emulated, lambda_context, monkeypatch, budget
):
    # Given 300 documents read 10 to a batch, loops started 7 at a time, and 4 threads starting them
    monkeypatch.setattr(route, "POOL_BATCH", 10)
    monkeypatch.setattr(route, "LOOP_CHUNK", 7)
    docs = detection_documents(300)
    a2i = CountingA2I()
    emulated.override_client("sagemaker-a2i-runtime", a2i)
    handler = emulated.handler("RouteFunction", REVIEW_BUDGET=budget)
    finished_detection(emulated, docs)
    clean = handler(ROUTE_EVENT, lambda_context)
    clean_state, clean_loops = end_state(emulated), set(a2i.calls)
    assert clean["loops_started"] > 0 and clean["quarantined"] == 1 and "continued" not in clean
    wipe(emulated)
    a2i.calls.clear()
    continued_url = emulated.capture_rule("RouteFunction", "RoutingContinued")

    # When every invocation has time for about 6 batches
    def short_context() -> RunningOutContext:
        return RunningOutContext(step=(300_000 - RESERVE_MS) // 6)

    finished_detection(emulated, docs)
    first = handler(ROUTE_EVENT, short_context())
    results, published = [first], []
    while "continued" in results[-1]:
        assert len(results) < MAX_INVOCATIONS, "no end in sight: each continuation must make progress"
        (continuation,) = received(continued_url)
        published.append(continuation)
        # the continuation delivered twice, and the original event again after it started
        results.append(handler(continuation, short_context()))
        assert handler(continuation, short_context()) == results[-1]
        assert handler(ROUTE_EVENT, short_context()) == first
    assert not received(continued_url)

    # Then it took several invocations, started every loop of the clean run once, and ended as it did
    assert len(published) >= 3
    assert [e["detail"]["sequence"] for e in published] == list(range(1, len(published) + 1))
    assert set(a2i.calls) == clean_loops and set(a2i.calls.values()) == {1}
    assert results[-1] == clean
    assert end_state(emulated) == clean_state
