"""Comprehend training files and the minimum checks made before CreateEntityRecognizer."""

from __future__ import annotations

import csv
import io

import pytest

from nerloop.comprehend_training import (
    TrainingStats,
    check_training_minimums,
    entity_type_problem,
    write_training_files,
)
from nerloop.documents import Span
from nerloop.settings import SettingsError, load_settings


def test_training_files_are_one_document_per_line_with_zero_based_lines():
    docs, notes = io.StringIO(), io.StringIO()
    stats = write_training_files(
        [("Amazon S3\nis here", [Span(0, 9, "SERVICE")]), ("EC2 2.0", [Span(4, 7, "VERSION"), Span(0, 3, "SERVICE")])],
        docs, notes, documents_file_name="documents.txt",
    )
    assert docs.getvalue() == "Amazon S3 is here\nEC2 2.0\n"  # a line break inside a document becomes a space
    rows = list(csv.reader(io.StringIO(notes.getvalue())))
    assert rows == [["File", "Line", "Begin Offset", "End Offset", "Type"],
                    ["documents.txt", "0", "0", "9", "SERVICE"],
                    ["documents.txt", "1", "0", "3", "SERVICE"],
                    ["documents.txt", "1", "4", "7", "VERSION"]]
    assert stats.documents == 2 and stats.annotations == {"SERVICE": 2, "VERSION": 1}


def test_a_full_set_has_no_problems():
    stats = TrainingStats(documents=3, corpus_bytes=5 * 1024)
    stats.annotations.update({"SERVICE": 25, "VERSION": 40})
    assert check_training_minimums(stats, ["SERVICE", "VERSION"]) == []


def test_every_shortfall_is_named():
    stats = TrainingStats(documents=2, oversized_documents=[1])
    stats.annotations.update({"SERVICE": 24, "OTHER": 3})
    problems = check_training_minimums(stats, ["SERVICE", "VERSION", "BAD NAME"])
    assert "2 documents; at least 3 are needed" in problems
    assert "the documents total 0 bytes; Comprehend needs at least 5,120" in problems
    assert "SERVICE: 24 annotations; at least 25 are needed (1 short)" in problems
    assert "VERSION: 0 annotations; at least 25 are needed (25 short)" in problems
    assert any("'BAD NAME' is not a valid name" in p for p in problems)
    assert "annotations of types not in EntityTypes: OTHER" in problems
    assert any("1 documents over 5000 bytes (lines 1)" in p for p in problems)


# --- Comprehend's maxima (quotas page: 120,000 documents, a 100 MB corpus) -----------------------------------


def test_a_set_over_either_maximum_is_refused_naming_it():
    from nerloop.constants import MAX_CORPUS_BYTES, MAX_TRAINING_DOCUMENTS

    assert (MAX_TRAINING_DOCUMENTS, MAX_CORPUS_BYTES) == (120_000, 100_000_000)
    at_most = TrainingStats(documents=MAX_TRAINING_DOCUMENTS, corpus_bytes=MAX_CORPUS_BYTES)
    at_most.annotations.update({"SERVICE": 25})
    assert check_training_minimums(at_most, ["SERVICE"]) == []
    over = TrainingStats(documents=MAX_TRAINING_DOCUMENTS + 1, corpus_bytes=MAX_CORPUS_BYTES + 1)
    over.annotations.update({"SERVICE": 25})
    problems = check_training_minimums(over, ["SERVICE"])
    assert problems == ["120,001 documents; Comprehend trains on at most 120,000",
                        "the documents total 100,000,001 bytes; Comprehend takes at most 100,000,000"]


def test_a_gold_set_that_fits_is_taken_whole():
    from nerloop.snapshots import SnapshotLimits, choose_documents

    entries = [("a", "2026-01-01T00:00:00Z", 10), ("b", "2026-01-02T00:00:00Z", 10)]
    assert choose_documents(entries, SnapshotLimits(max_documents=2, max_corpus_bytes=20)) is None


def test_a_gold_set_over_the_document_maximum_keeps_the_newest():
    from nerloop.snapshots import SnapshotLimits, choose_documents

    entries = [("old", "2026-01-01T00:00:00Z", 10), ("new", "2026-03-01T00:00:00Z", 10),
               ("mid-b", "2026-02-01T00:00:00Z", 10), ("mid-a", "2026-02-01T00:00:00Z", 10)]
    # Newest first; the same time goes by the document hash (the higher first), so it is repeatable
    assert choose_documents(entries, SnapshotLimits(max_documents=3, max_corpus_bytes=10**9)) == {
        "new", "mid-b", "mid-a"}
    assert choose_documents(entries, SnapshotLimits(max_documents=2, max_corpus_bytes=10**9)) == {"new", "mid-b"}


def test_a_gold_set_over_the_corpus_maximum_keeps_the_newest_that_fit():
    from nerloop.snapshots import SnapshotLimits, choose_documents

    entries = [("old", "2026-01-01T00:00:00Z", 30), ("new", "2026-03-01T00:00:00Z", 40),
               ("mid", "2026-02-01T00:00:00Z", 50)]
    assert choose_documents(entries, SnapshotLimits(max_documents=10, max_corpus_bytes=100)) == {"new", "mid"}


@pytest.mark.parametrize(("name", "why"), [
    ("AWS SERVICE", "a space"), ("A,B", "a comma"), ("A\tB", "a tab"), ("A\nB", "a line break"),
    ("A\rB", "a carriage return"), ("A\\nB", "an escaped line break"), ("A\\tB", "an escaped tab"),
    ("X" * 65, "at most 64 characters"), ("", "cannot be empty"),
])
def test_a_type_name_comprehend_refuses_is_named_with_why(name: str, why: str) -> None:
    problem = entity_type_problem(name)
    assert problem is not None and why in problem


@pytest.mark.parametrize("name", ["SERVICE", "PRODUCT_CODE", "X" * 64, "Version-2"])
def test_a_type_name_comprehend_takes_has_no_problem(name: str) -> None:
    assert entity_type_problem(name) is None


def test_settings_refuse_an_escaped_tab_in_a_type_name() -> None:
    # Comprehend refuses the two characters "\\t" as well as a tab itself (EntityRecognizerInputDataConfig)
    with pytest.raises(SettingsError, match="an escaped tab"):
        load_settings({"STATE_TABLE": "t", "DATA_BUCKET": "b", "ENTITY_TYPES": "SERVICE,A\\tB",
                       "CONFIDENCE_THRESHOLD": "0.8", "RETRAIN_BATCH_SIZE": "1", "RETRAIN_MAX_WAIT_MINUTES": "0",
                       "REVIEW_BUDGET": "0", "RECOGNIZER_NAME": "n", "COMPREHEND_ROLE_ARN": "r",
                       "F1_TOLERANCE": "0", "VERSION_RETENTION": "1"})
