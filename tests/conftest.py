"""Shared fixtures. Every test runs offline: fake credentials, and any socket to a
non-loopback address fails loudly instead of reaching AWS."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nerloop_local.emulator.isolation import NetworkGuard, use_fake_credentials

# Set before anything creates a boto3 client.
use_fake_credentials()
os.environ.update({
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "nerloop",
    "POWERTOOLS_SERVICE_NAME": "nerloop-test",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
})

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = Path(os.environ.get("NERLOOP_SAMPLE_DATA", REPO.parent / "shared/data/aws-service-offerings"))

NetworkGuard("a test").install()  # for the whole session: any socket off this machine fails loudly


@pytest.fixture(scope="session")
def reference_annotations(sample_dir: Path) -> list[tuple[int, str, Any]]:
    """The reference notebook's annotations.csv as (0-based line, document text, span trimmed of
    white space at its edges); its Line counts into train.csv, whose first lines are the manifest's."""
    import csv

    from nerloop.documents import Span, trim_span

    train = (sample_dir / "train.csv").read_text(encoding="utf-8").split("\n")
    rows = []
    with (sample_dir / "annotations.csv").open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            line, text = int(row["Line"]), train[int(row["Line"])]
            span = Span(int(row["Begin Offset"]), int(row["End Offset"]), row["Type"])
            rows.append((line, text, trim_span(text, span)))
    return rows


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The walkthrough's real data (read-only)."""
    if not (SAMPLE_DIR / "output.manifest").exists():
        pytest.fail(f"sample data not found at {SAMPLE_DIR}; set NERLOOP_SAMPLE_DATA")
    return SAMPLE_DIR


# --- the emulated stack ------------------------------------------------------------------------

from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from nerloop import aws as nerloop_aws  # noqa: E402
from nerloop import idempotency, settings  # noqa: E402
from nerloop.state import StateTable  # noqa: E402
from nerloop_local.emulator.atomic import make_dynamodb_writes_atomic  # noqa: E402
from nerloop_local.emulator.deployment import create_stack_resources  # noqa: E402
from nerloop_local.emulator.scaling import make_moto_scale  # noqa: E402
from nerloop_local.emulator.stack import Stack, load_event  # noqa: E402

make_dynamodb_writes_atomic()
make_moto_scale()


_REAL_CLIENT = nerloop_aws.client


@pytest.fixture(scope="session")
def stack() -> Stack:
    """template.yaml with names resolved for moto's account."""
    return Stack.load()


@dataclass
class FakeLambdaContext:
    function_name: str = "nerloop-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:nerloop-test"
    aws_request_id: str = "test-request-id"
    log_group_name: str = "/aws/lambda/nerloop-test"
    log_stream_name: str = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@dataclass
class EmulatedStack:
    """moto resources made from template.yaml, and a way to call a function's handler."""

    stack: Stack
    monkeypatch: pytest.MonkeyPatch
    bucket: str
    table_name: str

    @property
    def s3(self) -> Any:
        return boto3.client("s3")

    @property
    def state(self) -> StateTable:
        return StateTable(boto3.resource("dynamodb").Table(self.table_name))

    def use_environment(self, logical_id: str, **overrides: str) -> None:
        """The function's environment from the template, with `overrides` (e.g. RETRAIN_BATCH_SIZE="2")."""
        for name, value in {**self.stack.function_environment(logical_id), **overrides}.items():
            self.monkeypatch.setenv(name, value)
        settings.get_settings.cache_clear()

    def override_client(self, service: str, replacement: Any) -> None:
        """Make every handler's `Aws` bundle use `replacement` for `service` (a Stubber-wrapped
        client or a fake), for the calls moto lacks. Other services stay on moto."""
        overrides = self.__dict__.setdefault("_overrides", {})
        overrides[service] = replacement
        self.monkeypatch.setattr(
            nerloop_aws, "client", lambda name: overrides[name] if name in overrides else _REAL_CLIENT(name)
        )

    def handler(self, logical_id: str, **overrides: str) -> Any:
        """The function's handler, imported with the function's own environment (plus `overrides`)."""
        self.use_environment(logical_id, **overrides)
        return self.stack.load_handler(logical_id)

    def completed_labeling_job(self, stub: Any, manifest: bytes, attribute: str) -> str:
        """The sample convert event's labeling job, finished: `manifest` where Ground Truth writes
        it, and DescribeLabelingJob answered on `stub` (label attribute `attribute`); its S3 URI."""
        from datetime import UTC, datetime

        from nerloop.labeling import labeling_job_request

        arn = load_event("convert")["resources"][0]
        job = arn.rsplit("/", 1)[-1]
        key = f"labeling/{job}/manifests/output/output.manifest"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=manifest)
        uri = f"s3://{self.bucket}/{key}"
        request = labeling_job_request(
            job_name=job, region="us-east-1", manifest_uri=f"s3://{self.bucket}/batches/b/input.manifest",
            output_uri=f"s3://{self.bucket}/labeling/", categories_uri=f"s3://{self.bucket}/batches/b/c.json",
            workteam_arn="arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/team",
            role_arn="arn:aws:iam::123456789012:role/labeling",
        )
        when = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
        stub.add_response("describe_labeling_job", {
            **{name: request[name] for name in ("LabelingJobName", "InputConfig", "OutputConfig", "RoleArn",
                                                "LabelCategoryConfigS3Uri", "HumanTaskConfig")},
            "LabelAttributeName": attribute,  # need not be the job's name
            "LabelingJobStatus": "Completed",
            "LabelCounters": {"TotalLabeled": 1, "HumanLabeled": 1, "MachineLabeled": 0,
                              "FailedNonRetryableError": 0, "Unlabeled": 0},
            "CreationTime": when, "LastModifiedTime": when, "JobReferenceCode": "a1b2c3d4",
            "LabelingJobArn": arn, "LabelingJobOutput": {"OutputDatasetS3Uri": uri},
        }, expected_params={"LabelingJobName": job})
        return uri

    def capture_rule(self, function: str, event_name: str) -> str:
        """Route what the template's rule `event_name` of `function` matches on the default bus into
        a queue; return the queue's URL (read it with `received`)."""
        import json

        from nerloop_local.emulator.template import rules

        pattern = self.stack.resolve(rules(self.stack.template)[function][event_name]["Properties"]["Pattern"])
        sqs, events = boto3.client("sqs"), boto3.client("events")
        url: str = sqs.create_queue(QueueName=f"capture-{function}-{event_name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=f"capture-{function}-{event_name}", EventPattern=json.dumps(pattern))
        events.put_targets(Rule=f"capture-{function}-{event_name}", Targets=[{"Id": "capture", "Arn": arn}])
        return url

    @staticmethod
    def received(url: str) -> list[dict[str, Any]]:
        """The events a `capture_rule` queue holds."""
        import json

        messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]


@pytest.fixture
def emulated(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedStack]:
    """A fresh moto account holding the stack's bucket and state table."""
    with mock_aws():
        nerloop_aws.reset_clients()
        idempotency.forget_persistence()
        settings.get_settings.cache_clear()
        bucket, table_name = create_stack_resources(stack)
        yield EmulatedStack(stack, monkeypatch, bucket, table_name)
        nerloop_aws.reset_clients()
        idempotency.forget_persistence()
        settings.get_settings.cache_clear()


@pytest.fixture
def event() -> Any:
    """load_event as a fixture: event("convert") reads events/convert.json."""
    return load_event


@pytest.fixture
def sagemaker_stub(emulated: EmulatedStack) -> Iterator[Any]:
    """A Stubber on the SageMaker client every handler's Aws bundle receives (moto has no Ground Truth)."""
    from botocore.stub import Stubber

    stubbed = boto3.client("sagemaker", region_name="us-east-1")
    emulated.override_client("sagemaker", stubbed)
    with Stubber(stubbed) as stubber:
        yield stubber
