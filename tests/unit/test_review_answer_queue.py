"""The review page's answer queue (nerloop_local.review.answers): in order, once per loop and worker,
journaled until the workspace holding them is saved, and read back after a stop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nerloop_local.review.answers import AnswerQueue, TakenAnswer


def taken(loop: str, worker: str = "ana") -> TakenAnswer:
    return TakenAnswer(loop, worker, [{"label": "SERVICE", "startOffset": 0, "endOffset": 6}], 2.5)


def test_answers_come_out_in_the_order_taken_once(tmp_path: Path) -> None:
    queue = AnswerQueue(tmp_path / "journal.jsonl")
    for loop in ("b", "a", "c"):
        assert queue.take(taken(loop))

    assert [answer.loop for answer in queue.pop_all()] == ["b", "a", "c"]
    assert queue.pop_all() == [] and queue.waiting() == 0


def test_a_worker_s_second_answer_to_a_loop_is_refused_even_after_it_was_handed_over(tmp_path: Path) -> None:
    queue = AnswerQueue(tmp_path / "journal.jsonl")
    assert queue.take(taken("a"))
    queue.pop_all()

    assert queue.take(taken("a")) is False
    assert queue.take(taken("a", worker="ben")) is True  # another worker of the same loop (TaskCount > 1)
    assert queue.taken("a", "ana") and queue.taken("a", "ben") and not queue.taken("a", "cy")


def test_the_journal_keeps_every_answer_until_saved_then_only_those_still_waiting(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    queue = AnswerQueue(journal)
    queue.take(taken("a"))
    queue.take(taken("b"))
    queue.pop_all()  # handed over, not yet saved
    queue.take(taken("c"))
    assert [json.loads(line)["loop"] for line in journal.read_text().splitlines()] == ["a", "b", "c"]

    queue.saved()

    assert [json.loads(line)["loop"] for line in journal.read_text().splitlines()] == ["c"]


def test_a_new_queue_reads_back_the_answers_of_a_run_that_stopped_before_its_save(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    first = AnswerQueue(journal)
    first.take(taken("a"))
    first.take(taken("b"))
    first.pop_all()  # handed to A2I, then the process died before the workspace was saved

    second = AnswerQueue(journal)

    assert second.replay() == 2
    assert second.pop_all() == [taken("a"), taken("b")]
    assert second.take(taken("a")) is False


def test_a_last_line_cut_short_by_a_crash_is_left_out_and_another_bad_line_is_an_error(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    AnswerQueue(journal).take(taken("a"))
    with journal.open("a", encoding="utf-8") as handle:
        handle.write('{"loop": "b", "wor')

    assert AnswerQueue(journal).replay() == 1

    journal.write_text('not json\n' + json.dumps({"loop": "a", "worker": "w", "entities": [], "seconds": 1}) + "\n")
    with pytest.raises(ValueError, match=r"journal.jsonl:1: not a taken answer"):
        AnswerQueue(journal).replay()


def test_without_a_journal_the_queue_is_kept_in_memory() -> None:
    queue = AnswerQueue()
    queue.take(taken("a"))
    queue.saved()

    assert queue.replay() == 0 and queue.waiting() == 1
