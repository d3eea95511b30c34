"""The state table: one DynamoDB table (pk, sk) holding everything the loop remembers.

`StateTable` is the entry point the stages receive; each item family has its repository, an
attribute of it:

- `gold`          GOLD / <doc hash>: a labelled document: text, spans, origin (labeling job or human loop)
- `pool`          POOL / <doc hash>: a document waiting for the model: text, status, seen_by, loop;
                  detected_at and uncertain_by, what the detection cap's policy reads (nerloop.detection_policy)
- `versions`      VERSION / <version>: a recognizer version (status, arn, metrics, snapshot);
                  MODEL / ACTIVE: the version detection uses
- `jobs`          JOB, JOB-IN-FLIGHT, DETECT-REQUEST, DETECT-QUEUE: detection jobs and their requests
- `loops`         LOOP / <loop name>, OPEN-LOOP / <loop name>: human loops; a loop's end with its
                  count and gold labels (`loops.merge_review`), one transaction across families
- `counters`      COUNTER / <name>, COUNTED / <marker>: atomic and once-only counts
- `training_lock` LOCK / TRAINING: the single-flight training lock
- `seed_labeling` LABELING / SEED: the batch whose Ground Truth job labels the seed set
- IDEMPOTENCY / <hash>: Powertools idempotency records (written by Powertools, not here)

Every write that must happen once is conditional; counters use atomic ADD. The shared reads, writes
and transactions are in `nerloop.state._table`.
"""

from nerloop.state._table import now
from nerloop.state.gold import GoldBatchWriter, StateWriteIncomplete
from nerloop.state.items import (
    ACCEPTED,
    COUNTER_FIRST,
    DETECTION_QUEUE_PK,
    GOLD,
    IDEMPOTENCY_PK,
    IN_REVIEW,
    JOB_IN_FLIGHT,
    JOB_IN_FLIGHT_PK,
    LOOP_OPEN,
    OPEN_LOOP_PK,
    RECOGNIZER_IN_FLIGHT,
    WAITING,
    DetectionRequest,
    GoldDocument,
    Job,
    Loop,
    PoolDocument,
    Version,
)
from nerloop.state.table import StateTable

__all__ = [
    "ACCEPTED", "COUNTER_FIRST", "DETECTION_QUEUE_PK", "GOLD", "IDEMPOTENCY_PK", "IN_REVIEW", "JOB_IN_FLIGHT",
    "JOB_IN_FLIGHT_PK", "LOOP_OPEN", "OPEN_LOOP_PK", "RECOGNIZER_IN_FLIGHT", "WAITING", "DetectionRequest",
    "GoldBatchWriter", "GoldDocument", "Job", "Loop", "PoolDocument", "StateTable", "StateWriteIncomplete",
    "Version", "now",
]
