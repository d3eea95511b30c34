"""Quarantine: bad records are set aside with the file, line and reason, and the rest goes on.

A report is JSON Lines at quarantine/<stage>/<source key>.jsonl, one problem a line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from nerloop.constants import QUARANTINE_PREFIX
from nerloop.errors import InvalidRecord
from nerloop.observability import logger

MAX_KEPT_CHARS = 2000  # enough of the bad record to see what it was, not a copy of a huge line


@dataclass
class Problem:
    file: str
    line: int | None
    reason: str
    record: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.reason}"


@dataclass
class Quarantine:
    """Collects the problems of one stage run on one source file."""

    stage: str
    source: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)  # fixed and kept (e.g. trimmed spans)

    def reject(self, error: InvalidRecord, record: str = "") -> None:
        """Set a record aside. Logged without the record's text (it may be a customer's document)."""
        self.problems.append(Problem(error.file, error.line, error.reason, record[:MAX_KEPT_CHARS]))
        logger.warning("quarantined record", file=error.file, line=error.line, reason=error.reason)

    def note(self, file: str, line: int | None, reason: str) -> None:
        """Record something that was repaired rather than rejected."""
        self.notes.append(Problem(file, line, reason))

    @property
    def key(self) -> str:
        return f"{QUARANTINE_PREFIX}{self.stage}/{self.source}.jsonl"

    def to_jsonl(self) -> str:
        rows: list[dict[str, Any]] = [{"kind": "rejected", **asdict(p)} for p in self.problems]
        rows += [{"kind": "repaired", **asdict(p)} for p in self.notes]
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)

    def write(self, s3: Any, bucket: str) -> str | None:
        """Write the report when there is anything in it; return its key."""
        if not self.problems and not self.notes:
            return None
        s3.put_object(Bucket=bucket, Key=self.key, Body=self.to_jsonl().encode("utf-8"),
                      ContentType="application/x-ndjson")
        return self.key
