"""Cutting raw lines into documents Comprehend accepts, and naming batches."""

from __future__ import annotations

from nerloop.constants import MAX_DOCUMENT_BYTES
from nerloop.documents import utf8_size
from nerloop.labeling import JOB_NAME, labeling_job_name
from nerloop.stages.preprocess import batch_name, split_document


def sentence(word: str, words: int) -> str:
    return " ".join([word.capitalize()] + [word] * (words - 1)) + "."


def test_a_line_that_fits_is_one_document_stripped() -> None:
    assert split_document("  Amazon S3 adds a feature. It is new.\t").documents == [
        "Amazon S3 adds a feature. It is new."
    ]


def test_a_blank_line_gives_nothing() -> None:
    result = split_document(" \t ")
    assert result.documents == [] and result.too_long == []


def test_a_long_line_is_cut_at_sentence_boundaries_into_documents_that_fit() -> None:
    sentences = [sentence(f"word{i}", 150) for i in range(12)]  # ~1,000 bytes each
    line = " ".join(sentences)
    assert utf8_size(line) > MAX_DOCUMENT_BYTES

    result = split_document(line)

    assert len(result.documents) > 1 and result.too_long == []
    assert all(utf8_size(doc) <= MAX_DOCUMENT_BYTES for doc in result.documents)
    assert " ".join(result.documents) == line  # nothing lost, every cut between two sentences
    assert all(doc.endswith(".") for doc in result.documents)


def test_pieces_keep_the_original_spacing_inside_them() -> None:
    line = "First one.  Second  one. " + sentence("third", 30)
    result = split_document(line, max_bytes=40)
    assert result.documents[0] == "First one.  Second  one."


def test_the_limit_counts_utf8_bytes_not_characters() -> None:
    # Each sentence has ~1,500 characters but ~2,700 bytes: two fit by characters, not by bytes.
    first, second = sentence("a" + "é" * 8, 150), sentence("b" + "ü" * 8, 150)
    assert len(first + " " + second) < MAX_DOCUMENT_BYTES < utf8_size(first + " " + second)

    result = split_document(first + " " + second)

    assert result.documents == [first, second]


def test_a_sentence_too_long_to_be_a_document_is_reported_and_the_rest_kept() -> None:
    huge = sentence("x" * 20, 300)  # one sentence of ~6,300 bytes
    line = f"Before it. {huge} After it."
    result = split_document(line)
    assert result.too_long == [utf8_size(huge)]
    assert result.documents == ["Before it.", "After it."]


def test_an_unsplittable_line_is_rejected_whole() -> None:
    line = "no sentence boundary here " * 300  # lower case after every full stop there is none
    result = split_document(line)
    assert result.documents == [] and result.too_long == [utf8_size(line.strip())]


def test_a_reupload_with_new_content_is_a_new_batch_and_the_same_upload_the_same_batch() -> None:
    assert batch_name("raw/offers.txt", "abc") == batch_name("raw/offers.txt", '"abc"')
    assert batch_name("raw/offers.txt", "abc") != batch_name("raw/offers.txt", "def")
    assert batch_name("raw/offers.txt", "abc").startswith("offers-")


def test_batch_and_job_names_stay_valid_for_odd_keys() -> None:
    for key in ("raw/Ünïcode Näme (copy).txt", "raw/" + "very-long-name" * 10 + ".txt", "raw/.txt"):
        name = labeling_job_name("nerloop", batch_name(key, "etag"))
        assert name.startswith("nerloop-") and len(name) <= 63 and JOB_NAME.match(name), name
