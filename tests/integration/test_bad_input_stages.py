"""Every case of the bad-input corpus through the real handlers under the emulated stack: each manifest
through convert, each archive through route, each answer through merge, and each wrong-shaped event
through its own handler. The quarantine report under quarantine/<stage>/ in S3 names file, line and
reason, the valid rest reaches the gold set or the pool, and count in = count out + count quarantined.

moto has no Ground Truth: DescribeLabelingJob is stubbed (the `sagemaker_stub` fixture).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from botocore.stub import Stubber
from pydantic import ValidationError

from nerloop.documents import document_hash
from nerloop.errors import InvalidEvent, InvalidRecord
from nerloop.event_catalog import describe_event_error
from nerloop.state import ACCEPTED, GOLD, IN_REVIEW, WAITING, Job, Loop
from nerloop_local.commands.validate import validate_file
from nerloop_local.emulator.stack import load_event, load_module

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_input"


CORPUS_GENERATOR = load_module(CORPUS / "make_corpus.py", "bad_input_corpus")
CASES: list[Any] = CORPUS_GENERATOR.read_table()
ENTITY_TEXTS = set(CORPUS_GENERATOR.ENTITY_TEXTS)


def rows(kind: str) -> list[Any]:
    return [row for row in CASES if row.kind == kind]


def ids(selected: list[Any]) -> list[str]:
    return [row.id for row in selected]


def read_report(emulated: Any, key: str | None) -> list[dict[str, Any]]:
    if key is None:
        return []
    body = emulated.s3.get_object(Bucket=emulated.bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


def validated(row: Any) -> tuple[list[tuple[int | None, str]], list[tuple[int | None, str]]]:
    """`nerloop validate`'s problems and repairs for the case file, as (line, reason)."""
    report = validate_file(row.path)
    return [(p.line, p.reason) for p in report.problems], [(p.line, p.reason) for p in report.repairs]


def check_report(report: list[dict[str, Any]], row: Any, file: str) -> None:
    """The report holds the case's problem (or repair) naming `file`, the line and the reason, and says
    what `nerloop validate` says about the same record."""
    rejected = [(r["file"], r["line"], r["reason"]) for r in report if r["kind"] == "rejected"]
    repaired = [(r["file"], r["line"], r["reason"]) for r in report if r["kind"] == "repaired"]
    problems, repairs = validated(row)
    if row.stage_outcome in ("rejected", "file"):
        assert [(f, line) for f, line, _ in rejected] == [(file, row.line)], row.description
        assert row.reason in rejected[0][2]
        assert [(line, reason) for _, line, reason in rejected] == problems  # the same message
    else:
        assert not rejected
        if row.outcome == "repaired":
            assert (file, row.line) in [(f, line) for f, line, reason in repaired if row.reason in reason]
            assert set(repairs) <= {(line, reason) for _, line, reason in repaired}


# --- convert: a labeling job's output manifest ------------------------------------------------------


def a_completed_labeling_job(emulated: Any, stub: Stubber, manifest: bytes) -> str:
    """The manifest where Ground Truth writes it, and DescribeLabelingJob stubbed; its S3 URI."""
    return str(emulated.completed_labeling_job(stub, manifest, CORPUS_GENERATOR.ATTRIBUTE))


@pytest.mark.parametrize("row", rows("manifest"), ids=ids(rows("manifest")))
def test_convert_quarantines_the_bad_line_and_converts_the_rest(
    row: Any, emulated: Any, sagemaker_stub: Stubber, lambda_context: Any
) -> None:
    uri = a_completed_labeling_job(emulated, sagemaker_stub, row.path.read_bytes())

    result = emulated.handler("ConvertFunction")(load_event("convert"), lambda_context)

    report = read_report(emulated, result["quarantine"])
    check_report(report, row, uri)
    assert all(r["file"] == uri for r in report)
    if report:
        assert result["quarantine"].startswith("quarantine/convert/")
    gold = list(emulated.state.gold.documents())
    # a case bad only to a reader that guesses (the stage is told the job's label attribute) loses nothing
    valid = row.records if row.stage else row.valid
    assert len(gold) == result["documents"] == valid
    assert result["lines"] == row.records == result["documents"] + result["repeated"] + result["quarantined"]
    assert {doc.text[s.begin:s.end] for doc in gold for s in doc.spans} <= ENTITY_TEXTS


# --- route: a detection job's output.tar.gz ----------------------------------------------------------

ROUTE_EVENT = load_event("route")
ARCHIVE_KEY = ROUTE_EVENT["detail"]["object"]["key"]
JOB_ID = ARCHIVE_KEY.split("-NER-")[1].split("/")[0]
INPUT_KEY = f"detection/input/v1-bad-input/{CORPUS_GENERATOR.INPUT_NAME}"


def a_finished_detection_job(emulated: Any, archive: bytes) -> list[str]:
    """The job's input documents in the pool and in S3, the job recorded, its output in place; the
    documents' hashes in input-line order."""
    state = emulated.state
    documents = list(CORPUS_GENERATOR.INPUT_DOCUMENTS)
    for text in documents:
        state.pool.add(document_hash(text), text, "batch-1")
    input_file = (CORPUS / "archive" / CORPUS_GENERATOR.INPUT_NAME).read_bytes()
    emulated.s3.put_object(Bucket=emulated.bucket, Key=INPUT_KEY, Body=input_file)
    state.jobs.put(Job(job_id=JOB_ID, status="COMPLETED", version="v1", input_key=INPUT_KEY,
                      documents=len(documents)))
    emulated.s3.put_object(Bucket=emulated.bucket, Key=ARCHIVE_KEY, Body=archive)
    return [document_hash(text) for text in documents]


def route(emulated: Any, lambda_context: Any) -> dict[str, Any]:
    # No budget: every uncertain document and only those, so the statuses show what the bad record did
    return emulated.handler("RouteFunction", REVIEW_BUDGET="0")(ROUTE_EVENT, lambda_context)  # type: ignore[no-any-return]


READABLE_ARCHIVES = [r for r in rows("archive") if r.outcome != "file"]
UNREADABLE_ARCHIVES = [r for r in rows("archive") if r.outcome == "file"]


@pytest.mark.parametrize("row", READABLE_ARCHIVES, ids=ids(READABLE_ARCHIVES))
def test_route_quarantines_the_bad_record_and_routes_the_rest(row: Any, emulated: Any, lambda_context: Any) -> None:
    docs = a_finished_detection_job(emulated, row.path.read_bytes())

    result = route(emulated, lambda_context)

    report = read_report(emulated, result["quarantine"])
    check_report(report, row, f"{ARCHIVE_KEY}:output")
    if report:
        assert result["quarantine"] == f"quarantine/route/{JOB_ID}.jsonl"
    assert result["records"] == row.records and result["accepted"] == row.valid
    assert result["records"] == sum(result[k] for k in (
        "accepted", "loops_started", "loops_existing", "over_budget", "skipped", "quarantined"))
    statuses = [emulated.state.pool.get(doc).status for doc in docs]
    assert statuses == ([ACCEPTED, WAITING, ACCEPTED]  # the bad record's document waits for the next model
                        if row.outcome == "rejected" else [ACCEPTED] * len(docs))


@pytest.mark.parametrize("row", UNREADABLE_ARCHIVES, ids=ids(UNREADABLE_ARCHIVES))
def test_route_refuses_an_unreadable_archive_naming_it(row: Any, emulated: Any, lambda_context: Any) -> None:
    docs = a_finished_detection_job(emulated, row.path.read_bytes())

    with pytest.raises(InvalidRecord) as caught:
        route(emulated, lambda_context)

    assert (caught.value.file, caught.value.line) == (ARCHIVE_KEY, None) and row.reason in caught.value.reason
    report = read_report(emulated, f"quarantine/route/{JOB_ID}.jsonl")
    check_report(report, row, ARCHIVE_KEY)
    # the records read before the damage are routed as they came; the rest wait
    statuses = [emulated.state.pool.get(doc).status for doc in docs]
    assert statuses == [ACCEPTED] * row.valid + [WAITING] * (len(docs) - row.valid)


# --- merge: a human loop's output.json ---------------------------------------------------------------

LOOP = CORPUS_GENERATOR.LOOP_NAME
TEXT = CORPUS_GENERATOR.ANSWER_TEXT


def a_loop_in_review(emulated: Any, answer: bytes) -> tuple[dict[str, Any], str]:
    """The document in review under the corpus's loop name and the answer where the event says; the
    event and the answer's S3 URI."""
    event = copy.deepcopy(load_event("merge"))
    name = event["detail"]["humanLoopName"]
    detail = event["detail"]
    for field in ("humanLoopName", "humanLoopArn"):
        detail[field] = detail[field].replace(name, LOOP)
    uri = detail["humanLoopOutput"]["outputS3Uri"].replace(name, LOOP)
    detail["humanLoopOutput"]["outputS3Uri"] = uri
    event["resources"] = [detail["humanLoopArn"]]
    doc = document_hash(TEXT)
    state = emulated.state
    state.pool.add(doc, TEXT, "batch-1")
    state.loops.put(Loop(LOOP, doc, "v1", "InProgress"))
    state.pool.mark(doc, IN_REVIEW, loop=LOOP, seen_by="v1")
    emulated.s3.put_object(Bucket=emulated.bucket, Key=uri.split("/", 3)[3], Body=answer)
    return event, uri


@pytest.mark.parametrize("row", rows("answer"), ids=ids(rows("answer")))
def test_merge_quarantines_a_bad_answer_or_merges_a_repaired_one(
    row: Any, emulated: Any, lambda_context: Any
) -> None:
    event, uri = a_loop_in_review(emulated, row.path.read_bytes())

    result = emulated.handler("MergeFunction")(event, lambda_context)

    report = read_report(emulated, result.get("quarantine"))
    check_report(report, row, uri)
    if report:
        assert result["quarantine"].startswith("quarantine/merge/")
    doc = document_hash(TEXT)
    gold = emulated.state.gold.get(doc)
    assert result["merged"] is (row.valid == 1) and (gold is not None) is (row.valid == 1)
    if gold is None:  # the answer is set aside whole; the document waits to be reviewed again
        loop = emulated.state.loops.get(LOOP)
        assert loop.status == "Failed" and row.reason in loop.failure
        assert emulated.state.pool.get(doc).status == WAITING
    else:
        assert emulated.state.pool.get(doc).status == GOLD
        assert {gold.text[s.begin:s.end] for s in gold.spans} <= ENTITY_TEXTS


# --- events of the wrong shape -------------------------------------------------------------------------


def everything_stored(emulated: Any) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    listing = emulated.s3.list_objects_v2(Bucket=emulated.bucket).get("Contents", [])
    items = emulated.state.table.scan()["Items"]
    return sorted((item["Key"], item["ETag"]) for item in listing), sorted(items, key=json.dumps)


@pytest.mark.parametrize("row", rows("event"), ids=ids(rows("event")))
def test_a_handler_refuses_an_event_of_the_wrong_shape_and_does_nothing(
    row: Any, emulated: Any, lambda_context: Any
) -> None:
    # Given the bucket and table holding something, so that any write would show
    emulated.s3.put_object(Bucket=emulated.bucket, Key="raw/already-there.txt", Body=b"Amazon S3 adds a feature.\n")
    emulated.state.pool.add(document_hash("Amazon S3 adds a feature."), "Amazon S3 adds a feature.", "batch-0")
    handler = emulated.handler(row.target)
    before = everything_stored(emulated)

    with pytest.raises((ValidationError, InvalidEvent)) as caught:
        handler(json.loads(row.path.read_bytes()), lambda_context)

    error = caught.value
    message = describe_event_error(error) if isinstance(error, ValidationError) else str(error)
    assert row.reason in message
    assert everything_stored(emulated) == before
