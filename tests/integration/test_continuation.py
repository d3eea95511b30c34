"""Issue 13: a stage that runs short of time checkpoints and continues in a fresh invocation, and the
end state is a clean run's, however the events arrive (the continuation twice, the original again).

The time left is injected through the Lambda context: it drops by a fixed step each time it is read,
so the stage's deadline (time left under `nerloop.deadline.RESERVE_MS`) comes after a few batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest

from nerloop.deadline import RESERVE_MS
from nerloop.stages import convert
from nerloop.state import IDEMPOTENCY_PK

SAMPLE_ATTRIBUTE = "a2i-comprehend-gtner7c0bf6de-b5a1-11ea-bf5f-12acee018271"


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
    assert len(list(emulated.state.iter_gold())) == len(texts)


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
