"""A detection job's ONE_DOC_PER_LINE input, read by line number without holding its text in memory."""

from __future__ import annotations

import posixpath
import tempfile
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any


class InputDocuments:
    """The job's ONE_DOC_PER_LINE input spooled to a file, with an index of where each line starts.

    Memory holds 8 bytes a line, not the text.
    """

    def __init__(self, spool: IO[bytes], name: str) -> None:
        self.spool = spool
        self.name = name  # the file name Comprehend reports in `File`
        self.starts = array("q")
        spool.seek(0)
        position = 0
        for raw in spool:
            self.starts.append(position)
            position += len(raw)

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, line: int) -> str:
        """The document on 0-based `line` (IndexError when there is no such line)."""
        if not 0 <= line < len(self.starts):
            raise IndexError(line)
        self.spool.seek(self.starts[line])
        raw = self.spool.readline()
        return raw.decode("utf-8").removesuffix("\n").removesuffix("\r")


@contextmanager
def open_input_documents(s3: Any, bucket: str, key: str) -> Iterator[InputDocuments]:
    with tempfile.TemporaryFile("w+b") as spool:
        s3.download_fileobj(bucket, key, spool)
        yield InputDocuments(spool, posixpath.basename(key))
