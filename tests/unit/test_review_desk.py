"""The review page's desk, without a runtime: reading a human loop's input, ordering the queue, and
checking an answer before it is written as A2I's output."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from nerloop.a2i import build_input_content
from nerloop.comprehend_output import DetectedEntity
from nerloop.documents import document_hash
from nerloop_local.review.desk import (
    ReviewError,
    check_answer,
    document_view,
    order_queue,
    page_status,
    queue_entry,
    read_input,
    seconds_spent,
)
from nerloop_local.standins.a2i import PendingLoop

TYPES = ("SERVICE", "VERSION")
TEXT = "Café 😀 東京: Amazon S3 2.0 now runs in Zürich."
START = datetime(2026, 1, 1, tzinfo=UTC)


def entity(text: str, part: str, type_: str, score: float) -> DetectedEntity:
    begin = text.index(part)
    return DetectedEntity(begin, begin + len(part), score, part, type_)


def pending(name: str, text: str, entities: list[DetectedEntity], minutes: int = 0) -> PendingLoop:
    content = build_input_content(document_hash(text), text, entities, "v1", TYPES)
    return PendingLoop(name, json.loads(content), START + timedelta(minutes=minutes), "arn:flow")


LOOP = pending("v1-a", TEXT, [entity(TEXT, "Amazon S3", "SERVICE", 0.9), entity(TEXT, "2.0", "VERSION", 0.4),
                              entity(TEXT, "Zürich", "PLACE", 0.2)])


def test_a_document_shows_the_prefilled_spans_with_their_scores_least_confident_first():
    view = document_view(LOOP, read_input(LOOP))

    assert view["text"] == TEXT and view["labels"] == list(TYPES)
    assert [(s["label"], TEXT[s["startOffset"]:s["endOffset"]], s["score"]) for s in view["spans"]] == [
        ("VERSION", "2.0", 0.4), ("SERVICE", "Amazon S3", 0.9)]  # PLACE is no label: not pre-filled
    assert view["lowestScore"] == 0.2


def test_the_queue_puts_the_least_confident_loop_first_and_unreadable_ones_last():
    sure = pending("v1-sure", "AWS Lambda is here.", [entity("AWS Lambda is here.", "AWS Lambda", "SERVICE", 0.95)])
    unsure = pending("v1-unsure", "Amazon EC2 3.1", [entity("Amazon EC2 3.1", "3.1", "VERSION", 0.3)], minutes=5)
    nothing = pending("v1-nothing", "No entities here.", [], minutes=1)
    broken = PendingLoop("v1-broken", {"text": 5}, START, "arn:flow")

    entries = order_queue([queue_entry(loop) for loop in (broken, sure, nothing, unsure)])

    assert [e["name"] for e in entries] == ["v1-unsure", "v1-sure", "v1-nothing", "v1-broken"]
    assert entries[0]["spans"] == 1 and entries[0]["preview"] == "Amazon EC2 3.1"
    assert "input is not an entity review" in entries[-1]["problem"]


def test_a_loop_whose_input_is_not_an_entity_review_cannot_be_opened():
    with pytest.raises(ReviewError) as raised:
        read_input(PendingLoop("v1-broken", {"text": "x"}, START, "arn:flow"))
    assert raised.value.status == 422 and "labels" in raised.value.message


def test_an_answer_is_written_in_text_order_with_code_point_offsets():
    content = read_input(LOOP)
    tokyo = TEXT.index("東京")
    answer = {"entities": [{"label": "SERVICE", "startOffset": tokyo + 4, "endOffset": tokyo + 13, "extra": 1},
                           {"label": "VERSION", "startOffset": tokyo, "endOffset": tokyo + 2}]}

    assert check_answer(content, answer) == [
        {"label": "VERSION", "startOffset": tokyo, "endOffset": tokyo + 2},
        {"label": "SERVICE", "startOffset": tokyo + 4, "endOffset": tokyo + 13},
    ]
    assert TEXT[tokyo + 4:tokyo + 13] == "Amazon S3"


def test_a_span_may_end_at_the_last_code_point():
    content = read_input(LOOP)
    end = len(TEXT) - 1  # before the full stop; the text is longer in UTF-16 (the emoji counts twice)
    start = end - len("Zürich")

    assert check_answer(content, {"entities": [{"label": "SERVICE", "startOffset": start, "endOffset": end}]})


@pytest.mark.parametrize(("answer", "problem"), [
    ([], "JSON object"),
    ({"entities": {}}, "JSON object"),
    ({"entities": [{"label": "SERVICE", "startOffset": 0}]}, "integer startOffset and endOffset"),
    ({"entities": [{"label": "SERVICE", "startOffset": "0", "endOffset": 4}]}, "integer startOffset"),
    ({"entities": [{"label": "SERVICE", "startOffset": 0.0, "endOffset": 4}]}, "integer startOffset"),
    ({"entities": [{"label": "PLACE", "startOffset": 0, "endOffset": 4}]}, "unknown label; the labels are SERVICE"),
    ({"entities": [{"label": "SERVICE", "startOffset": 4, "endOffset": 0}]}, "0 <= start < end"),
    ({"entities": [{"label": "SERVICE", "startOffset": 3, "endOffset": 3}]}, "0 <= start < end"),
    ({"entities": [{"label": "SERVICE", "startOffset": -1, "endOffset": 3}]}, "0 <= start < end"),
    ({"entities": [{"label": "SERVICE", "startOffset": 40, "endOffset": len(TEXT) + 1}]}, f"<= {len(TEXT)} (the"),
    ({"entities": [{"label": "SERVICE", "startOffset": 4, "endOffset": 5}]}, "only white space"),
    ({"entities": [{"label": "SERVICE", "startOffset": 0, "endOffset": 4},
                   {"label": "VERSION", "startOffset": 2, "endOffset": 6}]}, "SERVICE 0..4 and VERSION 2..6 overlap"),
])
def test_a_bad_answer_is_refused_naming_the_problem(answer: Any, problem: str):
    with pytest.raises(ReviewError) as raised:
        check_answer(read_input(LOOP), answer)
    assert raised.value.status == 400 and problem in raised.value.message


@pytest.mark.parametrize(("body", "seconds"), [({}, 0.0), ({"seconds": 12}, 12.0), ({"seconds": 1.23456}, 1.235)])
def test_the_time_spent_is_taken_from_the_answer(body: dict[str, Any], seconds: float):
    assert seconds_spent(body) == seconds


@pytest.mark.parametrize("value", [-1, "10", True, 1e9])
def test_an_unbelievable_time_spent_is_refused(value: Any):
    with pytest.raises(ReviewError) as raised:
        seconds_spent({"seconds": value})
    assert raised.value.status == 400


def test_the_page_status_keeps_the_review_counts_and_the_latest_version():
    versions = [{"version": "v1", "status": "TRAINED", "f1": 0.8, "active": True, "per_type": {}},
                {"version": "v2", "status": "TRAINING", "f1": None, "active": False, "per_type": {}}]
    reviews = {"merged": 3, "toward_next_retrain": 1, "retrain_batch_size": 2, "loops_waiting": 4}
    status = {"reviews": reviews, "active": {"version": "v1", "f1": 0.8}, "versions": versions,
              "in_flight": {"trainings": [{"version": "v2", "status": "TRAINING"}]}, "pool": {"total": 9},
              "events_pending": {"MergeFunction": 1}, "dead_letters": {"MergeFunction": [{}, {}]}}

    shown = page_status(status)

    assert shown["reviews"] == reviews and shown["versions"] == 2
    assert shown["latest"] == {"version": "v2", "status": "TRAINING", "f1": None, "active": False}
    assert shown["working"] is True and shown["dead_letters"] == 2
    assert shown["trainings"] == [{"version": "v2", "status": "TRAINING"}]
