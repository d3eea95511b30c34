"""What each benchmark runs, one call per fresh child process (`python -m bench.workloads NAME PARAMS OUT`).

A workload prepares its inputs (not timed), then `Probe.start()` resets the process's peak RSS
(Linux `/proc/self/clear_refs`), runs the measured part, and `Probe.stop()` records the seconds and
the peak RSS reached. The result goes to the OUT file as JSON; stdout is left to the stages' logs.

The stages run with their real code against the stand-ins of bench/standins.py. Only the idempotency
guard (`run_once`: one conditional put and one update per event, whatever the input's size) is
bypassed, since it talks to DynamoDB through its own client. With `"latency": "aws"` in the
parameters every stand-in call takes its latency on AWS (bench/latency.py). The convert and route
stages run as Lambda runs them (bench/invocations.py): a deadline from the function's Timeout when
the stage takes one, and re-invoked for as long as it continues.
"""

from __future__ import annotations

import csv
import functools
import gc
import json
import os
import resource
import shutil
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nerloop.stages.results import StageResult

BUCKET = "nerloop-bench-data"
JOB_ARN = "arn:aws:sagemaker:us-east-1:123456789012:labeling-job/nerloop-bench"
FLOW_ARN = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review"


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Probe:
    """Seconds and peak resident memory of the measured part of a workload."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.standin_seconds = 0.0  # of `seconds`, inside the stand-ins of bench/standins.py
        self.base_kb = 0
        self.peak_kb = 0
        self._started = 0.0

    def start(self) -> None:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
                clear.write("5")  # the peak (VmHWM) restarts from the current RSS
        except OSError:  # not Linux: the peak then includes the set-up
            pass
        self.base_kb = _status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        standins = sys.modules.get("bench.standins")  # a reference never loads the stand-ins
        if standins is not None:
            standins.CLOCK.reset()
        self._started = time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._started
        standins = sys.modules.get("bench.standins")
        self.standin_seconds = standins.CLOCK.seconds if standins is not None else 0.0
        self.peak_kb = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def as_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "standin_seconds": self.standin_seconds, "peak_mb": self.peak_kb / 1024,
                "base_mb": self.base_kb / 1024,
                "growth_mb": (self.peak_kb - self.base_kb) / 1024}


def _settings(function: str) -> Any:
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from nerloop.settings import load_settings
    from nerloop_local.emulator.stack import Stack

    env = Stack.load().function_environment(function)
    env["FLOW_DEFINITION_ARN"] = env.get("FLOW_DEFINITION_ARN") or FLOW_ARN
    return load_settings(env)


def _without_idempotency(module: Any) -> None:
    module.run_stage_once = lambda table_name, action, key, effect, *variants: effect()


def _resumable(first: Callable[..., StageResult], resume: Callable[..., StageResult],
               key: dict[str, str], aws: Any, settings: Any) -> Callable[..., dict[str, Any]]:
    """The stage as the harness invokes it (bench.invocations), returning what its handler returns: the
    event's run first, then, given the previous result's `continued` (sequence and checkpoint), the
    continuation that event would carry."""
    def invoke(*, deadline: Any = None, continuation: dict[str, Any] | None = None) -> dict[str, Any]:
        if continuation is None:
            return first(deadline=deadline).to_dict()
        return resume(key, int(continuation["sequence"]), str(continuation["checkpoint"]), aws, settings,
                      deadline=deadline).to_dict()
    return invoke


def _use_latency(params: dict[str, Any]) -> None:
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from bench.latency import LatencyModel
    from bench.standins import use_latency

    use_latency(LatencyModel.profile(params.get("latency", "none"), float(params.get("latency_scale", 1.0))))


def _run_as_lambda(stage: Callable[..., dict[str, Any]], function: str,
                   timeout_seconds: float | None = None) -> dict[str, Any]:
    """The stage invoked until done under its function's Timeout (or `timeout_seconds`: a test's shorter
    one, to make it continue); its result and the invocations."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from bench.invocations import function_timeout, invoke_until_done

    timeout = timeout_seconds or function_timeout(function)
    invocations = invoke_until_done(stage, timeout)
    return {"result": invocations.result, "timeout_seconds": timeout, "invocations": invocations.count,
            "invocation_seconds": invocations.seconds, "deadline_given": invocations.deadline_given}


def _run_once_or_as_lambda(stage: Callable[..., dict[str, Any]], function: str,
                           params: dict[str, Any]) -> dict[str, Any]:
    """With `one_invocation` in `params`, the stage in one call with no deadline (the reference a continued
    run's end state is compared with); else as Lambda runs it (`_run_as_lambda`)."""
    if not params.get("one_invocation"):
        return _run_as_lambda(stage, function, params.get("timeout_seconds"))
    started = time.perf_counter()
    result = stage()
    return {"result": result, "invocations": 1, "invocation_seconds": [time.perf_counter() - started],
            "deadline_given": False}


def _end_state(table: Any, a2i: Any = None) -> dict[str, Any]:
    """What a run leaves that a repeated effect would change: gold documents, pool items by status, human
    loops recorded and open, and StartHumanLoop calls that succeeded (the A2I stand-in counts each)."""
    state: dict[str, Any] = {"gold": table.count("GOLD"), "pool": table.statuses("POOL"),
                             "loops": table.count("LOOP"), "open_loops": table.count("OPEN-LOOP")}
    if a2i is not None:
        state["loops_started"] = a2i.started
    return state


def _link(s3: Any, key: str, source: str | Path) -> None:
    path = s3.path(BUCKET, key)
    if path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(Path(source).resolve())


# --- convert -----------------------------------------------------------------------------------------


def convert_stage(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """The convert stage on a manifest: gold set written, training snapshot written."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from bench.standin_services import StandInEventBridge, StandInSageMaker
    from bench.standins import LocalS3, SqliteTable, requests_of
    from nerloop.aws import Aws
    from nerloop.stages import convert

    settings = _settings("ConvertFunction")
    table = SqliteTable(work / "state.sqlite", settings.state_table)
    s3 = LocalS3(work / "s3")
    key = "labeling/output/nerloop-bench/manifests/output/output.manifest"
    _link(s3, key, params["manifest"])
    sagemaker = StandInSageMaker(f"s3://{BUCKET}/{key}", params["label_attribute"])
    events = StandInEventBridge()
    aws = Aws(settings.state_table, overrides={"s3": s3, "sagemaker": sagemaker, "table": table, "events": events})
    _without_idempotency(convert)
    _use_latency(params)
    bench_settings = settings.model_copy(update={"data_bucket": BUCKET})
    stage = _resumable(functools.partial(convert.convert_labeling_job, JOB_ARN, aws, bench_settings),
                       convert.continue_conversion, {"job_arn": JOB_ARN, "status": convert.COMPLETED},
                       aws, bench_settings)
    probe.start()
    run = _run_once_or_as_lambda(stage, "ConvertFunction", params)
    probe.stop()
    return {**run, "table_calls": dict(table.calls), "gold": table.count("GOLD"), "end_state": _end_state(table),
            "requests": requests_of(table=table, s3=s3, sagemaker=sagemaker, events=events)}


def convert_parse_only(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """Component: only nerloop.gt_manifest's validating parse of the manifest (no state, no output)."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from nerloop.gt_manifest import ParseStats, iter_byte_lines, parse_manifest
    from nerloop.quarantine import Quarantine

    quarantine = Quarantine("convert", "bench")
    stats = ParseStats()
    probe.start()
    with open(params["manifest"], "rb") as manifest:
        chunks = iter(lambda: manifest.read(1024), b"")
        for _ in parse_manifest(iter_byte_lines(chunks), params["manifest"], ("SERVICE", "VERSION"), quarantine,
                                label_attribute=params["label_attribute"], stats=stats):
            pass
    probe.stop()
    return {"documents": stats.documents}


def convert_reference(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """The reference: a bare loop that parses each JSON line and writes the documents file and the CSV."""
    attribute = params["label_attribute"]
    probe.start()
    rows = 0
    with open(params["manifest"], encoding="utf-8") as manifest, \
            open(work / "documents.txt", "w", encoding="utf-8") as documents, \
            open(work / "annotations.csv", "w", encoding="utf-8", newline="") as annotations:
        writer = csv.writer(annotations, lineterminator="\n")
        writer.writerow(["File", "Line", "Begin Offset", "End Offset", "Type"])
        for number, line in enumerate(manifest):
            try:
                record = json.loads(line)
                entities = record[attribute]["annotations"]["entities"]
            except (ValueError, KeyError):
                continue
            documents.write(record["source"].replace("\n", " ") + "\n")
            for entity in entities:
                writer.writerow(["documents.txt", number, entity["startOffset"], entity["endOffset"], entity["label"]])
                rows += 1
    probe.stop()
    return {"annotations": rows}


def walkthrough(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """The original notebook's way, from its description: read the whole manifest into memory, keep
    only the first entity of each line, then write the documents file and the CSV."""
    attribute = params["label_attribute"]
    probe.start()
    with open(params["manifest"], encoding="utf-8") as manifest:
        lines = manifest.readlines()
    documents: list[str] = []
    annotations: list[list[Any]] = []
    for line in lines:
        try:
            record = json.loads(line)
            entities = record[attribute]["annotations"]["entities"]
        except (ValueError, KeyError):
            continue
        if entities:
            first = entities[0]
            annotations.append(["train.csv", len(documents), first["startOffset"], first["endOffset"], first["label"]])
        documents.append(record["source"])
    with open(work / "train.csv", "w", encoding="utf-8") as out:
        out.write("\n".join(documents) + "\n")
    with open(work / "annotations.csv", "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["File", "Line", "Begin Offset", "End Offset", "Type"])
        writer.writerows(annotations)
    probe.stop()
    return {"annotations": len(annotations)}


# --- route ---------------------------------------------------------------------------------------------


def route_stage(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """The route stage on a detection archive: every document accepted or sent to a human loop."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from bench.standin_services import StandInA2I, StandInEventBridge
    from bench.standins import LocalS3, SqliteTable, requests_of
    from nerloop.aws import Aws
    from nerloop.stages import route

    settings = _settings("RouteFunction")
    if "review_budget" in params:
        settings = settings.model_copy(update={"review_budget": int(params["review_budget"])})
    shutil.copyfile(params["state"], work / "state.sqlite")
    table = SqliteTable(work / "state.sqlite", settings.state_table)
    s3 = LocalS3(work / "s3")
    _link(s3, params["input_key"], params["input"])
    _link(s3, params["archive_key"], params["archive"])
    a2i = StandInA2I()
    events = StandInEventBridge()
    aws = Aws(settings.state_table, overrides={"s3": s3, "sagemaker-a2i-runtime": a2i, "table": table,
                                               "events": events})
    _without_idempotency(route)
    _use_latency(params)
    bench_settings = settings.model_copy(update={"data_bucket": BUCKET})
    stage = _resumable(functools.partial(route.route_detection_output, BUCKET, params["archive_key"], aws,
                                         bench_settings, etag="bench"),
                       route.continue_routing, {"bucket": BUCKET, "key": params["archive_key"], "etag": "bench"},
                       aws, bench_settings)
    probe.start()
    run = _run_once_or_as_lambda(stage, "RouteFunction", params)
    probe.stop()
    return {**run, "loops": a2i.started, "loops_at_once": a2i.most_at_once, "table_calls": dict(table.calls),
            "end_state": _end_state(table, a2i), "requests": requests_of(table=table, s3=s3, a2i=a2i, events=events)}


def route_reference(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """The reference: bare tar + JSON parsing of the same archive."""
    probe.start()
    records = 0
    with tarfile.open(params["archive"], "r|gz") as archive:
        for member in archive:
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is None:
                continue
            for line in extracted:
                json.loads(line)
                records += 1
    probe.stop()
    return {"records": records}


def route_parse_only(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """Component: only nerloop.comprehend_output's validating read of the archive (no input, no state)."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from nerloop.comprehend_output import iter_detection_output

    probe.start()
    records = 0
    with open(params["archive"], "rb") as archive:
        for _ in iter_detection_output(archive, params["archive_key"]):
            records += 1
    probe.stop()
    return {"records": records}


# --- merge and snapshots -----------------------------------------------------------------------------


def merge_loops(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """`loops` completed human loops merged one event at a time; seconds per merge."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from bench.generate import DocumentGenerator
    from bench.standins import LocalS3, SqliteTable, requests_of
    from nerloop.a2i import loop_name
    from nerloop.aws import Aws
    from nerloop.documents import document_hash
    from nerloop.event_catalog import HumanLoopDetail
    from nerloop.stages import merge
    from nerloop.stages.results import ReviewMerged

    settings = _settings("MergeFunction")
    shutil.copyfile(params["state"], work / "state.sqlite")  # the gold set merges go into
    table = SqliteTable(work / "state.sqlite", settings.state_table)
    s3 = LocalS3(work / "s3")
    generator = DocumentGenerator(params["seed"])
    version = "v1"
    items: list[dict[str, Any]] = []
    details: list[HumanLoopDetail] = []
    seen: set[str] = set()
    while len(details) < params["loops"]:
        text, spans = generator.document()
        doc = document_hash(text)
        if doc in seen:
            continue
        seen.add(doc)
        name = loop_name(doc, version)
        key = f"a2i/nerloop-review/2024/01/01/00/00/00/{name}/output.json"
        answer = {"flowDefinitionArn": FLOW_ARN, "humanLoopName": name,
                  "inputContent": {"document": doc, "version": version, "text": text},
                  "humanAnswers": [{"answerContent": {"crowd-entity-annotation": {"entities": [
                      {"label": label, "startOffset": begin, "endOffset": end} for begin, end, label in spans]}},
                      "submissionTime": "2024-01-01T00:00:00.000Z", "workerId": "bench"}]}
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(answer).encode("utf-8"))
        items.append({"pk": "POOL", "sk": doc, "text": text, "status": "in_review", "loop": name,
                      "batch": "bench", "seen_by": version, "updated_at": "2024-01-01T00:00:00Z"})
        items.append({"pk": "LOOP", "sk": name, "doc": doc, "version": version, "status": "InProgress",
                      "failure": "", "started_at": "2024-01-01T00:00:00Z"})
        items.append({"pk": "OPEN-LOOP", "sk": name, "opened_at": "2024-01-01T00:00:00Z"})
        details.append(HumanLoopDetail(humanLoopName=name, humanLoopStatus="Completed",
                                       humanLoopOutput={"outputS3Uri": f"s3://{BUCKET}/{key}"}))
    table.load_items(iter(items))
    del items
    s3.calls.clear()  # the set-up's puts are not the stage's
    _without_idempotency(merge)
    _use_latency(params)
    settings = settings.model_copy(update={"data_bucket": BUCKET})
    times: list[float] = []
    snapshots = repaired = 0
    probe.start()
    for detail in details:
        started = time.perf_counter()
        result = merge.merge_human_loop(detail, Aws(settings.state_table, overrides={"s3": s3, "table": table}),
                                        settings)
        times.append(time.perf_counter() - started)
        if not isinstance(result, ReviewMerged):
            raise RuntimeError(f"not merged: {result}")
        snapshots += bool(result.snapshot)
        repaired += bool(result.quarantine)
    probe.stop()
    times.sort()
    return {"p50_ms": 1000 * statistics.median(times), "p99_ms": 1000 * times[int(0.99 * (len(times) - 1))],
            "max_ms": 1000 * times[-1], "snapshots": snapshots, "repaired": repaired, "table_calls": dict(table.calls),
            "gold_pages": table.query_pages["GOLD"],
            "gold_before": params["gold"], "requests": requests_of(table=table, s3=s3)}


def snapshot(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """A training snapshot written from the whole gold set."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from bench.standins import LocalS3, SqliteTable
    from nerloop.snapshots import write_snapshot
    from nerloop.state import StateTable

    shutil.copyfile(params["state"], work / "state.sqlite")
    table = SqliteTable(work / "state.sqlite")
    s3 = LocalS3(work / "s3")
    probe.start()
    written = write_snapshot(StateTable(table), s3, BUCKET, "v1")
    probe.stop()
    return {"documents": written.stats.documents, "annotations": sum(written.stats.annotations.values()),
            "table_calls": dict(table.calls)}


# --- the local recognizer ------------------------------------------------------------------------------


def recognizer(params: dict[str, Any], work: Path, probe: Probe) -> dict[str, Any]:
    """Train the local CRF on the sample (10 % held out, as Comprehend does), then detect."""
    # Late import: each workload runs alone in a child process that measures its memory; it loads only what it runs.
    from bench.generate import load_sample
    from nerloop.documents import Span
    from nerloop_local.recognizer.crf import train_with_holdout

    sample = load_sample(Path(params["sample_dir"]))
    documents = [(text, [Span(*span) for span in spans]) for text, spans in sample.documents]
    texts = [text for text, _ in sample.documents]
    texts += Path(params["sample_dir"], "test.csv").read_text(encoding="utf-8").splitlines()
    probe.start()
    started = time.perf_counter()
    trained = train_with_holdout(documents, sample.labels, seed=0)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for text in texts:
        trained.recognizer.detect(text)
    detect_seconds = time.perf_counter() - started
    probe.stop()
    return {"train_seconds": train_seconds, "detect_seconds": detect_seconds, "detect_documents": len(texts),
            "documents_per_second": len(texts) / detect_seconds, "f1": trained.metrics.f1,
            "precision": trained.metrics.precision, "recall": trained.metrics.recall,
            "test_documents": trained.metrics.documents}


WORKLOADS: dict[str, Callable[[dict[str, Any], Path, Probe], dict[str, Any]]] = {
    "convert_stage": convert_stage,
    "convert_parse_only": convert_parse_only,
    "convert_reference": convert_reference,
    "walkthrough": walkthrough,
    "route_stage": route_stage,
    "route_reference": route_reference,
    "route_parse_only": route_parse_only,
    "merge_loops": merge_loops,
    "snapshot": snapshot,
    "recognizer": recognizer,
}


def main(argv: list[str]) -> None:
    name, params_json, out = argv
    probe = Probe()
    with tempfile.TemporaryDirectory(prefix=f"nerloop-bench-{name}-") as work:
        extra = WORKLOADS[name](json.loads(params_json), Path(work), probe)
    Path(out).write_text(json.dumps({**probe.as_dict(), **extra}, default=str), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
    os._exit(0)  # skip interpreter teardown of large heaps; the result is written
