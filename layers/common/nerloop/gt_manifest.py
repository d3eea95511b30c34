"""Ground Truth named-entity output manifests: read, validate and repair them line by line.

A line (AWS-FACTS "Ground Truth NER output manifest") is a JSON object with the text in `source`,
the labels under `<label attribute>.annotations.entities` (`startOffset`, `endOffset`, `label`;
Unicode code-point offsets, end exclusive) and `<label attribute>-metadata` of type
`groundtruth/text-span`. Nothing here reads a whole file: lines come from an iterable (an S3 body's
chunks through `iter_byte_lines`, or an open file) and documents go out one at a time.

Every bad line is quarantined with its 1-based line number and a reason, and the rest goes on.
Repairs that keep a line (trimmed, dropped or overlapping spans) are reported as notes.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from nerloop.comprehend_training import entity_type_problem
from nerloop.constants import MAX_DOCUMENT_BYTES, MAX_MANIFEST_LINE_CHARS
from nerloop.documents import Span, document_hash, resolve_overlaps, trim_span, utf16_hint
from nerloop.errors import InvalidRecord
from nerloop.quarantine import Quarantine

TEXT_SPAN_TYPE = "groundtruth/text-span"
METADATA_SUFFIX = "-metadata"
BOM = "\ufeff"
# A UTF-8 character takes at most 4 bytes: a line longer than this is over the character limit.
MAX_MANIFEST_LINE_BYTES = 4 * MAX_MANIFEST_LINE_CHARS + 4
READ_CHUNK_BYTES = 1 << 20  # read from S3 a megabyte at a time (botocore's default is 1 KB)


class LongLine(bytes):
    """The start of a line that was too long to keep; `size` is its full length in bytes."""

    size: int

    def __new__(cls, head: bytes, size: int) -> LongLine:
        line = super().__new__(cls, head)
        line.size = size
        return line


def iter_byte_lines(chunks: Iterable[bytes], max_bytes: int | None = None) -> Iterator[bytes]:
    """Lines of a byte stream, split on LF only (a CR before it stays, for the reader to judge).

    Unlike botocore's `iter_lines`, a stray CR inside a line does not start a new one, so line
    numbers match what an editor shows. With `max_bytes`, a longer line is not held in memory:
    its first `max_bytes` bytes come out as a `LongLine` carrying its full size. Each chunk is split
    in C (`bytes.split`), so large chunks cost little per line.
    """
    limit = max_bytes if max_bytes is not None else -1
    pending = bytearray()  # the start of a line that continues in the next chunk
    overflow = 0  # bytes of that line dropped past max_bytes
    for chunk in chunks:
        pieces = chunk.split(b"\n")
        last = len(pieces) - 1
        for index, piece in enumerate(pieces):
            if pending or overflow:  # the line began in an earlier chunk
                overflow += _append_capped(pending, piece, limit)
                if index == last:
                    break
                yield LongLine(bytes(pending), len(pending) + overflow) if overflow else bytes(pending)
                pending.clear()
                overflow = 0
            elif index == last:
                overflow += _append_capped(pending, piece, limit)
            elif 0 <= limit < len(piece):
                yield LongLine(piece[:limit], len(piece))
            else:
                yield piece
    if pending or overflow:
        yield LongLine(bytes(pending), len(pending) + overflow) if overflow else bytes(pending)


def _append_capped(pending: bytearray, piece: bytes, limit: int) -> int:
    """Append `piece` to `pending`, keeping at most `limit` bytes in all (-1: no limit); the bytes dropped."""
    if limit < 0 or len(pending) + len(piece) <= limit:
        pending += piece
        return 0
    keep = max(0, limit - len(pending))
    pending += piece[:keep]
    return len(piece) - keep


@dataclass(slots=True)
class LabelledDocument:
    """A validated manifest line: the text, its repaired spans and its content hash."""

    line: int  # 1-based
    text: str
    spans: list[Span]
    doc: str
    labels: tuple[str, ...] = ()  # the job's label set, from `annotations.labels`


@dataclass
class ParseStats:
    """What one pass over a manifest did; `lines == documents + rejected`."""

    lines: int = 0
    documents: int = 0
    rejected: int = 0
    spans: int = 0
    trimmed: int = 0
    dropped_spans: int = 0  # empty or white space only
    duplicate_spans: int = 0
    overlapping_spans: int = 0
    label_attribute: str = ""
    labels: list[str] = field(default_factory=list)  # label set seen, first-seen order

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines, "documents": self.documents, "rejected": self.rejected,
            "spans": self.spans, "trimmed": self.trimmed, "dropped_spans": self.dropped_spans,
            "duplicate_spans": self.duplicate_spans, "overlapping_spans": self.overlapping_spans,
            "label_attribute": self.label_attribute, "labels": list(self.labels),
        }


def _ner_attributes(record: Mapping[str, Any]) -> list[str]:
    """Keys that hold Ground Truth NER labels (annotations.entities + text-span metadata)."""
    found = []
    for name, value in record.items():
        if name.endswith(METADATA_SUFFIX) or not isinstance(value, dict):
            continue
        annotations = value.get("annotations")
        if not isinstance(annotations, dict) or "entities" not in annotations:
            continue
        metadata = record.get(name + METADATA_SUFFIX)
        if isinstance(metadata, dict) and metadata.get("type") == TEXT_SPAN_TYPE:
            found.append(name)
    return found


def _failure_reason(record: Mapping[str, Any]) -> str:
    """Ground Truth writes `failure-reason` into the metadata of an object it could not label."""
    for name, value in record.items():
        if name.endswith(METADATA_SUFFIX) and isinstance(value, dict) and value.get("failure-reason"):
            return str(value["failure-reason"])
    return ""


def detect_label_attribute(record: Mapping[str, Any], file: str = "", line: int | None = None) -> str:
    """The one label attribute of a manifest record holding NER labels (it need not be the job name).

    Raises InvalidRecord when the record has none or several.
    """
    found = _ner_attributes(record)
    if len(found) == 1:
        return found[0]
    if not found:
        failure = _failure_reason(record)
        reason = "no Ground Truth NER label attribute (a key with annotations.entities and "
        reason += f"'{TEXT_SPAN_TYPE}' metadata)"
        raise InvalidRecord(file, line, reason + (f"; Ground Truth says: {failure}" if failure else ""))
    raise InvalidRecord(file, line, f"several NER label attributes {sorted(found)}; name the one to use")


# --- one line ------------------------------------------------------------------------------------


def _decode(raw: bytes | str, file: str, line: int) -> str:
    if isinstance(raw, LongLine):
        raise InvalidRecord(file, line, f"line of {raw.size} bytes is over the limit of "
                                        f"{MAX_MANIFEST_LINE_CHARS:,} characters")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRecord(file, line, f"invalid UTF-8 at byte {exc.start}") from exc
    else:
        text = raw
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):  # CRLF line ends are tolerated
        text = text[:-1]
    if line == 1 and text.startswith(BOM):
        raise InvalidRecord(file, line, "the file starts with a byte order mark (U+FEFF); "
                                        "save it as UTF-8 without BOM")
    if len(text) > MAX_MANIFEST_LINE_CHARS:
        raise InvalidRecord(file, line, f"line of {len(text):,} characters is over the limit of "
                                        f"{MAX_MANIFEST_LINE_CHARS:,}")
    if not text.strip():
        raise InvalidRecord(file, line, "empty line")
    return text


def _load(text: str, file: str, line: int) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(file, line, f"invalid JSON: {exc.msg} (column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise InvalidRecord(file, line, f"a line must be a JSON object, not {type(record).__name__}")
    return record


def _source(record: Mapping[str, Any], file: str, line: int) -> str:
    if "source" not in record:
        hint = " (found 'source-ref': a NER manifest carries the text itself)" if "source-ref" in record \
            else ""
        raise InvalidRecord(file, line, "missing 'source'" + hint)
    source = record["source"]
    if not isinstance(source, str):
        raise InvalidRecord(file, line, f"'source' must be a string, not {type(source).__name__}")
    if not source.strip():
        raise InvalidRecord(file, line, "empty text in 'source'")
    if source.isascii():  # most text: one byte a character, and no surrogate can hide in it
        size = len(source)
    else:
        try:
            size = len(source.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidRecord(file, line, f"'source' has an unpaired surrogate at character {exc.start}") \
                from exc
    if size > MAX_DOCUMENT_BYTES:
        raise InvalidRecord(file, line, f"document of {size:,} UTF-8 bytes is over Comprehend's limit of "
                                        f"{MAX_DOCUMENT_BYTES:,}")
    return source


def _check_attributes(record: Mapping[str, Any], attribute: str, strict: bool, file: str, line: int) -> None:
    if attribute not in record:
        failure = _failure_reason(record)
        others = [name for name in _ner_attributes(record) if name != attribute]
        reason = f"missing label attribute '{attribute}'"
        if others:
            reason += f" (the line has {others})"
        raise InvalidRecord(file, line, reason + (f"; Ground Truth says: {failure}" if failure else ""))
    metadata = record.get(attribute + METADATA_SUFFIX)
    if isinstance(metadata, dict) and metadata.get("type", TEXT_SPAN_TYPE) != TEXT_SPAN_TYPE:
        raise InvalidRecord(file, line, f"'{attribute}' holds labels of type {metadata.get('type')!r}, "
                                        f"not '{TEXT_SPAN_TYPE}'")
    # A chained job's manifest legitimately carries earlier jobs' labels; only a guessed attribute
    # makes a second one ambiguous (so the other attributes are only looked for then).
    extra = [name for name in _ner_attributes(record) if name != attribute] if strict else []
    if extra:
        raise InvalidRecord(file, line, f"extra label attribute(s) {extra} besides '{attribute}'")


def _raw_spans(
    record: Mapping[str, Any], attribute: str, text: str, entity_types: Collection[str] | None,
    file: str, line: int,
) -> tuple[list[Span], tuple[str, ...]]:
    value = record[attribute]
    annotations = value.get("annotations") if isinstance(value, dict) else None
    if not isinstance(annotations, dict) or not isinstance(annotations.get("entities"), list):
        raise InvalidRecord(file, line, f"'{attribute}.annotations.entities' must be a list")
    entities = annotations["entities"]
    size = len(text)
    spans = []
    for index, entity in enumerate(entities):
        # The usual entity, checked at once: exact ints (not bool) in order within the text and a
        # known non-empty label. Anything else takes the full check below, which names the problem.
        if type(entity) is dict:
            begin, end, label = entity.get("startOffset"), entity.get("endOffset"), entity.get("label")
            if type(begin) is int and type(end) is int and 0 <= begin <= end <= size and type(label) is str \
                    and label and (entity_types is None or label in entity_types):
                spans.append(Span(begin, end, label))
                continue
        spans.append(_checked_span(entity, index, text, entity_types, file, line))
    listed = annotations.get("labels")
    labels = [
        item["label"] for item in (listed if isinstance(listed, list) else [])
        if isinstance(item, dict) and isinstance(item.get("label"), str)
    ]
    return spans, tuple(labels)


def _checked_span(entity: Any, index: int, text: str, entity_types: Collection[str] | None, file: str,
                  line: int) -> Span:
    """One entity, every check in turn: its Span, or InvalidRecord naming the first problem."""
    where = f"entity {index}"
    if not isinstance(entity, dict):
        raise InvalidRecord(file, line, f"{where} is not an object")
    offsets = []
    for name in ("startOffset", "endOffset"):
        offset = entity.get(name)
        if name not in entity:
            raise InvalidRecord(file, line, f"{where}: missing {name}")
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise InvalidRecord(file, line, f"{where}: {name} {offset!r} is not an integer")
        if offset < 0:
            raise InvalidRecord(file, line, f"{where}: {name} {offset} is negative")
        if offset > len(text):
            raise InvalidRecord(file, line, f"{where}: {name} {offset} is beyond the text "
                                            f"({len(text)} characters{utf16_hint(text, offset)})")
        offsets.append(offset)
    begin, end = offsets
    if end < begin:
        raise InvalidRecord(file, line, f"{where}: endOffset {end} is before startOffset {begin}")
    label = entity.get("label")
    if not isinstance(label, str) or not label:
        raise InvalidRecord(file, line, f"{where}: label {label!r} is not a non-empty string")
    if entity_types is not None and label not in entity_types:
        problem = entity_type_problem(label)  # why it cannot be one, when that is the reason
        raise InvalidRecord(file, line, f"{where}: label {label!r} is not one of the entity types "
                                        f"{sorted(entity_types)}" + (f" ({problem})" if problem else ""))
    return Span(begin, end, label)


def repair_spans(spans: list[Span], text: str, file: str, line: int, quarantine: Quarantine,
                 stats: ParseStats | None = None) -> list[Span]:
    """Trim white space off each span's edges, drop empty ones, dedupe, and resolve overlaps
    (keep the longer span; on a tie the earlier one). Every change is noted. Returns spans in order.
    """
    ordered = _in_order_if_clean(spans, text)
    if ordered is not None:  # nothing to repair, and so nothing to note
        return ordered
    stats = stats if stats is not None else ParseStats()
    trimmed: list[Span] = []
    for span in spans:
        edged = trim_span(text, span)
        if edged is None:
            stats.dropped_spans += 1
            what = "empty (it covers no text)" if span.begin == span.end else "white space only (it covers no word)"
            quarantine.note(file, line, f"{span.type} span [{span.begin}, {span.end}) dropped: {what}")
            continue
        if edged != span:
            stats.trimmed += 1
            quarantine.note(file, line, f"{span.type} span [{span.begin}, {span.end}) trimmed to "
                                        f"[{edged.begin}, {edged.end}): white space at its edges")
        trimmed.append(edged)

    unique: list[Span] = []
    seen: set[Span] = set()
    for span in trimmed:
        if span in seen:
            stats.duplicate_spans += 1
            quarantine.note(file, line, f"{span.type} span [{span.begin}, {span.end}) repeated: kept once "
                                        "(the same span twice)")
            continue
        seen.add(span)
        unique.append(span)

    kept, dropped = resolve_overlaps(unique)
    for span, clash in dropped:
        stats.overlapping_spans += 1
        which = "longer" if clash.end - clash.begin > span.end - span.begin else "earlier of two as long"
        quarantine.note(file, line, f"{span.type} span [{span.begin}, {span.end}) dropped: overlaps "
                                    f"{clash.type} span [{clash.begin}, {clash.end}), the {which}, which is kept "
                                    "(training data takes no overlapping spans)")
    return kept


def _in_order_if_clean(spans: list[Span], text: str) -> list[Span] | None:
    """`spans` sorted, as repair_spans' full pass returns them, when there is nothing to repair: no
    span is empty or has white space at an edge, and none overlaps (or repeats) another. Else None."""
    for span in spans:
        begin, end = span.begin, span.end
        if begin >= end or text[begin].isspace() or text[end - 1].isspace():
            return None
    ordered = sorted(spans)
    for before, after in pairwise(ordered):
        if before.end > after.begin:
            return None
    return ordered


def union_spans(earlier: list[Span], later: list[Span]) -> tuple[list[Span], list[tuple[Span, Span]]]:
    """Merge two labellings of one document: every span either has, overlaps resolved as in
    `resolve_overlaps` (the earlier labelling's span wins a tie)."""
    return resolve_overlaps(list(dict.fromkeys([*earlier, *later])))


# --- a whole manifest ----------------------------------------------------------------------------


def parse_manifest(
    lines: Iterable[bytes | str],
    file: str,
    entity_types: Collection[str] | None,
    quarantine: Quarantine,
    label_attribute: str | None = None,
    stats: ParseStats | None = None,
    *,
    first_line: int = 1,
    strict: bool | None = None,
) -> Iterator[LabelledDocument]:
    """Yield each valid line of a Ground Truth NER output manifest as a LabelledDocument.

    `entity_types` None accepts every label seen. Without `label_attribute`, the first line with
    exactly one NER attribute decides it, and later lines carrying another are rejected as
    ambiguous. Bad lines go to `quarantine` and the rest go on; `stats` (when given) counts
    lines, documents and repairs, with lines == documents + rejected.

    A manifest read on from a checkpoint passes the number of its next line (`first_line`) and
    whether the label attribute was given (`strict` False) or detected from a line (True).
    """
    stats = stats if stats is not None else ParseStats()
    if entity_types is not None:
        entity_types = frozenset(entity_types)  # looked up for every span
    strict = label_attribute is None if strict is None else strict
    attribute = label_attribute
    if attribute:
        stats.label_attribute = attribute
    for number, raw in enumerate(lines, start=first_line):
        stats.lines += 1
        try:
            text_line = _decode(raw, file, number)
            record = _load(text_line, file, number)
            if attribute is None:
                attribute = detect_label_attribute(record, file, number)
                stats.label_attribute = attribute
            _check_attributes(record, attribute, strict, file, number)
            text = _source(record, file, number)
            spans, labels = _raw_spans(record, attribute, text, entity_types, file, number)
        except InvalidRecord as error:
            stats.rejected += 1
            kept = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
            quarantine.reject(error, kept)
            continue
        for label in labels:
            if label not in stats.labels:
                stats.labels.append(label)
        spans = repair_spans(spans, text, file, number, quarantine, stats)
        stats.documents += 1
        stats.spans += len(spans)
        yield LabelledDocument(line=number, text=text, spans=spans, doc=document_hash(text), labels=labels)


def read_label_set(lines: Iterable[bytes | str], label_attribute: str | None = None, *,
                   used: bool = True) -> list[str]:
    """The labels a manifest uses: each job's `annotations.labels`, then (unless `used` is False) any
    other entity label, in first-seen order. Lines that do not parse are skipped (parse_manifest
    reports them)."""
    found: list[str] = []
    attribute = label_attribute
    for raw in lines:
        try:
            record = json.loads(raw)
            if attribute is None:
                attribute = detect_label_attribute(record)
            annotations = record[attribute]["annotations"]
            names = [item["label"] for item in annotations.get("labels") or []]
            if used:
                names += [entity["label"] for entity in annotations.get("entities") or []]
        except (ValueError, TypeError, KeyError, AttributeError, InvalidRecord):
            continue
        for name in names:
            if isinstance(name, str) and name and name not in found:
                found.append(name)
    return found
