"""Ground Truth NER output manifests: validation, repairs, and the real sample."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nerloop.documents import Span, document_hash
from nerloop.errors import InvalidRecord
from nerloop.gt_manifest import (
    LabelledDocument,
    LongLine,
    ParseStats,
    detect_label_attribute,
    iter_byte_lines,
    parse_manifest,
    read_label_set,
    union_spans,
)
from nerloop.quarantine import Quarantine

ATTR = "nerloop-test-job"
TYPES = ("SERVICE", "VERSION")


def record(
    text: str, entities: list[tuple[Any, Any, str]], attribute: str = ATTR, **extra: Any
) -> dict[str, Any]:
    """A manifest record as Ground Truth writes it."""
    return {
        "source": text,
        attribute: {"annotations": {
            "entities": [{"startOffset": b, "endOffset": e, "label": t} for b, e, t in entities],
            "labels": [{"label": name} for name in TYPES],
        }},
        f"{attribute}-metadata": {
            "entities": [{"confidence": 0} for _ in entities], "job-name": f"labeling-job/{attribute}",
            "type": "groundtruth/text-span", "creation-date": "2026-11-27T12:00:00", "human-annotated": "yes",
        },
        **extra,
    }


def line(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, ensure_ascii=False).encode("utf-8") + b"\n"


def parse(lines: list[bytes | str], types: tuple[str, ...] | None = TYPES, attribute: str | None = None,
          ) -> tuple[list[LabelledDocument], Quarantine, ParseStats]:
    quarantine = Quarantine(stage="convert", source="test")
    stats = ParseStats()
    docs = list(parse_manifest(lines, "test.manifest", types, quarantine, label_attribute=attribute,
                               stats=stats))
    return docs, quarantine, stats


def only_problem(quarantine: Quarantine) -> str:
    assert len(quarantine.problems) == 1, quarantine.problems
    return quarantine.problems[0].reason


GOOD = line(record("Amazon S3 adds a feature", [(0, 9, "SERVICE")]))


# --- the label attribute -------------------------------------------------------------------------


def test_detect_label_attribute_finds_the_key_with_entities_whatever_its_name() -> None:
    assert detect_label_attribute(record("x", [], attribute="my-own-name")) == "my-own-name"


def test_detect_label_attribute_rejects_a_record_without_one() -> None:
    with pytest.raises(InvalidRecord):
        detect_label_attribute({"source": "text"})


def test_detect_label_attribute_rejects_two_ner_attributes() -> None:
    rec = record("x", [])
    rec.update({k: v for k, v in record("x", [], attribute="other").items() if k != "source"})
    with pytest.raises(InvalidRecord, match="several"):
        detect_label_attribute(rec)


def test_detect_label_attribute_ignores_other_label_types() -> None:
    rec = record("x", [])
    rec["classes"] = {"annotations": {"entities": []}}
    rec["classes-metadata"] = {"type": "groundtruth/text-classification"}
    assert detect_label_attribute(rec) == ATTR


def test_a_line_with_a_second_attribute_is_rejected_when_the_attribute_was_guessed() -> None:
    second = record("Amazon S3", [(0, 9, "SERVICE")])
    second.update({k: v for k, v in record("x", [], attribute="other").items() if k != "source"})
    docs, quarantine, _ = parse([GOOD, line(second)])
    assert [d.line for d in docs] == [1]
    assert "extra label attribute" in only_problem(quarantine)


def test_a_named_attribute_ignores_an_earlier_jobs_labels_on_the_line() -> None:
    chained = record("Amazon S3", [(0, 9, "SERVICE")])
    chained.update({k: v for k, v in record("x", [], attribute="earlier-job").items() if k != "source"})
    docs, quarantine, _ = parse([line(chained)], attribute=ATTR)
    assert len(docs) == 1 and not quarantine.problems


def test_a_line_missing_the_attribute_is_rejected_with_ground_truths_reason() -> None:
    failed = {"source": "text", f"{ATTR}-metadata": {"failure-reason": "ClientError: worker timed out"}}
    docs, quarantine, _ = parse([GOOD, line(failed)])
    reason = only_problem(quarantine)
    assert len(docs) == 1 and "missing label attribute" in reason and "worker timed out" in reason


# --- line-level checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (b'{"source": "x", ', "invalid JSON"),
        (b'["source"]\n', "JSON object"),
        (b'{"source": "caf\xe9"}\n', "invalid UTF-8"),
        (b"   \n", "empty line"),
        (line({k: v for k, v in record("x", []).items() if k != "source"}), "missing 'source'"),
        (line(record("   ", [])), "empty text"),
        (line(record(7, [])), "must be a string"),  # type: ignore[arg-type]
    ],
)
def test_a_bad_line_is_quarantined_and_the_rest_goes_on(bad: bytes, expected: str) -> None:
    docs, quarantine, stats = parse([GOOD, bad, GOOD])
    assert [d.line for d in docs] == [1, 3]
    assert expected in only_problem(quarantine)
    assert quarantine.problems[0].line == 2
    assert stats.lines == stats.documents + stats.rejected


def test_a_byte_order_mark_at_the_start_of_the_file_rejects_the_first_line() -> None:
    docs, quarantine, _ = parse([b"\xef\xbb\xbf" + GOOD, GOOD])
    assert [d.line for d in docs] == [2]
    assert "byte order mark" in only_problem(quarantine)


def test_crlf_line_ends_are_tolerated() -> None:
    docs, quarantine, _ = parse([GOOD.rstrip(b"\n") + b"\r\n", GOOD.decode().rstrip("\n") + "\r\n"])
    assert len(docs) == 2 and not quarantine.problems


def test_a_line_over_100000_characters_is_rejected() -> None:
    long_line = line(record("word " * 20_000, []))
    docs, quarantine, _ = parse([long_line.decode()])
    assert not docs and "100,000" in only_problem(quarantine)


def test_a_document_over_5000_utf8_bytes_is_rejected_though_under_5000_characters() -> None:
    text = "é" * 2600  # 2,600 characters, 5,200 bytes
    docs, quarantine, _ = parse([line(record(text, [(0, 1, "SERVICE")]))])
    assert not docs and "5,200 UTF-8 bytes" in only_problem(quarantine)


@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        ((0, "9", "SERVICE"), "not an integer"),
        ((0.0, 9, "SERVICE"), "not an integer"),
        ((True, 9, "SERVICE"), "not an integer"),
        ((-1, 9, "SERVICE"), "negative"),
        ((9, 0, "SERVICE"), "before startOffset"),
        ((0, 99, "SERVICE"), "beyond the text"),
        ((0, 9, "REGION"), "not one of the entity types"),
        ((0, 9, ""), "not a non-empty string"),
    ],
)
def test_a_bad_entity_rejects_its_line(entity: tuple[Any, Any, str], expected: str) -> None:
    docs, quarantine, _ = parse([line(record("Amazon S3 adds a feature", [(10, 14, "VERSION"), entity]))])
    assert not docs
    assert expected in only_problem(quarantine)


def test_without_entity_types_every_label_is_accepted() -> None:
    docs, _, _ = parse([line(record("Amazon S3 in us-east-1", [(13, 22, "REGION")]))], types=None)
    assert docs[0].spans == [Span(13, 22, "REGION")]


def test_offsets_count_code_points_not_utf16_units_or_bytes() -> None:
    text = "🚀 Amazon S3 😀 adds \U0001d538 things"  # astral characters before and between spans
    begin = text.index("Amazon S3")
    docs, quarantine, _ = parse([line(record(text, [(begin, begin + 9, "SERVICE")]))])
    (doc,) = docs
    span = doc.spans[0]
    assert doc.text[span.begin:span.end] == "Amazon S3" and not quarantine.notes


def test_a_document_keeps_its_text_and_hash() -> None:
    (doc,), _, _ = parse([GOOD])
    assert doc.text == "Amazon S3 adds a feature" and doc.doc == document_hash(doc.text)
    assert doc.labels == TYPES


# --- span repairs -----------------------------------------------------------------------------------


def test_white_space_at_a_spans_edges_is_trimmed_and_noted() -> None:
    (doc,), quarantine, stats = parse([line(record("use  Amazon S3 \ttoday", [(4, 16, "SERVICE")]))])
    assert doc.spans == [Span(5, 14, "SERVICE")]
    assert stats.trimmed == 1 and len(quarantine.notes) == 1
    assert "trimmed to [5, 14)" in quarantine.notes[0].reason


def test_a_span_of_white_space_only_is_dropped_and_noted() -> None:
    entities = [(0, 9, "SERVICE"), (9, 12, "VERSION")]
    (doc,), quarantine, _ = parse([line(record("Amazon S3   rocks", entities))])
    assert doc.spans == [Span(0, 9, "SERVICE")]
    assert "white space only" in quarantine.notes[0].reason


def test_an_empty_span_is_dropped_and_noted() -> None:
    (doc,), quarantine, _ = parse([line(record("Amazon S3", [(3, 3, "SERVICE")]))])
    assert doc.spans == [] and "empty" in quarantine.notes[0].reason


def test_overlapping_spans_keep_the_longer_and_note_the_other() -> None:
    entities = [(7, 9, "SERVICE"), (0, 17, "SERVICE")]
    (doc,), quarantine, stats = parse([line(record("Amazon S3 Glacier", entities))])
    assert doc.spans == [Span(0, 17, "SERVICE")]
    assert stats.overlapping_spans == 1 and "[7, 9) dropped: overlaps" in quarantine.notes[0].reason


def test_overlapping_spans_of_equal_length_keep_the_earlier() -> None:
    (doc,), _, _ = parse([line(record("abcdef", [(2, 5, "VERSION"), (0, 3, "SERVICE")]))])
    assert doc.spans == [Span(0, 3, "SERVICE")]


def test_the_same_range_with_two_labels_keeps_the_one_listed_first() -> None:
    (doc,), _, _ = parse([line(record("Amazon S3", [(0, 9, "VERSION"), (0, 9, "SERVICE")]))])
    assert doc.spans == [Span(0, 9, "VERSION")]


def test_spans_that_overlap_only_through_white_space_both_survive_trimming() -> None:
    (doc,), _, stats = parse([line(record("S3 v2", [(0, 3, "SERVICE"), (2, 5, "VERSION")]))])
    assert doc.spans == [Span(0, 2, "SERVICE"), Span(3, 5, "VERSION")] and stats.overlapping_spans == 0


def test_duplicate_spans_are_kept_once() -> None:
    (doc,), _, stats = parse([line(record("Amazon S3", [(0, 9, "SERVICE"), (0, 9, "SERVICE")]))])
    assert doc.spans == [Span(0, 9, "SERVICE")] and stats.duplicate_spans == 1


def test_union_of_two_labellings_keeps_every_span_once_and_resolves_overlaps() -> None:
    merged, dropped = union_spans([Span(0, 9, "SERVICE")],
                                  [Span(0, 9, "SERVICE"), Span(7, 9, "VERSION"), Span(10, 12, "VERSION")])
    assert merged == [Span(0, 9, "SERVICE"), Span(10, 12, "VERSION")]
    assert dropped == [(Span(7, 9, "VERSION"), Span(0, 9, "SERVICE"))]


# --- streaming ------------------------------------------------------------------------------------------


def test_iter_byte_lines_joins_lines_split_across_chunks() -> None:
    chunks = [b'{"a":', b' 1}\r', b'\n{"b": 2}\n{"c"', b": 3}"]
    assert list(iter_byte_lines(chunks)) == [b'{"a": 1}\r', b'{"b": 2}', b'{"c": 3}']


def test_iter_byte_lines_keeps_a_stray_carriage_return_inside_a_line() -> None:
    assert list(iter_byte_lines([b"a\rb\nc\n"])) == [b"a\rb", b"c"]


def test_iter_byte_lines_caps_a_long_line_and_keeps_counting() -> None:
    lines = list(iter_byte_lines([b"x" * 10, b"y" * 10 + b"\nshort\n"], max_bytes=8))
    assert isinstance(lines[0], LongLine) and lines[0] == b"x" * 8 and lines[0].size == 20
    assert lines[1] == b"short" and not isinstance(lines[1], LongLine)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_iter_byte_lines_gives_the_same_lines_however_the_stream_is_chunked(size: int) -> None:
    stream = b"first\n\nabcdefghijklmnop\r\nmid\nqrstuvwxyz0123456789\nend"
    chunks = [stream[start:start + size] for start in range(0, len(stream), size)]
    lines = list(iter_byte_lines(chunks, max_bytes=8))
    expected = stream.split(b"\n")
    assert [line.size if isinstance(line, LongLine) else len(line) for line in lines] == [len(e) for e in expected]
    assert [bytes(line) for line in lines] == [e[:8] for e in expected]
    assert [isinstance(line, LongLine) for line in lines] == [len(e) > 8 for e in expected]


def test_a_capped_line_is_rejected_as_too_long() -> None:
    docs, quarantine, _ = parse([LongLine(b"{", 500_000), GOOD])
    assert len(docs) == 1 and "500000 bytes" in only_problem(quarantine)


def test_read_label_set_lists_the_jobs_labels_then_other_labels_used() -> None:
    extra = line(record("Amazon S3 in us-east-1", [(13, 22, "REGION")]))
    assert read_label_set([b"not json\n", GOOD, extra]) == ["SERVICE", "VERSION", "REGION"]


# --- the real sample -------------------------------------------------------------------------------------


def test_the_sample_manifest_yields_the_reference_annotations_trimmed(
    sample_dir: Path, reference_annotations: list
) -> None:
    # Given the reference notebook's conversion, trimmed of white space at each span's edges
    expected: dict[int, set[Span]] = {}
    for line, _, span in reference_annotations:
        expected.setdefault(line + 1, set()).add(span)

    # When the manifest is parsed
    quarantine = Quarantine(stage="convert", source="sample")
    with (sample_dir / "output.manifest").open("rb") as manifest:
        docs = list(parse_manifest(manifest, "output.manifest", TYPES, quarantine))

    # Then every line gives its reference spans, and each trim is noted
    assert not quarantine.problems
    assert {doc.line: set(doc.spans) for doc in docs if doc.spans} == expected
    assert sum(len(doc.spans) for doc in docs) == sum(len(spans) for spans in expected.values()) == 665
    trims = [note for note in quarantine.notes if "trimmed" in note.reason]
    assert len(trims) == len(quarantine.notes) == 54
