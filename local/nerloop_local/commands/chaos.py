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
                and exactly one more once it finished (if a full batch is pending): chaos_concurrency.
5. redrive    — the merge function lacks a permission (AccessDenied): its events land in its
                dead-letter queue with the original event; the permission is granted, `redrive`
                re-runs them (the final state equals the clean run's), and redriving the same dead
                letters again changes nothing.

Equal means `canonical_state` (chaos_state) is equal: every item of the state table except the idempotency
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
import io
import itertools
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nerloop_local.commands.chaos_concurrency import check_concurrency
from nerloop_local.commands.chaos_state import CHAOS_ENVIRONMENT, Figures, canonical_state, state_differences, summarize
from nerloop_local.emulator.faults import SERVICES, FaultInjector
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.usage import DEFAULT_SAMPLE

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


# --- one run ---------------------------------------------------------------------------------------------


@dataclass
class Run:
    figures: Figures
    state: dict[str, Any]


def run_loop(check: str, scenario: Scenario, folder: Path, *, duplicate_events: bool = False,
             faults: FaultInjector | None = None, seed: int = 0,
             between: Callable[[Any, Figures], None] | None = None) -> Run:
    """Run the scenario to idle in a fresh workspace under `folder`; `between(runtime, figures)` runs
    after the first settling (then the loop is run to idle again)."""
    started = time.perf_counter()
    figures = Figures(check)
    workspace = folder / check
    shutil.rmtree(workspace, ignore_errors=True)
    runtime = LocalRuntime(workspace, scenario.parameters(), reviewer=scenario.reviewer(),
                           environment=CHAOS_ENVIRONMENT, seed=seed, duplicate_events=duplicate_events,
                           faults=faults, autosave=False, restore=False)
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
