"""Faults injected below botocore's retry layer, against moto: the clients' retry policy carries a
call through transient failures, and what outlasts it reaches the caller as the service's error."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError
from moto import mock_aws

from nerloop.aws import RETRY_CONFIG
from nerloop_local.emulator.faults import DYNAMODB, S3, FaultInjector, hook_client


@pytest.fixture
def injector() -> Iterator[FaultInjector]:
    with mock_aws():
        injector = FaultInjector(rate=0.5, seed=9).install()
        try:
            yield injector
        finally:
            injector.uninstall()


def s3_client(config: Config = RETRY_CONFIG) -> object:
    client = hook_client(boto3.client("s3", region_name="us-east-1", config=config))
    client.create_bucket(Bucket="chaos")
    return client


def test_the_deployed_retry_policy_carries_calls_through_half_of_all_attempts_failing(injector) -> None:
    client = s3_client()
    with injector.armed():
        for number in range(30):
            client.put_object(Bucket="chaos", Key=f"k{number}", Body=b"x")
    figures = injector.figures[S3]

    assert client.list_objects_v2(Bucket="chaos")["KeyCount"] == 30
    assert figures.injected > 10 and figures.retries == figures.injected and figures.surfaced == 0
    assert injector.backoff_seconds > 0  # what botocore would have waited: compressed to nothing


def test_a_fault_outlasting_the_retries_reaches_the_caller_as_the_services_error(injector) -> None:
    client = s3_client(Config(retries={"max_attempts": 2, "mode": "standard"}))
    injector.outage_rate, injector.rate = 1.0, 0.0
    with injector.armed(), pytest.raises((ClientError, ReadTimeoutError, ConnectTimeoutError)) as raised:
        client.put_object(Bucket="chaos", Key="k", Body=b"x")
    injector.outage_rate = 0.0

    if isinstance(raised.value, ClientError):
        assert raised.value.response["Error"]["Code"] in ("SlowDown", "InternalError", "ServiceUnavailable")
    assert injector.figures[S3].surfaced == 1 and injector.figures[S3].retries == 2
    assert "Contents" not in client.list_objects_v2(Bucket="chaos")  # the write never happened


def test_disarmed_calls_are_never_faulted(injector) -> None:
    client = s3_client()
    injector.rate = 0.99
    for number in range(20):
        client.put_object(Bucket="chaos", Key=f"k{number}", Body=b"x")
    assert injector.figures[S3].injected == 0


def test_dynamodb_throttling_is_retried_by_the_client(injector) -> None:
    dynamodb = hook_client(boto3.client("dynamodb", region_name="us-east-1", config=RETRY_CONFIG))
    dynamodb.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    with injector.armed():
        for _ in range(20):
            dynamodb.update_item(TableName="t", Key={"pk": {"S": "counter"}}, UpdateExpression="ADD n :one",
                                 ExpressionAttributeValues={":one": {"N": "1"}})
    item = dynamodb.get_item(TableName="t", Key={"pk": {"S": "counter"}})["Item"]

    assert item["n"]["N"] == "20"  # every fault failed before the write: retries add nothing twice
    assert injector.figures[DYNAMODB].injected > 0
