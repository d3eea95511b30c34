"""`python -m bench.learn` (`make learn`): does the loop's selection beat random selection?

For each seed, one run of `nerloop demo` (`nerloop_local.commands.demo.run_demo`) on a Ground Truth output manifest:
a test set held out grouped by normalised text, a small labelled seed, the loop trained for `--rounds`
versions with a simulated reviewer, and in the same run, at each version's budget (its cumulative
reviews), random selection of as many pool documents (`--random-draws` draws, averaged) and full
supervision, all scored on the test set. Across seeds: per budget step the mean test F1 and a t
interval for each strategy, the area under each learning curve, the paired difference loop - random,
ratios to full supervision, which runs stalled, and each run's seconds and peak memory. The runs are
independent and go to a pool of `--jobs` processes, one fresh process per run.

    python -m bench.learn                                   the sample, 5 seeds → bench/learning-sample.json
    python -m bench.learn --dataset conll2003-train-3000    CoNLL-2003 English, 3,000 training sentences
    python -m bench.learn --dataset PATH --seeds 10         any Ground Truth NER output manifest

`conll2003-<train|valid|test>-<N>` builds its manifest once with ../shared/corpora/to_manifest.py into
$CORPUS_CACHE (default ~/.cache/nerloop-corpora), never inside the repository: Reuters text, research use.
`nerloop report --learning FILE` draws the result.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess  # nosec B404 # runs the shared corpus tool with this interpreter
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from bench.learning_stats import (
    DEFAULT_CONFIDENCE,
    Estimate,
    curve_area,
    paired_differences,
    ratios,
    t_interval,
)
from bench.measure import REPO
from bench.workloads import Probe
from nerloop_local.emulator.isolation import offline_environment
from nerloop_local.report.learning_figures import (
    KIND,
    BudgetFigures,
    Interval,
    LearningBenchmark,
    RunRecord,
    Strategies,
)
from nerloop_local.usage import DEFAULT_SAMPLE

DEFAULT_SEEDS = 5
DEFAULT_ROUNDS = 4
DEFAULT_RANDOM_DRAWS = 3
DEFAULT_THRESHOLD = 0.95
# The share of the pool reviewed over a run, spread evenly over its rounds after the first (run_demo).
DEFAULT_REVIEW_SHARE = 0.5
DEFAULT_JOBS = min(2, os.cpu_count() or 1)  # runs are CPU-bound: more workers than cores only slow each run
CORPUS_TOOL = Path(os.environ.get("NERLOOP_CORPUS_TOOL", REPO.parent / "shared/corpora/to_manifest.py"))
CORPUS_CACHE = Path(os.environ.get("CORPUS_CACHE", Path.home() / ".cache/nerloop-corpora"))
CONLL = re.compile(r"conll2003-(train|valid|test)-([1-9][0-9]*)")
DIGITS = 5  # figures in the JSON: F1 is read to 3 decimals, intervals need a little more

METHOD = {
    "budgets": "Step k is the loop's k-th retrain (step 0: the model trained on the labelled seed alone). A "
               "seed's budget at step k is its loop's cumulative reviews in that version's training data; "
               "random selection trains on the seed plus as many pool documents drawn at random (the mean of "
               "random_draws draws), full supervision on the seed plus every pool document. All three are "
               "scored on the seed's test set, held out grouped by normalised text (no sentence on both sides).",
    "interval": "Two-sided Student t interval over seeds: mean ± t(confidence, n - 1) · sd / √n, sd the sample "
                "standard deviation; low and high are null with one seed.",
    "auc": "Trapezoid rule over the points (budget / pool size, test F1) from budget 0 to the run's last budget, "
           "nothing beyond; full supervision's curve is flat at its F1. auc_normalised divides the area by the "
           "last budget's share of the pool: the mean F1 over the budget range, comparable between runs whose "
           "budgets end at different shares (a stalled run ends early).",
    "loop_minus_random": "Per seed, the loop's figure minus random selection's (same split, same budgets); the "
                         "mean and t interval of those differences.",
    "of_full": "Per seed, the strategy's figure divided by full supervision's; the mean and t interval of those "
               "ratios.",
    "stalled": "A run stalls when it trained fewer versions than rounds requested while the pool still held "
               "unreviewed documents (too few uncertain documents were left to fill a retrain batch). Its "
               "missing steps are left out of those steps' figures: `seeds` lists the runs in each step.",
    "gate": "The loop runs with its gate on (F1Tolerance at its default): its curve is the test F1 of the version "
            "active after each round. every_version_active is the same seed's loop with F1Tolerance 1 (every "
            "version activated), run apart (no references); gate_minus_every_version the per-seed differences. "
            "kept_but_better_on_shared_test: versions kept inactive though their F1 on the loop's shared test "
            "documents beat the active one's; kept_but_better_on_benchmark_test: though their F1 on this "
            "benchmark's test set beat the served version's. Random selection and full supervision train only on "
            "documents the loop's stable split does not hold out for testing, as the loop does.",
    "resources": "seconds: the run's wall time, from loading the manifest to the last reference model, with "
                 "`jobs` runs side by side. peak_rss_mb: the run's own process at its peak, interpreter and "
                 "imports included; rss_growth_mb: that peak minus the resident size before the run began.",
}


class DatasetError(Exception):
    """A data set that cannot be found or built; the message says which and why."""


# --- data sets ---------------------------------------------------------------------------------------


def resolve_dataset(name: str, *, cache: Path = CORPUS_CACHE, tool: Path = CORPUS_TOOL) -> tuple[str, Path]:
    """A data set's short name and its manifest: `sample`, `conll2003-<split>-<N>` (built once into
    `cache`), or a manifest's path."""
    if name == "sample":
        manifest = DEFAULT_SAMPLE / "output.manifest"
        if not manifest.is_file():
            raise DatasetError(f"{manifest}: no such file (set NERLOOP_SAMPLE_DATA)")
        return name, manifest
    match = CONLL.fullmatch(name)
    if match:
        return name, conll_manifest(match.group(1), int(match.group(2)), cache=cache, tool=tool)
    path = Path(name)
    if not path.is_file():
        raise DatasetError(f"{name}: neither a data set (sample, conll2003-<train|valid|test>-<N>) nor a file")
    # Ground Truth names every output file output.manifest: its folder says more.
    stem = path.resolve().parent.name if path.stem == "output" else path.stem
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem) or "manifest", path


def conll_manifest(split: str, sentences: int, *, cache: Path, tool: Path) -> Path:
    """CoNLL-2003 English as a Ground Truth manifest: the first `sentences` of `split` after the tool's
    seeded shuffle, made by the shared corpus tool unless `cache` has it already."""
    out = cache / "manifests" / f"conll2003-en-{split}-{sentences}.manifest"
    if out.is_file():
        return out
    if not tool.is_file():
        raise DatasetError(f"{tool}: the corpus tool is missing (set NERLOOP_CORPUS_TOOL)")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    command = [sys.executable, str(tool), "conll2003-en", str(partial), "--split", split,
               "--max-sentences", str(sentences)]
    completed = subprocess.run(command, check=False)  # nosec B603 # this interpreter, the shared tool, no shell
    if completed.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        raise DatasetError(f"building {out.name} failed (exit status {completed.returncode}): {' '.join(command)}")
    partial.replace(out)  # whole or not at all: an interrupted build leaves no manifest behind
    return out


# --- one run -----------------------------------------------------------------------------------------


def run_seed(manifest: str, seed: int, rounds: int, random_draws: int, threshold: float,
             review_share: float = DEFAULT_REVIEW_SHARE, compare_gate: bool = True) -> RunRecord:
    """One demo run in this (fresh) process, with its seconds and memory: what a pool worker does. With
    `compare_gate`, the same run again with every version activated (no references), measured apart."""
    offline_environment()
    # Late import: nerloop's modules read the environment as they load (Powertools), so it is set first.
    from nerloop_local.commands.demo import run_demo

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    # What run_demo imports as it starts: loaded before the probe, so the growth is the run's data alone.

    probe = Probe()
    probe.start()
    figures = run_demo(Path(manifest), rounds=rounds, seed=seed, threshold=threshold, random_draws=random_draws,
                       budget_fraction=review_share, progress=lambda _message: None)
    probe.stop()
    measured = probe.as_dict()
    ungated = None
    if compare_gate:
        ungated = run_demo(Path(manifest), rounds=rounds, seed=seed, threshold=threshold, random_draws=random_draws,
                           budget_fraction=review_share, progress=lambda _message: None,
                           every_version_active=True, references=False)
    return run_record(figures, seconds=measured["seconds"], peak_rss_mb=measured["peak_mb"],
                      rss_growth_mb=measured["growth_mb"], every_version=ungated)


def gate_outcomes(rounds: Sequence[dict[str, Any]]) -> tuple[list[str], list[str], list[str]]:
    """The versions the gate kept inactive; those of them better than the active version on the loop's
    shared test set (by the gate's own figures); those better on the benchmark's test set than the
    version served instead."""
    kept, better_shared, better_test = [], [], []
    for entry in rounds:
        gate = entry.get("gate") or {}
        if gate.get("status") != "KEPT_INACTIVE":
            continue
        kept.append(entry["model_version"])
        if (gate.get("candidate_f1") or 0.0) > (gate.get("active_f1") or 0.0):
            better_shared.append(entry["model_version"])
        if entry["f1"] > entry["served_f1"]:
            better_test.append(entry["model_version"])
    return kept, better_shared, better_test


def run_record(figures: dict[str, Any], *, seconds: float, peak_rss_mb: float, rss_growth_mb: float,
               every_version: dict[str, Any] | None = None) -> RunRecord:
    """What the benchmark keeps of a demo's figures (`run_demo`'s return value), and of the same run
    with every version activated (`every_version`, optional)."""
    rounds, randoms = figures["rounds"], figures["random_selection"]
    if not rounds:
        raise ValueError(f"seed {figures['seed']}: the loop trained no version")
    reviewed = [entry["reviewed_documents"] for entry in rounds]
    if [point["reviewed_documents"] for point in randoms] != reviewed:
        raise ValueError(f"seed {figures['seed']}: random selection's budgets differ from the loop's")
    pool = figures["pool_size"]
    kept, better_shared, better_test = gate_outcomes(rounds)
    shares = [count / pool if pool else 0.0 for count in reviewed]
    loop_f1 = [entry.get("served_f1", entry["f1"]) for entry in rounds]  # what the loop serves
    random_f1 = [point["f1"] for point in randoms]
    full_f1 = figures["full_supervision"]["f1"]
    answered = sum(entry["reviewed_this_round"] for entry in rounds)
    unreviewed = max(0, pool - answered)
    auc = {"loop": curve_area(shares, loop_f1), "random": curve_area(shares, random_f1),
           "full": full_f1 * shares[-1]}
    span = shares[-1]
    # With no budget range (one version) the curve is a point: its mean F1 is its F1.
    normalised = {name: area / span for name, area in auc.items()} if span else \
        {"loop": loop_f1[0], "random": random_f1[0], "full": full_f1}
    return RunRecord(
        seed=figures["seed"], pool_size=pool, test_documents=figures["test_documents"],
        seed_documents=figures["seed_documents"], review_budget_per_round=figures["review_budget_per_round"],
        rounds_requested=figures["rounds_requested"], rounds_trained=len(rounds), unreviewed_at_end=unreviewed,
        stalled=len(rounds) < figures["rounds_requested"] and unreviewed > 0,
        reviewed_documents=reviewed, pool_share=[round(s, DIGITS) for s in shares], loop_f1=loop_f1,
        random_f1=random_f1, random_draws=[list(point.get("draws", [])) for point in randoms],
        full_f1=full_f1, full_documents=figures["full_supervision"]["documents"],
        auc={name: round(value, DIGITS) for name, value in auc.items()},
        auc_normalised={name: round(value, DIGITS) for name, value in normalised.items()},
        seconds=round(seconds, 2), peak_rss_mb=round(peak_rss_mb, 1), rss_growth_mb=round(rss_growth_mb, 1),
        every_version_f1=[entry["served_f1"] for entry in every_version["rounds"]] if every_version else [],
        kept_inactive=kept, kept_but_better_on_shared_test=better_shared, kept_but_better_on_benchmark_test=better_test,
    )


# --- across seeds ------------------------------------------------------------------------------------


def _interval(values: Sequence[float], confidence: float) -> Interval:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, DIGITS)

    found: Estimate = t_interval(values, confidence)
    return Interval(mean=round(found.mean, DIGITS), low=rounded(found.low), high=rounded(found.high), n=found.n,
                    sd=rounded(found.sd))


def compare(loop: Sequence[float], random: Sequence[float], full: Sequence[float],
            confidence: float) -> Strategies:
    """Each strategy's mean and interval over seeds (index i is one seed in all three), the paired
    difference loop - random and the ratios to full supervision."""
    loop_of_full, random_of_full = ratios(loop, full), ratios(random, full)
    return Strategies(
        loop=_interval(loop, confidence), random=_interval(random, confidence), full=_interval(full, confidence),
        loop_minus_random=_interval(paired_differences(loop, random), confidence),
        loop_of_full=_interval(loop_of_full, confidence) if loop_of_full else None,
        random_of_full=_interval(random_of_full, confidence) if random_of_full else None,
    )


def summarise_budgets(runs: Sequence[RunRecord], confidence: float) -> list[BudgetFigures]:
    """One entry per budget step, over the runs that reached it."""
    steps = max(len(run.loop_f1) for run in runs)
    out = []
    for step in range(steps):
        reached = [run for run in runs if len(run.loop_f1) > step]
        paired = [run for run in reached if len(run.every_version_f1) > step]
        out.append(BudgetFigures(
            step=step, seeds=[run.seed for run in reached],
            reviewed_documents=[run.reviewed_documents[step] for run in reached],
            pool_share=_interval([run.pool_share[step] for run in reached], confidence),
            f1=compare([run.loop_f1[step] for run in reached], [run.random_f1[step] for run in reached],
                       [run.full_f1 for run in reached], confidence),
            every_version_active=_interval([run.every_version_f1[step] for run in paired], confidence)
            if paired else None,
            gate_minus_every_version=_interval(paired_differences(
                [run.loop_f1[step] for run in paired], [run.every_version_f1[step] for run in paired]), confidence)
            if paired else None,
        ))
    return out


def summarise_areas(runs: Sequence[RunRecord], confidence: float, *, normalised: bool) -> Strategies:
    """The areas under the runs' curves (or their normalised form) compared across seeds."""
    areas = [run.auc_normalised if normalised else run.auc for run in runs]
    return compare([a["loop"] for a in areas], [a["random"] for a in areas], [a["full"] for a in areas],
                   confidence)


def summarise(runs: Sequence[RunRecord], *, dataset: str, manifest: Path, rounds: int, random_draws: int,
              threshold: float, confidence: float, jobs: int, seconds: float,
              review_share: float = DEFAULT_REVIEW_SHARE, entity_types: Sequence[str] = (),
              machine: dict[str, Any] | None = None) -> LearningBenchmark:
    """The benchmark's record from its runs (any order; kept by seed)."""
    runs = sorted(runs, key=lambda run: run.seed)
    stalled = [run.seed for run in runs if run.stalled]
    return LearningBenchmark(
        kind=KIND, dataset=dataset, manifest=str(manifest), entity_types=list(entity_types),
        seeds=[run.seed for run in runs], rounds=rounds, random_draws=random_draws, threshold=threshold,
        review_share=review_share,
        confidence=confidence, method=METHOD, budgets=summarise_budgets(runs, confidence),
        auc=summarise_areas(runs, confidence, normalised=False),
        auc_normalised=summarise_areas(runs, confidence, normalised=True),
        full_supervision=_interval([run.full_f1 for run in runs], confidence),
        stalled_seeds=stalled, any_stalled=bool(stalled), runs=runs, jobs=jobs, seconds=round(seconds, 1),
        machine=machine or {},
    )


# --- the whole benchmark -----------------------------------------------------------------------------


def run_benchmark(manifest: Path, *, dataset: str, seeds: Sequence[int], rounds: int = DEFAULT_ROUNDS,
                  random_draws: int = DEFAULT_RANDOM_DRAWS, threshold: float = DEFAULT_THRESHOLD,
                  confidence: float = DEFAULT_CONFIDENCE, jobs: int = DEFAULT_JOBS,
                  review_share: float = DEFAULT_REVIEW_SHARE, compare_gate: bool = True,
                  progress: Callable[[str], None] = lambda _message: None) -> LearningBenchmark:
    """Run one demo per seed, `jobs` at a time, each in a fresh process; summarise them."""
    # Late import: nerloop's modules (loaded by these) read the environment as they load; main() sets it first.
    from bench.run import machine
    from nerloop_local.commands.demo import load_manifest

    started = time.perf_counter()
    jobs = max(1, min(jobs, len(seeds)))
    _, entity_types, _ = load_manifest(manifest)
    runs: list[RunRecord] = []
    # A fresh process per run (spawned: no state inherited), so each run's peak memory is its own.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
        futures = {pool.submit(run_seed, str(manifest), seed, rounds, random_draws, threshold, review_share,
                               compare_gate): seed for seed in seeds}
        for future in as_completed(futures):
            try:
                run = future.result()
            except Exception as exc:  # one failed run spoils the comparison: stop the others too
                pool.shutdown(wait=False, cancel_futures=True)
                raise RuntimeError(f"the run of seed {futures[future]} failed: {exc}") from exc
            runs.append(run)
            progress(f"seed {run.seed}: {run.rounds_trained}/{run.rounds_requested} versions"
                     f"{' (stalled)' if run.stalled else ''}, final F1 loop {run.loop_f1[-1]:.3f} / random "
                     f"{run.random_f1[-1]:.3f} / full {run.full_f1:.3f}; {run.seconds:.0f} s, "
                     f"{run.peak_rss_mb:.0f} MB ({len(runs)}/{len(seeds)})")
    return summarise(runs, dataset=dataset, manifest=manifest, rounds=rounds, random_draws=random_draws,
                     threshold=threshold, confidence=confidence, jobs=jobs, seconds=time.perf_counter() - started,
                     review_share=review_share,
                     entity_types=entity_types, machine=machine())


def _cell(value: Interval | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    mean = f"{value.mean:+.3f}" if signed else f"{value.mean:.3f}"
    if value.low is None or value.high is None:
        return mean
    return f"{mean} [{value.low:+.3f}, {value.high:+.3f}]" if signed else \
        f"{mean} [{value.low:.3f}, {value.high:.3f}]"


def format_report(result: LearningBenchmark) -> str:
    """The benchmark as a few plain-text tables."""
    confidence = f"{result.confidence:.0%}"
    lines = [f"learning benchmark — {result.dataset} ({result.manifest})",
             f"{len(result.seeds)} seeds, {result.rounds} rounds, {result.random_draws} random draw(s) per budget; "
             f"test F1, mean [{confidence} t interval over seeds]", ""]
    header = (f"{'step':>4} {'reviewed':>8} {'% pool':>6} {'seeds':>5}  {'loop':<21} {'random':<21} "
              f"{'loop - random':<24} {'loop / full':<21}")
    lines.append(header)
    for entry in result.budgets:
        reviewed = sum(entry.reviewed_documents) / len(entry.reviewed_documents)
        lines.append(f"{entry.step:>4} {reviewed:>8.1f} {entry.pool_share.mean:>6.0%} {len(entry.seeds):>5}  "
                     f"{_cell(entry.f1.loop):<21} {_cell(entry.f1.random):<21} "
                     f"{_cell(entry.f1.loop_minus_random, signed=True):<24} {_cell(entry.f1.loop_of_full):<21}")
    lines.append(f"full supervision: F1 {_cell(result.full_supervision)}")
    if any(entry.every_version_active for entry in result.budgets):
        lines.append("")
        lines.append("the gate (F1Tolerance at its default) beside every version activated (F1Tolerance 1), "
                     "same seeds:")
        lines.append(f"{'step':>4}  {'gate':<21} {'every version':<21} {'gate - every version':<24}")
        for entry in result.budgets:
            lines.append(f"{entry.step:>4}  {_cell(entry.f1.loop):<21} {_cell(entry.every_version_active):<21} "
                         f"{_cell(entry.gate_minus_every_version, signed=True):<24}")
        kept = [f"seed {run.seed} {v}" for run in result.runs for v in run.kept_inactive]
        lines.append(f"versions kept inactive: {len(kept)} of {sum(run.rounds_trained for run in result.runs)}"
                     + (f" ({', '.join(kept)})" if kept else ""))
        for label, field in (("better on the loop's shared test set", "kept_but_better_on_shared_test"),
                             ("better on the benchmark's test set", "kept_but_better_on_benchmark_test")):
            found = [f"seed {run.seed} {v}" for run in result.runs for v in getattr(run, field)]
            lines.append(f"  of them {label}: {len(found)}" + (f" ({', '.join(found)})" if found else ""))
    lines.append("")
    lines.append("area under the learning curve (x: budget / pool from 0, y: test F1; trapezoids):")
    for label, areas in (("area", result.auc), ("area / range", result.auc_normalised)):
        lines.append(f"  {label:<13} loop {_cell(areas.loop)}  random {_cell(areas.random)}  "
                     f"full {_cell(areas.full)}")
        lines.append(f"  {'':<13} loop - random {_cell(areas.loop_minus_random, signed=True)}  "
                     f"loop / full {_cell(areas.loop_of_full)}")
    lines.append("")
    if result.any_stalled:
        for run in result.runs:
            if run.stalled:
                lines.append(f"stalled: seed {run.seed} trained {run.rounds_trained} of {run.rounds_requested} "
                             f"versions with {run.unreviewed_at_end} pool documents unreviewed")
    else:
        lines.append("no run stalled")
    lines.append("runs: " + "; ".join(f"seed {run.seed} {run.seconds:.0f} s {run.peak_rss_mb:.0f} MB"
                                      for run in result.runs))
    lines.append(f"{result.seconds:.0f} s with {result.jobs} job(s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="sample",
                        help="sample, conll2003-<train|valid|test>-<N> (e.g. conll2003-train-3000), or a "
                             "manifest's path (default: sample)")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help=f"runs (default {DEFAULT_SEEDS})")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST … FIRST + SEEDS - 1 (default 0)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS,
                        help=f"model versions per run, ≥ 3 (default {DEFAULT_ROUNDS})")
    parser.add_argument("--random-draws", type=int, default=DEFAULT_RANDOM_DRAWS,
                        help=f"random selections per budget, averaged (default {DEFAULT_RANDOM_DRAWS})")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help=f"ConfidenceThreshold of the loop (default {DEFAULT_THRESHOLD})")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                        help=f"of the intervals (default {DEFAULT_CONFIDENCE})")
    parser.add_argument("--review-share", type=float, default=DEFAULT_REVIEW_SHARE,
                        help="share of the pool reviewed over the run, even per round "
                             f"(default {DEFAULT_REVIEW_SHARE}: with 4 rounds about 17 %% a round)")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS,
                        help=f"runs side by side, one process each (default {DEFAULT_JOBS})")
    parser.add_argument("--no-gate-comparison", action="store_true",
                        help="skip the second run per seed with every version activated (F1Tolerance 1)")
    parser.add_argument("--output", type=Path, help="the JSON file (default bench/learning-<data set>.json)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or args.random_draws < 1:
        parser.error("--seeds, --jobs and --random-draws must be at least 1")
    if args.rounds < 3:
        parser.error("--rounds must be at least 3")
    if not 0.0 < args.confidence < 1.0:
        parser.error("--confidence must be in (0, 1)")
    offline_environment()  # before anything makes a client; the workers inherit it
    try:
        dataset, manifest = resolve_dataset(args.dataset)
    except DatasetError as exc:
        print(f"bench.learn: {exc}", file=sys.stderr)
        return 2
    output = args.output or REPO / "bench" / f"learning-{dataset}.json"
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(f"[learn] {dataset}: {len(seeds)} seeds, {args.rounds} rounds, {args.jobs} job(s)", file=sys.stderr)
    result = run_benchmark(manifest, dataset=dataset, seeds=seeds, rounds=args.rounds,
                           random_draws=args.random_draws, threshold=args.threshold, confidence=args.confidence,
                           jobs=args.jobs, review_share=args.review_share, compare_gate=not args.no_gate_comparison,
                           progress=lambda m: print(f"[learn] {m}", file=sys.stderr, flush=True))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n",
                      encoding="utf-8")
    print(format_report(result))
    print(f"results in {output}; draw them with `nerloop report --learning {output}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
