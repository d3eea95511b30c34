"""Quarantine: bad records are set aside with the file, line and reason, and the rest goes on.

A report is JSON Lines at quarantine/<stage>/<source key>.jsonl, one problem a line: every rejected
record first, then every repair, each group in the order it happened.

Memory stays flat however many problems a run meets (a million-line manifest may repair half a
million spans): each problem is written as its report line to a temporary file on disk (a spool) as
it comes, and only counts and the first `KEPT_IN_MEMORY` problems of each kind stay in memory.
`write` uploads the spools as they are; `problems` and `notes` read them back when asked.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from nerloop.constants import QUARANTINE_PREFIX
from nerloop.errors import InvalidRecord
from nerloop.observability import logger

MAX_KEPT_CHARS = 2000  # enough of the bad record to see what it was, not a copy of a huge line
KEPT_IN_MEMORY = 100  # problems of each kind kept in memory besides the spool


@dataclass
class Problem:
    """A record set aside, or a repair noted: where, and why."""

    file: str
    line: int | None
    reason: str
    record: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


class _Spool:
    """One kind of problem: its report lines in a temporary file, a count, and the first few."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.count = 0
        self.first: list[Problem] = []
        self._file: IO[bytes] | None = None  # made on the first problem: most runs have none

    def add(self, problem: Problem) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115 # lives as long as the quarantine
        # The keys in Problem's field order, as the report has always had them.
        row = {"kind": self.kind, "file": problem.file, "line": problem.line, "reason": problem.reason,
               "record": problem.record}
        self._file.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        self.count += 1
        if len(self.first) < KEPT_IN_MEMORY:
            self.first.append(problem)

    def copy_to(self, out: IO[bytes]) -> None:
        if self._file is not None:
            self._file.flush()
            self._file.seek(0)
            shutil.copyfileobj(self._file, out, 1 << 20)
            self._file.seek(0, 2)  # further problems append

    def __iter__(self) -> Iterator[Problem]:
        if self.count <= len(self.first) or self._file is None:
            yield from self.first
            return
        self._file.flush()
        self._file.seek(0)
        try:
            for raw in self._file:
                row = json.loads(raw)
                yield Problem(row["file"], row["line"], row["reason"], row["record"])
        finally:
            self._file.seek(0, 2)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def save(self, s3: Any, bucket: str, key: str) -> str | None:
        """Upload the spool as it is (a checkpoint's copy); its key, None when it is empty."""
        if self._file is None:
            return None
        with tempfile.TemporaryFile() as copy:
            self.copy_to(copy)
            copy.seek(0)
            s3.upload_fileobj(copy, bucket, key, ExtraArgs={"ContentType": "application/x-ndjson"})
        return key

    def load(self, s3: Any, bucket: str, key: str) -> None:
        """Start from a spool `save` wrote: its lines, count and first few problems."""
        self.close()
        self.count = 0
        self.first = []
        self._file = tempfile.TemporaryFile()  # noqa: SIM115 # lives as long as the quarantine
        s3.download_fileobj(bucket, key, self._file)
        self._file.seek(0)
        for raw in self._file:
            self.count += 1
            if len(self.first) < KEPT_IN_MEMORY:
                row = json.loads(raw)
                self.first.append(Problem(row["file"], row["line"], row["reason"], row["record"]))
        self._file.seek(0, 2)


class Quarantine:
    """Collects the problems of one stage run on one source file."""

    def __init__(self, stage: str, source: str) -> None:
        self.stage = stage
        self.source = source
        self._rejected = _Spool("rejected")
        self._repaired = _Spool("repaired")  # fixed and kept (e.g. trimmed spans)

    def __repr__(self) -> str:
        return (f"Quarantine(stage={self.stage!r}, source={self.source!r}, rejected={self.rejected}, "
                f"repaired={self.repaired})")

    def reject(self, error: InvalidRecord, record: str = "") -> None:
        """Set a record aside. Logged without the record's text (it may be a customer's document)."""
        self._rejected.add(Problem(error.file, error.line, error.reason, record[:MAX_KEPT_CHARS]))
        logger.warning("quarantined record", file=error.file, line=error.line, reason=error.reason)

    def note(self, file: str, line: int | None, reason: str) -> None:
        """Record something that was repaired rather than rejected."""
        self._repaired.add(Problem(file, line, reason))

    @property
    def rejected(self) -> int:
        """How many records were set aside."""
        return self._rejected.count

    @property
    def repaired(self) -> int:
        """How many repairs were noted."""
        return self._repaired.count

    @property
    def problems(self) -> list[Problem]:
        """Every rejected record, in order (read back from disk when there are many)."""
        return list(self._rejected)

    @property
    def notes(self) -> list[Problem]:
        """Every repair, in order (read back from disk when there are many)."""
        return list(self._repaired)

    @property
    def key(self) -> str:
        return f"{QUARANTINE_PREFIX}{self.stage}/{self.source}.jsonl"

    def _report(self) -> IO[bytes]:
        """The whole report in a temporary file, positioned at its start."""
        report = tempfile.TemporaryFile()  # noqa: SIM115 # the caller closes it
        self._rejected.copy_to(report)
        self._repaired.copy_to(report)
        report.seek(0)
        return report

    def write(self, s3: Any, bucket: str) -> str | None:
        """Write the report when there is anything in it; return its key."""
        if not self.rejected and not self.repaired:
            return None
        with self._report() as report:
            s3.upload_fileobj(report, bucket, self.key, ExtraArgs={"ContentType": "application/x-ndjson"})
        return self.key

    def save(self, s3: Any, bucket: str, prefix: str) -> dict[str, str | None]:
        """Copy the problems so far under `prefix` (a checkpoint); the keys for `restore`."""
        return {kind: spool.save(s3, bucket, f"{prefix}quarantine-{kind}.jsonl")
                for kind, spool in (("rejected", self._rejected), ("repaired", self._repaired))}

    def restore(self, s3: Any, bucket: str, keys: dict[str, str | None]) -> None:
        """Go on from the problems `save` copied: the report is then the same as one run's."""
        for kind, spool in (("rejected", self._rejected), ("repaired", self._repaired)):
            if keys.get(kind):
                spool.load(s3, bucket, str(keys[kind]))

    def close(self) -> None:
        """Remove the spools (they also go when the quarantine is garbage collected)."""
        self._rejected.close()
        self._repaired.close()

    def __enter__(self) -> Quarantine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
