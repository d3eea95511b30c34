"""Stage 6 — route, from events/route.json to human loops and pool statuses.

moto has no sagemaker-a2i-runtime: StartHumanLoop is checked at the client boundary with a
botocore Stubber on the client `nerloop.aws.client` hands out.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from nerloop import a2i as a2i_module
from nerloop import aws as nerloop_aws
from nerloop import loop_starter
from nerloop import settings as nerloop_settings
from nerloop.a2i import build_input_content, loop_name
from nerloop.comprehend_output import DetectedEntity
from nerloop.documents import Span, document_hash
from nerloop.errors import InvalidRecord, UnknownJob
from nerloop.state import ACCEPTED, GOLD, IN_REVIEW, WAITING, GoldDocument, Job, Loop
from nerloop_local.emulator.stack import load_event

EVENT = load_event("route")
KEY = EVENT["detail"]["object"]["key"]
JOB_ID = KEY.split("-NER-")[1].split("/")[0]
VERSION = "v1"
INPUT_KEY = "detection/input/v1-20261127T231000/documents.txt"
FLOW = "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/nerloop-review"
TYPES = ("SERVICE", "VERSION")


@dataclass
class Doc:
    text: str
    entities: list[tuple[str, str, float]]  # (entity text, type, score)
    error: str = ""

    @property
    def hash(self) -> str:
        return document_hash(self.text)

    def detected(self) -> list[DetectedEntity]:
        found = []
        for text, type_, score in self.entities:
            begin = self.text.index(text)
            found.append(DetectedEntity(begin=begin, end=begin + len(text), score=score, text=text, type=type_))
        return found

    def record(self, line: int) -> dict[str, Any]:
        if self.error:
            return {
                "File": "documents.txt",
                "Line": line,
                "ErrorCode": self.error,
                "ErrorMessage": "Document size exceeds maximum size limit",
            }
        return {
            "File": "documents.txt",
            "Line": line,
            "Entities": [
                {"BeginOffset": e.begin, "EndOffset": e.end, "Score": e.score, "Text": e.text, "Type": e.type}
                for e in self.detected()
            ],
        }


CONFIDENT = Doc(
    "Amazon Comprehend now detects entities in 2 new languages.",
    [("Amazon Comprehend", "SERVICE", 0.99), ("2", "VERSION", 0.95)],
)
THIRD_UNCERTAIN = Doc(
    "AWS Lambda, Amazon S3 and Amazon SageMaker Studio Lab get new regions.",
    [
        ("AWS Lambda", "SERVICE", 0.99),
        ("Amazon S3", "SERVICE", 0.97),
        ("Amazon SageMaker Studio Lab", "SERVICE", 0.41),
    ],
)
NO_ENTITIES = Doc("Read the announcement on the blog.", [])
UNCERTAIN = Doc(
    "🎉 Amazon Augmented AI 2.0 is generally available.",
    [("Amazon Augmented AI", "SERVICE", 0.93), ("2.0", "VERSION", 0.6)],
)
AT_THRESHOLD = Doc("Amazon Textract adds table extraction.", [("Amazon Textract", "SERVICE", 0.8)])
FAILED = Doc("A document Comprehend could not read.", [], error="INVALID_DOCUMENT")
ALREADY_GOLD = Doc("Amazon Kendra connects to Slack.", [("Amazon Kendra", "SERVICE", 0.2)])
DOCS = [CONFIDENT, THIRD_UNCERTAIN, NO_ENTITIES, UNCERTAIN, AT_THRESHOLD, FAILED, ALREADY_GOLD]


def make_archive(lines: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("output")
        info.size = len(lines)
        archive.addfile(info, io.BytesIO(lines))
    return buffer.getvalue()


def output_lines(docs: list[Doc]) -> bytes:
    return "".join(
        json.dumps(doc.record(n), ensure_ascii=False) + "\n" for n, doc in enumerate(docs)
    ).encode()


def finished_detection_job(emulated: Any, docs: list[Doc]) -> Any:
    """Pool documents, the job's input file and item, and the output archive from events/route.json."""
    state = emulated.state
    for doc in docs:
        state.pool.add(doc.hash, doc.text, "batch-1")
    emulated.s3.put_object(
        Bucket=emulated.bucket, Key=INPUT_KEY, Body="".join(doc.text + "\n" for doc in docs).encode("utf-8")
    )
    state.jobs.put(
        Job(job_id=JOB_ID, status="COMPLETED", version=VERSION, input_key=INPUT_KEY, documents=len(docs))
    )
    emulated.s3.put_object(Bucket=emulated.bucket, Key=KEY, Body=make_archive(output_lines(docs)))
    return emulated


@pytest.fixture
def given_a_finished_detection_job(emulated: Any) -> Any:
    finished_detection_job(emulated, DOCS)
    emulated.state.gold.put(
        GoldDocument(ALREADY_GOLD.hash, ALREADY_GOLD.text, [Span(0, 13, "SERVICE")], "labeling:job-1")
    )
    return emulated


@pytest.fixture
def a2i(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """A stubbed sagemaker-a2i-runtime client, handed out by nerloop.aws.client."""
    client = boto3.client("sagemaker-a2i-runtime", region_name="us-east-1")
    real_client: Callable[[str], Any] = nerloop_aws.client
    monkeypatch.setattr(
        nerloop_aws,
        "client",
        lambda service: client if service == "sagemaker-a2i-runtime" else real_client(service),
    )
    monkeypatch.setattr(a2i_module, "backoff_sleep", lambda seconds: None)
    # A Stubber answers in the order its responses were queued: one StartHumanLoop at a time here
    # (tests/unit/test_loop_starter.py checks the concurrent starts).
    monkeypatch.setattr(loop_starter, "LOOP_STARTERS", 1)
    with Stubber(client) as stubber:
        yield stubber


def expect_loop(stubber: Stubber, doc: Doc) -> None:
    """StartHumanLoop for `doc`: its name, our flow definition, and its input content exactly."""
    name = loop_name(doc.hash, VERSION, FLOW)
    content = build_input_content(doc.hash, doc.text, doc.detected(), VERSION, TYPES)
    stubber.add_response(
        "start_human_loop",
        {"HumanLoopArn": f"arn:aws:sagemaker:us-east-1:123456789012:human-loop/{name}"},
        {
            "HumanLoopName": name,
            "FlowDefinitionArn": FLOW,
            "HumanLoopInput": {"InputContent": content},
        },
    )


def route(emulated: Any, lambda_context: Any, **environment: str) -> dict[str, Any]:
    """The route stage on the sample job; with no REVIEW_BUDGET given, none (every uncertain document)."""
    emulated.use_environment("RouteFunction")
    for name, value in {"REVIEW_BUDGET": "0", **environment}.items():
        emulated.monkeypatch.setenv(name, value)
    nerloop_settings.get_settings.cache_clear()
    handler = emulated.stack.load_handler("RouteFunction")
    return handler(EVENT, lambda_context)  # type: ignore[no-any-return]


def test_loops_start_for_exactly_the_uncertain_documents(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)

    result = route(given_a_finished_detection_job, lambda_context)

    a2i.assert_no_pending_responses()
    assert result["loops_started"] == 2
    assert result["accepted"] == 3  # confident, no entities, exactly at the threshold


def test_every_record_is_accounted_for(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)

    result = route(given_a_finished_detection_job, lambda_context)

    assert result["records"] == len(DOCS)
    assert (result["skipped"], result["quarantined"], result["document_failures"]) == (1, 1, 1)
    assert result["records"] == sum(
        result[k]
        for k in ("accepted", "loops_started", "loops_existing", "over_budget", "skipped", "quarantined")
    )


def test_pool_statuses_follow_the_decisions(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)

    route(given_a_finished_detection_job, lambda_context)

    state = given_a_finished_detection_job.state
    pool = {doc.text: state.pool.get(doc.hash) for doc in DOCS}
    assert {text: p.status for text, p in pool.items()} == {
        CONFIDENT.text: ACCEPTED,
        THIRD_UNCERTAIN.text: IN_REVIEW,
        NO_ENTITIES.text: ACCEPTED,
        UNCERTAIN.text: IN_REVIEW,
        AT_THRESHOLD.text: ACCEPTED,
        FAILED.text: WAITING,
        ALREADY_GOLD.text: GOLD,
    }
    assert pool[UNCERTAIN.text].loop == loop_name(UNCERTAIN.hash, VERSION, FLOW)
    assert {p.seen_by for text, p in pool.items() if text != ALREADY_GOLD.text} == {VERSION}


def test_accepted_documents_keep_the_models_entities(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)

    route(given_a_finished_detection_job, lambda_context)

    item = given_a_finished_detection_job.state.table.get_item(Key={"pk": "POOL", "sk": CONFIDENT.hash})[
        "Item"
    ]
    assert [(e["begin"], e["end"], e["type"]) for e in json.loads(item["entities"])] == [
        (e.begin, e.end, e.type) for e in CONFIDENT.detected()
    ]


def test_each_loop_is_recorded_in_progress_and_the_job_marked_routed(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)

    route(given_a_finished_detection_job, lambda_context)

    state = given_a_finished_detection_job.state
    loops = {loop.name: loop for loop in state.loops.list()}
    assert set(loops) == {loop_name(THIRD_UNCERTAIN.hash, VERSION, FLOW), loop_name(UNCERTAIN.hash, VERSION, FLOW)}
    assert {(loop.doc, loop.version, loop.status) for loop in loops.values()} == {
        (THIRD_UNCERTAIN.hash, VERSION, "InProgress"),
        (UNCERTAIN.hash, VERSION, "InProgress"),
    }
    assert "routed_at" in state.table.get_item(Key={"pk": "JOB", "sk": JOB_ID})["Item"]


def test_a_failed_document_is_quarantined_with_file_line_and_reason(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)

    result = route(given_a_finished_detection_job, lambda_context)

    body = given_a_finished_detection_job.s3.get_object(
        Bucket=given_a_finished_detection_job.bucket, Key=result["quarantine"]
    )["Body"].read()
    rows = [json.loads(line) for line in body.decode().splitlines()]
    assert [(r["file"], r["line"]) for r in rows] == [(f"{KEY}:output", DOCS.index(FAILED) + 1)]
    assert "INVALID_DOCUMENT" in rows[0]["reason"]


def test_a_redelivered_event_starts_nothing_new(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)
    first = route(given_a_finished_detection_job, lambda_context)

    second = route(given_a_finished_detection_job, lambda_context)  # the stubber has no response left

    a2i.assert_no_pending_responses()
    assert second == first
    assert len(given_a_finished_detection_job.state.loops.list()) == 2


def test_throttling_is_retried_with_back_off(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    name = loop_name(THIRD_UNCERTAIN.hash, VERSION, FLOW)
    a2i.add_client_error(
        "start_human_loop",
        "ThrottlingException",
        http_status_code=429,
        expected_params={
            "HumanLoopName": name,
            "FlowDefinitionArn": FLOW,
            "HumanLoopInput": {"InputContent": ANY},
        },
    )
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)

    result = route(given_a_finished_detection_job, lambda_context)

    a2i.assert_no_pending_responses()
    assert result["loops_started"] == 2


def test_a_loop_that_a2i_already_has_is_not_counted_as_new(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    # Given a first attempt that recorded and started the loop, then crashed before the pool was marked
    state = given_a_finished_detection_job.state
    state.loops.put(Loop(loop_name(UNCERTAIN.hash, VERSION, FLOW), UNCERTAIN.hash, VERSION, "InProgress"))
    expect_loop(a2i, THIRD_UNCERTAIN)
    a2i.add_client_error("start_human_loop", "ConflictException", http_status_code=409)

    result = route(given_a_finished_detection_job, lambda_context)

    assert (result["loops_started"], result["loops_existing"]) == (1, 1)
    assert state.pool.get(UNCERTAIN.hash).status == IN_REVIEW


def test_an_output_routed_again_after_a_failure_makes_the_same_choices(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nerloop.state.jobs import JobRepository

    # Given a first attempt that opened the budget's one loop, then failed before it finished
    expect_loop(a2i, THIRD_UNCERTAIN)
    real_update_job = JobRepository.update
    failures = iter([RuntimeError("throttled past the retries")])

    def update_job_failing_once(self: Any, job_id: str, **attributes: Any) -> None:
        for failure in failures:
            raise failure
        real_update_job(self, job_id, **attributes)

    monkeypatch.setattr(JobRepository, "update", update_job_failing_once)
    with pytest.raises(RuntimeError, match="throttled"):
        route(given_a_finished_detection_job, lambda_context, REVIEW_BUDGET="1")

    # When the event is delivered again, Then the same document has the budget: no second loop opens
    a2i.add_client_error("start_human_loop", "ConflictException", http_status_code=409)
    result = route(given_a_finished_detection_job, lambda_context, REVIEW_BUDGET="1")

    a2i.assert_no_pending_responses()
    assert (result["loops_started"], result["loops_existing"], result["over_budget"]) == (0, 1, 1)
    assert given_a_finished_detection_job.state.pool.get(UNCERTAIN.hash).status == WAITING


def test_a_loop_already_finished_for_this_version_is_not_started_again(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    state = given_a_finished_detection_job.state
    name = loop_name(UNCERTAIN.hash, VERSION, FLOW)
    state.loops.put(Loop(name, UNCERTAIN.hash, VERSION, "InProgress"))
    state.loops.finish(name, "Failed", "Expired: nobody reviewed it")
    expect_loop(a2i, THIRD_UNCERTAIN)

    result = route(given_a_finished_detection_job, lambda_context)

    a2i.assert_no_pending_responses()
    assert result["loops_started"] == 1
    assert state.pool.get(UNCERTAIN.hash).status == WAITING


def test_a_review_budget_keeps_the_most_expected_errors_and_leaves_the_rest_waiting(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    expect_loop(a2i, THIRD_UNCERTAIN)  # 0.01 + 0.03 + 0.59 expected errors against UNCERTAIN's 0.07 + 0.4

    result = route(given_a_finished_detection_job, lambda_context, REVIEW_BUDGET="1")

    a2i.assert_no_pending_responses()
    assert (result["loops_started"], result["over_budget"]) == (1, 1)
    over = given_a_finished_detection_job.state.pool.get(UNCERTAIN.hash)
    assert (over.status, over.seen_by) == (WAITING, VERSION)


def test_several_doubtful_entities_go_before_a_single_more_doubtful_one(
    emulated: Any, a2i: Stubber, lambda_context: Any
) -> None:
    single = Doc("Amazon Bedrock adds a model.", [("Amazon Bedrock", "SERVICE", 0.5)])
    several = Doc("AWS Glue 5.0 and Amazon EMR 7.1 ship together.",
                  [("AWS Glue", "SERVICE", 0.75), ("5.0", "VERSION", 0.75), ("Amazon EMR", "SERVICE", 0.75)])
    finished_detection_job(emulated, [single, several])
    expect_loop(a2i, several)  # 0.75 expected errors against 0.5

    result = route(emulated, lambda_context, REVIEW_BUDGET="1", CONFIDENCE_THRESHOLD="0.8")

    a2i.assert_no_pending_responses()
    assert (result["loops_started"], result["over_budget"], result["filled"]) == (1, 1, 0)


def test_room_the_uncertain_documents_leave_goes_to_the_other_documents_without_entities_last(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    # Given two uncertain documents, and a budget of four
    for doc in (THIRD_UNCERTAIN, UNCERTAIN, AT_THRESHOLD, CONFIDENT):
        expect_loop(a2i, doc)  # the confident ones by their expected errors: 0.2, then 0.01 + 0.05

    result = route(given_a_finished_detection_job, lambda_context, REVIEW_BUDGET="4")

    # Then the budget is spent whole, and the document with no entity is accepted
    a2i.assert_no_pending_responses()
    assert (result["loops_started"], result["filled"], result["accepted"]) == (4, 2, 1)
    pool = given_a_finished_detection_job.state
    assert pool.pool.get(AT_THRESHOLD.hash).status == IN_REVIEW
    assert pool.pool.get(NO_ENTITIES.hash).status == ACCEPTED


def test_a_document_with_no_predicted_entity_reaches_a_person_when_the_budget_has_room(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    for doc in (THIRD_UNCERTAIN, UNCERTAIN, AT_THRESHOLD, CONFIDENT, NO_ENTITIES):
        expect_loop(a2i, doc)

    result = route(given_a_finished_detection_job, lambda_context, REVIEW_BUDGET="10")

    a2i.assert_no_pending_responses()
    assert (result["loops_started"], result["filled"], result["accepted"]) == (5, 3, 0)
    assert given_a_finished_detection_job.state.pool.get(NO_ENTITIES.hash).status == IN_REVIEW


def test_the_budget_passes_over_a_near_duplicate_for_a_different_document(
    emulated: Any, a2i: Stubber, lambda_context: Any
) -> None:
    first = Doc("Amazon EC2 X2idn instances are now available in Europe (Paris).", [("Amazon EC2", "SERVICE", 0.30)])
    repeat = Doc("Amazon EC2 X2idn instances are now available in Asia Pacific (Tokyo).",
                 [("Amazon EC2", "SERVICE", 0.35)])
    other = Doc("AWS Lambda adds support for Java 21.", [("AWS Lambda", "SERVICE", 0.5)])
    finished_detection_job(emulated, [first, repeat, other])
    expect_loop(a2i, first)
    expect_loop(a2i, other)  # less uncertain than `repeat`, but it teaches something new

    result = route(emulated, lambda_context, REVIEW_BUDGET="2")

    a2i.assert_no_pending_responses()
    assert (result["loops_started"], result["over_budget"]) == (2, 1)
    assert emulated.state.pool.get(repeat.hash).status == WAITING


def test_an_output_of_an_unknown_job_is_refused(emulated: Any, a2i: Stubber, lambda_context: Any) -> None:
    emulated.s3.put_object(Bucket=emulated.bucket, Key=KEY, Body=make_archive(output_lines(DOCS)))

    with pytest.raises(UnknownJob, match=JOB_ID):
        route(emulated, lambda_context)


def test_a_corrupt_archive_fails_naming_it_and_is_quarantined(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any
) -> None:
    emulated = given_a_finished_detection_job
    emulated.s3.put_object(Bucket=emulated.bucket, Key=KEY, Body=b"\x1f\x8b\x08\x00garbage" * 50)

    with pytest.raises(InvalidRecord) as caught:
        route(emulated, lambda_context)

    assert caught.value.file == KEY
    report = emulated.s3.get_object(Bucket=emulated.bucket, Key=f"quarantine/route/{JOB_ID}.jsonl")
    assert KEY in report["Body"].read().decode()


# --- batches: pool items are read 100 and written 25 at a time ----------------------------------------


def confident_docs(count: int) -> list[Doc]:
    return [Doc(f"Amazon Comprehend release {n} detects entities.", [("Amazon Comprehend", "SERVICE", 0.99)])
            for n in range(count)]


def test_documents_across_several_batches_are_all_routed(emulated: Any, a2i: Stubber, lambda_context: Any) -> None:
    docs = confident_docs(230)  # three pool reads (100, 100, 30), ten writes of 25 and one of 5
    finished_detection_job(emulated, docs)

    result = route(emulated, lambda_context)

    assert (result["records"], result["accepted"]) == (230, 230)
    assert {p.status for p in emulated.state.pool.documents()} == {ACCEPTED}


def test_a_routed_document_keeps_its_text_and_batch(emulated: Any, a2i: Stubber, lambda_context: Any) -> None:
    finished_detection_job(emulated, [CONFIDENT])

    route(emulated, lambda_context)

    item = emulated.state.table.get_item(Key={"pk": "POOL", "sk": CONFIDENT.hash})["Item"]
    assert (item["text"], item["batch"], item["status"], item["seen_by"]) == (CONFIDENT.text, "batch-1", ACCEPTED,
                                                                               VERSION)


def test_the_same_text_on_two_lines_is_decided_once_after_the_other(
    emulated: Any, a2i: Stubber, lambda_context: Any
) -> None:
    # The second line's pool item is read after the first line's decision is written (a batch
    # write naming one item twice would be refused).
    finished_detection_job(emulated, [CONFIDENT, NO_ENTITIES, CONFIDENT])

    result = route(emulated, lambda_context)

    assert (result["records"], result["accepted"], result["quarantined"]) == (3, 3, 0)
    assert emulated.state.pool.get(CONFIDENT.hash).status == ACCEPTED


def test_documents_over_budget_wait_seen_by_the_version_unless_gold_by_then(
    emulated: Any, a2i: Stubber, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nerloop.stages import route as route_stage

    low = Doc("AWS Glue adds new connectors.", [("AWS Glue", "SERVICE", 0.1)])
    over = [Doc(f"Amazon Redshift release {n} is out.", [("Amazon Redshift", "SERVICE", 0.5)]) for n in range(3)]
    finished_detection_job(emulated, [low, *over])
    expect_loop(a2i, low)
    # One of them becomes gold (a labeling job finished) after it was read, before routing ends
    real_pick = route_stage.pick_diverse

    def pick_then_label(*args: Any, **kwargs: Any) -> Any:
        emulated.state.gold.put(GoldDocument(over[1].hash, over[1].text, [], "labeling:job-2"))
        return real_pick(*args, **kwargs)

    monkeypatch.setattr(route_stage, "pick_diverse", pick_then_label)

    result = route(emulated, lambda_context, REVIEW_BUDGET="1")

    assert (result["loops_started"], result["over_budget"]) == (1, 3)
    pool = [emulated.state.pool.get(doc.hash) for doc in over]
    assert [(p.status, p.seen_by) for p in pool] == [(WAITING, VERSION), (GOLD, ""), (WAITING, VERSION)]


def test_a_document_that_becomes_gold_while_its_batch_is_routed_stays_gold(
    given_a_finished_detection_job: Any, a2i: Stubber, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nerloop.state.pool import PoolRepository

    # Given a merge that makes the confident document gold just after route read its pool item
    expect_loop(a2i, THIRD_UNCERTAIN)
    expect_loop(a2i, UNCERTAIN)
    real_read = PoolRepository.get_items
    state = given_a_finished_detection_job.state

    def read_then_merged(self: Any, docs: Any) -> Any:
        items = real_read(self, docs)
        state.gold.put(GoldDocument(CONFIDENT.hash, CONFIDENT.text, [Span(0, 17, "SERVICE")], "review:loop-x"))
        return items

    monkeypatch.setattr(PoolRepository, "get_items", read_then_merged)

    route(given_a_finished_detection_job, lambda_context)

    # Then route's "accepted" does not overwrite it
    assert given_a_finished_detection_job.state.pool.get(CONFIDENT.hash).status == GOLD
