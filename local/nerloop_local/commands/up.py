"""`nerloop up`: the loop as a long-running local service.

    nerloop up [--workspace DIR] [--inbox DIR] [--interval S] [--once] [--seed-manifest FILE] [--param N=V ...]
               [--review-port N | --no-review]

`up` keeps the local stack (nerloop_local.emulator.runtime.LocalRuntime) in a workspace folder, default
./.nerloop/workspace; a restart restores it and goes on where it stopped. Text files dropped in the
inbox folder (default: `inbox` beside the workspace, so ./.nerloop/inbox) flow through the loop:

1. every `*.txt` file of the inbox (not in sub-folders, not hidden) is put under raw/<file name> in
   the emulated bucket, which fires the preprocess stage;
2. the pump runs until the stack is idle (training, detection, routing ... all happen here), and the
   workspace is saved;
3. only then the file moves to <inbox>/done/. A file whose exact bytes are already at raw/<name> in the
   saved bucket is not sent again but only moved: after a crash between steps 1 and 3 the file is
   either in the saved bucket (moved without sending) or not (sent): never lost, never sent twice.
   A file with a name already used but other bytes is new text: it replaces raw/<name>, and the
   preprocess stage drops the documents it has seen before.

In the continuous mode a file modified less than SETTLE_SECONDS ago is left for the next look (it
may still be being written; writing elsewhere and moving the file in is safest); `--once` takes every
file at once. One line is printed per delivery, and a status line after every round that changed
something. With `--seed-manifest`, a Ground Truth labeling job that completes from that output
manifest runs first when the gold set is empty (the first start), so the first version is trained
and the inbox's documents need no labeling job of their own.

The human loops wait for people: while `up` runs (not with `--once`) it serves the review page
(nerloop_local.review) on http://127.0.0.1:<--review-port>/ (default 8470; 0 takes any free port), and
prints its address. An answer there is taken at once (nerloop_local.review.answers: queued in order,
journaled in <workspace>/review-answers.jsonl) and wakes the service: it is handed to the A2I stand-in,
as a worker's would be, at once when no round runs, else at the start of the next round, whose merge
stage then takes it. Only the service's thread drives the runtime's pump; a page request uses the
emulated AWS only when it gets `Service.lock` without waiting (each round holds it), and otherwise
answers from what was read last: a page request never waits for a round.

Template parameters: `--param Name=Value` (repeatable) over the template's defaults (see
`nerloop up --help`), checked as CloudFormation would (type, bounds, pattern) and as the functions'
settings are (commands/parameters.py). The workspace remembers them: a restart without --param keeps
the earlier values. The status line after each round is nerloop_local.report.status.status_line.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from botocore.exceptions import ClientError

from nerloop_local.commands.entity_types import manifest_entity_types
from nerloop_local.commands.parameters import parameters_help, parse_params, stack_parameters
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.workspace import Workspace
from nerloop_local.emulator.workspace_runtime import handler_environment
from nerloop_local.report.status import collect_status, status_line
from nerloop_local.review.answers import AnswerQueue
from nerloop_local.review.desk import ReviewDesk
from nerloop_local.review.server import ReviewServer
from nerloop_local.standins.groundtruth import label_attribute_of
from nerloop_local.usage import UsageError

DEFAULT_WORKSPACE = Path(".nerloop/workspace")
DEFAULT_INTERVAL = 5.0
DEFAULT_REVIEW_PORT = 8470
SETTLE_SECONDS = 1.0
MAX_CYCLES = 500  # pump cycles per round; a round that does not settle goes on in the next one
SEED_CYCLES = 50  # cycles allowed for the seed's labels to reach the gold set
DONE_FOLDER = "done"
LOCK_FILE = ".nerloop-up.lock"
ANSWER_JOURNAL = "review-answers.jsonl"  # the review page's answers not yet in a saved workspace
# A folder that holds any of these was used as a workspace (perhaps interrupted before its first save).
WORKSPACE_ENTRIES = ("workspace.json", "standins", "s3", "dynamodb", "queues.json", "stack.json",
                     "deliveries.jsonl", LOCK_FILE, ANSWER_JOURNAL)


def wait(seconds: float, wakeup: threading.Event) -> None:
    """Sleep between two looks at the inbox, or until `wakeup` is set (Ctrl-C interrupts it)."""
    wakeup.wait(seconds)
    wakeup.clear()


# --- folders ---------------------------------------------------------------------------------------------


def default_inbox(workspace: Path) -> Path:
    """`inbox` beside the workspace folder: ./.nerloop/inbox for the default workspace."""
    return workspace.parent / "inbox"


def check_workspace_folder(path: Path) -> None:
    """UsageError when `path` cannot hold a workspace: a file, or a folder holding something else."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: not a folder")
    if path.is_dir() and any(path.iterdir()) and not any((path / entry).exists() for entry in WORKSPACE_ENTRIES):
        raise UsageError(f"{path}: the folder holds other files and no nerloop workspace; choose another one")


@contextmanager
def workspace_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the workspace while `up` runs: two services on one workspace would
    overwrite each other's saves. The operating system drops the lock when the process ends."""
    try:
        # Late import: fcntl exists only on POSIX systems; without it the service runs unguarded
        import fcntl
    except ImportError:  # no flock (Windows): run without the guard
        yield
        return
    path.mkdir(parents=True, exist_ok=True)
    with (path / LOCK_FILE).open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"{path}: another `nerloop up` is using this workspace") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def md5_hex(data: bytes) -> str:
    """What S3 puts in the ETag of an object written in one PUT."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def ready_files(inbox: Path, settle_seconds: float, now: float) -> list[Path]:
    """The inbox's `.txt` files to take now, by name: not hidden, not modified in the last `settle_seconds`."""
    found = []
    for path in sorted(inbox.iterdir()):
        if path.name.startswith(".") or not path.name.endswith(".txt") or not path.is_file():
            continue
        if now - path.stat().st_mtime < settle_seconds:
            continue
        found.append(path)
    return found


def done_path(done: Path, name: str) -> Path:
    """Where a file goes in done/: its own name, or name.2.txt, name.3.txt ... when that is taken."""
    target = done / name
    stem, suffix = os.path.splitext(name)
    number = 1
    while target.exists():
        number += 1
        target = done / f"{stem}.{number}{suffix}"
    return target


@dataclass
class Taken:
    path: Path
    key: str
    sent: bool  # False: its bytes were already at `key` (sent before a restart)


# --- the service -----------------------------------------------------------------------------------------


@dataclass
class ServiceOptions:
    workspace: Path
    inbox: Path
    interval: float = DEFAULT_INTERVAL
    once: bool = False
    seed_manifest: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    review_port: int | None = None  # serve the review page on this port (0: any free one); None: no page


class Service:
    """The loop on one workspace: inbox → raw/ → pump until idle → done/, round after round."""

    def __init__(self, options: ServiceOptions, out: IO[str] | None = None) -> None:
        self.options = options
        self.out = out or sys.stdout
        self.runtime: Any = None
        self.dead_lettered = 0
        self.settled = True
        self.review_url: str | None = None
        self.lock = threading.RLock()  # held by each round, and by a page request that finds it free
        self.desk: Any = None  # the review page's desk, while the page is served
        self.wakeup = threading.Event()  # set by an answer on the page: the next round starts at once
        self._stopping = threading.Event()
        self._last_line = ""

    def say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def run(self) -> int:
        """Serve until stopped (Ctrl-C or SIGTERM), or one round with `once`; the exit status."""
        options = self.options
        with workspace_lock(options.workspace):
            workspace = Workspace(options.workspace)
            restoring = workspace.exists()
            saved = dict(workspace.manifest().get("parameters") or {}) if restoring else {}
            parameters = stack_parameters(options.parameters, saved)
            self.runtime = LocalRuntime(options.workspace, parameters, environment=handler_environment())
            self.runtime.on_delivery(self._on_delivery)
            self.runtime.start()
            try:
                with _sigterm_as_interrupt():
                    self.say(f"nerloop up: workspace {options.workspace} "
                             f"({'restored' if restoring else 'new'}), inbox {options.inbox}"
                             + ("" if options.once else f", every {options.interval:g} s; Ctrl-C stops"))
                    self._seed()
                    if options.once:
                        self.round()
                    else:
                        with self._review_page():
                            self._serve()
            except KeyboardInterrupt:
                self.say("stopping: saving the workspace")
            finally:
                with self.lock:  # a page request still running ends first
                    if self.desk is not None:
                        self.desk.deliver()  # answers taken since the last round: A2I holds them when saved
                    self.runtime.close()  # saves
                    if self.desk is not None:
                        self.desk.answers.saved()
            self.say(f"state saved in {options.workspace}")
        if options.once and not self.settled:
            self.say(f"the loop did not settle in {MAX_CYCLES} cycles; run again to go on")
            return 1
        return 1 if options.once and self.dead_lettered else 0

    def stop(self) -> None:
        """Stop serving after the current round (from another thread; Ctrl-C and SIGTERM stop it too)."""
        self._stopping.set()
        self.wakeup.set()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self.round()
            wait(self.options.interval, self.wakeup)

    @contextmanager
    def _review_page(self) -> Iterator[None]:
        """Serve the review page while the block runs (when a port is set)."""
        port = self.options.review_port
        if port is None:
            yield
            return
        answers = AnswerQueue(self.options.workspace / ANSWER_JOURNAL)
        desk = ReviewDesk(self.runtime, self.lock, on_answer=self.wakeup.set, answers=answers,
                          on_refused=lambda taken, why: self.say(f"review page: the answer of {taken.worker} to "
                                                                 f"{taken.loop} was not taken: {why}"))
        replayed = answers.replay()
        if replayed:
            self.say(f"review page: {replayed} answers taken before the last stop are handed over now")
        with self.lock:
            desk.refresh()
        self.desk = desk
        try:
            server = ReviewServer(desk, self.options.workspace / "report", port)
        except OSError as exc:
            raise UsageError(f"--review-port {port}: cannot serve the review page there ({exc.strerror}); "
                             "choose another port, or 0 for any free one") from exc
        with server:
            self.review_url = server.url
            self.say(f"review page: {server.url}")
            try:
                yield
            finally:
                self.review_url = None

    def _on_delivery(self, delivery: Any) -> None:
        self.say(delivery.line())
        if self.desk is not None:  # the page shows the loop's progress during a long round
            self.desk.refresh_now_and_then()
        if delivery.outcome == "dead-letter":
            self.dead_lettered += 1

    def _seed(self) -> None:
        """Label the seed manifest's documents into the gold set, once, before any inbox file."""
        manifest = self.options.seed_manifest
        runtime = self.runtime
        if manifest is None:
            return
        state = runtime.state
        if state.gold.has_any():
            self.say(f"the gold set is not empty: {manifest} is not used again")
            return
        body = manifest.read_bytes()
        prefix = runtime.stack.labeling_job_prefix()
        job_name = f"{prefix}-seed-{md5_hex(body)[:12]}"
        if job_name in runtime.groundtruth.jobs:
            self.say(f"{manifest} was labeled before (job {job_name}) and gave no gold documents: "
                     "see `nerloop status` for dead letters")
            return
        self._check_seed_labels(manifest)
        try:
            runtime.label_with_manifest(body, job_name=job_name)
        except (ValueError, KeyError) as exc:
            raise UsageError(f"{manifest}: not a Ground Truth output manifest ({exc})") from exc
        self.say(f"seed: labeling job {job_name} completed from {manifest}")
        # Until its labels are gold: preprocess starts a labeling job on new text while the gold set is empty.
        for _ in range(SEED_CYCLES):
            runtime.cycle()
            if state.gold.has_any() or runtime.idle():
                break

    def _check_seed_labels(self, manifest: Path) -> None:
        labels = set(manifest_entity_types(manifest))
        types = set(self.runtime.stack.names["EntityTypes"])
        if labels and not labels & types:
            raise UsageError(f"{manifest}: labels {', '.join(sorted(labels))}, none of the stack's entity types "
                             f"({', '.join(sorted(types))}); pass --param EntityTypes={','.join(sorted(labels))}")
        if labels - types:
            self.say(f"warning: {manifest} also labels {', '.join(sorted(labels - types))}, "
                     "which are not among the entity types")

    def take_inbox(self) -> list[Taken]:
        """Put the inbox's ready files under raw/ (each once: see the module docstring)."""
        runtime = self.runtime
        settle = 0.0 if self.options.once else SETTLE_SECONDS
        taken = []
        for path in ready_files(self.options.inbox, settle, time.time()):
            data = path.read_bytes()
            key = f"raw/{path.name}"
            sent = _object_md5(runtime, key) != md5_hex(data)
            if sent:
                runtime.put_bytes(key, data, "text/plain; charset=utf-8")
            taken.append(Taken(path, key, sent))
        return taken

    def file_away(self, taken: Sequence[Taken]) -> None:
        """Move taken files to done/ (only once the workspace holding them is saved)."""
        if not taken:
            return
        done = self.options.inbox / DONE_FOLDER
        done.mkdir(exist_ok=True)
        for item in taken:
            item.path.replace(done_path(done, item.path.name))

    def round(self) -> None:
        """One look at the inbox, and the pump until idle (holding the lock the review page shares)."""
        with self.lock:
            self._round()

    def _round(self) -> None:
        runtime = self.runtime
        if self.desk is not None:
            self.desk.deliver()  # the answers the page took while the last round ran
        taken = self.take_inbox()
        for item in taken:
            self.say(f"inbox: {item.path.name} → {item.key}" if item.sent
                     else f"inbox: {item.path.name} is already at {item.key}; not sent again")
        worked = False
        if any(item.sent for item in taken) or not runtime.idle():
            result = runtime.run_until_idle(max_cycles=MAX_CYCLES)  # saves the workspace
            self.settled = result.idle
            worked = bool(result.deliveries)
            if self.desk is not None:
                self.desk.answers.saved()  # what it handed to A2I is in the saved workspace now
        if self.desk is not None:
            self.desk.refresh()
            if self.desk.answers.waiting():  # taken during this round: the next one starts at once
                self.wakeup.set()
        self.file_away(taken)
        line = status_line(collect_status(runtime, history=False), self.review_url)
        if worked or taken or line != self._last_line:
            self.say(line)
            self._last_line = line


def _object_md5(runtime: Any, key: str) -> str | None:
    try:
        reply = runtime.s3.head_object(Bucket=runtime.bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return str(reply["ETag"]).strip('"')


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager stopping us) stops as cleanly as Ctrl-C does."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_seed_manifest(path: Path) -> None:
    """UsageError unless `path` is a file that reads as a Ground Truth output manifest."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        label_attribute_of(path.read_bytes())
    except (ValueError, KeyError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UsageError(f"{path}: not a Ground Truth output manifest ({exc})") from exc


# --- commands --------------------------------------------------------------------------------------------


def _quiet_warnings() -> None:
    # Powertools warns on every invocation when metrics are disabled and none were added: noise here.
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def cmd_up(args: argparse.Namespace) -> int:
    _quiet_warnings()
    workspace: Path = args.workspace
    check_workspace_folder(workspace)
    if args.interval <= 0:
        raise UsageError("--interval must be more than 0 seconds")
    inbox: Path = args.inbox if args.inbox is not None else default_inbox(workspace)
    if args.inbox is not None and not inbox.is_dir():
        raise UsageError(f"{inbox}: no such folder (create it, or leave out --inbox for {default_inbox(workspace)})")
    if args.seed_manifest is not None:
        check_seed_manifest(args.seed_manifest)
    if not 0 <= args.review_port <= 65535:
        raise UsageError("--review-port must be a port number from 0 to 65535 (0: any free port)")
    parameters = parse_params(args.param or [])
    stack_parameters(parameters)  # bad input is refused before anything starts
    inbox.mkdir(parents=True, exist_ok=True)
    options = ServiceOptions(workspace=workspace, inbox=inbox, interval=args.interval, once=args.once,
                             seed_manifest=args.seed_manifest, parameters=parameters,
                             review_port=None if args.once or args.no_review else args.review_port)
    return Service(options).run()


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    up = commands.add_parser(
        "up", help="run the loop as a local service: text dropped in the inbox flows through it",
        description="Run the loop as a local service on a workspace; .txt files dropped in the inbox "
                    "folder flow through it (put under raw/, then moved to <inbox>/done/).",
        epilog=parameters_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    up.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE,
                    help=f"the folder holding the loop's state (default: {DEFAULT_WORKSPACE})")
    up.add_argument("--inbox", type=Path,
                    help="the folder to watch for .txt files (default: 'inbox' beside the workspace, "
                         f"{default_inbox(DEFAULT_WORKSPACE)} for the default one)")
    up.add_argument("--interval", type=float, default=DEFAULT_INTERVAL,
                    help=f"seconds between looks at the inbox (default: {DEFAULT_INTERVAL:g})")
    up.add_argument("--once", action="store_true",
                    help="take the inbox once, run until idle and exit (1 if an event was dead-lettered)")
    up.add_argument("--seed-manifest", type=Path,
                    help="a Ground Truth NER output manifest labeled into the gold set on the first start")
    up.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="a template parameter (repeatable), e.g. EntityTypes=SERVICE,VERSION")
    review = up.add_mutually_exclusive_group()
    review.add_argument("--review-port", type=int, default=DEFAULT_REVIEW_PORT, metavar="N",
                        help="serve the review page on http://127.0.0.1:N/ (default: "
                             f"{DEFAULT_REVIEW_PORT}; 0: any free port; not with --once)")
    review.add_argument("--no-review", action="store_true", help="do not serve the review page")
    up.set_defaults(run=cmd_up)


__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_REVIEW_PORT",
    "DEFAULT_WORKSPACE",
    "Service",
    "ServiceOptions",
    "add_commands",
    "default_inbox",
]
