"""The demo's split is honest and its simulated reviewer answers from the held-back labels."""

from __future__ import annotations

import json
from collections import Counter

from nerloop.constants import MIN_ANNOTATIONS_PER_TYPE, MIN_CORPUS_BYTES
from nerloop.documents import Span, normalize_text
from nerloop_local.commands.demo_data import GoldOracle, split_for_demo

ATTRIBUTE = "a2i-comprehend-gtner7c0bf6de-b5a1-11ea-bf5f-12acee018271"


def sample_documents(sample_dir) -> list[tuple[str, list[Span]]]:
    documents = []
    for line in (sample_dir / "output.manifest").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        spans = [Span(e["startOffset"], e["endOffset"], e["label"])
                 for e in record[ATTRIBUTE]["annotations"]["entities"]]
        documents.append((record["source"], spans))
    return documents


def test_no_sentence_sits_on_both_sides_of_the_split(sample_dir):
    split = split_for_demo(sample_documents(sample_dir), ["SERVICE", "VERSION"], seed=3)
    key = lambda text: normalize_text(text).casefold()  # noqa: E731
    test = {key(text) for text, _ in split.test}
    train = {key(text) for text, _ in [*split.seed, *split.pool]}
    assert test and train and not test & train
    # The sentence the sample repeats 32 times is too big a group for a quarter-sized test set
    repeated, _ = Counter(key(text) for text, _ in sample_documents(sample_dir)).most_common(1)[0]
    assert repeated in train


def test_the_seed_meets_comprehends_minimums(sample_dir):
    split = split_for_demo(sample_documents(sample_dir), ["SERVICE", "VERSION"], seed=1)
    counts = Counter(span.type for _, spans in split.seed for span in spans)
    assert min(counts["SERVICE"], counts["VERSION"]) >= MIN_ANNOTATIONS_PER_TYPE
    assert sum(len(text.encode()) + 1 for text, _ in split.seed) >= MIN_CORPUS_BYTES


def test_the_oracle_moves_a_lines_spans_into_a_sentence_cut_from_it():
    line = "Amazon S3 adds a class. AWS Lambda 2.0 ships."
    oracle = GoldOracle([(line, [Span(0, 9, "SERVICE"), Span(24, 34, "SERVICE"), Span(35, 38, "VERSION")])])
    assert oracle.labels_for("AWS Lambda 2.0 ships.") == [Span(0, 10, "SERVICE"), Span(11, 14, "VERSION")]
    assert oracle.labels_for("Not in the pool.") is None
    assert (oracle.answered, oracle.unknown) == (1, 1)


def test_a_manifest_too_small_for_a_seed_says_what_is_short():
    import pytest

    documents = [(f"Amazon S{i} 1.{i}", [Span(0, 6 + len(str(i)) + 1, "SERVICE")]) for i in range(30)]
    with pytest.raises(ValueError, match=r"0 VERSION annotations .*; [\d,]+ bytes of text \(at least 5,120"):
        split_for_demo(documents, ["SERVICE", "VERSION"], test_fraction=0.1)


def test_with_the_loops_test_set_the_seed_meets_the_minimums_on_its_training_side(sample_dir):
    from nerloop.documents import document_hash
    from nerloop.test_set import is_test_document

    for seed in range(5):
        split = split_for_demo(sample_documents(sample_dir), ["SERVICE", "VERSION"], seed=seed,
                               loop_test_share=0.2, loop_test_minimum=10)
        held = [(text, spans) for text, spans in split.seed if is_test_document(document_hash(text), 0.2)]
        trained = [(text, spans) for text, spans in split.seed if (text, spans) not in held]
        counts = Counter(span.type for _, spans in trained for span in spans)
        assert min(counts["SERVICE"], counts["VERSION"]) >= MIN_ANNOTATIONS_PER_TYPE, seed
        assert sum(len(text.encode()) + 1 for text, _ in trained) >= MIN_CORPUS_BYTES, seed
        # and the loop's test set is usable from its first version on
        assert len(held) >= 10 and {span.type for _, spans in held for span in spans} == {"SERVICE", "VERSION"}
