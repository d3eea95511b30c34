"""The demo's data: a labelled manifest split into a test set, a small labelled seed and an
unlabelled pool, and a simulated reviewer that answers human loops from the held-back labels.

The split is honest: documents are grouped by normalised text (case folded), so a sentence never
sits on both sides of it, and the reviewer knows only the pool's labels, never the test set's.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from nerloop.constants import MIN_ANNOTATIONS_PER_TYPE, MIN_CORPUS_BYTES
from nerloop.documents import Span, document_hash, normalize_text
from nerloop.test_set import is_test_document

Labelled = tuple[str, list[Span]]


@dataclass
class DemoSplit:
    test: list[Labelled]
    seed: list[Labelled]
    pool: list[Labelled]  # whole manifest lines; the loop sees them as raw text, without labels


def _group_key(text: str) -> str:
    return normalize_text(text).casefold()


def split_for_demo(
    documents: Sequence[Labelled],
    entity_types: Sequence[str],
    *,
    test_fraction: float = 0.25,
    seed_margin: int = 5,
    seed: int = 0,
    loop_test_share: float = 0.0,
    loop_test_minimum: int = 0,
) -> DemoSplit:
    """Group duplicates, hold out `test_fraction` of the groups, then draw the smallest random seed
    that meets Comprehend's minimums (25 annotations per type plus `seed_margin`, a 5 KB corpus) on the
    side the loop trains on, and, with `loop_test_share`, gives the loop's own stable test set
    (nerloop.test_set: the documents hashing below the share) `loop_test_minimum` documents and an
    annotation of each type; the rest is the pool."""
    groups: dict[str, list[Labelled]] = {}
    for text, spans in documents:
        groups.setdefault(_group_key(text), []).append((text, list(spans)))
    keys = sorted(groups)
    rng = random.Random(seed)  # nosec B311 # a repeatable split, not a secret
    rng.shuffle(keys)
    test, train_keys = _hold_out_test(groups, keys, round(len(documents) * test_fraction))
    seed_docs, pool = _draw_seed([groups[key][0] for key in train_keys], entity_types, seed_margin=seed_margin,
                                 loop_test_share=loop_test_share, loop_test_minimum=loop_test_minimum)
    return DemoSplit(test=test, seed=seed_docs, pool=pool)


def _hold_out_test(groups: dict[str, list[Labelled]], keys: Sequence[str],
                   test_target: int) -> tuple[list[Labelled], list[str]]:
    """The test set (a document per group, up to `test_target` documents counting duplicates), and the
    keys of the groups left to train on."""
    test: list[Labelled] = []
    train_keys: list[str] = []
    for key in keys:
        # A group joins the test set only while it fits: the 32-fold repeated sentence stays out.
        if len(test) + len(groups[key]) <= test_target:
            test.append(groups[key][0])
        else:
            train_keys.append(key)
    return test, train_keys


def _draw_seed(candidates: Sequence[Labelled], entity_types: Sequence[str], *, seed_margin: int,
               loop_test_share: float, loop_test_minimum: int) -> tuple[list[Labelled], list[Labelled]]:
    """The labelled seed and the pool, from the training side's documents in order (duplicates
    collapse into one gold document anyway, so each group gives one); ValueError when the seed cannot
    meet Comprehend's minimums."""
    seed_docs: list[Labelled] = []
    counts: Counter[str] = Counter()
    pool: list[Labelled] = []
    needed = MIN_ANNOTATIONS_PER_TYPE + seed_margin
    corpus = 0
    held_out = 0
    held_types: set[str] = set()
    for text, spans in candidates:
        if is_test_document(document_hash(text), loop_test_share):  # the loop will test on it, never train
            wanted = held_out < loop_test_minimum or not held_types >= set(entity_types)
            if wanted and spans:
                seed_docs.append((text, spans))
                held_out += 1
                held_types.update(span.type for span in spans)
            else:
                pool.append((text, spans))
            continue
        wanted = any(counts[name] < needed for name in entity_types) or corpus < MIN_CORPUS_BYTES * 1.1
        if wanted and spans:
            seed_docs.append((text, spans))
            counts.update(span.type for span in spans)
            corpus += len(text.encode("utf-8")) + 1
        else:
            pool.append((text, spans))
    problems = [f"{counts[name]} {name} annotations (at least {MIN_ANNOTATIONS_PER_TYPE} are needed)"
                for name in entity_types if counts[name] < MIN_ANNOTATIONS_PER_TYPE]
    if corpus < MIN_CORPUS_BYTES:
        problems.append(f"{corpus:,} bytes of text (at least {MIN_CORPUS_BYTES:,} are needed)")
    if problems:
        raise ValueError("the manifest's training side is too small for a Comprehend seed set: "
                         + "; ".join(problems))
    return seed_docs, pool


@dataclass
class GoldOracle:
    """Answers any document cut from the pool's lines with the labels people gave those lines.

    The loop splits raw lines into sentences, so a review request holds a sentence: the oracle finds
    the line containing it and moves the line's spans into the sentence's offsets.
    """

    lines: Sequence[Labelled]
    answered: int = 0
    unknown: int = 0
    _index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {}
        for position, (text, _) in enumerate(self.lines):
            self._index.setdefault(text, position)

    def labels_for(self, text: str) -> list[Span] | None:
        """The gold spans of `text`, or None when no pool line contains it."""
        position = self._index.get(text)
        offset = 0
        if position is None:
            for candidate, (line, _) in enumerate(self.lines):
                offset = line.find(text)
                if offset >= 0:
                    position = candidate
                    break
        if position is None:
            self.unknown += 1
            return None
        _, spans = self.lines[position]
        end = offset + len(text)
        self.answered += 1
        return [Span(span.begin - offset, span.end - offset, span.type)
                for span in spans if offset <= span.begin and span.end <= end]
