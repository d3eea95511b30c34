"""Comprehend entities detection output: `<account>-NER-<jobId>/output/output.tar.gz`.

Inside the archive, JSON Lines with one object per document, either
`{"File", "Line", "Entities": [{"BeginOffset", "EndOffset", "Score", "Text", "Type"}]}` or
`{"File", "Line", "ErrorCode", "ErrorMessage"}` for a document Comprehend could not process.
The member's name is not documented, so every regular member is read. The archive is streamed
(tarfile "r|gz" over the S3 body): memory does not grow with the output.
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Annotated, Any, NamedTuple, NotRequired, cast

from pydantic import Field, StrictInt, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, before Python 3.12

from nerloop.constants import DETECTION_OUTPUT_PREFIX
from nerloop.documents import Span
from nerloop.errors import InvalidEvent, InvalidRecord

# A record holds offsets and scores, never the document text: far below this even for 1 MB documents.
MAX_RECORD_BYTES = 16 * 1024 * 1024

_OUTPUT_KEY = re.compile(
    "^" + re.escape(DETECTION_OUTPUT_PREFIX)
    + r"(?:.+/)?(?P<account>\d{12})-NER-(?P<job>[^/]+)/output/output\.tar\.gz$"
)


def job_id_from_key(key: str) -> str:
    """The detection job id in `detection/output/<account>-NER-<jobId>/output/output.tar.gz`."""
    match = _OUTPUT_KEY.match(key)
    if not match:
        raise InvalidEvent(
            f"{key} is not a detection job output (expected {DETECTION_OUTPUT_PREFIX}"
            "<account>-NER-<jobId>/output/output.tar.gz)"
        )
    return match.group("job")


# --- file records (pydantic, the shape Comprehend writes) ---------------------------------------
# Typed dicts rather than models: validated in pydantic-core without building an object per entity
# (a detection output has hundreds of thousands of records). Other keys are ignored; a key left out
# takes the default its reader gives (File and Text "", the others None).


class _EntityRecord(TypedDict):
    BeginOffset: Annotated[StrictInt, Field(ge=0)]
    EndOffset: Annotated[StrictInt, Field(ge=0)]
    Score: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
    Text: NotRequired[str]
    Type: Annotated[str, Field(min_length=1)]


class _LineRecord(TypedDict):
    File: NotRequired[str]
    Line: Annotated[StrictInt, Field(ge=0)]
    Entities: NotRequired[list[_EntityRecord] | None]
    ErrorCode: NotRequired[str | None]
    ErrorMessage: NotRequired[str | None]


_LINE_RECORD = TypeAdapter(_LineRecord)


# --- what the parser yields ------------------------------------------------------------------------


class DetectedEntity(NamedTuple):
    """One entity the model found, offsets in code points (end exclusive), `score` in [0, 1].

    The one class for it: the route stage reads them from Comprehend's output, the local recognizer makes
    them. A named tuple: one is made per entity of a detection output, and a tuple is made several times
    faster than a dataclass. Positional construction only where the fields are read in this order (the
    parser below, a checkpoint's rows); elsewhere by keyword, since begin, end and score are all numbers.
    """

    begin: int
    end: int
    score: float
    text: str
    type: str

    def to_span(self) -> Span:
        return Span(self.begin, self.end, self.type)

    def to_comprehend(self) -> dict[str, Any]:
        """The entity as a Comprehend detection job writes it (BeginOffset, EndOffset, Score, Text, Type)."""
        return {"BeginOffset": self.begin, "EndOffset": self.end, "Score": self.score, "Text": self.text,
                "Type": self.type}


@dataclass(frozen=True)
class DocumentEntities:
    """The model's entities for the document on (0-based) `line` of the input file `file`.

    `source` and `record_line` say where the record itself is (archive:member, 1-based line).
    """

    file: str
    line: int
    entities: tuple[DetectedEntity, ...]
    source: str
    record_line: int

    @property
    def min_score(self) -> float | None:
        return min((entity.score for entity in self.entities), default=None)


@dataclass(frozen=True)
class DocumentFailure:
    """Comprehend could not process the document on `line` (an ErrorCode record)."""

    file: str
    line: int
    error_code: str
    error_message: str
    source: str
    record_line: int

    def as_invalid_record(self) -> InvalidRecord:
        return InvalidRecord(
            self.source, self.record_line,
            f"Comprehend failed the document on input line {self.line}: "
            f"{self.error_code}: {self.error_message}",
        )


DetectionRecord = DocumentEntities | DocumentFailure | InvalidRecord


def parse_record(raw: bytes | str, source: str, record_line: int) -> DetectionRecord:
    """One JSON Lines record of the output as a typed record, or an InvalidRecord saying why not."""
    try:
        record = _LINE_RECORD.validate_json(raw)
    except ValidationError as exc:
        return InvalidRecord(source, record_line, _describe(exc))
    error_code = record.get("ErrorCode")
    if error_code is not None:
        return DocumentFailure(record.get("File", ""), record["Line"], error_code, record.get("ErrorMessage") or "",
                               source, record_line)
    items = record.get("Entities")
    if items is None:
        return InvalidRecord(source, record_line, "record has neither Entities nor ErrorCode")
    entities = []
    for index, item in enumerate(items):
        begin, end = item["BeginOffset"], item["EndOffset"]
        if end <= begin:
            return InvalidRecord(source, record_line, f"entity {index}: EndOffset {end} is not "
                                 f"after BeginOffset {begin}")
        entities.append(DetectedEntity(begin, end, item["Score"], item.get("Text", ""), item["Type"]))
    return DocumentEntities(record.get("File", ""), record["Line"], tuple(entities), source, record_line)


def check_against_text(record: DocumentEntities, text: str) -> InvalidRecord | None:
    """An InvalidRecord when an entity does not fit the document's text, else None.

    Offsets count code points (Python `str` indexes); an entity's Text, when given, must be the
    text at its offsets, which catches offsets counted another way (UTF-16 units, bytes).
    """
    for index, entity in enumerate(record.entities):
        if entity.end > len(text):
            return InvalidRecord(record.source, record.record_line,
                                 f"entity {index}: EndOffset {entity.end} is beyond the document "
                                 f"({len(text)} characters)")
        if entity.text and text[entity.begin:entity.end] != entity.text:
            return InvalidRecord(record.source, record.record_line,
                                 f"entity {index}: Text does not match the document at "
                                 f"{entity.begin}..{entity.end}")
    return None


def iter_detection_output(body: IO[bytes] | Any, archive_key: str) -> Iterator[DetectionRecord]:
    """Stream the records of an output.tar.gz (a file-like object with `read`).

    Bad lines are yielded as InvalidRecord and the rest goes on. An archive that is not a readable
    tar.gz, or holds no records at all, raises InvalidRecord naming the archive (line None). The
    gzip checksum is verified, so a corrupt archive raises even where its damaged bytes still
    decompress; being streamed, it raises after yielding the records before the damage is known.
    """
    members = 0
    records = 0
    data = _Gunzip(body)
    try:
        with tarfile.open(fileobj=cast(IO[bytes], data), mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                members += 1
                stream = archive.extractfile(member)
                if stream is None:
                    continue
                source = f"{archive_key}:{member.name}"
                for record in _iter_member(stream, source):
                    records += 1
                    yield record
        while data.read(_Gunzip.CHUNK):  # tar stops at its end marker: read on to check the gzip trailer
            pass
    except _CorruptGzip as exc:
        raise InvalidRecord(archive_key, None, f"not a readable tar.gz archive: {exc}") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidRecord(archive_key, None, f"not a readable tar.gz archive: the gzip data holds no tar "
                                               f"archive ({exc})") from exc
    if members == 0:
        raise InvalidRecord(archive_key, None, "the archive holds no files")
    if records == 0:
        raise InvalidRecord(archive_key, None, "the archive holds no records")


class _CorruptGzip(Exception):
    """The gzip layer of an archive is damaged; the message says how."""


class _Gunzip:
    """A forward-only reader of the data inside a gzip stream, checking each member's CRC-32 and length
    (tarfile's own streaming mode checks neither, so flipped bytes could pass unnoticed)."""

    CHUNK = 1 << 16

    def __init__(self, raw: IO[bytes] | Any) -> None:
        self.raw = raw
        self.inflater: Any = None
        self.pending = b""  # compressed bytes not yet given to the inflater
        self.members = 0
        self.finished = False

    def _next_compressed(self) -> bytes:
        data, self.pending = self.pending, b""
        return data or self.raw.read(self.CHUNK)

    def read(self, size: int = -1) -> bytes:
        wanted = size if size is not None and size >= 0 else 1 << 62
        out = bytearray()
        while len(out) < wanted and not self.finished:
            if self.inflater is None:
                head = self._next_compressed()
                if self.members and not head.strip(b"\0"):  # end of stream, or zero padding after it
                    while head:
                        if head.strip(b"\0"):
                            raise _CorruptGzip("data after the end of the gzip stream")
                        head = self.raw.read(self.CHUNK)
                    self.finished = True
                    break
                if not head:
                    raise _CorruptGzip("the file is empty")
                if self.members == 0 and not head.startswith(b"\x1f\x8b"):
                    hint = " (it looks like plain JSON)" if head.lstrip()[:1] in (b"{", b"[") else ""
                    raise _CorruptGzip(f"not a gzip file{hint}")
                self.inflater = zlib.decompressobj(wbits=31)
                self.members += 1
                self.pending = head
            data = self.inflater.unconsumed_tail or self._next_compressed()
            if not data:
                raise _CorruptGzip("the gzip data is truncated (it ends before its end-of-stream marker)")
            try:
                out += self.inflater.decompress(data, max(1, min(wanted - len(out), self.CHUNK)))
            except zlib.error as exc:
                detail = str(exc).split(": ", 1)[-1]
                if "incorrect data check" in detail or "incorrect length check" in detail:
                    detail += " (the CRC-32 or length in the gzip trailer does not match the data)"
                raise _CorruptGzip(f"corrupt gzip data: {detail}") from exc
            if self.inflater.eof:
                self.pending = self.inflater.unused_data
                self.inflater = None
        return bytes(out)


def _iter_member(stream: IO[bytes], source: str) -> Iterator[DetectionRecord]:
    line_number = 0
    while True:
        raw = stream.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        line_number += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            while True:  # skip the rest of the over-long line
                rest = stream.readline(MAX_RECORD_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield InvalidRecord(source, line_number, f"record longer than {MAX_RECORD_BYTES} bytes")
            continue
        if not raw.strip():
            continue  # a blank line (e.g. a trailing newline) is not a record
        try:
            decoded = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield InvalidRecord(source, line_number, f"not UTF-8: {exc.reason} at byte {exc.start}")
            continue
        yield parse_record(decoded, source, line_number)


def _describe(exc: ValidationError) -> str:
    """A short reason from a pydantic error: invalid JSON, a missing field, a value out of range."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"])
        if error["type"] in ("model_type", "dict_type") and not where:
            parts.append(f"a record must be a JSON object, not {_json_type(error.get('input'))}")
        elif error["type"] == "json_invalid":
            parts.append(f"invalid JSON ({error.get('ctx', {}).get('error', error['msg'])})")
        elif error["type"] == "missing":
            parts.append(f"missing {where}")
        else:
            parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def _json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), type(value).__name__)
