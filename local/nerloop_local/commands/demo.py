"""`nerloop demo`: the whole loop on a labelled Ground Truth manifest, offline.

A small labelled seed goes through a Ground Truth labeling job; the rest of the labels are held back
and the unlabelled text is dropped under raw/. From there the stages run on their own — train,
detect, route, review, merge, retrain — and a simulated reviewer answers each human loop from the
held-back labels. With `--reviewers N` (the ReviewersPerDocument parameter) each loop is answered by N
simulated workers, and `--reviewer-noise P` makes each of them miss each entity with probability P,
independently (a worker's draws depend on the seed, its id and the loop), so they can disagree and the
merge stage's majority rule, ties included, is exercised. Each round's model is scored on a test set
the loop never sees, beside two references trained in the same run: full supervision and randomly
chosen documents.

The loop runs with its gate on (F1Tolerance at its default, nerloop.gate): a version is activated
unless it is worse than the active one on the loop's own stable test set (a share of its gold set held
out by document hash, never trained on). The learning curve is what the loop serves: after each round,
the F1 of the version active then. The references leave out the documents the loop's split holds out
for testing, as the loop does, so all three train on the same side of it.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nerloop.documents import Span, document_hash
from nerloop.gt_manifest import MAX_MANIFEST_LINE_BYTES, ParseStats, iter_byte_lines, parse_manifest
from nerloop.quarantine import Quarantine
from nerloop.recognizer_versions import TRAINED_STATUSES
from nerloop.stages.preprocess import split_document
from nerloop.test_set import DEFAULT_TEST_MINIMUM, DEFAULT_TEST_SHARE, is_test_document
from nerloop_local.commands.demo_data import DemoSplit, GoldOracle, Labelled, split_for_demo
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.recognizer.crf import evaluate, scored_predictions, train_with_holdout
from nerloop_local.report.files import FIGURES_FILE
from nerloop_local.usage import DEFAULT_SAMPLE, UsageError

DEFAULT_ROUNDS = 4
DEFAULT_TEST_FRACTION = 0.25
# Ground Truth's attribute name for the seed job the demo runs.
SEED_ATTRIBUTE = "nerloop-seed"


@dataclass
class RoundResult:
    round: int
    model_version: str
    active: bool
    reviewed_documents: int  # cumulative reviews in this version's training data
    training_documents: int
    documents_detected: int
    routed_to_review: int
    reviewed_this_round: int
    precision: float
    recall: float
    f1: float
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    # Every entity the version predicts on the test set: {doc (test index), score, correct, type}.
    calibration: list[dict[str, Any]] = field(default_factory=list)
    # The gate's decision on this version (nerloop.gate) and what the loop served after this round.
    gate: dict[str, Any] = field(default_factory=dict)
    served_version: str = ""
    served_f1: float = 0.0


def _progress(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


def scores(metrics: Any) -> dict[str, Any]:
    """Precision / recall / F1 overall and per type from the recognizer's Metrics."""
    return {
        "precision": round(metrics.precision, 4), "recall": round(metrics.recall, 4), "f1": round(metrics.f1, 4),
        "per_type": {name: {"precision": round(c.precision, 4), "recall": round(c.recall, 4), "f1": round(c.f1, 4)}
                     for name, c in sorted(metrics.by_type.items())},
    }


def manifest_lines(documents: Sequence[tuple[str, list[Span]]], attribute: str, labels: Sequence[str]) -> str:
    """Documents as a Ground Truth NER output manifest (what a finished seed labeling job writes)."""
    rows = []
    for text, spans in documents:
        rows.append(json.dumps({
            "source": text,
            attribute: {"annotations": {
                "entities": [{"startOffset": s.begin, "endOffset": s.end, "label": s.type} for s in spans],
                "labels": [{"label": name} for name in labels]}},
            f"{attribute}-metadata": {"entities": [{"confidence": 1.0} for _ in spans], "job-name":
                                      f"labeling-job/{attribute}", "type": "groundtruth/text-span",
                                      "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00"},
        }, ensure_ascii=False))
    return "\n".join(rows) + "\n"


def load_manifest(path: Path) -> tuple[list[tuple[str, list[Span]]], list[str], int]:
    """The manifest's valid documents, its entity types, and how many lines were quarantined."""
    quarantine = Quarantine(stage="demo", source=path.name)
    stats = ParseStats()
    with path.open("rb") as handle:
        chunks = iter(lambda: handle.read(1 << 16), b"")
        documents = [(doc.text, doc.spans) for doc in parse_manifest(
            iter_byte_lines(chunks, max_bytes=MAX_MANIFEST_LINE_BYTES), str(path), None, quarantine, stats=stats)]
    return documents, list(stats.labels), stats.rejected


def run_demo(manifest: Path, *, rounds: int = DEFAULT_ROUNDS, seed: int = 0, threshold: float = 0.95,
             budget_fraction: float = 0.5, workspace: Path | None = None, progress: Callable[[str], None] = _progress,
             random_draws: int = 3, every_version_active: bool = False, references: bool = True, reviewers: int = 1,
             reviewer_noise: float = 0.0, training_mode: str = "Recognizer") -> dict[str, Any]:
    """Run the loop for `rounds` model versions; return the figures (see --json). `every_version_active`
    turns the gate off (F1Tolerance 1); `references` False skips random selection and full supervision;
    `training_mode` is the template's TrainingMode (Flywheel: the versions trained through a flywheel)."""
    started = time.perf_counter()
    documents, types, quarantined = load_manifest(manifest)
    if not documents:
        raise ValueError(f"{manifest}: no valid documents")
    split = split_for_demo(documents, types, test_fraction=DEFAULT_TEST_FRACTION, seed=seed,
                           loop_test_share=DEFAULT_TEST_SHARE, loop_test_minimum=DEFAULT_TEST_MINIMUM)
    oracle = GoldOracle(split.pool)
    per_round = _review_budget(split, budget_fraction, rounds)
    parameters = _parameters(types, threshold, per_round, rounds=rounds, every_version_active=every_version_active,
                             reviewers=reviewers, training_mode=training_mode)
    trained: list[int] = [0]  # versions trained so far (set as the loop runs)
    reviewer = _simulated_reviewer(oracle, trained, rounds=rounds, seed=seed, noise=reviewer_noise)
    own_workspace = workspace is None
    folder = _fresh_folder(workspace)
    runtime = LocalRuntime(folder, parameters, reviewer=reviewer, seed=seed,
                           environment={"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": "ERROR"})
    try:
        runtime.start()
        progress(f"{len(documents)} labelled documents: {len(split.test)} test, {len(split.seed)} seed, "
                 f"{len(split.pool)} pool lines; review budget {per_round} per round")
        rounds_out = _run_loop(runtime, manifest_lines(split.seed, SEED_ATTRIBUTE, types), split, seed=seed,
                               rounds=rounds, trained=trained, progress=progress)
        pool_docs = [doc.text for doc in runtime.state.pool.documents()]
    finally:
        runtime.close(save=not own_workspace)
        if own_workspace:
            shutil.rmtree(folder, ignore_errors=True)

    labelled_pool = [(text, oracle.labels_for(text) or []) for text in pool_docs]
    full_scores: dict[str, Any] = {"f1": 0.0}
    random_selection: list[dict[str, Any]] = []
    if references:
        progress("training the references: full supervision and random selection")
        full_scores, random_selection = _references(split, labelled_pool, rounds_out, types, seed=seed,
                                                    random_draws=random_draws)
    return {
        "manifest": str(manifest), "seed": seed, "entity_types": types, "threshold": threshold,
        "rounds_requested": rounds, "every_version_active": every_version_active,
        "reviewers": reviewers, "reviewer_noise": reviewer_noise,
        "pool_size": len(pool_docs), "pool_lines": len(split.pool), "test_documents": len(split.test),
        "seed_documents": len(split.seed), "quarantined_lines": quarantined, "review_budget_per_round": per_round,
        "rounds": [asdict(entry) for entry in rounds_out],
        "full_supervision": {"documents": len(trained_side([*split.seed, *labelled_pool])), **full_scores},
        "random_selection": random_selection,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _parameters(types: list[str], threshold: float, per_round: int, *, rounds: int, every_version_active: bool,
                reviewers: int, training_mode: str) -> dict[str, str]:
    """The template's parameters for the run."""
    return {
        "EntityTypes": ",".join(types), "ConfidenceThreshold": str(threshold),
        "RetrainBatchSize": str(per_round), "ReviewBudget": str(per_round),
        "VersionRetention": str(rounds + 1),
        # The gate at its default (TestShare, TestSetMinimum, F1Tolerance), unless asked to activate all.
        **({"F1Tolerance": "1"} if every_version_active else {}),
        "ReviewersPerDocument": str(reviewers),
        "TrainingMode": training_mode,  # issue 15 part 2
    }


def _fresh_folder(workspace: Path | None) -> Path:
    """The run's folder: `workspace`, emptied, or a new temporary one."""
    if workspace is None:
        return Path(tempfile.mkdtemp(prefix="nerloop-demo-"))
    if workspace.exists():
        shutil.rmtree(workspace)
    return workspace


def _review_budget(split: DemoSplit, budget_fraction: float, rounds: int) -> int:
    """Reviews per round. The preprocess stage cuts the pool into sentences and drops repeats: the budget
    is a share of the documents it will make, counted with its own code before the run."""
    pool_documents = {document_hash(document) for text, _ in split.pool for document in split_document(text).documents}
    return max(1, int(len(pool_documents) * budget_fraction) // max(1, rounds - 1))


def _simulated_reviewer(oracle: GoldOracle, trained: list[int], *, rounds: int, seed: int,
                        noise: float) -> Callable[[str, dict[str, Any]], list[dict[str, Any]] | None]:
    """A reviewer answering from the held-back labels, each worker missing each entity with probability
    `noise`; it leaves the last round's loops (once `trained[0]` versions are trained) unanswered."""

    def reviewer(loop_name: str, content: dict[str, Any]) -> list[dict[str, Any]] | None:
        if trained[0] >= rounds or _version_number(str(content.get("version", ""))) >= rounds:
            return None  # the last round's loops wait for a person who never comes
        spans = oracle.labels_for(content["text"])
        if spans is None:  # not a pool sentence (cannot happen with the demo's own data): keep the model's
            spans = [Span(item["startOffset"], item["endOffset"], item["label"]) for item in content["initialValue"]]
        worker = str(content.get("workerId", ""))
        draws = random.Random(f"{seed}:{worker}:{loop_name}")  # nosec B311 # simulated mistakes, not secrets
        kept = [s for s in spans if draws.random() >= noise]
        return [{"label": s.type, "startOffset": s.begin, "endOffset": s.end} for s in kept]

    return reviewer


def _run_loop(runtime: LocalRuntime, seed_manifest: str, split: DemoSplit, *, seed: int, rounds: int,
              trained: list[int], progress: Callable[[str], None]) -> list[RoundResult]:
    """Drop the pool, label the seed, run the stages until idle; each trained version, scored."""
    pool_text = "\n".join(text.replace("\n", " ") for text, _ in split.pool) + "\n"
    runtime.put_text("raw/pool.txt", pool_text)
    runtime.label_with_manifest(seed_manifest.encode("utf-8"),
                                job_name=f"{runtime.stack.labeling_job_prefix()}-seed-{seed}")

    def on_delivery(delivery: Any) -> None:
        if delivery.function in ("TrainFunction", "DetectFunction"):
            progress(delivery.line())
        trained[0] = sum(1 for v in runtime.state.versions.list() if v.status in TRAINED_STATUSES)

    runtime.on_delivery(on_delivery)
    result = runtime.run_until_idle(max_cycles=400)
    if not result.idle:
        raise RuntimeError(f"the loop did not settle in {result.cycles} cycles")
    failures = result.failures
    if failures:
        raise RuntimeError("stages failed: " + "; ".join(f.line() for f in failures[:3]))
    rounds_out = _rounds(runtime, split.test, len(split.seed))
    if len(rounds_out) > rounds:
        raise RuntimeError(f"the loop trained {len(rounds_out)} versions, more than the {rounds} asked for")
    return rounds_out


def _references(split: DemoSplit, labelled_pool: list[Labelled], rounds_out: list[RoundResult],
                types: list[str], *, seed: int, random_draws: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Full supervision's scores, and per round the F1 of `random_draws` models trained on as many
    randomly chosen pool documents as the loop had reviewed."""
    full = train_with_holdout(trained_side([*split.seed, *labelled_pool]), types, seed=seed).recognizer
    full_scores = scores(evaluate(full, split.test))
    random_selection = []
    for entry in rounds_out:
        budget = entry.reviewed_documents
        f1s = []
        for draw in range(random_draws):
            chosen = random.Random(seed * 1000 + draw * 97 + budget).sample(labelled_pool, budget)  # nosec B311 # sampling, not secrets
            model = train_with_holdout(trained_side([*split.seed, *chosen]), types, seed=seed).recognizer
            f1s.append(evaluate(model, split.test).f1)
        random_selection.append({"reviewed_documents": budget, "f1": round(sum(f1s) / len(f1s), 4),
                                 "draws": [round(f, 4) for f in f1s]})
    return full_scores, random_selection


def trained_side(documents: list[tuple[str, list[Span]]]) -> list[tuple[str, list[Span]]]:
    """The documents the loop would train on: those its stable split does not hold out for testing."""
    return [(text, spans) for text, spans in documents
            if not is_test_document(document_hash(text), DEFAULT_TEST_SHARE)]


def _version_number(name: str) -> int:
    """v3 → 3; a name that is not vN → 0."""
    digits = name.removeprefix("v")
    return int(digits) if name.startswith("v") and digits.isdigit() else 0


def _rounds(runtime: LocalRuntime, test: list[Labelled], seed_documents: int) -> list[RoundResult]:
    """One entry per trained version, in order, scored on the test set."""
    state = runtime.state
    versions = sorted((v for v in state.versions.list() if v.status in (*TRAINED_STATUSES, "DELETED") and v.arn),
                      key=lambda v: int(v.version.lstrip("v") or 0))
    jobs = state.jobs.list()
    loops = state.loops.list()
    active = state.versions.active()
    out = []
    served: tuple[str, float] | None = None
    for number, version in enumerate(versions, start=1):
        documents = runtime.get_text(f"training/{version.version}/documents.txt").count("\n")
        test_key = f"training/{version.version}/test-documents.txt"
        held_out = runtime.get_text(test_key).count("\n") if test_key in runtime.list_keys(test_key) else 0
        model = runtime.comprehend.model(version.arn)
        figures = scores(evaluate(model, test))
        own_loops = [loop for loop in loops if loop.version == version.version]
        gate = dict(version.metrics.get("gate") or {})
        if served is None or gate.get("status") != "KEPT_INACTIVE":
            served = (version.version, figures["f1"])
        out.append(RoundResult(
            round=number, model_version=version.version,
            active=bool(active and active[0] == version.version),
            gate=gate, served_version=served[0], served_f1=served[1],
            # Reviews go to either side of the loop's split: its training or its test set.
            reviewed_documents=documents + held_out - seed_documents, training_documents=documents,
            documents_detected=sum(job.documents for job in jobs if job.version == version.version),
            routed_to_review=len(own_loops),
            reviewed_this_round=sum(1 for loop in own_loops if loop.status == "Completed"),
            calibration=[asdict(prediction) for prediction in scored_predictions(model, test)],
            **figures,
        ))
    return out


def print_report(figures: dict[str, Any]) -> None:
    types = figures["entity_types"]
    print(f"\nnerloop demo — {figures['manifest']} (seed {figures['seed']})")
    print(f"pool {figures['pool_size']} documents ({figures['pool_lines']} lines cut into sentences), "
          f"test {figures['test_documents']}, seed {figures['seed_documents']}, "
          f"threshold {figures['threshold']}, review budget {figures['review_budget_per_round']} per round\n")
    header = f"{'round':>5} {'version':>7} {'detected':>8} {'to review':>9} {'reviewed':>8} {'total':>6}  " \
             f"{'P':>5} {'R':>5} {'F1':>5}  " + "  ".join(f"{t + ' F1':>12}" for t in types) + "  gate"
    print(header)
    for entry in figures["rounds"]:
        per_type = "  ".join(f"{entry['per_type'].get(t, {}).get('f1', 0.0):>12.3f}" for t in types)
        print(f"{entry['round']:>5} {entry['model_version']:>7} {entry['documents_detected']:>8} "
              f"{entry['routed_to_review']:>9} {entry['reviewed_this_round']:>8} {entry['reviewed_documents']:>6}  "
              f"{entry['precision']:>5.3f} {entry['recall']:>5.3f} {entry['f1']:>5.3f}  {per_type}  "
              f"{_gate_text(entry.get('gate') or {})}")
    if len(figures["rounds"]) < figures["rounds_requested"]:
        print(f"the loop settled after {len(figures['rounds'])} versions: the last one sent no document "
              "to review, so no review was left to train the next")
    full = figures["full_supervision"]["f1"]
    print(f"\nlearning curve (test F1 of the version active after each round, against documents reviewed; "
          f"pool {figures['pool_size']}):")
    print(f"{'reviewed':>9} {'% pool':>7} {'active':>6} {'loop':>6} {'random':>7} {'vs full':>8}")
    for entry, rand in zip(figures["rounds"], figures["random_selection"], strict=True):
        share = 100 * entry["reviewed_documents"] / max(1, figures["pool_size"])
        served = entry.get("served_f1", entry["f1"])
        print(f"{entry['reviewed_documents']:>9} {share:>6.0f}% {entry.get('served_version', ''):>6} "
              f"{served:>6.3f} {rand['f1']:>7.3f} {served / full if full else 0:>7.0%}")
    print(f"full supervision ({figures['full_supervision']['documents']} documents): F1 {full:.3f}")
    print(f"finished in {figures['seconds']} s")


def _gate_text(gate: dict[str, Any]) -> str:
    """The gate's decision in a few words: activated or kept, and on how many shared test documents."""
    if not gate:
        return ""
    status = "kept inactive" if gate.get("status") == "KEPT_INACTIVE" else "activated"
    if gate.get("shared_documents"):
        return (f"{status} ({gate['shared_documents']} shared test docs: F1 {gate['candidate_f1']:.3f} vs "
                f"{gate['active_f1']:.3f}, p={gate['p_worse']:.2g})")
    return f"{status} ({gate.get('reason', '')})"


def cmd_demo(args: argparse.Namespace) -> int:
    manifest = args.manifest or DEFAULT_SAMPLE / "output.manifest"
    if not manifest.is_file():
        raise UsageError(f"{manifest}: no such file (pass --manifest, or set NERLOOP_SAMPLE_DATA)")
    if args.rounds < 3:
        raise UsageError("--rounds must be at least 3")
    if not 1 <= args.reviewers <= 3:
        raise UsageError("--reviewers must be 1, 2 or 3 (A2I's TaskCount)")
    if not 0 <= args.reviewer_noise < 1:
        raise UsageError("--reviewer-noise must be at least 0 and below 1")
    try:
        figures = run_demo(manifest, rounds=args.rounds, seed=args.seed, threshold=args.threshold,
                           workspace=args.workspace, reviewers=args.reviewers, reviewer_noise=args.reviewer_noise,
                           training_mode=args.training_mode)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print_report(figures)
    if args.workspace:  # beside the run's state, where `nerloop report --workspace` looks
        (args.workspace / FIGURES_FILE).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    demo = commands.add_parser("demo", help="the whole loop, offline, with a simulated reviewer")
    demo.add_argument("--manifest", type=Path, help="a Ground Truth NER output manifest (default: the sample)")
    demo.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help="model versions to train (≥ 3)")
    demo.add_argument("--seed", type=int, default=0, help="makes a run repeatable")
    demo.add_argument("--threshold", type=float, default=0.95, help="ConfidenceThreshold for the run")
    demo.add_argument("--workspace", type=Path, help="keep the run's state in this folder")
    demo.add_argument("--reviewers", type=int, default=1,
                      help="simulated reviewers per document (ReviewersPerDocument, 1-3; default 1)")
    demo.add_argument("--reviewer-noise", type=float, default=0.0, metavar="P",
                      help="each simulated reviewer misses each entity with probability P (default 0)")
    demo.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    demo.add_argument("--training-mode", choices=["Recognizer", "Flywheel"], default="Recognizer",
                      help="the template's TrainingMode: recognizer versions (default) or a Comprehend flywheel")
    demo.set_defaults(run=cmd_demo)
