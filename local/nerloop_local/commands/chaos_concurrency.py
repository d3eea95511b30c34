"""`nerloop chaos`'s concurrency check: many human loops complete at once, each Completed event delivered
twice, through MergeFunction's own handler on threads against one table (see nerloop_local.commands.chaos)."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nerloop import aws as nerloop_aws
from nerloop import settings as nerloop_settings
from nerloop.a2i import loop_name
from nerloop.documents import document_hash
from nerloop.retrain import REVIEWS, REVIEWS_AT_SNAPSHOT, RetrainPolicy, maybe_start_retrain, retrain_due
from nerloop.state import IN_REVIEW, LOOP_OPEN, Loop
from nerloop_local.commands.chaos_state import CHAOS_ENVIRONMENT, Figures
from nerloop_local.emulator.invocation import temporary_environment
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.stack import load_event


@contextmanager
def per_thread_clients() -> Iterator[None]:
    """Each thread gets its own boto3 clients and table resource, as separate Lambda execution
    environments have (boto3 resources must not be shared between threads)."""
    local = threading.local()
    original_client, original_table = nerloop_aws._cached_client, nerloop_aws.dynamodb_table

    def client(service: str) -> Any:
        cache = local.__dict__.setdefault("clients", {})
        if service not in cache:
            cache[service] = original_client.__wrapped__(service)
        return cache[service]

    def table(name: str) -> Any:
        cache = local.__dict__.setdefault("tables", {})
        if name not in cache:
            cache[name] = original_table.__wrapped__(name)
        return cache[name]

    nerloop_aws._cached_client, nerloop_aws.dynamodb_table = client, table  # type: ignore[assignment]
    try:
        yield
    finally:
        nerloop_aws._cached_client, nerloop_aws.dynamodb_table = original_client, original_table


def check_concurrency(folder: Path, *, loops: int = 200, batch: int = 50, threads: int = 32, seed: int = 0) -> Figures:
    """`loops` human loops complete at once, each Completed event delivered twice, all handed at the same
    moment to `threads` threads (concurrent Lambda invocations) running MergeFunction's own handler
    against one table. (A thread per delivery would only add CPython thread switching: on 2 cores
    400 threads run moto 7 times slower than 32, with no more interleaving of DynamoDB requests.)"""
    started = time.perf_counter()
    figures = Figures("concurrent")
    workspace = folder / "concurrent"
    shutil.rmtree(workspace, ignore_errors=True)
    parameters = {"EntityTypes": "SERVICE,VERSION", "RetrainBatchSize": str(batch)}
    with LocalRuntime(workspace, parameters, environment=CHAOS_ENVIRONMENT, autosave=False, restore=False) as runtime:
        events = _open_loops(runtime, loops)
        deliveries = [dict(event, id=f"{event['id']}-{copy}") for event in events for copy in (1, 2)]
        random.Random(seed).shuffle(deliveries)  # nosec B311 # delivery order, not secrets
        figures.deliveries, figures.duplicates = len(deliveries), loops
        with temporary_environment(runtime.function_environment("MergeFunction")), per_thread_clients():
            nerloop_settings.get_settings.cache_clear()
            _deliver_at_once(runtime, deliveries, threads, figures)
            _check_merged(runtime, loops, batch, figures)
    figures.seconds = round(time.perf_counter() - started, 1)
    figures.ok = not figures.notes
    return figures


def _open_loops(runtime: LocalRuntime, loops: int) -> list[dict[str, Any]]:
    """`loops` documents in review, each with its open loop and its worker's answer in the bucket, as the
    route stage and A2I leave them; return each loop's Completed event."""
    state, bucket = runtime.state, runtime.bucket
    template = load_event("merge")
    events = []
    opened: list[Loop] = []
    for number in range(loops):
        text = f"Amazon Service{number} {number}.0 is generally available."
        doc, version = document_hash(text), "v0"
        name = loop_name(doc, version)
        # What the route stage leaves for a document in review, through the state repositories.
        state.pool.add(doc, text, "chaos")
        state.pool.mark(doc, IN_REVIEW, seen_by=version, loop=name)
        opened.append(Loop(name=name, doc=doc, version=version, status=LOOP_OPEN))
        key = f"reviews/chaos/{name}/output.json"
        word = len(f"Service{number}")
        runtime.put_text(key, json.dumps({
            "humanLoopName": name, "flowDefinitionArn": runtime.flow_definition_arn,
            "inputContent": {"document": doc, "version": version, "text": text,
                             "labels": [{"label": "SERVICE"}, {"label": "VERSION"}]},
            "humanAnswers": [{"workerId": "chaos", "answerContent": {"crowd-entity-annotation": {"entities": [
                {"label": "SERVICE", "startOffset": 7, "endOffset": 7 + word}]}}}],
        }))
        event = json.loads(json.dumps(template))
        detail = event["detail"]
        detail.update({"humanLoopName": name, "humanLoopStatus": "Completed",
                       "humanLoopArn": detail["humanLoopArn"].rsplit("/", 1)[0] + f"/{name}",
                       "humanLoopOutput": {"outputS3Uri": f"s3://{bucket}/{key}"}})
        event["resources"] = [detail["humanLoopArn"]]
        events.append(event)
    state.loops.put_many(opened)
    return events


def _deliver_at_once(runtime: LocalRuntime, deliveries: list[dict[str, Any]], threads: int, figures: Figures) -> None:
    """Hand `deliveries` to MergeFunction's handler on `threads` threads, the first of them at the same
    instant; then retry the failed ones once, as Lambda would."""
    notes = figures.notes
    handler = runtime.stack.load_handler("MergeFunction")
    workers = max(1, min(threads, len(deliveries)))
    barrier = threading.Barrier(workers)
    first_wave = set(range(workers))

    def deliver(number: int, event: dict[str, Any], wait: bool = True) -> str | None:
        if wait and number in first_wave:
            barrier.wait()  # the first `workers` start at the same instant, the rest right after
        try:
            handler(event, runtime.lambda_context("MergeFunction"))
        except Exception as exc:  # e.g. the other copy is in progress: Lambda retries it
            return type(exc).__name__
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool, contextlib.redirect_stdout(io.StringIO()):
        errors = list(pool.map(deliver, range(len(deliveries)), deliveries))
    failed = [event for event, error in zip(deliveries, errors, strict=True) if error]
    figures.failed = len(failed)
    kinds = Counter(error for error in errors if error)
    with ThreadPoolExecutor(max_workers=workers) as pool, contextlib.redirect_stdout(io.StringIO()):
        retry_errors = [e for e in pool.map(lambda ev: deliver(0, ev, wait=False), failed) if e]
    if retry_errors:
        notes.append(f"retried deliveries failed again: {Counter(retry_errors)}")
    if kinds and set(kinds) != {"IdempotencyAlreadyInProgressError"}:
        notes.append(f"unexpected failures: {dict(kinds)}")


def _check_merged(runtime: LocalRuntime, loops: int, batch: int, figures: Figures) -> None:
    """Every review in the gold set, the review counter exact, one training started (v1) while it is in
    flight, and exactly one more once it finished (if a full batch is pending)."""
    state, bucket, notes = runtime.state, runtime.bucket, figures.notes
    gold = {g.doc for g in state.gold.documents()}
    reviews, at_snapshot = state.counters.get(REVIEWS), state.counters.get(REVIEWS_AT_SNAPSHOT)
    completed = [loop for loop in state.loops.list() if loop.status == "Completed"]
    snapshots = sorted({key.split("/")[1] for key in runtime.list_keys("training/")})
    if len(gold) != loops or len(completed) != loops:
        notes.append(f"{len(gold)} gold documents and {len(completed)} completed loops, expected {loops}")
    if reviews != loops:
        notes.append(f"REVIEWS is {reviews}, expected {loops}")
    if snapshots != ["v1"] or state.training_lock.holder() != "v1":
        notes.append(f"snapshots {snapshots} (lock {state.training_lock.holder()}), expected one: v1")
    # v1 finished training: the detect stage releases the lock and checks for a due retrain.
    state.training_lock.release("v1")
    policy = RetrainPolicy(batch)
    due = retrain_due(state, policy) is not None
    with ThreadPoolExecutor(max_workers=16) as pool:
        started_now = [s.version for s in pool.map(
            lambda _: maybe_start_retrain(runtime.state, runtime.s3, bucket, policy), range(16)) if s]
    if started_now != (["v2"] if due else []):
        notes.append(f"after v1 trained, {started_now} started; {reviews - at_snapshot} reviews were pending")
    figures.versions = " ".join(snapshots + started_now)
    figures.gold, figures.reviews = len(gold), reviews
    figures.loops = f"Completed:{len(completed)}"
    figures.counters = (f"REVIEWS={reviews} REVIEWS_AT_SNAPSHOT(v1)={at_snapshot} "
                        f"then={state.counters.get(REVIEWS_AT_SNAPSHOT)}")
