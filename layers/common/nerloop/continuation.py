"""Continuing a stage in a fresh invocation: the checkpoint it wrote, and the event it publishes.

A stage that cannot finish before its Lambda timeout (`nerloop.deadline`) writes what it has done
under `checkpoints/<stage>/<source>/<sequence>/` (its `state.json` last: the checkpoint exists once
that object does) and publishes nerloop's `Stage Continued` event, which the stage's own rule in
template.yaml delivers back to the same function. Each continuation has its own idempotency key
(the run's business key and the sequence number), so a continuation event delivered twice has one
effect, and the original event's record, completed with a result saying `continued`, neither makes
the job look finished nor blocks its continuation.
"""

from __future__ import annotations

import json
from typing import Any, TypedDict

from nerloop.aws import Aws
from nerloop.bus import publish
from nerloop.constants import CHECKPOINTS_PREFIX, STAGE_CONTINUED_DETAIL_TYPE


def checkpoint_prefix(stage: str, source: str, sequence: int) -> str:
    """`checkpoints/<stage>/<source>/<sequence>/`: one folder per checkpoint, never overwritten."""
    return f"{CHECKPOINTS_PREFIX}{stage}/{source}/{sequence}/"


def put_checkpoint(aws: Aws, bucket: str, prefix: str, state: dict[str, Any]) -> str:
    """Write a checkpoint's `state.json` (after any other object of it); return its key."""
    key = prefix + "state.json"
    aws.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(state, sort_keys=True).encode("utf-8"),
                      ContentType="application/json")
    return key


def get_checkpoint(aws: Aws, bucket: str, key: str) -> dict[str, Any]:
    """A checkpoint's `state.json`."""
    state: dict[str, Any] = json.loads(aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return state


class Continued(TypedDict):
    """What a stage's result holds under `continued`: the continuation asked for."""

    sequence: int
    checkpoint: str


def publish_continuation(aws: Aws, stage: str, key: dict[str, str], sequence: int, checkpoint: str) -> Continued:
    """Ask for continuation `sequence` of the `stage` run with business `key`, from `checkpoint`;
    returns what the stage's result holds under `continued`."""
    detail = {"stage": stage, "key": key, "sequence": sequence, "checkpoint": checkpoint}
    publish(aws, STAGE_CONTINUED_DETAIL_TYPE, detail)
    return {"sequence": sequence, "checkpoint": checkpoint}
