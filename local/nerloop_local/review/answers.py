"""The review page's answers, taken at once and kept in order until the service gives them to A2I.

A reviewer's answer must never wait for the loop: a round of `nerloop up` (a merge that starts a
retrain, a detection, routing ...) holds the emulated AWS for as long as it runs. So the page's
answer is checked and appended here, the page is told at once, and the service hands the answers to
the A2I stand-in (which writes A2I's output.json and publishes its status event) as soon as no round
runs: at once when the service is idle, else at the start of its next round.

Nothing taken is lost or taken twice:
- one answer per (human loop, worker): A2I gives a task to distinct workers (TaskCount), so a second
  answer of the same worker to the same loop is refused (the page may send again after a lost reply);
- every answer is appended to a journal file (one JSON line, flushed and synced) before the page is
  told it was taken; after the service saved the workspace, the journal is rewritten with only the
  answers not yet handed over. A service that stops or crashes in between reads the journal on its
  next start (`replay`) and hands them over then; one the A2I stand-in already holds is refused there
  (the worker answered already) and dropped, so none is counted twice.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TakenAnswer:
    """One worker's answer to one human loop, as the page sent it (entities checked already)."""

    loop: str
    worker: str
    entities: list[dict[str, Any]]
    seconds: float


class AnswerQueue:
    """Answers in the order taken, with their journal (None: kept in memory only). Thread-safe."""

    def __init__(self, journal: Path | None = None) -> None:
        self.journal = journal
        self._lock = threading.Lock()
        self._waiting: list[TakenAnswer] = []
        self._taken: set[tuple[str, str]] = set()

    def take(self, answer: TakenAnswer) -> bool:
        """Queue `answer` (journaled first); False when this worker's answer to the loop was taken before."""
        key = (answer.loop, answer.worker)
        with self._lock:
            if key in self._taken:
                return False
            if self.journal is not None:
                with self.journal.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(asdict(answer), ensure_ascii=False) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
            self._taken.add(key)
            self._waiting.append(answer)
        return True

    def taken(self, loop: str, worker: str) -> bool:
        """Whether this page took `worker`'s answer to `loop` (handed over or not)."""
        with self._lock:
            return (loop, worker) in self._taken

    def waiting(self) -> int:
        """Answers taken and not yet handed to A2I."""
        with self._lock:
            return len(self._waiting)

    def pop_all(self) -> list[TakenAnswer]:
        """The answers waiting, oldest first; the queue is empty afterwards (their journal lines stay
        until `saved`)."""
        with self._lock:
            answers, self._waiting = self._waiting, []
        return answers

    def saved(self) -> None:
        """The workspace holding every answer handed over so far was saved: keep only the waiting ones."""
        if self.journal is None:
            return
        with self._lock:
            lines = "".join(json.dumps(asdict(answer), ensure_ascii=False) + "\n" for answer in self._waiting)
            partial = self.journal.with_name(self.journal.name + ".tmp")
            partial.write_text(lines, encoding="utf-8")
            os.replace(partial, self.journal)

    def replay(self) -> int:
        """Queue the journal's answers (those of a run that stopped before its save); how many."""
        if self.journal is None or not self.journal.exists():
            return 0
        count = 0
        lines = self.journal.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                answer = TakenAnswer(**json.loads(line))
            except (ValueError, TypeError) as exc:
                if number == len(lines):  # cut short by a crash while written: never confirmed to the page
                    break
                raise ValueError(f"{self.journal}:{number}: not a taken answer ({exc})") from exc
            with self._lock:
                if (answer.loop, answer.worker) in self._taken:
                    continue
                self._taken.add((answer.loop, answer.worker))
                self._waiting.append(answer)
            count += 1
        return count


__all__ = ["AnswerQueue", "TakenAnswer"]
