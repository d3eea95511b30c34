"""`make chaos` / `nerloop chaos`: the loop keeps its promise through duplicates, concurrency and faults.

Five checks on a reduced demo (a 45-line Ground Truth seed, 40 raw lines, reviews in batches of 5,
two batches answered: three model versions), each compared with a clean run of the same scenario:

1. clean      — the reference run.
2. duplicates — every event delivered twice (the copy with a new event id, in the same cycle in a
                shuffled order or in the next cycle): the final state must equal the clean run's.
3. faults     — 20 % of the handlers' HTTP attempts to S3, DynamoDB, Comprehend and A2I fail
                transiently (nerloop_local.emulator.faults: throttling, 5xx, timeouts, and a few outages longer
                than the clients' retries): the final state must equal the clean run's.
4. concurrent — 200 human loops complete at once (each Completed event delivered twice, at the same
                moment) through the real merge handler on threads against one table: every review in
                the gold set, the review counter exact, one training started while one is in flight,
                and exactly one more once it finished (if a full batch is pending).
5. redrive    — the merge function lacks a permission (AccessDenied): its events land in its
                dead-letter queue with the original event; the permission is granted, `redrive`
                re-runs them (the final state equals the clean run's), and redriving the same dead
                letters again changes nothing.

Equal means `canonical_state` is equal: every item of the state table except the idempotency
records, with timestamps and service-made ids taken out (see there), the training snapshots'
contents, and what the Comprehend and A2I stand-ins hold (recognizer versions, detection jobs per
version, human loops). Faults injected are all failures before the service applied the request; a
reply lost after a write was applied is left out on purpose: DynamoDB's ADD and conditional writes
are not idempotent under such a retry, and that case needs its own design (see the report).

Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import itertools
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nerloop_local.emulator.faults import SERVICES, FaultInjector

QUIET = {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "CRITICAL"}
# Attributes that say when something happened (updated_at, started_at, acquired_epoch, claimed_at ...):
# they differ between any two runs.
TIMESTAMP_SUFFIXES = ("_at", "_epoch")
_RUN_TIME = re.compile(r"-\d{8}T\d{6}")  # the detection run's name: <version>-<UTC time>


# --- the scenario -----------------------------------------------------------------------------------------


@dataclass
class Scenario:
    """A reduced demo: a labelled seed, raw text, and a reviewer answering `answered_batches` batches."""

    sample: Path
    seed_lines: int = 45
    raw_lines: int = 40
    batch: int = 5
    answered_batches: int = 2
    max_cycles: int = 300

    @property
    def reviews(self) -> int:
        return self.batch * self.answered_batches

    def parameters(self) -> dict[str, str]:
        return {"EntityTypes": "SERVICE,VERSION", "ConfidenceThreshold": "0.999",
                "RetrainBatchSize": str(self.batch), "ReviewBudget": str(self.batch), "TestShare": "0"}

    def seed_manifest(self) -> bytes:
        with (self.sample / "output.manifest").open("rb") as manifest:
            return b"".join(itertools.islice(manifest, self.seed_lines))

    def raw_text(self) -> str:
        return "\n".join((self.sample / "test.csv").read_text(encoding="utf-8").splitlines()[:self.raw_lines]) + "\n"

    def reviewer(self) -> Callable[[str, dict[str, Any]], list[dict[str, Any]] | None]:
        """Keeps the model's spans and marks the first word SERVICE when it is free; answers the first
        `reviews` loops it is asked about (by name, so asking again gives the same answer)."""
        answered: dict[str, list[dict[str, Any]]] = {}

        def review(loop_name: str, content: dict[str, Any]) -> list[dict[str, Any]] | None:
            if loop_name in answered:
                return answered[loop_name]
            if len(answered) >= self.reviews:
                return None  # later loops wait for a person who never comes
            answer = [dict(item) for item in content["initialValue"]]
            first_word = len(content["text"].split(" ", 1)[0])
            if not any(item["startOffset"] < first_word for item in answer):
                answer.append({"label": "SERVICE", "startOffset": 0, "endOffset": first_word})
            answered[loop_name] = answer
            return answer

        return review


# --- the canonical state ------------------------------------------------------------------------------------


def canonical_state(runtime: Any) -> dict[str, Any]:
    """What a run ended with, comparable across runs.

    Left out, and why:
    - IDEMPOTENCY items: bookkeeping of how often something was attempted (their expiry times and
      stored results carry timestamps and job ids); the effects they guard are compared instead.
    - timestamps (attributes named *_at or *_epoch, and such keys of a version's metrics): when, not what.
    - the seed-labeling marker (LABELING): a batch that arrives before the seed's labels are in is
      sent to Ground Truth, one that arrives after is not; a fault that delays the seed's conversion
      legitimately changes which, and the stand-in never completes a job nobody labels.
    - detection job ids and ARNs (JOB sk, arn, routed_key, a pool item's `job`): Comprehend makes them
      up (random); a job is named by its version and what it did instead, and the run-name time in
      its input key is blanked.
    Everything else is kept as is: gold texts, spans and origins; pool statuses, seen_by, loops and
    the entities (with scores) they were accepted with; versions with status, ARN, snapshot, message
    and metrics (F1 included); the active model; loops; every counter; the training lock's holder.
    """
    from boto3.dynamodb.types import TypeDeserializer

    from nerloop.state import IDEMPOTENCY_PK

    deserializer = TypeDeserializer()
    items: list[dict[str, Any]] = []
    for page in runtime.client("dynamodb").get_paginator("scan").paginate(TableName=runtime.table_name):
        items.extend({name: deserializer.deserialize(value) for name, value in item.items()}
                     for item in page["Items"])
    job_versions = {item["sk"]: item.get("version", "") for item in items if item["pk"] == "JOB"}
    families: dict[str, Any] = {}
    jobs: list[dict[str, Any]] = []
    for item in items:
        pk, sk = str(item["pk"]), str(item["sk"])
        if pk in (IDEMPOTENCY_PK, "LABELING"):
            continue
        fields = {name: _plain(value) for name, value in item.items()
                  if name not in ("pk", "sk") and not name.endswith(TIMESTAMP_SUFFIXES)}
        if pk == "JOB":
            for name in ("arn", "routed_key"):
                fields.pop(name, None)
            fields["input_key"] = _RUN_TIME.sub("-<time>", str(fields.get("input_key", "")))
            jobs.append(fields)
            continue
        if pk == "POOL" and "job" in fields:
            fields["job"] = f"<job of {job_versions.get(str(fields['job']), '?')}>"
        if pk == "VERSION" and isinstance(fields.get("metrics"), str):  # its training's times are when, too
            fields["metrics"] = {name: value for name, value in json.loads(fields["metrics"]).items()
                                 if not name.endswith(TIMESTAMP_SUFFIXES)}
        families.setdefault(pk, {})[sk] = fields
    families["JOB"] = sorted(jobs, key=lambda job: json.dumps(job, sort_keys=True))
    families["S3 training/"] = {key: hashlib.sha256(runtime.get_bytes(key)).hexdigest()
                                for key in sorted(runtime.list_keys("training/"))}
    comprehend, a2i = runtime.comprehend, runtime.a2i
    families["Comprehend"] = {
        "versions": sorted(f"{r.version}:{r.status}" for r in comprehend.recognizers.values()),
        "detection jobs per version": dict(sorted(Counter(
            comprehend.recognizers[j.recognizer_arn].version if j.recognizer_arn in comprehend.recognizers
            else j.recognizer_arn for j in comprehend.jobs.values()).items())),
    }
    families["A2I"] = {"human loops": sorted(f"{name}:{loop.status}" for name, loop in a2i.loops.items())}
    return families


def _plain(value: Any) -> Any:
    """DynamoDB numbers (Decimal) as int or str, so states compare and print as JSON."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_plain(v) for v in value]
    return value


def state_differences(expected: dict[str, Any], actual: dict[str, Any], limit: int = 8) -> list[str]:
    """Where two canonical states differ, a line each (at most `limit`)."""
    out: list[str] = []
    for family in sorted(set(expected) | set(actual)):
        left, right = expected.get(family), actual.get(family)
        if left == right:
            continue
        if isinstance(left, dict) and isinstance(right, dict):
            for key in sorted(set(left) | set(right)):
                if left.get(key) != right.get(key):
                    out.append(f"{family}/{key}: {json.dumps(left.get(key), default=str)[:160]} ≠ "
                               f"{json.dumps(right.get(key), default=str)[:160]}")
        else:
            out.append(f"{family}: {json.dumps(left, default=str)[:200]} ≠ {json.dumps(right, default=str)[:200]}")
    return out[:limit] + ([f"… and {len(out) - limit} more"] if len(out) > limit else [])


# --- one run ---------------------------------------------------------------------------------------------


@dataclass
class Figures:
    """One line of the chaos table."""

    check: str
    ok: bool = False
    equal: str = "-"  # "yes" / "no" against the clean run, "-" when not compared
    deliveries: int = 0
    duplicates: int = 0  # second deliveries injected
    failed: int = 0  # deliveries that failed (and were retried or dead-lettered)
    dead_letters: int = 0
    redriven: int = 0
    faults: dict[str, int] = field(default_factory=dict)  # injected, per service
    retries: int = 0  # client retries of injected faults (botocore's or emulated)
    surfaced: int = 0  # faults that got past the client retries to the handler
    gold: int = 0
    versions: str = ""
    loops: str = ""
    reviews: int = 0
    counters: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Run:
    figures: Figures
    state: dict[str, Any]


def summarize(runtime: Any, figures: Figures) -> dict[str, Any]:
    """Fill the state figures of `figures` from the runtime; return the canonical state."""
    state = canonical_state(runtime)
    counters = {name: fields["value"] for name, fields in state.get("COUNTER", {}).items()}
    loops = Counter(fields["status"] for fields in state.get("LOOP", {}).values())
    figures.gold = len(state.get("GOLD", {}))
    versions = sorted(state.get("VERSION", {}).items())
    figures.versions = " ".join(f"{name}:{fields['status']}" for name, fields in versions)
    figures.loops = " ".join(f"{status}:{count}" for status, count in sorted(loops.items()))
    figures.reviews = int(counters.get("REVIEWS", 0))
    figures.counters = " ".join(f"{name}={value}" for name, value in sorted(counters.items()))
    figures.dead_letters = len(runtime.dead_letters())
    return state


def run_loop(check: str, scenario: Scenario, folder: Path, *, duplicate_events: bool = False,
             faults: FaultInjector | None = None, seed: int = 0,
             between: Callable[[Any, Figures], None] | None = None) -> Run:
    """Run the scenario to idle in a fresh workspace under `folder`; `between(runtime, figures)` runs
    after the first settling (then the loop is run to idle again)."""
    from nerloop_local.emulator.runtime import LocalRuntime

    started = time.perf_counter()
    figures = Figures(check)
    workspace = folder / check
    shutil.rmtree(workspace, ignore_errors=True)
    runtime = LocalRuntime(workspace, scenario.parameters(), reviewer=scenario.reviewer(), environment=QUIET,
                           seed=seed, duplicate_events=duplicate_events, faults=faults, autosave=False,
                           restore=False)
    with runtime, contextlib.redirect_stdout(io.StringIO()):
        runtime.put_text("raw/offerings.txt", scenario.raw_text())
        runtime.label_with_manifest(scenario.seed_manifest(),
                                    job_name=f"{runtime.stack.labeling_job_prefix()}-chaos-seed")
        result = runtime.run_until_idle(max_cycles=scenario.max_cycles)
        if between is not None:
            between(runtime, figures)
            result = runtime.run_until_idle(max_cycles=scenario.max_cycles)
        if not result.idle:
            figures.notes.append(f"did not settle in {scenario.max_cycles} cycles")
        figures.deliveries = sum(runtime.outcomes.values())
        figures.duplicates = runtime.duplicates_injected
        figures.failed = figures.deliveries - runtime.outcomes["ok"]
        state = summarize(runtime, figures)
    if faults is not None:
        figures.faults = {name: faults.figures[name].injected for name in faults.services}
        figures.retries = faults.retries
        figures.surfaced = faults.surfaced
    figures.seconds = round(time.perf_counter() - started, 1)
    return Run(figures, state)


def compare(run: Run, clean: Run) -> None:
    differences = state_differences(clean.state, run.state)
    run.figures.equal = "no" if differences else "yes"
    run.figures.notes.extend(differences)


# --- the checks -------------------------------------------------------------------------------------------


def check_clean(scenario: Scenario, folder: Path, seed: int = 0) -> Run:
    run = run_loop("clean", scenario, folder, seed=seed)
    f = run.figures
    problems = []
    if f.failed or f.dead_letters:
        problems.append(f"{f.failed} failed deliveries, {f.dead_letters} dead letters in a clean run")
    if f.reviews != scenario.reviews:
        problems.append(f"REVIEWS is {f.reviews}, expected {scenario.reviews}")
    if len(run.state.get("VERSION", {})) != scenario.answered_batches + 1:
        problems.append(f"{len(run.state.get('VERSION', {}))} versions, expected {scenario.answered_batches + 1}")
    f.notes.extend(problems)
    f.ok = not f.notes
    return run


def check_duplicates(scenario: Scenario, folder: Path, clean: Run, seed: int = 0) -> Run:
    run = run_loop("duplicates", scenario, folder, duplicate_events=True, seed=seed)
    compare(run, clean)
    run.figures.ok = run.figures.equal == "yes" and run.figures.duplicates > 0 and run.figures.dead_letters == 0
    return run


def check_faults(scenario: Scenario, folder: Path, clean: Run, *, rate: float = 0.2, outage_rate: float = 0.002,
                 seed: int = 0, fault_seed: int = 1, name: str = "faults") -> Run:
    """Transient faults (drawn from `fault_seed`); dead letters left by outages are redriven as an
    operator would."""
    injector = FaultInjector(rate=rate, seed=fault_seed, outage_rate=outage_rate)

    def redrive_dead_letters(runtime: Any, figures: Figures) -> None:
        for _ in range(3):  # an operator redrives until nothing is left (what fails again goes back)
            requeued = runtime.redrive()
            if not requeued:
                return
            figures.redriven += len(requeued)
            runtime.run_until_idle(max_cycles=scenario.max_cycles)

    run = run_loop(name, scenario, folder, faults=injector, seed=seed, between=redrive_dead_letters)
    compare(run, clean)
    run.figures.ok = run.figures.equal == "yes" and sum(run.figures.faults.values()) > 0 \
        and run.figures.dead_letters == 0
    return run


def check_redrive(scenario: Scenario, folder: Path, clean: Run, seed: int = 0) -> Run:
    """MergeFunction may not read the reviewers' answers (s3:GetObject denied): dead letters, then
    the permission is granted and the dead letters redriven — twice."""
    injector = FaultInjector(rate=0.0, seed=seed)
    injector.deny("s3", "GetObject", function="MergeFunction")
    checks: list[str] = []

    def fix_and_redrive(runtime: Any, figures: Figures) -> None:
        dead = runtime.dead_letters("MergeFunction")
        loops = {str(name) for name in (_loop_of(letter["event"]) for letter in dead) if name}
        if len(dead) != scenario.batch or len(loops) != scenario.batch:
            checks.append(f"expected {scenario.batch} dead letters (one per loop of the first batch), got {len(dead)}")
        if any(letter["attempts"] < 2 or "AccessDenied" not in letter["error"] for letter in dead):
            checks.append("a dead letter without its retries or its AccessDenied error")
        state = runtime.state
        recorded = [state.loops.get(name) for name in loops]
        if any(loop is None or loop.status != "InProgress" for loop in recorded):
            checks.append("a dead-lettered loop is not InProgress (something was half merged)")
        injector.allow()
        figures.redriven += len(runtime.redrive("MergeFunction", keep=True))  # kept: redriven again below
        runtime.run_until_idle(max_cycles=scenario.max_cycles)
        first = canonical_state(runtime)
        figures.redriven += len(runtime.redrive("MergeFunction"))
        runtime.run_until_idle(max_cycles=scenario.max_cycles)
        if canonical_state(runtime) != first:
            checks.append("redriving the same dead letters a second time changed the state")

    run = run_loop("redrive", scenario, folder, faults=injector, seed=seed, between=fix_and_redrive)
    compare(run, clean)
    run.figures.notes.extend(checks)
    run.figures.ok = run.figures.equal == "yes" and not checks and run.figures.dead_letters == 0
    return run


def _loop_of(event: Any) -> str | None:
    detail = event.get("detail") if isinstance(event, dict) else None
    return detail.get("humanLoopName") if isinstance(detail, dict) else None


# --- concurrency ------------------------------------------------------------------------------------------


@contextmanager
def per_thread_clients() -> Iterator[None]:
    """Each thread gets its own boto3 clients and table resource, as separate Lambda execution
    environments have (boto3 resources must not be shared between threads)."""
    from nerloop import aws as nerloop_aws

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
    import random

    from nerloop.a2i import loop_name
    from nerloop.documents import document_hash
    from nerloop.retrain import REVIEWS, REVIEWS_AT_SNAPSHOT, RetrainPolicy, maybe_start_retrain, retrain_due
    from nerloop.state import IN_REVIEW, LOOP_OPEN, Loop
    from nerloop_local.emulator.invocation import temporary_environment
    from nerloop_local.emulator.runtime import LocalRuntime
    from nerloop_local.emulator.stack import load_event

    started = time.perf_counter()
    figures = Figures("concurrent")
    notes = figures.notes
    workspace = folder / "concurrent"
    shutil.rmtree(workspace, ignore_errors=True)
    parameters = {"EntityTypes": "SERVICE,VERSION", "RetrainBatchSize": str(batch)}
    with LocalRuntime(workspace, parameters, environment=QUIET, autosave=False, restore=False) as runtime:
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

        deliveries = [dict(event, id=f"{event['id']}-{copy}") for event in events for copy in (1, 2)]
        random.Random(seed).shuffle(deliveries)  # nosec B311 # delivery order, not secrets
        figures.deliveries, figures.duplicates = len(deliveries), loops
        with temporary_environment(runtime.function_environment("MergeFunction")), per_thread_clients():
            from nerloop import settings as nerloop_settings

            nerloop_settings.get_settings.cache_clear()
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
    figures.seconds = round(time.perf_counter() - started, 1)
    figures.ok = not notes
    return figures


# --- the table --------------------------------------------------------------------------------------------


def format_table(rows: list[Figures]) -> list[str]:
    header = (f"{'check':<11}{'ok':<4}{'=clean':<7}{'deliv':>6}{'dups':>6}{'failed':>7}{'DLQ':>5}{'redrv':>6}"
              f"{'faults s3/ddb/cmp/a2i':>23}{'retries':>8}{'past':>6}{'gold':>6}{'reviews':>8}  versions / loops")
    lines = [header, "-" * len(header)]
    for f in rows:
        faults = "/".join(str(f.faults.get(service, 0)) for service in SERVICES) if f.faults else "-"
        lines.append(f"{f.check:<11}{'yes' if f.ok else 'NO':<4}{f.equal:<7}{f.deliveries:>6}{f.duplicates:>6}"
                     f"{f.failed:>7}{f.dead_letters:>5}{f.redriven:>6}{faults:>23}{f.retries:>8}{f.surfaced:>6}"
                     f"{f.gold:>6}{f.reviews:>8}  {f.versions} / {f.loops}")
    lines.append("")
    for f in rows:
        lines.append(f"{f.check}: {f.counters} ({f.seconds} s)")
        lines.extend(f"    {note}" for note in f.notes)
    return lines


def run_all(scenario: Scenario, folder: Path, *, rate: float = 0.2, outage_rate: float = 0.002, loops: int = 200,
            threads: int = 32, fault_runs: int = 3, seed: int = 0,
            progress: Callable[[str], None] | None = None) -> list[Figures]:
    say = progress or (lambda message: None)
    rows: list[Figures] = []
    say("clean run")
    clean = check_clean(scenario, folder, seed)
    rows.append(clean.figures)
    say("duplicated events")
    rows.append(check_duplicates(scenario, folder, clean, seed).figures)
    for number in range(1, fault_runs + 1):
        say(f"{rate:.0%} transient faults ({number}/{fault_runs})")
        rows.append(check_faults(scenario, folder, clean, rate=rate, outage_rate=outage_rate, seed=seed,
                                 fault_seed=seed * 100 + number, name=f"faults#{number}").figures)
    say(f"{loops} concurrent merges")
    rows.append(check_concurrency(folder, loops=loops, threads=threads, seed=seed))
    say("dead letters and redrive")
    rows.append(check_redrive(scenario, folder, clean, seed).figures)
    return rows


def cmd_chaos(args: argparse.Namespace) -> int:
    import warnings

    from nerloop_local.usage import DEFAULT_SAMPLE

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    sample = args.sample or DEFAULT_SAMPLE
    scenario = Scenario(sample=sample)
    folder = Path(tempfile.mkdtemp(prefix="nerloop-chaos-"))
    started = time.perf_counter()
    try:
        rows = run_all(scenario, folder, rate=args.rate, outage_rate=args.outage_rate, loops=args.loops,
                       threads=args.threads, fault_runs=args.fault_runs, seed=args.seed,
                       progress=lambda m: print(f"  … {m}", file=sys.stderr, flush=True))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"\nnerloop chaos — seed {args.seed}, {args.rate:.0%} faults ({args.outage_rate:.1%} outages), "
          f"{args.loops} concurrent merges on {args.threads} threads\n")
    print("\n".join(format_table(rows)))
    print(f"\n{sum(r.ok for r in rows)}/{len(rows)} checks hold; {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    return 0 if all(r.ok for r in rows) else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="makes a run repeatable")
    parser.add_argument("--rate", type=float, default=0.2, help="share of HTTP attempts that fail (default 0.2)")
    parser.add_argument("--outage-rate", type=float, default=0.002,
                        help="share of calls failing past the clients' retries (default 0.002)")
    parser.add_argument("--loops", type=int, default=200, help="human loops completing at once (default 200)")
    parser.add_argument("--threads", type=int, default=32, help="concurrent merge invocations (default 32)")
    parser.add_argument("--fault-runs", type=int, default=3, help="fault runs, each with its own seed (default 3)")
    parser.add_argument("--sample", type=Path, help="the sample data folder (default: the walkthrough's)")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.set_defaults(run=cmd_chaos)


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    chaos = commands.add_parser("chaos", help="duplicates, faults, concurrency and redrive against a clean run",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(chaos)


def main(argv: list[str] | None = None) -> int:
    from nerloop_local.emulator.isolation import offline_environment

    offline_environment()
    parser = argparse.ArgumentParser(prog="python -m nerloop_local.commands.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
