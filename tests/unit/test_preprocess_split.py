"""Cutting raw lines into documents (one per sentence) that Comprehend accepts, and naming batches."""

from __future__ import annotations

from nerloop.constants import MAX_DOCUMENT_BYTES
from nerloop.documents import utf8_size
from nerloop.labeling import JOB_NAME, labeling_job_name
from nerloop.stages.preprocess import batch_name, split_document


def sentence(word: str, words: int) -> str:
    return " ".join([word.capitalize()] + [word] * (words - 1)) + "."


def test_each_sentence_of_a_line_is_one_document_stripped() -> None:
    result = split_document("  Amazon S3 adds a feature. It is new!\tIs it? Yes.\n")
    assert result.documents == ["Amazon S3 adds a feature.", "It is new!", "Is it?", "Yes."]
    assert result.too_long == []


def test_a_line_of_one_sentence_is_one_document() -> None:
    assert split_document("AWS X-Ray Supports Analytics").documents == ["AWS X-Ray Supports Analytics"]


def test_a_blank_line_gives_nothing() -> None:
    result = split_document(" \t ")
    assert result.documents == [] and result.too_long == []


def test_a_full_stop_before_a_lower_case_word_is_no_boundary() -> None:
    line = "Costs fall, e.g. for storage. Regions grow."
    assert split_document(line).documents == ["Costs fall, e.g. for storage.", "Regions grow."]


def test_a_document_keeps_the_white_space_inside_it_as_written() -> None:
    # split_sentences glues "e.g.\t\tfor" back with one space; the document is the line's own text.
    line = "Costs  fall, e.g.\t\tfor storage.   Regions grow."
    assert split_document(line).documents == ["Costs  fall, e.g.\t\tfor storage.", "Regions grow."]


def test_a_long_line_of_short_sentences_is_all_kept() -> None:
    sentences = [sentence(f"word{i}", 150) for i in range(12)]  # ~1,000 bytes each
    line = " ".join(sentences)
    assert utf8_size(line) > MAX_DOCUMENT_BYTES

    result = split_document(line)

    assert result.documents == sentences and result.too_long == []


def test_the_limit_counts_utf8_bytes_not_characters() -> None:
    # ~1,500 characters but ~2,700 bytes: fits by characters, not by bytes, against a 2,000 limit.
    wide = sentence("a" + "é" * 8, 150)
    assert len(wide) < 2000 < utf8_size(wide)

    result = split_document(f"Short one. {wide}", max_bytes=2000)

    assert result.documents == ["Short one."] and result.too_long == [wide]


def test_a_sentence_of_exactly_the_limit_is_a_document() -> None:
    exact = "A" + "b" * (MAX_DOCUMENT_BYTES - 2) + "."
    assert utf8_size(exact) == MAX_DOCUMENT_BYTES
    assert split_document(f"{exact} Next.").documents == [exact, "Next."]


def test_a_sentence_too_long_to_be_a_document_is_reported_and_the_rest_kept() -> None:
    huge = sentence("x" * 20, 300)  # one sentence of ~6,300 bytes
    result = split_document(f"Before it. {huge} After it.")
    assert result.too_long == [huge]
    assert result.documents == ["Before it.", "After it."]


def test_a_line_without_a_boundary_over_the_limit_is_rejected_whole() -> None:
    line = "no sentence boundary here " * 300  # ~7,800 bytes and no full stop at all
    result = split_document(line)
    assert result.documents == [] and result.too_long == [line.strip()]


def test_a_reupload_with_new_content_is_a_new_batch_and_the_same_upload_the_same_batch() -> None:
    assert batch_name("raw/offers.txt", "abc") == batch_name("raw/offers.txt", '"abc"')
    assert batch_name("raw/offers.txt", "abc") != batch_name("raw/offers.txt", "def")
    assert batch_name("raw/offers.txt", "abc").startswith("offers-")


def test_batch_and_job_names_stay_valid_for_odd_keys() -> None:
    for key in ("raw/Ünïcode Näme (copy).txt", "raw/" + "very-long-name" * 10 + ".txt", "raw/.txt"):
        name = labeling_job_name("nerloop", batch_name(key, "etag"))
        assert name.startswith("nerloop-") and len(name) <= 63 and JOB_NAME.match(name), name
