"""Comprehend entities detection output: the archive stream, its records, their checks."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from nerloop.comprehend_output import (
    DocumentEntities,
    DocumentFailure,
    check_against_text,
    iter_detection_output,
    job_id_from_key,
    parse_record,
)
from nerloop.errors import InvalidEvent, InvalidRecord

ARCHIVE = "detection/output/123456789012-NER-0123456789abcdef0123456789abcdef/output/output.tar.gz"


class ReadOnlyStream:
    """A body that can only be read forwards, like botocore's StreamingBody."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


def make_archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def jsonl(*records: object) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def entity(begin: int, end: int, score: float, text: str = "", type_: str = "SERVICE") -> dict[str, object]:
    return {"BeginOffset": begin, "EndOffset": end, "Score": score, "Text": text, "Type": type_}


def record(line: int, *entities: dict[str, object]) -> dict[str, object]:
    return {"File": "documents.txt", "Line": line, "Entities": list(entities)}


# --- job id ---------------------------------------------------------------------------------------


def test_job_id_is_read_from_the_output_key() -> None:
    assert job_id_from_key(ARCHIVE) == "0123456789abcdef0123456789abcdef"


def test_a_key_that_is_not_a_detection_output_is_an_invalid_event() -> None:
    with pytest.raises(InvalidEvent, match="not a detection job output"):
        job_id_from_key("detection/output/whatever/output.tar.gz")


# --- one record -----------------------------------------------------------------------------------


def test_a_record_with_entities_is_parsed_with_every_entity() -> None:
    raw = json.dumps(record(3, entity(0, 6, 0.99, "Amazon"), entity(7, 9, 0.42, "S3", "VERSION")))

    parsed = parse_record(raw, "a:output", 4)

    assert isinstance(parsed, DocumentEntities)
    assert (parsed.file, parsed.line, parsed.record_line) == ("documents.txt", 3, 4)
    assert [(e.begin, e.end, e.score, e.type) for e in parsed.entities] == [
        (0, 6, 0.99, "SERVICE"),
        (7, 9, 0.42, "VERSION"),
    ]
    assert parsed.min_score == 0.42


def test_a_record_without_entities_has_no_minimum_score() -> None:
    parsed = parse_record(json.dumps(record(0)), "a:output", 1)

    assert isinstance(parsed, DocumentEntities)
    assert parsed.entities == () and parsed.min_score is None


def test_an_error_code_record_is_a_document_failure_with_its_reason() -> None:
    raw = json.dumps(
        {
            "File": "documents.txt",
            "Line": 5,
            "ErrorCode": "INTERNAL_SERVER_ERROR",
            "ErrorMessage": "Internal server error",
        }
    )

    parsed = parse_record(raw, "a:output", 6)

    assert isinstance(parsed, DocumentFailure)
    problem = parsed.as_invalid_record()
    assert (problem.file, problem.line) == ("a:output", 6)
    assert "INTERNAL_SERVER_ERROR" in problem.reason and "input line 5" in problem.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"File": "documents.txt", "Line": 0, "Entities": [', "invalid JSON"),
        (json.dumps({"File": "documents.txt", "Entities": []}), "missing Line"),
        (json.dumps(record(-1)), "Line"),
        (json.dumps(record(0, entity(0, 3, 1.2))), "Score"),
        (json.dumps(record(0, entity(0, 3, -0.01))), "Score"),
        (json.dumps(record(0, entity(-1, 3, 0.5))), "BeginOffset"),
        (json.dumps(record(0, entity(4, 4, 0.5))), "not after BeginOffset"),
        (json.dumps(record(0, entity(5, 2, 0.5))), "not after BeginOffset"),
        (json.dumps({"File": "documents.txt", "Line": 0}), "neither Entities nor ErrorCode"),
    ],
)
def test_a_bad_record_is_an_invalid_record_with_its_reason(raw: str, reason: str) -> None:
    parsed = parse_record(raw, "a:output", 9)

    assert isinstance(parsed, InvalidRecord)
    assert (parsed.file, parsed.line) == ("a:output", 9)
    assert reason in parsed.reason


@pytest.mark.parametrize("score", [0.0, 1.0])
def test_scores_at_the_ends_of_the_range_are_valid(score: float) -> None:
    assert isinstance(parse_record(json.dumps(record(0, entity(0, 1, score))), "a", 1), DocumentEntities)


# --- entities against the document's text ---------------------------------------------------------


def test_offsets_count_code_points_so_emoji_before_an_entity_are_one_each() -> None:
    text = "🚀 Launch: Amazon S3 👍"
    begin = text.index("Amazon S3")
    parsed = parse_record(json.dumps(record(0, entity(begin, begin + 9, 0.9, "Amazon S3"))), "a", 1)

    assert isinstance(parsed, DocumentEntities)
    assert check_against_text(parsed, text) is None


def test_offsets_counted_in_utf16_units_do_not_match_the_text_and_are_rejected() -> None:
    text = "🚀 Launch: Amazon S3 is here"
    begin = len(text[: text.index("Amazon")].encode("utf-16-le")) // 2  # the emoji counts twice
    parsed = parse_record(json.dumps(record(0, entity(begin, begin + 9, 0.9, "Amazon S3"))), "a", 1)

    assert isinstance(parsed, DocumentEntities)
    problem = check_against_text(parsed, text)
    assert problem is not None and "does not match" in problem.reason


def test_an_entity_beyond_the_end_of_the_document_is_rejected() -> None:
    parsed = parse_record(json.dumps(record(0, entity(2, 40, 0.9))), "a", 1)

    assert isinstance(parsed, DocumentEntities)
    problem = check_against_text(parsed, "short text")
    assert problem is not None and "beyond the document (10 characters)" in problem.reason


# --- the archive ----------------------------------------------------------------------------------


def test_every_line_of_the_archive_is_yielded_in_order_from_a_forward_only_stream() -> None:
    data = make_archive({"output": jsonl(record(0, entity(0, 1, 0.9)), record(1), record(2))})

    records = list(iter_detection_output(ReadOnlyStream(data), ARCHIVE))

    assert [r.line for r in records if isinstance(r, DocumentEntities)] == [0, 1, 2]
    assert {r.source for r in records if isinstance(r, DocumentEntities)} == {f"{ARCHIVE}:output"}


def test_every_member_is_read_whatever_its_name() -> None:
    data = make_archive({"part-0": jsonl(record(0)), "nested/part-1": jsonl(record(1))})

    records = list(iter_detection_output(ReadOnlyStream(data), ARCHIVE))

    assert [(r.source.rsplit(":", 1)[1], r.line) for r in records if isinstance(r, DocumentEntities)] == [
        ("part-0", 0),
        ("nested/part-1", 1),
    ]


def test_a_bad_line_is_reported_with_its_line_number_and_the_rest_goes_on() -> None:
    body = jsonl(record(0)) + b"{not json\n" + jsonl(record(2))

    records = list(iter_detection_output(ReadOnlyStream(make_archive({"output": body})), ARCHIVE))

    assert [type(r).__name__ for r in records] == ["DocumentEntities", "InvalidRecord", "DocumentEntities"]
    bad = records[1]
    assert isinstance(bad, InvalidRecord) and (bad.file, bad.line) == (f"{ARCHIVE}:output", 2)


def test_a_line_that_is_not_utf8_is_an_invalid_record() -> None:
    body = b'{"File": "documents.txt", "Line": 0, "Entities": [], "x": "\xff"}\n'

    records = list(iter_detection_output(ReadOnlyStream(make_archive({"output": body})), ARCHIVE))

    assert len(records) == 1 and isinstance(records[0], InvalidRecord)
    assert "not UTF-8" in records[0].reason


def test_blank_lines_are_not_records() -> None:
    body = jsonl(record(0)) + b"\n\n" + jsonl(record(1))

    records = list(iter_detection_output(ReadOnlyStream(make_archive({"output": body})), ARCHIVE))

    assert len(records) == 2


def test_a_file_that_is_not_gzip_raises_naming_the_archive() -> None:
    with pytest.raises(InvalidRecord) as caught:
        list(iter_detection_output(ReadOnlyStream(b"this is not a gzip file at all" * 20), ARCHIVE))

    assert caught.value.file == ARCHIVE and caught.value.line is None
    assert "not a readable tar.gz" in caught.value.reason


def test_a_truncated_archive_raises_naming_the_archive() -> None:
    lines = jsonl(*(record(n, entity(0, 1, 0.5)) for n in range(2000)))
    data = make_archive({"output": lines})

    with pytest.raises(InvalidRecord) as caught:
        list(iter_detection_output(ReadOnlyStream(data[: len(data) // 2]), ARCHIVE))

    assert caught.value.file == ARCHIVE


def test_gzip_of_something_that_is_not_a_tar_raises() -> None:
    with pytest.raises(InvalidRecord) as caught:
        list(iter_detection_output(ReadOnlyStream(gzip.compress(jsonl(record(0)) * 10)), ARCHIVE))

    assert caught.value.file == ARCHIVE


def test_an_archive_without_files_raises() -> None:
    with pytest.raises(InvalidRecord, match="holds no files"):
        list(iter_detection_output(ReadOnlyStream(make_archive({})), ARCHIVE))


def test_an_archive_whose_files_hold_no_records_raises() -> None:
    with pytest.raises(InvalidRecord, match="holds no records"):
        list(iter_detection_output(ReadOnlyStream(make_archive({"output": b""})), ARCHIVE))
