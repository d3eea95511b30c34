"""`python -m bench.detection_cap`: the documents each round detects, capped, over a large pool.

Issue 13's target: detected documents per round <= DetectionDocumentsPerRound, for a 100,000-document
pool, over 5 rounds. Each round runs the detect stage's real `start_detection` (the policy of
`nerloop.detection_policy` chooses) and the route stage's real code on an output for exactly the
documents detected, against bench/standins.py's stand-ins (a SQLite table, a local S3, A2I counting its
loops) and a Comprehend stand-in here that starts jobs and answers nothing else. moto is not used: at
100,000 items its table is what would be measured. The model is simulated: each detected document is
uncertain with probability UNCERTAIN (one entity scored 0.5, below the default threshold 0.8) or
confident (one entity scored 0.95), drawn from the document and the version, so the route stage
accepts most, sends the review budget's worth to human loops and leaves the uncertain rest waiting:
the tiers the next round's policy sees.

Reported per round: the documents eligible (what a round without the cap would detect), those
detected, by tier, and the detect stage's seconds and table requests. `bench.run` adds the row.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import subprocess  # nosec B404 # runs this module in a fresh interpreter of our own
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.generate import DocumentGenerator
from bench.measure import REPO, child_env
from bench.standin_services import StandInA2I
from bench.standins import LocalS3, SqliteTable
from nerloop.aws import Aws
from nerloop.comprehend_training import one_line
from nerloop.constants import DETECTION_OUTPUT_PREFIX
from nerloop.detection_policy import tier_counts
from nerloop.documents import document_hash
from nerloop.settings import Settings, load_settings
from nerloop.stages import detect, route
from nerloop.stages.results import Routed
from nerloop.state import ACCEPTED, WAITING, StateTable, Version
from nerloop_local.emulator.isolation import ACCOUNT
from nerloop_local.emulator.stack import Stack

BUCKET = "nerloop-bench-data"
ARN = f"arn:aws:comprehend:us-east-1:{ACCOUNT}:entity-recognizer/nerloop/version/{{}}"
FLOW_ARN = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:flow-definition/nerloop-review"
UNCERTAIN = 0.3  # share of detected documents the simulated model is unsure of
POOL = 100_000
ROUNDS = 5
_WORD = re.compile(r"\w+")


class JobStarter:
    """StartEntitiesDetectionJob, answered at once with a new job id, SUBMITTED: the only Comprehend
    call `start_detection` makes."""

    def __init__(self) -> None:
        self.started: list[dict[str, Any]] = []

    def start_entities_detection_job(self, **request: Any) -> dict[str, Any]:
        job_id = f"{len(self.started) + 1:032x}"
        self.started.append(request)
        return {"JobId": job_id, "JobArn": f"arn:aws:comprehend:us-east-1:{ACCOUNT}:entities-detection-job/{job_id}",
                "JobStatus": "SUBMITTED"}


def template_cap() -> int:
    """DetectionDocumentsPerRound's default in template.yaml."""
    return int(Stack.load().template["Parameters"]["DetectionDocumentsPerRound"]["Default"])


def stage_settings(function: str, **update: Any) -> Settings:
    environment = Stack.load().function_environment(function)
    environment["FLOW_DEFINITION_ARN"] = environment.get("FLOW_DEFINITION_ARN") or FLOW_ARN
    return load_settings(environment).model_copy(update={"data_bucket": BUCKET, **update})


def pool_items(documents: int, seed: int) -> Iterator[dict[str, Any]]:
    """`documents` distinct POOL items, waiting and never detected, as the preprocess stage adds them."""
    generator = DocumentGenerator(seed)
    seen: set[str] = set()
    while len(seen) < documents:
        text = one_line(generator.document()[0])
        doc = document_hash(text)
        if doc in seen:
            continue
        seen.add(doc)
        yield {"pk": "POOL", "sk": doc, "text": text, "status": WAITING, "batch": "bench", "seen_by": "",
               "updated_at": "2026-01-01T00:00:00Z"}


def detection_archive(input_name: str, texts: list[str], version: str) -> bytes:
    """Comprehend's output.tar.gz for `texts`: one entity on each document's first word, scored
    below the threshold for a share UNCERTAIN of them."""
    lines = io.BytesIO()
    for line, text in enumerate(texts):
        entities = []
        word = _WORD.search(text)
        if word:
            draw = random.Random(f"{document_hash(text)}|{version}").random()  # nosec B311 # simulated model
            entities.append({"BeginOffset": word.start(), "EndOffset": word.end(), "Text": word.group(),
                             "Type": "SERVICE", "Score": 0.5 if draw < UNCERTAIN else 0.95})
        lines.write(json.dumps({"File": input_name, "Line": line, "Entities": entities}).encode("utf-8") + b"\n")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("output")
        info.size = lines.tell()
        lines.seek(0)
        tar.addfile(info, lines)
    return archive.getvalue()


def eligible(state: StateTable, version: str) -> int:
    """What a round without the cap detects: waiting documents, and accepted ones another version saw."""
    return sum(1 for doc in state.pool.documents((WAITING, ACCEPTED))
               if not (doc.status == ACCEPTED and doc.seen_by == version))


def measure(pool: int, cap: int, rounds: int, seed: int, work: Path) -> dict[str, Any]:
    """Run `rounds` rounds of detect + route over a `pool`-document pool under `cap`."""
    table = SqliteTable(work / "state.sqlite", "nerloop-state")
    table.load_items(pool_items(pool, seed))
    s3 = LocalS3(work / "s3")
    aws = Aws(table.name, overrides={"s3": s3, "comprehend": JobStarter(), "sagemaker-a2i-runtime": StandInA2I(),
                                     "table": table})
    state = StateTable(table)
    detect_settings = stage_settings("DetectFunction", detection_documents_per_round=cap)
    route_settings = stage_settings("RouteFunction")
    # The idempotency guard talks to DynamoDB through its own client: bypassed (one put and one update
    # an event, whatever its size), then put back.
    guard = route.run_stage_once
    route.run_stage_once = lambda table_name, action, key, effect, *variants: effect()  # type: ignore[assignment]
    try:
        entries, ever = _rounds(state, table, s3, aws, rounds, detect_settings, route_settings)
    finally:
        route.run_stage_once = guard
        table.close()
    most = max(entry["detected"] for entry in entries)
    return {"pool": pool, "cap": cap, "rounds": entries, "max_detected": most,
            "detected_at_least_once": len(ever), "uncapped_total": sum(entry["eligible"] for entry in entries),
            "detected_total": sum(entry["detected"] for entry in entries),
            "target": f"detected per round <= {cap}", "pass": most <= cap}


def _rounds(state: StateTable, table: SqliteTable, s3: LocalS3, aws: Aws, rounds: int, detect_settings: Settings,
            route_settings: Settings) -> tuple[list[dict[str, Any]], set[str]]:
    ever: set[str] = set()
    entries: list[dict[str, Any]] = []
    for number in range(1, rounds + 1):
        version = f"v{number}"
        state.versions.put(Version(version, "TRAINED", arn=ARN.format(version)))
        state.versions.activate(version, 0.9)
        before = eligible(state, version)
        queries = table.calls["query"]
        started = time.perf_counter()
        outcome = detect.start_detection(state, aws, detect_settings, request_key=f"trained|{ARN.format(version)}")
        seconds = time.perf_counter() - started
        job = state.jobs.get(outcome.job_id) if outcome.job_id else None
        if job is None:
            raise RuntimeError(f"round {number} started no detection job: {outcome}")
        texts = s3.get_object(Bucket=BUCKET, Key=job.input_key)["Body"].read().decode("utf-8").splitlines()
        docs = [document_hash(text) for text in texts]
        tiers = tier_counts(state.pool.document(item) for item in state.pool.get_items(docs).values())
        ever.update(docs)
        key = f"{DETECTION_OUTPUT_PREFIX}{ACCOUNT}-NER-{job.job_id}/output/output.tar.gz"
        s3.put_object(Bucket=BUCKET, Key=key, Body=detection_archive(Path(job.input_key).name, texts, version))
        routed = route.route_detection_output(BUCKET, key, aws, route_settings, etag=f"bench-{number}")
        if not isinstance(routed, Routed):  # no deadline: routed whole
            raise RuntimeError(f"round {number} was not routed whole: {routed}")
        state.jobs.set_status(job.job_id, "COMPLETED")
        entries.append({"round": number, "version": version, "eligible": before, "detected": len(texts),
                        "job_documents": job.documents, "by_tier": tiers, "detect_seconds": seconds,
                        "detect_queries": table.calls["query"] - queries,
                        "routed": {"accepted": routed.accepted, "loops_started": routed.loops_started,
                                   "over_budget": routed.over_budget}})
    return entries, ever


def run_in_child(pool: int, cap: int, rounds: int, seed: int, timeout: float = 1800) -> dict[str, Any]:
    """`measure` in a fresh interpreter (as every benchmark runs)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = Path(out.name)
    try:
        completed = subprocess.run(  # nosec B603 # our own interpreter and module, no shell
            [sys.executable, "-m", "bench.detection_cap", "--pool", str(pool), "--cap", str(cap),
             "--rounds", str(rounds), "--seed", str(seed), "--output", str(out_path)],
            cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"bench.detection_cap failed:\n{completed.stderr.decode(errors='replace')[-3000:]}")
        return dict(json.loads(out_path.read_text(encoding="utf-8")))
    finally:
        out_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection_cap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=POOL)
    parser.add_argument("--cap", type=int, default=0, help="default: the template's DetectionDocumentsPerRound")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--output", type=Path, help="write the result here as JSON (else print it)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nerloop-bench-cap-") as work:
        result = measure(args.pool, args.cap or template_cap(), args.rounds, args.seed, Path(work))
    text = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
