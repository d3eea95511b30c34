"""`nerloop status --stack NAME`: a deployed stack's status, in the same form as a workspace's
(`nerloop_local.report.status.assemble_status`), read with the caller's AWS credentials and never written.

- versions, pool, gold set, reviews, trainings, detection jobs, the training lock: the state table,
  read by the same code the functions use (`nerloop.state.StateTable`);
- human loops waiting for a reviewer: the loops the state table holds `InProgress`;
- labeling jobs waiting: Ground Truth's ListLabelingJobs, `Initializing` or `InProgress`, whose names
  start with the stack's prefix (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_ListLabelingJobs.html);
- dead letters: each function's dead-letter queue, read without taking its messages (`stack_redrive`);
- raw files: the keys under raw/ in the data bucket.

What only a workspace knows is left empty: events queued for a function (Lambda's own queue of
asynchronous invocations cannot be read) and the delivery history (the functions' logs and the
CloudWatch dashboard have it).
"""

from __future__ import annotations

from typing import Any

from nerloop.state import StateTable
from nerloop_local.commands.stack_redrive import peek_dead_letters
from nerloop_local.commands.stack_resources import StackResources
from nerloop_local.report.cost import collect_costs
from nerloop_local.report.status import assemble_status

WAITING_LABELING_STATUSES = ("Initializing", "InProgress")


def labeling_job_prefix(resources: StackResources) -> str:
    """The prefix of the stack's Ground Truth jobs: its output, else as template.yaml makes it (the
    LabelingJobPrefix parameter, or `nerloop-` and the first 8 hex digits of the stack id)."""
    if resources.outputs.get("LabelingJobPrefix"):
        return resources.outputs["LabelingJobPrefix"]
    return resources.parameters.get("LabelingJobPrefix") or "nerloop-" + resources.stack_id.split("/")[2].split("-")[0]


def waiting_labeling_jobs(resources: StackResources) -> list[str]:
    """Names of the stack's labeling jobs that wait for labels, oldest first."""
    sagemaker, prefix = resources.client("sagemaker"), labeling_job_prefix(resources)
    jobs: list[tuple[Any, str]] = []
    for status in WAITING_LABELING_STATUSES:
        token = None
        while True:
            page = sagemaker.list_labeling_jobs(StatusEquals=status, NameContains=prefix,
                                                **({"NextToken": token} if token else {}))
            jobs += [(job["CreationTime"], job["LabelingJobName"]) for job in page.get("LabelingJobSummaryList", [])
                     if job["LabelingJobName"].startswith(prefix)]
            token = page.get("NextToken")
            if not token:
                break
    return [name for _, name in sorted(jobs)]


def count_keys(resources: StackResources, prefix: str) -> int:
    paginator = resources.client("s3").get_paginator("list_objects_v2")
    return sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=resources.bucket, Prefix=prefix))


def collect_stack_status(resources: StackResources, prices: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status of the loop a deployed stack runs (reads only)."""
    state = StateTable(resources.state_table())
    parameters = resources.parameters
    dead: dict[str, list[dict[str, Any]]] = {}
    for letter in peek_dead_letters(resources):
        dead.setdefault(letter.function, []).append(letter.summary())
    return assemble_status(
        {"stack": resources.name, "region": resources.region, "stack_status": resources.status},
        state, parameters, [name.strip() for name in parameters.get("EntityTypes", "").split(",") if name.strip()],
        loops_waiting=len(state.loops.list(["InProgress"])),
        labeling_jobs_waiting=waiting_labeling_jobs(resources),
        events_pending={}, dead_letters=dead, deliveries={}, raw_files=count_keys(resources, "raw/"),
        cost=collect_costs(state, prices))


__all__ = ["collect_stack_status", "labeling_job_prefix", "waiting_labeling_jobs"]
