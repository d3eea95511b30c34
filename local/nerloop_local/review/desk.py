"""What the review page may do with the local loop: list the human loops waiting for a reviewer, show
one, answer it, and read how the loop is doing.

The page reads and answers the loops the route stage started, through the A2I stand-in: its input is
the human loop's InputContent (nerloop.a2i.build_input_content, the same the A2I worker template
reads), and an answer is written by `A2IStandIn.complete_loop`, the path the simulated reviewer takes,
so output.json has A2I's `crowd-entity-annotation` shape and the A2I status event reaches the merge
stage. Offsets are Unicode code points throughout, as A2I and Comprehend count them.

Threads: moto and the stand-ins are not thread-safe, and the service drives them from its own thread,
holding `lock` for each of its rounds. A page request never waits for a round: it tries the lock
without blocking; when it gets it, it reads the runtime (and keeps what it read), and when a round
holds it, it answers from what was read last (`refresh`, which the service also calls during its
rounds). An answer is checked and taken at once into an AnswerQueue (nerloop_local.review.answers:
in order, one per loop and worker, journaled) and handed to the A2I stand-in by `deliver`: at once
when no round runs, else by the service at the start of its next round. `on_answer` is called after
an answer: the service uses it to start its next round at once.

Several reviewers per document: a loop of a flow definition with TaskCount n waits for n distinct
workers. The page names its worker (`worker` in the answer, `?worker=` on the queue), and the queue
lists for each worker only the loops it has not answered.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, StrictInt, ValidationError

from nerloop_local.report.status import collect_status
from nerloop_local.review.answers import AnswerQueue, TakenAnswer
from nerloop_local.standins.a2i import A2I, LOCAL_WORKER, PendingLoop
from nerloop_local.standins.base import StandInError

PREVIEW_CHARS = 120  # code points of a document shown in the queue
MAX_SECONDS = 86_400.0  # a longer time spent is not believed (A2I's task time limit is 8 hours)
WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class ReviewError(Exception):
    """A request the page cannot have; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# --- the human loop's input ------------------------------------------------------------------------------


class _Label(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: str


class _Span(BaseModel):
    model_config = ConfigDict(extra="ignore")

    label: str
    startOffset: StrictInt
    endOffset: StrictInt


class _Prediction(_Span):
    score: float


class ReviewInput(BaseModel):
    """A human loop's InputContent as nerloop.a2i.build_input_content writes it."""

    model_config = ConfigDict(extra="ignore")

    text: str
    labels: list[_Label]
    initialValue: list[_Span] = []
    predictions: list[_Prediction] = []
    lowestScore: float | None = None
    document: str = ""
    version: str = ""

    @property
    def label_names(self) -> list[str]:
        return [item.label for item in self.labels]


def read_input(loop: PendingLoop) -> ReviewInput:
    """The loop's input; ReviewError 422 when it is not what the route stage writes."""
    try:
        return ReviewInput.model_validate(loop.input)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()[:3])
        raise ReviewError(422, f"human loop {loop.name}: its input is not an entity review ({problems})") from exc


def _score_order(span: dict[str, Any]) -> tuple[bool, float, int]:
    """Least confident first; spans without a score (none from the model) last, in text order."""
    score = span["score"]
    return (score is None, 0.0 if score is None else score, span["startOffset"])


def document_view(loop: PendingLoop, content: ReviewInput) -> dict[str, Any]:
    """One document for the page: its text, the labels to choose from, and the model's spans (those
    pre-filled for the worker) with their scores, least confident first."""
    scores = {(p.label, p.startOffset, p.endOffset): p.score for p in content.predictions}
    spans = [{"label": s.label, "startOffset": s.startOffset, "endOffset": s.endOffset,
              "score": scores.get((s.label, s.startOffset, s.endOffset))} for s in content.initialValue]
    return {"name": loop.name, "document": content.document, "version": content.version,
            "created": loop.created.isoformat(), "text": content.text, "labels": content.label_names,
            "lowestScore": content.lowestScore, "spans": sorted(spans, key=_score_order)}


def queue_entry(loop: PendingLoop) -> dict[str, Any]:
    """A loop as the queue lists it; one whose input cannot be read is listed with the problem."""
    entry: dict[str, Any] = {"name": loop.name, "created": loop.created.isoformat()}
    try:
        content = read_input(loop)
    except ReviewError as exc:
        return {**entry, "problem": exc.message, "lowestScore": None}
    return {**entry, "document": content.document, "version": content.version,
            "lowestScore": content.lowestScore, "spans": len(content.initialValue),
            "preview": "".join(list(content.text)[:PREVIEW_CHARS]),
            "reviewers": {"needed": loop.task_count, "answered": len(loop.answered_by)}}


def order_queue(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Least confident first; loops without a score, then unreadable ones, last; then oldest first."""
    return sorted(entries, key=lambda e: ("problem" in e, e["lowestScore"] is None, e["lowestScore"] or 0.0,
                                          e["created"], e["name"]))


# --- the answer ------------------------------------------------------------------------------------------


def check_answer(content: ReviewInput, body: Any) -> list[dict[str, Any]]:
    """The entities of a page's answer `{"entities": [{"label", "startOffset", "endOffset"}, ...]}` as
    A2I writes them, in text order; ReviewError 400 naming the first problem. Each span must have a
    label of the loop's, lie inside the text (code points), hold more than white space, and overlap
    no other: the merge stage would reject or repair such answers, so the page never sends them."""
    if not isinstance(body, dict) or not isinstance(body.get("entities"), list):
        raise ReviewError(400, 'the answer must be a JSON object {"entities": [...]}')
    text, labels = content.text, content.label_names
    spans: list[dict[str, Any]] = []
    for index, item in enumerate(body["entities"]):
        try:
            span = _Span.model_validate(item)
        except ValidationError as exc:
            raise ReviewError(400, f"entity {index}: needs a label and integer startOffset and endOffset "
                                   f"({exc.errors()[0]['msg']})") from exc
        where = f"entity {index} ({span.label} {span.startOffset}..{span.endOffset})"
        if span.label not in labels:
            raise ReviewError(400, f"{where}: unknown label; the labels are {', '.join(labels)}")
        if not 0 <= span.startOffset < span.endOffset <= len(text):
            raise ReviewError(400, f"{where}: offsets must satisfy 0 <= start < end <= {len(text)} "
                                   "(the text's length in code points)")
        if text[span.startOffset:span.endOffset].isspace():
            raise ReviewError(400, f"{where}: only white space")
        spans.append({"label": span.label, "startOffset": span.startOffset, "endOffset": span.endOffset})
    spans.sort(key=lambda s: (s["startOffset"], s["endOffset"]))
    for before, after in pairwise(spans):
        if after["startOffset"] < before["endOffset"]:
            raise ReviewError(400, f"entities {before['label']} {before['startOffset']}..{before['endOffset']} "
                                   f"and {after['label']} {after['startOffset']}..{after['endOffset']} overlap")
    return spans


def worker_of(value: Any) -> str:
    """The worker id a page names (the answer's `worker`, the queue's `?worker=`); the local reviewer
    when none. ReviewError 400 unless 1-64 letters, digits or `_.@-`."""
    if value is None or value == "":
        return LOCAL_WORKER
    if not isinstance(value, str) or not WORKER_ID.match(value):
        raise ReviewError(400, "worker must be 1-64 letters, digits or _.@- (starting with a letter or digit)")
    return value


def seconds_spent(body: dict[str, Any]) -> float:
    """The answer's `seconds` (time the reviewer spent, for A2I's timeSpentInSeconds); 0 when absent."""
    value = body.get("seconds", 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_SECONDS:
        raise ReviewError(400, f"seconds must be a number from 0 to {MAX_SECONDS:g}")
    return round(float(value), 3)


# --- the loop's status -----------------------------------------------------------------------------------


def page_status(status: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of nerloop_local.report.status.collect_status: the review counts, the active and
    latest versions, trainings in flight, and whether events wait for the service's next round."""
    latest = status["versions"][-1] if status["versions"] else None
    return {
        "reviews": status["reviews"],
        "active": status["active"],
        "latest": {key: latest[key] for key in ("version", "status", "f1", "active")} if latest else None,
        "versions": len(status["versions"]),
        "trainings": status["in_flight"]["trainings"],
        "pool": status["pool"],
        "working": bool(status["events_pending"]),
        "dead_letters": sum(len(letters) for letters in status["dead_letters"].values()),
    }


# --- the desk --------------------------------------------------------------------------------------------


class ReviewDesk:
    """The page's access to a started LocalRuntime (see the module docstring for the threads)."""

    def __init__(self, runtime: Any, lock: threading.RLock | None = None,
                 on_answer: Callable[[], None] | None = None, answers: AnswerQueue | None = None,
                 on_refused: Callable[[TakenAnswer, str], None] | None = None) -> None:
        self.runtime = runtime
        self.lock = lock or threading.RLock()
        self.on_answer = on_answer
        self.on_refused = on_refused  # an answer A2I did not take (its loop ended meanwhile)
        self.answers = answers or AnswerQueue()
        self._view = threading.Lock()  # guards what was read last; never held while the runtime is used
        self._pending: list[PendingLoop] = []
        self._status: dict[str, Any] | None = None
        self._refreshed = 0.0

    # --- reading the runtime (only with `lock` held) ------------------------------------------------

    def refresh(self, status: bool = True) -> None:
        """Read the waiting loops (and the status) from the runtime; the caller holds `lock`."""
        pending = self.runtime.a2i.pending_loops()
        read = page_status(self._collect_status()) if status else None
        with self._view:
            self._pending = pending
            if read is not None:
                self._status = read
            self._refreshed = time.monotonic()

    def refresh_now_and_then(self, seconds: float = 0.5) -> None:
        """`refresh` unless done in the last `seconds` (the service calls it after each delivery)."""
        if time.monotonic() - self._refreshed >= seconds:
            self.refresh()

    def _collect_status(self) -> dict[str, Any]:
        return collect_status(self.runtime, history=False)

    def _try_refresh(self, status: bool = False) -> bool:
        """Refresh if no round holds the runtime; never waits. Whether it did."""
        if not self.lock.acquire(blocking=False):
            return False
        try:
            self.refresh(status)
            return True
        finally:
            self.lock.release()

    # --- the page's requests ------------------------------------------------------------------------

    def queue(self, worker: str | None = None) -> list[dict[str, Any]]:
        """The loops waiting for `worker` (not answered by it), least confident first."""
        who = worker_of(worker)
        self._try_refresh()
        with self._view:
            pending = list(self._pending)
        return order_queue([queue_entry(loop) for loop in pending
                            if who not in loop.answered_by and not self.answers.taken(loop.name, who)])

    def document(self, name: str) -> dict[str, Any]:
        """One waiting loop's document (404 unknown, 409 answered, 422 unreadable)."""
        loop = self._pending_loop(name)
        return document_view(loop, read_input(loop))

    def answer(self, name: str, body: Any) -> dict[str, Any]:
        """Take a worker's answer at once; `queued` says whether it waits for the service's round (else
        A2I has it already). 409 when this worker answered the loop before."""
        worker = worker_of(body.get("worker") if isinstance(body, dict) else None)
        loop = self._pending_loop(name)
        entities = check_answer(read_input(loop), body)
        if worker in loop.answered_by or not self.answers.take(TakenAnswer(name, worker, entities,
                                                                           seconds_spent(body))):
            raise ReviewError(409, f"worker {worker} answered human loop {name} already")
        delivered = self.lock.acquire(blocking=False)
        if delivered:
            try:
                self.deliver()
                self.refresh(status=False)
            finally:
                self.lock.release()
        if self.on_answer is not None:
            self.on_answer()
        return {"name": name, "worker": worker, "entities": entities, "queued": not delivered}

    def status(self) -> dict[str, Any]:
        """The loop's figures: read now when no round runs, else those read last (`working` then)."""
        fresh = self._try_refresh(status=True)
        with self._view:
            status = dict(self._status or {})
        waiting = self.answers.waiting()
        status["answers_waiting"] = waiting
        status["working"] = bool(status.get("working")) or not fresh or waiting > 0
        return status

    def deliver(self) -> int:
        """Hand the answers taken to the A2I stand-in, in order; the caller holds `lock`. An answer to a
        loop that ended meanwhile (or that A2I holds already, after a replay) is refused and reported."""
        count = 0
        for taken in self.answers.pop_all():
            try:
                self.runtime.a2i.complete_loop(taken.loop, taken.entities, worker_id=taken.worker,
                                               seconds_spent=taken.seconds)
            except (ValueError, StandInError) as exc:
                if self.on_refused is not None:
                    self.on_refused(taken, str(exc))
                continue
            count += 1
        return count

    def _pending_loop(self, name: str) -> PendingLoop:
        self._try_refresh()
        with self._view:
            found = next((loop for loop in self._pending if loop.name == name), None)
        if found is not None:
            return found
        if not self.lock.acquire(blocking=False):
            raise ReviewError(404, f"no human loop {name} waits for a reviewer")
        try:
            described = self.runtime.client(A2I).describe_human_loop(HumanLoopName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise ReviewError(404, f"no human loop {name}") from exc
            raise
        finally:
            self.lock.release()
        raise ReviewError(409, f"human loop {name} is {described['HumanLoopStatus']}: it was answered or "
                               "ended already")


__all__ = ["ReviewDesk", "ReviewError", "ReviewInput", "check_answer", "document_view", "order_queue",
           "page_status", "queue_entry", "read_input", "seconds_spent", "worker_of"]
