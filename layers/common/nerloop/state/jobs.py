"""Detection jobs and their requests.

- JOB / <job id>            a detection job: status, version, input key
- JOB-IN-FLIGHT / <job id>  a copy of a job's item while Comprehend runs it: written and deleted in the
                            same transaction as the job's status, so the watch stage reads only these
- DETECT-REQUEST / <token>  a detection job's input, recorded before the job starts
- DETECT-QUEUE / <token>    a detection request waiting for one of Comprehend's concurrent-job slots
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from nerloop.state._table import TableAccess, is_cancelled, is_condition_failure, now
from nerloop.state.items import (
    DETECTION_QUEUE_PK,
    JOB_IN_FLIGHT,
    JOB_IN_FLIGHT_PK,
    DetectionRequest,
    Job,
    job_from_item,
    request_from_item,
)

PK = "JOB"
REQUEST_PK = "DETECT-REQUEST"


class JobRepository:
    """Detection jobs, the requests they start from, and the queue of requests waiting for a slot."""

    def __init__(self, access: TableAccess) -> None:
        self.access = access

    def put(self, job: Job) -> None:
        """Record a started job; while it is in flight its JOB-IN-FLIGHT copy goes in the same transaction."""
        table = self.access.name
        item = {"pk": PK, "sk": job.job_id, "status": job.status, "version": job.version,
                "input_key": job.input_key, "documents": job.documents, "arn": job.arn, "created_at": now()}
        marker: dict[str, Any] = (
            {"Put": {"TableName": table, "Item": {**item, "pk": JOB_IN_FLIGHT_PK}}}
            if job.status in JOB_IN_FLIGHT else
            {"Delete": {"TableName": table, "Key": {"pk": JOB_IN_FLIGHT_PK, "sk": job.job_id}}})
        self.access.write([{"Put": {"TableName": table, "Item": item}}, marker])

    def set_status(self, job_id: str, status: str, message: str = "") -> None:
        """A job's new status and message; its JOB-IN-FLIGHT copy follows in the same transaction
        (updated while the job runs, deleted once it has ended)."""
        table = self.access.name
        update = {"UpdateExpression": "SET #status = :status, message = :message",
                  "ExpressionAttributeNames": {"#status": "status"},
                  "ExpressionAttributeValues": {":status": status, ":message": message}}
        marker_key = {"pk": JOB_IN_FLIGHT_PK, "sk": job_id}
        marker: dict[str, Any] = (
            # Only while the copy exists: a late poll must not bring an ended job back.
            {"Update": {"TableName": table, "Key": marker_key, **update, "ConditionExpression": "attribute_exists(pk)"}}
            if status in JOB_IN_FLIGHT else {"Delete": {"TableName": table, "Key": marker_key}})
        try:
            self.access.write([{"Update": {"TableName": table, "Key": {"pk": PK, "sk": job_id}, **update}}, marker])
        except ClientError as exc:
            if not is_cancelled(exc):
                raise
            # The copy was gone (the job had ended): the job's own item alone.
            self.access.update(PK, job_id, {"status": status, "message": message})

    def in_flight(self) -> list[Job]:
        """The jobs Comprehend is running (SUBMITTED, IN_PROGRESS, STOP_REQUESTED): their copies only,
        however many jobs have ended before."""
        return [job_from_item(item) for item in self.access.query_all(JOB_IN_FLIGHT_PK, ConsistentRead=True)]

    def count_in_flight(self) -> int:
        return sum(int(page.get("Count", 0))
                   for page in self.access.query_pages(JOB_IN_FLIGHT_PK, Select="COUNT", ConsistentRead=True))

    def get(self, job_id: str) -> Job | None:
        item = self.access.get(PK, job_id)
        return job_from_item(item) if item else None

    def update(self, job_id: str, **attributes: Any) -> None:
        self.access.update(PK, job_id, attributes)

    # --- detection requests ---------------------------------------------------------------------

    def record_request(self, request: DetectionRequest) -> DetectionRequest:
        """Record the input a detection job is about to be started on; when a request with the same
        token was recorded before (a retried start), that one is kept and returned."""
        if self.access.put_if_new({"pk": REQUEST_PK, "sk": request.token, "version": request.version,
                                   "input_key": request.input_key, "documents": request.documents,
                                   "created_at": now()}):
            return request
        earlier = self.get_request(request.token)
        if earlier is None:
            raise RuntimeError(f"detection request {request.token} was recorded, then vanished")
        return earlier

    def get_request(self, token: str) -> DetectionRequest | None:
        item = self.access.get(REQUEST_PK, token)
        return request_from_item(item) if item else None

    # --- detection requests waiting for a slot ----------------------------------------------------

    def queue(self, request: DetectionRequest) -> None:
        """Keep `request` until a concurrent-job slot frees; queued again, it keeps its place."""
        try:
            self.access.table.put_item(
                Item={"pk": DETECTION_QUEUE_PK, "sk": request.token, "version": request.version,
                      "input_key": request.input_key, "documents": request.documents,
                      "queued_at": time.time_ns()},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    def queued(self) -> list[DetectionRequest]:
        """The queued detection requests, first queued first."""
        items = sorted(self.access.query_all(DETECTION_QUEUE_PK, ConsistentRead=True),
                       key=lambda item: (int(item["queued_at"]), item["sk"]))
        return [request_from_item(item) for item in items]

    def dequeue(self, token: str) -> None:
        self.access.table.delete_item(Key={"pk": DETECTION_QUEUE_PK, "sk": token})

    # Last: below it, `list` in an annotation would name this method.
    def list(self) -> list[Job]:
        """Every detection job, in id order."""
        return [job_from_item(item) for item in self.access.query_all(PK)]
