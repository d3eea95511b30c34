"""Quarantine: problems spool to disk as report lines; counts and the first few stay in memory."""

from __future__ import annotations

import io
import json
from typing import Any

from nerloop.errors import InvalidRecord
from nerloop.quarantine import KEPT_IN_MEMORY, MAX_KEPT_CHARS, Problem, Quarantine


class RecordingS3:
    """upload_fileobj only: what the quarantine writes with."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], tuple[bytes, dict[str, Any]]] = {}

    def upload_fileobj(self, Fileobj: io.BufferedIOBase, Bucket: str, Key: str,
                       ExtraArgs: dict[str, Any] | None = None) -> None:
        self.objects[(Bucket, Key)] = (Fileobj.read(), ExtraArgs or {})


def written_report(quarantine: Quarantine) -> str:
    """The report as the stages write it (`Quarantine.write`); "" when there is nothing to write."""
    s3 = RecordingS3()
    key = quarantine.write(s3, "bucket")
    return "" if key is None else s3.objects[("bucket", key)][0].decode("utf-8")


def expected_line(kind: str, file: str, line: int | None, reason: str, record: str = "") -> str:
    return json.dumps({"kind": kind, "file": file, "line": line, "reason": reason, "record": record},
                      ensure_ascii=False) + "\n"


def test_the_report_lists_rejected_records_then_repairs_in_order() -> None:
    quarantine = Quarantine("convert", "job")
    quarantine.note("m", 1, "trimmed")
    quarantine.reject(InvalidRecord("m", 2, "invalid JSON"), "{nope é")
    quarantine.note("m", 3, "dropped")
    quarantine.reject(InvalidRecord("m", None, "whole file"))

    assert written_report(quarantine) == (
        expected_line("rejected", "m", 2, "invalid JSON", "{nope é")
        + expected_line("rejected", "m", None, "whole file")
        + expected_line("repaired", "m", 1, "trimmed") + expected_line("repaired", "m", 3, "dropped"))


def test_many_problems_are_counted_and_all_read_back() -> None:
    quarantine = Quarantine("convert", "job")
    count = 3 * KEPT_IN_MEMORY + 7
    for line in range(1, count + 1):
        quarantine.reject(InvalidRecord("m", line, f"bad {line}"), "x")
        quarantine.note("m", line, f"fixed {line}")

    assert quarantine.rejected == quarantine.repaired == count
    assert [p.line for p in quarantine.problems] == list(range(1, count + 1))
    assert quarantine.notes[-1] == Problem("m", count, f"fixed {count}")
    assert len(written_report(quarantine).splitlines()) == 2 * count


def test_only_the_first_problems_stay_in_memory() -> None:
    quarantine = Quarantine("convert", "job")
    for line in range(1, 2 * KEPT_IN_MEMORY + 1):
        quarantine.note("m", line, "fixed")

    assert len(quarantine._repaired.first) == KEPT_IN_MEMORY
    assert quarantine._repaired.first[-1].line == KEPT_IN_MEMORY


def test_problems_can_still_be_added_after_reading_them_back() -> None:
    quarantine = Quarantine("convert", "job")
    for line in range(1, KEPT_IN_MEMORY + 3):
        quarantine.note("m", line, "fixed")
    assert len(quarantine.notes) == KEPT_IN_MEMORY + 2

    quarantine.note("m", 999, "later")

    assert [p.line for p in quarantine.notes][-2:] == [KEPT_IN_MEMORY + 2, 999]


def test_a_long_record_is_cut_to_its_start() -> None:
    quarantine = Quarantine("convert", "job")
    quarantine.reject(InvalidRecord("m", 1, "too long"), "y" * (MAX_KEPT_CHARS + 50))

    (problem,) = quarantine.problems
    assert problem.record == "y" * MAX_KEPT_CHARS


def test_write_uploads_the_report_under_the_stage_and_source() -> None:
    quarantine = Quarantine("convert", "job-1")
    quarantine.reject(InvalidRecord("m", 4, "bad"), "r")
    quarantine.note("m", 5, "fixed")
    s3 = RecordingS3()

    key = quarantine.write(s3, "bucket")

    assert key == "quarantine/convert/job-1.jsonl"
    body, extra = s3.objects[("bucket", key)]
    assert body.decode("utf-8") == expected_line("rejected", "m", 4, "bad", "r") + expected_line("repaired", "m", 5,
                                                                                              "fixed")
    assert extra == {"ContentType": "application/x-ndjson"}


def test_nothing_is_written_without_problems() -> None:
    s3 = RecordingS3()

    assert Quarantine("convert", "job").write(s3, "bucket") is None
    assert s3.objects == {}


def test_closing_removes_the_spools() -> None:
    with Quarantine("convert", "job") as quarantine:
        quarantine.note("m", 1, "fixed")
        spool = quarantine._repaired._file
        assert spool is not None
    assert spool.closed
