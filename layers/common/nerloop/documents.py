"""Documents and entity spans: hashing, normalising, splitting raw text into documents."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import NamedTuple


class Span(NamedTuple):
    """An entity span in code points, `end` exclusive, as Ground Truth and Comprehend count.

    A named tuple rather than a dataclass: a million-line manifest makes millions of these, and a
    tuple is made and compared in C (the order is the same: begin, end, type)."""

    begin: int
    end: int
    type: str


def trim_span(text: str, span: Span) -> Span | None:
    """`span` without white space at its edges; None when nothing else is left.

    Annotators often take a space in at an edge (54 of the sample manifest's 665 spans).
    """
    begin, end = span.begin, span.end
    while begin < end and text[begin].isspace():
        begin += 1
    while end > begin and text[end - 1].isspace():
        end -= 1
    return Span(begin, end, span.type) if begin < end else None


def resolve_overlaps(spans: list[Span]) -> tuple[list[Span], list[tuple[Span, Span]]]:
    """Keep the longer of two overlapping spans (Comprehend takes no overlaps); on a tie the one that
    starts first, then the one listed first. Returns the kept spans in order and each dropped span
    with the one it overlapped. Exact duplicates count as overlaps."""
    ranked = sorted(enumerate(spans), key=lambda item: (item[1].begin - item[1].end, item[1].begin, item[0]))
    kept: list[Span] = []
    dropped: list[tuple[Span, Span]] = []
    for _, span in ranked:
        clash = next((other for other in kept if span.begin < other.end and other.begin < span.end), None)
        if clash is None:
            kept.append(span)
        else:
            dropped.append((span, clash))
    return sorted(kept), dropped


def utf16_hint(text: str, offset: int) -> str:
    """A hint for an offset past the end of `text` that would fit were it counted in UTF-16 units, as
    JavaScript counts: each character outside the Basic Multilingual Plane (most emoji) is two of those
    but one code point. Empty when that cannot be the explanation."""
    astral = sum(1 for char in text if ord(char) > 0xFFFF)
    if not astral or offset > len(text) + astral:
        return ""
    return (f"; offsets count code points and the text has {astral} character(s) outside the BMP, "
            "so they may have been counted in UTF-16 units")


def normalize_text(text: str) -> str:
    """The form two documents are compared in: NFC with white space collapsed."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def document_hash(text: str) -> str:
    """A stable id of a document's content (hex SHA-256 of its normalised text).

    Documents that differ only in white space share an id; each keeps its own text and offsets.
    """
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


# A candidate sentence end: . ! or ? and then white space.
_CANDIDATE_END = re.compile(r"(?<=[.!?])\s+")


def _starts_sentence(piece: str) -> bool:
    """A sentence starts with an upper-case letter of any script or a digit, after any opening quote."""
    first = piece.lstrip("\"'([\u201c\u2018")[:1]
    return first.isupper() or first.isdigit()


def split_sentences(text: str) -> list[str]:
    """Split a paragraph into sentences, stripped, empty ones dropped ("e.g. this" stays whole)."""
    sentences: list[str] = []
    for piece in _CANDIDATE_END.split(text):
        if sentences and not _starts_sentence(piece):
            sentences[-1] = f"{sentences[-1]} {piece}"
        elif piece.strip():
            sentences.append(piece)
    return [sentence.strip() for sentence in sentences if sentence.strip()]


def utf8_size(text: str) -> int:
    return len(text.encode("utf-8"))
