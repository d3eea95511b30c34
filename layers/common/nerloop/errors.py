"""Domain errors. Each names what went wrong precisely enough to act on."""

from __future__ import annotations


class NerloopError(Exception):
    """Base class of the loop's own errors."""


class InvalidRecord(NerloopError):
    """One record (a line of a manifest, archive or answer) is unusable.

    `line` is 1-based, as editors show it; None when the whole file is at fault.
    """

    def __init__(self, file: str, line: int | None, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class InvalidEvent(NerloopError):
    """An event does not have the shape its rule promises."""


class UnknownJob(NerloopError):
    """An event names a job or human loop the state table has no record of."""
