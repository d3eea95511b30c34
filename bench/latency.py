"""How long each AWS request the benchmarked stages make takes on AWS: a per-call latency table.

The stand-ins of bench/standins.py answer in microseconds; with a profile switched on (`--latency aws`)
each stand-in call first sleeps its operation's latency here (a real `time.sleep`, outside any lock:
calls made from several threads overlap as they do on AWS, and the GIL is released meanwhile), and
an S3 body is read no faster than one connection's throughput.

The figures are for a Lambda function calling the service in its own Region over a connection kept
open (botocore keeps one per host). Each row says where its figure comes from: AWS's documentation
where AWS publishes one, otherwise an assumption stated as such. bench/README.md prints the table.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

DYNAMODB_LATENCY = "https://repost.aws/knowledge-center/dynamodb-high-latency"
DYNAMODB_BATCH_GET = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html"
DYNAMODB_BATCH_WRITE = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html"
DYNAMODB_TRANSACT = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html"
DYNAMODB_QUERY = "https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_Query.html"
S3_RETRIES = ("https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/"
              "timeouts-and-retries-for-latency-sensitive-applications.html")
S3_PARALLEL = "https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance-design-patterns.html"
SQS_LATENCY = ("https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/"
               "sqs-throughput-horizontal-scaling-and-batching.html")
A2I_START = "https://docs.aws.amazon.com/augmented-ai/2019-11-07/APIReference/API_StartHumanLoop.html"
COMPREHEND_API = "https://docs.aws.amazon.com/comprehend/latest/APIReference/welcome.html"
SAGEMAKER_DESCRIBE = "https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeLabelingJob.html"


@dataclass(frozen=True)
class CallLatency:
    """One request's time on AWS: `seconds` until the answer (or an S3 body's first byte), then the
    body at `bytes_per_second` (0: no body to speak of). `documented` says whether AWS publishes the
    figure (else it is an assumption, and `basis` says which)."""

    seconds: float
    source: str
    basis: str
    documented: bool = False
    bytes_per_second: float = 0.0


# S3: one connection's throughput for a large body. AWS's design-patterns page (S3_PARALLEL) tells to scale
# throughput by parallel connections; its per-connection figure was not found in the sources searched for this
# table, so 90 MB/s is an assumption.
S3_BYTES_PER_SECOND = 90e6

_DYNAMODB_SINGLE = ("AWS: 'for most atomic operations, such as GetItem and PutItem, you can expect an average "
                    "latency in single-digit milliseconds' (service side); taken as {ms} ms from Lambda")

AWS: dict[str, CallLatency] = {
    # DynamoDB: single-item operations are documented as single-digit milliseconds on average.
    "dynamodb.GetItem": CallLatency(0.005, DYNAMODB_LATENCY, _DYNAMODB_SINGLE.format(ms=5), documented=True),
    "dynamodb.PutItem": CallLatency(0.007, DYNAMODB_LATENCY, _DYNAMODB_SINGLE.format(ms=7) +
                                    " (a write is acknowledged once stored durably: above a read)", documented=True),
    "dynamodb.UpdateItem": CallLatency(0.007, DYNAMODB_LATENCY, _DYNAMODB_SINGLE.format(ms=7), documented=True),
    "dynamodb.DeleteItem": CallLatency(0.007, DYNAMODB_LATENCY, _DYNAMODB_SINGLE.format(ms=7), documented=True),
    "dynamodb.Query": CallLatency(0.010, DYNAMODB_QUERY,
                                  "assumption: 10 ms a page (up to 1 MB); AWS says a Query's latency depends on "
                                  "the result set's size and publishes no figure"),
    "dynamodb.BatchGetItem": CallLatency(0.010, DYNAMODB_BATCH_GET,
                                         "assumption: 10 ms for up to 100 items; AWS documents that BatchGetItem "
                                         "'may retrieve items in parallel' to minimize latency, no figure"),
    "dynamodb.BatchWriteItem": CallLatency(0.015, DYNAMODB_BATCH_WRITE,
                                           "assumption: 15 ms for up to 25 puts; AWS documents that BatchWriteItem "
                                           "'performs the specified put and delete operations in parallel', "
                                           "no figure"),
    "dynamodb.TransactWriteItems": CallLatency(0.025, DYNAMODB_TRANSACT,
                                               "assumption: 25 ms for up to 100 actions (a transaction checks "
                                               "every condition before writing anything); no published figure"),
    # S3: small requests' median latency is "often in the tens of milliseconds".
    "s3.GetObject": CallLatency(0.030, S3_RETRIES,
                                "AWS: for requests under 512 KB 'median latencies are often in the tens of "
                                "milliseconds': 30 ms to the first byte; the body then at 90 MB/s (assumption, "
                                f"one connection; see {S3_PARALLEL})", documented=True,
                                bytes_per_second=S3_BYTES_PER_SECOND),
    "s3.HeadObject": CallLatency(0.020, S3_RETRIES, "AWS: tens of milliseconds for small requests; 20 ms "
                                 "(no body)", documented=True),
    "s3.PutObject": CallLatency(0.040, S3_RETRIES, "AWS: tens of milliseconds for small requests; 40 ms, then "
                                f"the body at 90 MB/s (assumption, one connection; see {S3_PARALLEL})", documented=True,
                                bytes_per_second=S3_BYTES_PER_SECOND),
    # The control-plane and workflow APIs publish no latency; AWS's own example of a request's latency from
    # EC2 to a service in the same Region is 20 ms (SQS's developer guide). The assumptions start there.
    "a2i.StartHumanLoop": CallLatency(0.100, A2I_START,
                                      "assumption: 100 ms; A2I publishes no latency (it stores the input and "
                                      "creates the review task before answering): 5x AWS's 20 ms example of an "
                                      "in-Region request (SQS developer guide)"),
    "comprehend.Describe": CallLatency(0.050, COMPREHEND_API,
                                       "assumption: 50 ms for DescribeEntityRecognizer / "
                                       "DescribeEntitiesDetectionJob; no published figure"),
    "comprehend.Start": CallLatency(0.200, COMPREHEND_API,
                                    "assumption: 200 ms for CreateEntityRecognizer / StartEntitiesDetectionJob "
                                    "(they validate the S3 input and the role); no published figure"),
    "sagemaker.DescribeLabelingJob": CallLatency(0.050, SAGEMAKER_DESCRIBE,
                                                 "assumption: 50 ms; no published figure"),
    "events.PutEvents": CallLatency(0.020, SQS_LATENCY,
                                    "assumption: 20 ms, AWS's example of an in-Region request's latency (SQS "
                                    "developer guide); EventBridge publishes no PutEvents latency"),
}

PROFILES: dict[str, Mapping[str, CallLatency]] = {"none": {}, "aws": AWS}


class LatencyModel:
    """Sleeps each operation's latency from a table (times `scale`: tests use tiny ones)."""

    def __init__(self, table: Mapping[str, CallLatency] | None = None, scale: float = 1.0, name: str = "none") -> None:
        self.table = dict(table or {})
        self.scale = scale
        self.name = name

    @classmethod
    def profile(cls, name: str, scale: float = 1.0) -> LatencyModel:
        """The model of a named profile (`none`, `aws`); ValueError naming the known ones otherwise."""
        if name not in PROFILES:
            raise ValueError(f"unknown latency profile {name!r}: one of {', '.join(PROFILES)}")
        return cls(PROFILES[name], scale, name)

    @property
    def enabled(self) -> bool:
        return bool(self.table)

    def seconds(self, operation: str, body_bytes: int = 0) -> float:
        """The time `operation` takes (its request, plus `body_bytes` of body at its throughput)."""
        latency = self.table.get(operation)
        if latency is None:
            return 0.0
        transfer = body_bytes / latency.bytes_per_second if latency.bytes_per_second else 0.0
        return (latency.seconds + transfer) * self.scale

    def wait(self, operation: str) -> None:
        """Sleep for `operation`'s request (nothing when the table has no such row). Never under a lock."""
        seconds = self.seconds(operation)
        if seconds > 0:
            time.sleep(seconds)

    def wait_transfer(self, operation: str, body_bytes: int) -> None:
        """Sleep for `body_bytes` of body at `operation`'s throughput (its request's latency not included)."""
        seconds = self.seconds(operation, body_bytes) - self.seconds(operation)
        if seconds > 0:
            time.sleep(seconds)

    def body(self, operation: str) -> BodyPace:
        """A pacer for the body of one `operation` response."""
        latency = self.table.get(operation)
        rate = latency.bytes_per_second / self.scale if latency and latency.bytes_per_second and self.scale else 0.0
        return BodyPace(rate)


class BodyPace:
    """Holds an S3 body's reads to one connection's throughput: time owed accumulates per chunk and is
    slept once it reaches a millisecond (a sleep per 1 KB chunk would cost more than it models)."""

    THRESHOLD = 0.001

    def __init__(self, bytes_per_second: float) -> None:
        self.bytes_per_second = bytes_per_second
        self.owed = 0.0

    def account(self, size: int) -> None:
        if not self.bytes_per_second or not size:
            return
        self.owed += size / self.bytes_per_second
        if self.owed >= self.THRESHOLD:
            time.sleep(self.owed)
            self.owed = 0.0


def describe(table: Mapping[str, CallLatency]) -> list[dict[str, object]]:
    """The table as rows for results.json and the README."""
    return [{"operation": operation, "ms": latency.seconds * 1000,
             "mb_per_second": latency.bytes_per_second / 1e6 if latency.bytes_per_second else None,
             "documented": latency.documented, "basis": latency.basis, "source": latency.source}
            for operation, latency in table.items()]
