"""No document stays in review without a live human loop.

The merge stage hears of a loop's end from A2I's status event. When that event never reaches it (a
lost delivery, a rule that did not match), or A2I deleted the loop (deleting a flow definition
stops and deletes the loops nobody had started:
https://docs.aws.amazon.com/sagemaker/latest/dg/a2i-delete-flow-definition.html), the state table
would keep the loop open and its document in review for ever. The watch stage therefore looks at
the loops open longest with DescribeHumanLoop and gives each one that has ended to the merge stage's
own code, built from what A2I describes (Completed: its answer is merged; Failed or Stopped: its
document waits again). A loop A2I no longer knows (DescribeHumanLoop: ResourceNotFoundException,
https://docs.aws.amazon.com/augmented-ai/2019-11-07/APIReference/API_DescribeHumanLoop.html) is ended
as Stopped. The merge is idempotent per (loop, status), so its event arriving as well changes nothing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from nerloop.aws import Aws
from nerloop.observability import logger
from nerloop.settings import Settings
from nerloop.state import StateTable

if TYPE_CHECKING:
    from nerloop.event_models.human_loop import HumanLoopDetail
    from nerloop.stages.merge import MergeResult

# A2I's event normally comes within seconds of a loop's end: a loop is described only once it has
# been open (or last found open) this long, and at most this many a run, to spare A2I's API.
RECHECK_SECONDS = 30 * 60
MAX_LOOPS_PER_RUN = 50
STILL_OPEN = ("InProgress", "Stopping")  # A2I HumanLoopStatus of a loop that can still be answered
GONE = "the human loop no longer exists in A2I (deleted, e.g. with its flow definition)"


def clock() -> float:
    """Seconds since the epoch (a module function so tests can move time on)."""
    return time.time()


def _stamp(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def reconcile_open_loops(aws: Aws, settings: Settings) -> list[MergeResult]:
    """End, through the merge stage, the open loops A2I has ended or forgotten; return the merges."""
    state = StateTable(aws.table)
    now = clock()
    due = state.loops.open_unchecked_since(_stamp(now - RECHECK_SECONDS), MAX_LOOPS_PER_RUN)
    if not due:
        return []
    # Late import: the watch's cold start loads no other stage (merge, its event models: ~18 ms) until a loop is due.
    from nerloop.stages.merge import merge_human_loop

    merged: list[MergeResult] = []
    for name in due:
        detail = described_loop(name, aws)
        if detail.humanLoopStatus in STILL_OPEN:
            state.loops.mark_checked(name, _stamp(now))
            continue
        logger.warning("human loop ended without its event reaching the merge stage", loop=name,
                       status=detail.humanLoopStatus)
        merged.append(merge_human_loop(detail, aws, settings))
    return merged


def described_loop(name: str, aws: Aws) -> HumanLoopDetail:
    """The loop as A2I describes it, in the shape of its status event's detail."""
    # Late import: as merge above, the watch's cold start loads no other stage's event models.
    from nerloop.event_models.human_loop import HumanLoopDetail, HumanLoopOutput

    try:
        described = aws.a2i.describe_human_loop(HumanLoopName=name)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        return HumanLoopDetail(humanLoopName=name, humanLoopStatus="Stopped", failureReason=GONE)
    output = described.get("HumanLoopOutput") or {}
    return HumanLoopDetail(
        humanLoopName=name, humanLoopArn=described.get("HumanLoopArn", ""),
        flowDefinitionArn=described.get("FlowDefinitionArn", ""), humanLoopStatus=described["HumanLoopStatus"],
        humanLoopOutput=HumanLoopOutput(outputS3Uri=output["OutputS3Uri"]) if output.get("OutputS3Uri") else None,
        failureCode=described.get("FailureCode"), failureReason=described.get("FailureReason"))
