"""Write the bad-input corpus: one file per case and cases.csv, the table of what each must give.

    .venv/bin/python tests/data/bad_input/make_corpus.py      # rewrites the files beside this script

Deterministic (no clock, no randomness: gzip and tar carry no timestamps), standard library only, so
tests/unit/test_bad_input.py can check that the committed files are exactly what this writes. Each
case is a small file of valid records around one broken one: the broken record must be rejected
naming file, line and reason, and the valid rest must go on. See README.md for the columns.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SAMPLE_EVENTS = HERE.parents[2] / "events"

# What the cases share with the tests that run them through the stages.
ATTRIBUTE = "nerloop-bad-input"  # the manifests' label attribute (need not be the job's name)
TYPES = ("SERVICE", "VERSION")  # the stack's default entity types (template.yaml EntityTypes)
ENTITY_TEXTS = ("Amazon S3", "AWS Lambda", "2.0", "Amazon Comprehend", "Amazon SageMaker")
INPUT_NAME = "documents.txt"  # the detection job's input file that the archives' records refer to
INPUT_DOCUMENTS = (
    "Amazon S3 adds a storage class.",
    "AWS Lambda 2.0 supports a new runtime.",
    "\U0001f680 Amazon SageMaker launches a studio.",
)
LOOP_NAME = "v1-bad-input-review"
ANSWER_TEXT = "\U0001f680 Spanish documents in Amazon Comprehend 2.0"
COLUMNS = ("case", "kind", "file", "outcome", "line", "reason", "records", "valid", "target", "stage",
           "description")


@dataclass
class Case:
    """One broken (or broken-looking) input and what the loop must make of it.

    outcome: rejected (one record quarantined, `line` 1-based), file (the whole file refused, no line),
    repaired (kept, the repair noted with line and reason), accepted (nothing to say), refused (an event
    the handler must not act on). `records` / `valid`: records in the file / records that go on.
    `target`: the function whose handler takes the event. `stage`: the outcome through the real stage when it
    differs from `outcome` (what `nerloop validate` and the parsers say), else empty.
    """

    case: str
    kind: str
    outcome: str
    line: int | None
    reason: str
    records: int
    valid: int
    description: str
    data: bytes = field(repr=False, default=b"")
    target: str = ""
    stage: str = ""

    @property
    def file(self) -> str:
        suffix = {"manifest": ".manifest", "archive": ".tar.gz", "answer": ".json", "event": ".json"}
        return f"{self.kind}/{self.case}{suffix[self.kind]}"

    def row(self) -> dict[str, str]:
        return {"case": self.case, "kind": self.kind, "file": self.file, "outcome": self.outcome,
                "line": "" if self.line is None else str(self.line), "reason": self.reason,
                "records": str(self.records), "valid": str(self.valid), "target": self.target,
                "stage": self.stage, "description": self.description}


@dataclass(frozen=True)
class Row:
    """One row of cases.csv, as the tests read it back (`path` is the case file under `root`)."""

    case: str
    kind: str
    file: str
    outcome: str
    line: int | None
    reason: str
    records: int
    valid: int
    target: str
    stage: str
    description: str
    root: Path = HERE

    @property
    def stage_outcome(self) -> str:
        """The outcome when the case goes through the real stage (its handler)."""
        return self.stage or self.outcome

    @property
    def path(self) -> Path:
        return self.root / self.file

    @property
    def error_file(self) -> str:
        """The file an error names: an archive's records are named by archive and member."""
        return f"{self.path}:output" if self.kind == "archive" and self.line is not None else str(self.path)

    @property
    def where(self) -> str:
        return f"{self.error_file}:{self.line}" if self.line is not None else self.error_file

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.case}"


def read_table(root: Path = HERE) -> list[Row]:
    """cases.csv under `root`."""
    with (root / "cases.csv").open(encoding="utf-8", newline="") as handle:
        return [Row(case=r["case"], kind=r["kind"], file=r["file"], outcome=r["outcome"],
                    line=int(r["line"]) if r["line"] else None, reason=r["reason"], records=int(r["records"]),
                    valid=int(r["valid"]), target=r["target"], stage=r["stage"],
                    description=r["description"], root=root)
                for r in csv.DictReader(handle)]


# --- Ground Truth output manifests --------------------------------------------------------------


def gt_record(text: Any, entities: list[tuple[Any, Any, Any]], **extra: Any) -> dict[str, Any]:
    """A line as Ground Truth writes it."""
    return {
        "source": text,
        ATTRIBUTE: {"annotations": {
            "entities": [{"startOffset": b, "endOffset": e, "label": t} for b, e, t in entities],
            "labels": [{"label": name} for name in TYPES],
        }},
        f"{ATTRIBUTE}-metadata": {
            "entities": [{"confidence": 0.91} for _ in entities], "job-name": f"labeling-job/{ATTRIBUTE}",
            "type": "groundtruth/text-span", "creation-date": "2026-11-27T12:00:00", "human-annotated": "yes",
        },
        **extra,
    }


def jsonl(record: Any, ending: bytes = b"\n", ascii_only: bool = False) -> bytes:
    return json.dumps(record, ensure_ascii=ascii_only).encode("utf-8") + ending


GOOD_1 = gt_record("Amazon S3 adds a storage class.", [(0, 9, "SERVICE")])
GOOD_2 = gt_record("AWS Lambda 2.0 supports a new runtime.", [(0, 10, "SERVICE"), (11, 14, "VERSION")])
GOOD_3 = gt_record("Amazon SageMaker launches a studio.", [(0, 16, "SERVICE")])
BAD_TEXT = "Amazon Comprehend detects entities."  # "Amazon Comprehend" is [0, 17)


def between(bad: bytes) -> bytes:
    """A manifest whose line 2 is `bad`, between two valid lines."""
    return jsonl(GOOD_1) + bad + jsonl(GOOD_2)


def entity(begin: Any = 0, end: Any = 17, label: Any = "SERVICE") -> dict[str, Any]:
    return gt_record(BAD_TEXT, [(begin, end, label)])


def with_entities(entities: Any) -> dict[str, Any]:
    record = gt_record(BAD_TEXT, [])
    record[ATTRIBUTE]["annotations"]["entities"] = entities
    return record


def long_line() -> bytes:
    """A line of exactly 100,001 characters (one over Ground Truth's limit)."""
    record = gt_record("Amazon S3 ", [(0, 9, "SERVICE")])
    padding = 100_001 - len(json.dumps(record))
    record["source"] = "Amazon S3 " + "a" * padding
    line = jsonl(record)
    assert len(line) == 100_002  # the characters and the newline
    return line


def utf16_shifted() -> bytes:
    text = "Launch day \U0001f680\U0001f389 for Amazon S3"
    begin = text.index("Amazon S3") + 2  # counted in UTF-16 units, each emoji is two
    return jsonl(gt_record(text, [(begin, begin + 9, "SERVICE")]))


def code_points() -> bytes:
    text = "\U0001f389 Amazon S3 \U0001f600 adds \U0001d538 storage."
    begin = text.index("Amazon S3")
    return jsonl(gt_record(text, [(begin, begin + 9, "SERVICE")]))


def failed_object() -> bytes:
    record = {"source": BAD_TEXT, f"{ATTRIBUTE}-metadata": {
        "type": "groundtruth/text-span", "job-name": f"labeling-job/{ATTRIBUTE}",
        "failure-reason": "ClientError: annotation tasks expired before a worker took them"}}
    return jsonl(record)


def classification() -> bytes:
    return jsonl({"source": BAD_TEXT, ATTRIBUTE: 1, f"{ATTRIBUTE}-metadata": {
        "class-name": "SERVICE", "type": "groundtruth/text-classification", "job-name": "labeling-job/x"}})


def extra_attribute() -> bytes:
    record = entity()
    other = gt_record(BAD_TEXT, [(0, 17, "SERVICE")])
    record["other-job"] = other[ATTRIBUTE]
    record["other-job-metadata"] = other[f"{ATTRIBUTE}-metadata"]
    return jsonl(record)


def manifest_cases() -> list[Case]:
    m = "manifest"
    bad = entity
    cases = [
        Case("invalid_json", m, "rejected", 2, "invalid JSON", 3, 2, "a line cut short",
             between(b'{"source": "Amazon Comprehend detects\n')),
        Case("not_an_object", m, "rejected", 2, "a line must be a JSON object, not list", 3, 2,
             "a JSON array instead of an object", between(b'["Amazon Comprehend", 0, 17, "SERVICE"]\n')),
        Case("blank_line", m, "rejected", 2, "empty line", 3, 2, "an empty line between records",
             between(b"\n")),
        Case("missing_label_attribute", m, "rejected", 2, f"missing label attribute '{ATTRIBUTE}'", 3, 2,
             "a line without the job's label attribute", between(jsonl({"source": BAD_TEXT}))),
        Case("extra_label_attribute", m, "rejected", 2, "extra label attribute(s) ['other-job']", 3, 2,
             "a second NER label attribute when the attribute is guessed (a chained job's manifest, given "
             "the job's LabelAttributeName as the convert stage is, keeps it)", between(extra_attribute()),
             stage="accepted"),
        Case("failed_object", m, "rejected", 2, "Ground Truth says: ClientError", 3, 2,
             "an object Ground Truth failed to label (failure-reason in the metadata, no labels)",
             between(failed_object())),
        Case("wrong_label_type", m, "rejected", 2, "of type 'groundtruth/text-classification'", 3, 2,
             "the attribute holds classification labels, not text spans", between(classification())),
        Case("missing_source", m, "rejected", 2, "missing 'source'", 3, 2, "no text",
             between(jsonl({k: v for k, v in entity().items() if k != "source"}))),
        Case("source_ref", m, "rejected", 2, "found 'source-ref'", 3, 2,
             "the text referenced in S3 (an image-style manifest) instead of carried",
             between(jsonl({"source-ref": "s3://bucket/doc.txt", **{k: v for k, v in entity().items()
                                                                    if k != "source"}}))),
        Case("source_not_string", m, "rejected", 2, "'source' must be a string, not int", 3, 2,
             "a number for the text", between(jsonl({**entity(), "source": 42}))),
        Case("empty_text", m, "rejected", 2, "empty text in 'source'", 3, 2, "an empty document",
             between(jsonl(gt_record("", [])))),
        Case("document_over_5000_bytes", m, "rejected", 2,
             "document of 5,010 UTF-8 bytes is over Comprehend's limit of 5,000", 3, 2,
             "2,510 characters but 5,010 UTF-8 bytes (Comprehend's per-document limit counts bytes)",
             between(jsonl(gt_record("Amazon S3 " + "\u00e9" * 2500, [(0, 9, "SERVICE")])))),
        Case("line_over_100000_characters", m, "rejected", 2,
             "line of 100,001 characters is over the limit of 100,000", 3, 2,
             "a line one character over Ground Truth's limit", between(long_line())),
        Case("invalid_utf8", m, "rejected", 2, "invalid UTF-8 at byte", 3, 2,
             "bytes that are not UTF-8 inside the text",
             between(jsonl(gt_record("Amazon Comprehend BAD", [(0, 17, "SERVICE")])).replace(b"BAD", b"\xff\xfe"))),
        Case("unpaired_surrogate", m, "rejected", 2, "unpaired surrogate", 3, 2,
             "half of a UTF-16 surrogate pair escaped in the JSON (\\ud83d)",
             between(jsonl(gt_record("Amazon Comprehend \ud83d", [(0, 17, "SERVICE")]), ascii_only=True))),
        Case("byte_order_mark", m, "rejected", 1, "byte order mark", 3, 2,
             "the file saved as UTF-8 with BOM", b"\xef\xbb\xbf" + jsonl(GOOD_3) + jsonl(GOOD_1) + jsonl(GOOD_2)),
        Case("crlf_line_ends", m, "accepted", None, "", 3, 3, "Windows line ends (CRLF): tolerated",
             jsonl(GOOD_1, b"\r\n") + jsonl(GOOD_2, b"\r\n") + jsonl(GOOD_3, b"\r\n")),
        Case("astral_code_point_offsets", m, "accepted", None, "", 3, 3,
             "emoji and a mathematical letter before and after a span; offsets in code points: accepted, "
             "the span on the right text", between(code_points())),
        Case("astral_utf16_offsets", m, "rejected", 2, "counted in UTF-16 units", 3, 2,
             "two emoji before a span whose offsets count UTF-16 units: the span runs past the text",
             between(utf16_shifted())),
        Case("entities_not_list", m, "rejected", 2, "annotations.entities' must be a list", 3, 2,
             "entities as an object", between(jsonl(with_entities({"0": entity()})))),
        Case("entity_not_object", m, "rejected", 2, "entity 0 is not an object", 3, 2,
             "an entity as a string", between(jsonl(with_entities(["Amazon Comprehend"])))),
        Case("missing_end_offset", m, "rejected", 2, "entity 0: missing endOffset", 3, 2,
             "an entity without its end", between(jsonl(with_entities([{"startOffset": 0, "label": "SERVICE"}])))),
        Case("offset_not_integer", m, "rejected", 2, "entity 0: startOffset '0' is not an integer", 3, 2,
             "an offset as a string", between(jsonl(bad(begin="0")))),
        Case("offset_beyond_text", m, "rejected", 2, "entity 0: endOffset 99 is beyond the text (35 characters",
             3, 2, "an end past the end of the text", between(jsonl(bad(end=99)))),
        Case("negative_offset", m, "rejected", 2, "entity 0: startOffset -3 is negative", 3, 2,
             "a negative start", between(jsonl(bad(begin=-3)))),
        Case("reversed_offsets", m, "rejected", 2, "entity 0: endOffset 7 is before startOffset 17", 3, 2,
             "end before start", between(jsonl(bad(begin=17, end=7)))),
        Case("empty_label", m, "rejected", 2, "entity 0: label '' is not a non-empty string", 3, 2,
             "a span without a label", between(jsonl(bad(label="")))),
        Case("unknown_label", m, "rejected", 2, "label 'REGION' is not one of the entity types", 3, 2,
             "a label outside the job's label set and the stack's entity types", between(jsonl(bad(label="REGION")))),
        Case("overlapping_spans", m, "repaired", 2, "dropped: overlaps SERVICE span [0, 17)", 3, 3,
             "two overlapping spans (Comprehend takes none): the longer is kept, the other noted",
             between(jsonl(gt_record(BAD_TEXT, [(0, 17, "SERVICE"), (7, 17, "SERVICE")])))),
        Case("duplicate_spans", m, "repaired", 2, "repeated: kept once", 3, 3, "the same span twice",
             between(jsonl(gt_record(BAD_TEXT, [(0, 17, "SERVICE"), (0, 17, "SERVICE")])))),
        Case("white_space_at_span_edge", m, "repaired", 2, "trimmed to [0, 17)", 3, 3,
             "a span taking in the space after the entity",
             between(jsonl(gt_record(BAD_TEXT, [(0, 18, "SERVICE")])))),
        Case("empty_span", m, "repaired", 2, "dropped: empty", 3, 3, "a span of no characters",
             between(jsonl(gt_record(BAD_TEXT, [(0, 17, "SERVICE"), (20, 20, "SERVICE")])))),
        Case("empty_manifest", m, "file", None, "the manifest holds no lines", 0, 0,
             "a file of zero bytes (the convert stage converts nothing and says so in its counts)", b"",
             stage="accepted"),
    ]
    return cases


# --- Comprehend detection archives ---------------------------------------------------------------


def detection(line: int, **over: Any) -> dict[str, Any]:
    """The record Comprehend writes for input line `line`: every known entity of it, confidently."""
    text = INPUT_DOCUMENTS[line]
    entities = [{"BeginOffset": text.index(name), "EndOffset": text.index(name) + len(name), "Score": 0.97,
                 "Text": name, "Type": "VERSION" if name == "2.0" else "SERVICE"}
                for name in ENTITY_TEXTS if name in text]
    return {"File": INPUT_NAME, "Line": line, "Entities": entities, **over}


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A tar.gz with no timestamps in it, so the bytes are the same on every run."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(body), 0, 0o644
            archive.addfile(info, io.BytesIO(body))
    return gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0)


def output_around(bad: bytes) -> bytes:
    """An archive whose member `output` holds records for input lines 0, (bad), 2."""
    return tar_gz({"output": jsonl(detection(0)) + bad + jsonl(detection(2))})


def with_entity(**over: Any) -> bytes:
    record = detection(1)
    record["Entities"][0].update(over)
    return jsonl(record)


def without(record: dict[str, Any], *path: str) -> dict[str, Any]:
    record = copy.deepcopy(record)
    target = record
    for step in path[:-1]:
        target = target[step][0] if isinstance(target[step], list) else target[step]
    del target[path[-1]]
    return record


def flip_crc(data: bytes) -> bytes:
    """The same archive with one bit of the gzip trailer's CRC-32 flipped: every byte inflates, the check fails."""
    damaged = bytearray(data)
    damaged[-8] ^= 0x01
    return bytes(damaged)


def two_members(data: bytes) -> bytes:
    """The tar inside `data` split in two, each half its own gzip member."""
    tar = gzip.decompress(data)
    return gzip.compress(tar[:700], mtime=0) + gzip.compress(tar[700:], mtime=0)


def archive_cases() -> list[Case]:
    a = "archive"
    good = jsonl(detection(0)) + jsonl(detection(1)) + jsonl(detection(2))
    whole = tar_gz({"output": good})
    return [
        Case("not_gzip", a, "file", None, "not a gzip file (it looks like plain JSON)", 0, 0,
             "JSON Lines named .tar.gz", good),
        Case("zero_bytes", a, "file", None, "the file is empty", 0, 0, "an empty file", b""),
        Case("corrupt_gzip", a, "file", None, "corrupt gzip data", 0, 0,
             "a gzip header followed by bytes that do not inflate",
             b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + b"not deflate data " * 4),
        Case("gzip_crc_mismatch", a, "file", None, "the CRC-32 or length in the gzip trailer does not match", 0, 0,
             "one bit of the CRC flipped: every byte inflates but none can be trusted (the check comes with the "
             "trailer: a large archive yields its records before it, then fails)", flip_crc(whole)),
        Case("truncated_gzip", a, "file", None, "the gzip data is truncated", 0, 0,
             "the archive cut short by a failed upload", whole[: len(whole) // 2]),
        Case("gzip_two_members", a, "accepted", None, "", 3, 3,
             "the tar split over two concatenated gzip members (as `cat a.gz b.gz` makes): read whole",
             two_members(whole)),
        Case("gzip_zero_padding", a, "accepted", None, "", 3, 3,
             "zero bytes after the gzip stream (block padding of some copy tools): ignored", whole + bytes(512)),
        Case("data_after_gzip", a, "file", None, "corrupt gzip data: incorrect header check", 3, 3,
             "bytes that are not gzip after the end of the stream: refused once met",
             whole + b"this is not part of the archive"),
        Case("gzip_not_tar", a, "file", None, "the gzip data holds no tar archive", 0, 0,
             "gzipped JSON Lines without the tar layer", gzip.compress(good, mtime=0)),
        Case("empty_archive", a, "file", None, "the archive holds no files", 0, 0, "a tar with no members",
             tar_gz({})),
        Case("empty_member", a, "file", None, "the archive holds no records", 0, 0,
             "a member `output` of zero bytes", tar_gz({"output": b""})),
        Case("invalid_json_record", a, "rejected", 2, "invalid JSON", 3, 2, "a record cut short",
             output_around(b'{"File": "documents.txt", "Line": 1, "Entities": [\n')),
        Case("not_utf8_record", a, "rejected", 2, "not UTF-8", 3, 2, "bytes that are not UTF-8 in a record",
             output_around(with_entity(Text="AWS Lambda BAD").replace(b"BAD", b"\xff"))),
        Case("record_not_object", a, "rejected", 2, "a record must be a JSON object, not an array", 3, 2,
             "a JSON array for a record", output_around(b"[1, 2]\n")),
        Case("missing_line", a, "rejected", 2, "missing Line", 3, 2, "a record without `Line`",
             output_around(jsonl(without(detection(1), "Line")))),
        Case("line_not_integer", a, "rejected", 2, "Line: Input should be a valid integer", 3, 2,
             "`Line` as a string", output_around(jsonl(detection(1, Line="1")))),
        Case("negative_line", a, "rejected", 2, "Line: Input should be greater than or equal to 0", 3, 2,
             "`Line` -1", output_around(jsonl(detection(1, Line=-1)))),
        Case("error_code", a, "rejected", 2,
             "Comprehend failed the document on input line 1: INVALID_DOCUMENT: Document size exceeds", 3, 2,
             "a document Comprehend could not process (ErrorCode, ErrorMessage)",
             output_around(jsonl({"File": INPUT_NAME, "Line": 1, "ErrorCode": "INVALID_DOCUMENT",
                                  "ErrorMessage": "Document size exceeds maximum size limit 102400 bytes"}))),
        Case("neither_entities_nor_error", a, "rejected", 2, "record has neither Entities nor ErrorCode", 3, 2,
             "only File and Line", output_around(jsonl({"File": INPUT_NAME, "Line": 1}))),
        Case("score_above_one", a, "rejected", 2, "Entities.0.Score: Input should be less than or equal to 1",
             3, 2, "a score of 1.5", output_around(with_entity(Score=1.5))),
        Case("score_below_zero", a, "rejected", 2,
             "Entities.0.Score: Input should be greater than or equal to 0", 3, 2, "a score of -0.2",
             output_around(with_entity(Score=-0.2))),
        Case("score_not_a_number", a, "rejected", 2, "Entities.0.Score: Input should be a valid number", 3, 2,
             "a score as a word", output_around(with_entity(Score="high"))),
        Case("reversed_entity_offsets", a, "rejected", 2, "entity 0: EndOffset 4 is not after BeginOffset 10",
             3, 2, "an entity ending before it starts", output_around(with_entity(BeginOffset=10, EndOffset=4))),
        Case("negative_entity_offset", a, "rejected", 2,
             "Entities.0.BeginOffset: Input should be greater than or equal to 0", 3, 2, "BeginOffset -1",
             output_around(with_entity(BeginOffset=-1))),
        Case("missing_entity_type", a, "rejected", 2, "missing Entities.0.Type", 3, 2, "an entity without a Type",
             output_around(jsonl(without(detection(1), "Entities", "Type")))),
    ]


# --- A2I output.json -----------------------------------------------------------------------------


def span(name: str, label: str | None = None, shift: int = 0) -> dict[str, Any]:
    begin = ANSWER_TEXT.index(name) + shift
    return {"label": label or ("VERSION" if name == "2.0" else "SERVICE"), "startOffset": begin,
            "endOffset": begin + len(name)}


GOOD_SPANS = [span("Amazon Comprehend"), span("2.0")]


def human_answer(spans: Any, submitted: str = "2026-11-28T09:40:58.870Z", worker: str = "a1b2c3d4e5f6a7b8",
                 ) -> dict[str, Any]:
    return {
        "acceptanceTime": "2026-11-28T09:30:02.113Z",
        "answerContent": {"crowd-entity-annotation": {"entities": spans}},
        "submissionTime": submitted,
        "timeSpentInSeconds": 656.757,
        "workerId": worker,
        "workerMetadata": {"identityData": {"identityProviderType": "Cognito", "issuer": "https://example",
                                            "sub": "c0ffee00-0000-4000-8000-000000000001"}},
    }


def output_json(answers: Any = None, drop: str = "", text: Any = ANSWER_TEXT) -> dict[str, Any]:
    output: dict[str, Any] = {
        "flowDefinitionArn": "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review",
        "humanLoopName": LOOP_NAME,
        "humanAnswers": [human_answer(GOOD_SPANS)] if answers is None else answers,
        "inputContent": {"version": "v1", "text": text, "labels": [{"label": name} for name in TYPES]},
    }
    if drop == "humanAnswers":
        del output["humanAnswers"]
    if drop == "text":
        del output["inputContent"]["text"]
    return output


def pretty_without_comma(output: dict[str, Any], after_line: int) -> bytes:
    """`output` pretty-printed with the comma at the end of line `after_line` (1-based) left out."""
    lines = json.dumps(output, indent=2, ensure_ascii=False).split("\n")
    assert lines[after_line - 1].endswith(",")
    lines[after_line - 1] = lines[after_line - 1][:-1]
    return ("\n".join(lines) + "\n").encode("utf-8")


def answer_cases() -> list[Case]:
    n = "answer"

    def answer(spans: Any) -> bytes:
        return jsonl(output_json([human_answer(spans)]))

    return [
        Case("no_human_answers", n, "file", None, "no human answers", 1, 0, "`humanAnswers` missing",
             jsonl(output_json(drop="humanAnswers"))),
        Case("empty_human_answers", n, "file", None, "no human answers", 1, 0, "`humanAnswers` empty",
             jsonl(output_json([]))),
        Case("invalid_json", n, "rejected", 4, "invalid JSON: Expecting ',' delimiter", 1, 0,
             "a comma missing in a pretty-printed output.json (a line number exists)",
             pretty_without_comma(output_json(), 3)),
        Case("no_text", n, "file", None, "inputContent has no text", 1, 0,
             "the loop's input without the text the reviewer saw", jsonl(output_json(drop="text"))),
        Case("no_entity_annotation", n, "file", None, "answer has no valid crowd-entity-annotation.entities", 1, 0,
             "an answer from another worker template", jsonl(output_json([{**human_answer([]), "answerContent": {
                 "crowd-classifier": {"label": "SERVICE"}}}]))),
        Case("offset_not_integer", n, "file", None, "entities.0.startOffset: Input should be a valid integer", 1, 0,
             "an offset as a string", answer([{**span("Amazon Comprehend"), "startOffset": "23"}])),
        Case("span_outside_text", n, "file", None, "outside the text (44 characters)", 1, 0,
             "a span past the end of the text", answer([{**span("2.0"), "endOffset": 60}])),
        Case("negative_offset", n, "file", None, "outside the text", 1, 0, "a negative start",
             answer([{**span("Amazon Comprehend"), "startOffset": -1}])),
        Case("reversed_offsets", n, "file", None, "reversed offsets", 1, 0, "end before start",
             answer([{"label": "SERVICE", "startOffset": 40, "endOffset": 23}])),
        Case("unknown_label", n, "file", None, "label 'PRODUCT' is not one of ['SERVICE', 'VERSION']", 1, 0,
             "a label the widget was not offering", answer([span("Amazon Comprehend", "PRODUCT")])),
        Case("astral_utf16_offsets", n, "file", None, "counted in UTF-16 units", 1, 0,
             "offsets after an emoji counted in UTF-16 units (as a browser counts): the last span runs past "
             "the end", answer([span("Amazon Comprehend", shift=1), span("2.0", shift=1)])),
        Case("several_answers", n, "file", None, "reviewers tied", 1, 0,
             "two workers (TaskCount 2) disagree on a span: a tie, the document goes to a further review",
             jsonl(output_json([human_answer([span("Amazon Comprehend")], "2026-11-28T09:40:58.870Z", "w1"),
                                human_answer(GOOD_SPANS, "2026-11-28T10:02:11.000Z", "w2")]))),
        Case("white_space_at_span_edge", n, "repaired", None, "trimmed white space", 1, 1,
             "a span taking in the space before the entity",
             answer([{**span("Amazon Comprehend"), "startOffset": span("Amazon Comprehend")["startOffset"] - 1},
                     span("2.0")])),
    ]


# --- events of the wrong shape -------------------------------------------------------------------


def sample(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAMPLE_EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    return event


def changed(name: str, change: Callable[[dict[str, Any]], None]) -> bytes:
    event = sample(name)
    change(event)
    return (json.dumps(event, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def event_case(case: str, target: str, sample_name: str, reason: str, description: str,
               change: Callable[[dict[str, Any]], None]) -> Case:
    return Case(case, "event", "refused", None, reason, 1, 0, description, changed(sample_name, change),
                target=target)


def event_cases() -> list[Case]:
    def set_path(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(event: dict[str, Any]) -> None:
            *parents, last = path.split(".")
            target = event
            for step in parents:
                target = target[step]
            if value is _DELETE:
                del target[last]
            else:
                target[last] = value
        return change

    return [
        event_case("convert_missing_status", "ConvertFunction", "convert", "detail.LabelingJobStatus: Field required",
                   "a labeling job event without its status", set_path("detail.LabelingJobStatus", _DELETE)),
        event_case("convert_unknown_status", "ConvertFunction", "convert", "detail.LabelingJobStatus: Input should be",
                   "a status Ground Truth never sends", set_path("detail.LabelingJobStatus", "Exploded")),
        event_case("convert_no_resources", "ConvertFunction", "convert", "resources: Value error, resources[0] must "
                   "be the labeling job's ARN", "no job ARN (the detail names no job)", set_path("resources", [])),
        event_case("convert_wrong_detail_type", "ConvertFunction", "convert", "detail-type",
                   "a training job's event", set_path("detail-type", "SageMaker Training Job State Change")),
        event_case("merge_missing_loop_name", "MergeFunction", "merge", "detail.humanLoopName: Field required",
                   "a human loop event without the loop's name", set_path("detail.humanLoopName", _DELETE)),
        event_case("merge_unknown_status", "MergeFunction", "merge", "detail.humanLoopStatus: Input should be",
                   "a status A2I never sends", set_path("detail.humanLoopStatus", "Exploded")),
        event_case("merge_completed_without_output", "MergeFunction", "merge",
                   "a Completed human loop needs humanLoopOutput.outputS3Uri",
                   "a completed loop that does not say where its answer is", set_path("detail.humanLoopOutput", None)),
        event_case("merge_time_not_a_date", "MergeFunction", "merge", "time: Input should be a valid datetime",
                   "an envelope whose time is not a time", set_path("time", "yesterday")),
        event_case("route_missing_key", "RouteFunction", "route", "detail.object.key: Field required",
                   "an S3 event without the object's key", set_path("detail.object.key", _DELETE)),
        event_case("route_not_a_detection_output", "RouteFunction", "route", "is not a detection job output",
                   "an object under detection/output/ that is no job's output.tar.gz (InvalidEvent)",
                   set_path("detail.object.key", "detection/output/readme.txt")),
        event_case("preprocess_wrong_source", "PreprocessFunction", "preprocess", "source: Input should be 'aws.s3'",
                   "an S3-shaped event from another source", set_path("source", "aws.sagemaker")),
        event_case("preprocess_empty_key", "PreprocessFunction", "preprocess",
                   "detail.object.key: String should have at least 1 character", "an empty object key",
                   set_path("detail.object.key", "")),
        event_case("train_missing_bucket", "TrainFunction", "train", "detail.bucket: Field required",
                   "an S3 event without the bucket", set_path("detail.bucket", _DELETE)),
        event_case("detect_missing_version", "DetectFunction", "detect", "detail.versionName: Field required",
                   "a recognizer status event without the version", set_path("detail.versionName", _DELETE)),
        event_case("detect_documents_key_elsewhere", "DetectFunction", "detect-documents-added",
                   "detail.documentsKey: String should match pattern", "a Documents Added event pointing outside "
                   "batches/", set_path("detail.documentsKey", "raw/notes.txt")),
        event_case("watch_wrong_detail_type", "WatchFunction", "watch", "detail-type",
                   "a rule's event that is not the schedule's", set_path("detail-type", "Object Created")),
    ]


_DELETE = object()


# --- writing -------------------------------------------------------------------------------------


def all_cases() -> list[Case]:
    return manifest_cases() + archive_cases() + answer_cases() + event_cases()


def build(out: Path) -> list[Case]:
    """Write every case file, the archives' input documents and cases.csv under `out`."""
    cases = all_cases()
    names = [case.file for case in cases]
    assert len(names) == len(set(names)), "case names repeat"
    for case in cases:
        path = out / case.file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.data)
    (out / "archive" / INPUT_NAME).write_bytes("".join(text + "\n" for text in INPUT_DOCUMENTS).encode("utf-8"))
    with (out / "cases.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(case.row() for case in cases)
    return cases


def corpus_files(root: Path) -> list[str]:
    """The corpus's own files under `root` (what build writes), relative, sorted."""
    files = sorted(str(path.relative_to(root)) for kind in ("manifest", "archive", "answer", "event")
                   for path in (root / kind).glob("*") if path.is_file())
    return [*files, "cases.csv"]


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    written = build(target)
    print(f"{len(written)} cases written under {target}")
