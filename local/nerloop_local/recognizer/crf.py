"""The local stand-in for an Amazon Comprehend custom entity recognizer: a linear-chain CRF
(python-crfsuite) over BIO token tags, with Comprehend's evaluation metrics and hold-out split.

    recognizer = train_recognizer(documents, ["SERVICE", "VERSION"])
    recognizer.detect("Amazon Sumerian now supports ...")  # [DetectedEntity(begin, end, score, text, type)]
    recognizer.save(path); CrfRecognizer.load(path)
    model, metrics = train_with_holdout(documents, ["SERVICE", "VERSION"])  # Comprehend's 10 % hold-out

Offsets are code points (Python `str` indices), as in Ground Truth and Comprehend.
"""

from __future__ import annotations

import io
import json
import os
import random
import tempfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pycrfsuite

from nerloop.comprehend_output import DetectedEntity
from nerloop.documents import Span, normalize_text, trim_span
from nerloop.errors import NerloopError
from nerloop_local.recognizer.features import OUTSIDE, Token, bio_tags, sequence_features, tokenize

Document = tuple[str, Sequence[Span]]

FORMAT = "nerloop-crf/1"
_MODEL_ENTRY = "model.crfsuite"
_META_ENTRY = "recognizer.json"
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so that saving the same model twice gives the same bytes

# L-BFGS with elastic-net regularisation. Measured on the sample's grouped hold-out, c1 0.05 / c2 0.05
# and 50 iterations score as well as 100 or 300 (10 grouped splits), and train 180 documents in 0.4 s.
DEFAULT_PARAMS: dict[str, Any] = {
    "c1": 0.05,
    "c2": 0.05,
    "max_iterations": 50,
    "feature.possible_transitions": True,
}


class InvalidTrainingData(NerloopError):
    """The documents cannot train a recognizer; the message names the document and the reason."""


class CrfRecognizer:
    """A trained CRF model and what Comprehend's metadata needs to know about its training.

    Not thread-safe: one CRFsuite tagger is shared by the calls to `detect`.
    """

    def __init__(self, model: bytes, metadata: Mapping[str, Any]) -> None:
        self._model = model
        self.metadata = dict(metadata)
        self._tagger = pycrfsuite.Tagger()
        self._tagger.open_inmemory(model)
        self._labels = frozenset(self._tagger.labels())

    @property
    def entity_types(self) -> list[str]:
        return list(self.metadata["entity_types"])

    @property
    def trained_documents(self) -> int:
        return int(self.metadata["trained_documents"])

    @property
    def train_mentions(self) -> dict[str, int]:
        return dict(self.metadata["train_mentions"])

    def detect(self, text: str) -> list[DetectedEntity]:
        """Entities in `text`, in order, each with a confidence score in [0, 1].

        The score is the smallest of the marginal probabilities of the tags that make the entity:
        the predicted tag of each of its tokens, and "not a continuation of this entity" for the
        token after it. The probability that the whole span is right can be no higher than any of
        these, so the minimum is an upper bound of it; it stays low when a single token or the
        boundary is in doubt, which is what routing to human review needs. (A geometric mean
        would let several confident tokens hide one uncertain token.)
        """
        tokens = tokenize(text)
        if not tokens:
            return []
        tagger = self._tagger
        tags = tagger.tag(sequence_features(tokens))
        entities: list[DetectedEntity] = []
        for first, last, type_ in _entity_runs(tags):
            score = min(tagger.marginal(tags[i], i) for i in range(first, last + 1))
            continuation = "I-" + type_
            if last + 1 < len(tokens) and continuation in self._labels:
                score = min(score, 1.0 - tagger.marginal(continuation, last + 1))
            begin, end = tokens[first].begin, tokens[last].end
            entities.append(DetectedEntity(begin=begin, end=end, score=_unit(score), text=text[begin:end],
                                           type=type_))
        return entities

    def save(self, path: str | Path) -> Path:
        """Write the recognizer to one file (a zip of the CRFsuite model and its metadata), atomically."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        meta = json.dumps(self.metadata, sort_keys=True, indent=1)
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in ((_MODEL_ENTRY, self._model), (_META_ENTRY, meta.encode("utf-8"))):
                archive.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED)
        partial = target.with_name(target.name + ".partial")
        partial.write_bytes(buffer.getvalue())
        os.replace(partial, target)
        return target

    @classmethod
    def load(cls, path: str | Path) -> CrfRecognizer:
        """Read a recognizer written by `save`."""
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read(_META_ENTRY))
            model = archive.read(_MODEL_ENTRY)
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} recognizer (format {metadata.get('format')!r})")
        return cls(model, metadata)


def _unit(value: float) -> float:
    return min(1.0, max(0.0, float(value)))


def _entity_runs(tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first token, last token, type) of each entity in a BIO tag sequence.

    An I- tag that does not continue an entity of its type starts one (Viterbi rarely does that).
    """
    runs: list[tuple[int, int, str]] = []
    for i, tag in enumerate(tags):
        if tag == OUTSIDE:
            continue
        type_ = tag[2:]
        if tag.startswith("I-") and runs and runs[-1][1] == i - 1 and runs[-1][2] == type_:
            runs[-1] = (runs[-1][0], i, type_)
        else:
            runs.append((i, i, type_))
    return runs


def clean_spans(text: str, spans: Sequence[Span], entity_types: Sequence[str], where: str) -> list[Span]:
    """`spans` trimmed of edge white space, sorted; InvalidTrainingData when one cannot be trained on."""
    known = set(entity_types)
    cleaned: list[Span] = []
    for span in sorted(spans):
        if span.type not in known:
            raise InvalidTrainingData(f"{where}: entity type {span.type!r} is not one of {sorted(known)}")
        if not 0 <= span.begin < span.end <= len(text):
            raise InvalidTrainingData(
                f"{where}: span {span.begin}-{span.end} is outside the text of {len(text)} characters"
            )
        trimmed = trim_span(text, span)
        if trimmed is None:
            raise InvalidTrainingData(f"{where}: span {span.begin}-{span.end} holds only white space")
        if cleaned and trimmed.begin < cleaned[-1].end:
            raise InvalidTrainingData(
                f"{where}: span {span.begin}-{span.end} overlaps {cleaned[-1].begin}-{cleaned[-1].end}"
            )
        cleaned.append(trimmed)
    return cleaned


def train_recognizer(
    documents: Sequence[Document],
    entity_types: Sequence[str],
    *,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> CrfRecognizer:
    """Train a CRF on (text, spans) documents; spans are code-point offsets of the given types.

    Spans are trimmed of edge white space; a span edge inside a token cuts the token, so no gold
    span is lost. Training is deterministic: L-BFGS has no randomness and the documents are used in
    the order given; `seed` is recorded with the model (the hold-out split is what it drives).
    Raises InvalidTrainingData for an empty set, unknown types, spans out of range or overlapping.
    """
    if not documents:
        raise InvalidTrainingData("no documents to train on")
    if not entity_types:
        raise InvalidTrainingData("no entity types given")
    trainer = pycrfsuite.Trainer(verbose=False)
    trainer.set_params({**DEFAULT_PARAMS, **(params or {})})
    mentions: Counter[str] = Counter()
    for number, (text, spans) in enumerate(documents):
        cleaned = clean_spans(text, spans, entity_types, f"document {number}")
        mentions.update(span.type for span in cleaned)
        tokens, tags = bio_tags(text, cleaned)
        if tokens:
            trainer.append(sequence_features(tokens), tags)
    with tempfile.TemporaryDirectory(prefix="nerloop-crf-") as workdir:
        model_path = os.path.join(workdir, _MODEL_ENTRY)
        trainer.train(model_path)
        model = Path(model_path).read_bytes()
    metadata = {
        "format": FORMAT,
        "entity_types": list(entity_types),
        "trained_documents": len(documents),
        "train_mentions": {name: mentions.get(name, 0) for name in entity_types},
        "params": {**DEFAULT_PARAMS, **(params or {})},
        "seed": seed,
    }
    return CrfRecognizer(model, metadata)


@dataclass(frozen=True)
class Counts:
    """Exact-match counts (same begin, end and type) and the scores derived from them, in [0, 1]."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    @property
    def precision(self) -> float:
        predicted = self.true_positives + self.false_positives
        return self.true_positives / predicted if predicted else 0.0

    @property
    def recall(self) -> float:
        gold = self.true_positives + self.false_negatives
        return self.true_positives / gold if gold else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_comprehend(self) -> dict[str, float]:
        """Comprehend's EvaluationMetrics: percentages (0-100) for plain-text recognizers."""
        return {
            "Precision": round(100 * self.precision, 2),
            "Recall": round(100 * self.recall, 2),
            "F1Score": round(100 * self.f1, 2),
        }


@dataclass(frozen=True)
class Metrics:
    """Micro-averaged exact span-and-type scores over a test set, overall and per entity type."""

    overall: Counts
    by_type: dict[str, Counts] = field(default_factory=dict)
    documents: int = 0

    @property
    def precision(self) -> float:
        return self.overall.precision

    @property
    def recall(self) -> float:
        return self.overall.recall

    @property
    def f1(self) -> float:
        return self.overall.f1

    def to_comprehend_metadata(
        self, trained_documents: int, train_mentions: Mapping[str, int]
    ) -> dict[str, Any]:
        """The shape of DescribeEntityRecognizer's RecognizerMetadata.

        The plain-text service reports Precision, Recall and F1Score as percentages (0-100), overall
        and per type (API reference, EntityRecognizerEvaluationMetrics; the CLI's
        describe-entity-recognizer example shows 100.0 at both levels).
        """
        types = list(dict.fromkeys([*train_mentions, *self.by_type]))
        return {
            "NumberOfTrainedDocuments": trained_documents,
            "NumberOfTestDocuments": self.documents,
            "EvaluationMetrics": self.overall.as_comprehend(),
            "EntityTypes": [
                {
                    "Type": name,
                    "EvaluationMetrics": self.by_type.get(name, Counts()).as_comprehend(),
                    "NumberOfTrainMentions": int(train_mentions.get(name, 0)),
                }
                for name in types
            ],
        }


class Detector(Protocol):
    """What `evaluate` needs of a recognizer."""

    @property
    def entity_types(self) -> list[str]: ...

    def detect(self, text: str) -> list[DetectedEntity]: ...


def evaluate(recognizer: Detector, documents: Sequence[Document]) -> Metrics:
    """Score `recognizer` on gold documents: a prediction counts only if begin, end and type all match
    a gold span (gold spans trimmed of edge white space first, as for training)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for text, spans in documents:
        gold = gold_spans(text, spans)
        predicted = {entity.to_span() for entity in recognizer.detect(text)}
        for span in predicted & gold:
            tp[span.type] += 1
        for span in predicted - gold:
            fp[span.type] += 1
        for span in gold - predicted:
            fn[span.type] += 1
    types = list(dict.fromkeys([*recognizer.entity_types, *sorted(tp | fp | fn)]))
    by_type = {name: Counts(tp[name], fp[name], fn[name]) for name in types}
    overall = Counts(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return Metrics(overall=overall, by_type=by_type, documents=len(documents))


def gold_spans(text: str, spans: Sequence[Span]) -> set[Span]:
    """The spans a prediction must match exactly: trimmed of edge white space, as for training."""
    return {trimmed for span in spans if (trimmed := trim_span(text, span)) is not None}


@dataclass(frozen=True)
class ScoredPrediction:
    """One predicted entity on a labelled document: its confidence, and whether it was right."""

    doc: int  # the document's index in the list scored
    score: float
    correct: bool
    type: str


def scored_predictions(recognizer: Detector, documents: Sequence[Document]) -> list[ScoredPrediction]:
    """Every entity `recognizer` predicts on `documents`, with its score and whether begin, end and
    type match a gold span: what calibration and threshold choices are measured on."""
    out = []
    for index, (text, spans) in enumerate(documents):
        gold = gold_spans(text, spans)
        for entity in recognizer.detect(text):
            out.append(ScoredPrediction(index, round(entity.score, 4), entity.to_span() in gold, entity.type))
    return out


def grouped_split(
    documents: Sequence[Document], *, test_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Document], list[Document]]:
    """(train, test): about `test_fraction` of the documents held out, whole groups of documents with
    the same normalised, case-folded text on one side only, so a repeated sentence is never scored
    on a copy of itself. The same seed gives the same split; document order is kept on each side.
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, (text, _spans) in enumerate(documents):
        groups[normalize_text(text).casefold()].append(index)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)  # nosec B311 # a reproducible split, not a secret
    target = max(1, round(test_fraction * len(documents)))
    held: set[int] = set()
    for key in keys:
        if len(held) >= target:
            break
        if len(held) + len(groups[key]) <= target:
            held.update(groups[key])
    if not held or len(held) == len(documents):
        raise InvalidTrainingData(
            f"{len(documents)} documents in {len(groups)} distinct texts cannot be "
            "split into a training and a test part"
        )
    train = [doc for index, doc in enumerate(documents) if index not in held]
    test = [doc for index, doc in enumerate(documents) if index in held]
    return train, test


class HoldoutResult(NamedTuple):
    """What `train_with_holdout` gives: the model trained on the training part, and its test scores."""

    recognizer: CrfRecognizer
    metrics: Metrics

    def to_comprehend_metadata(self) -> dict[str, Any]:
        return self.metrics.to_comprehend_metadata(
            self.recognizer.trained_documents, self.recognizer.train_mentions
        )


def train_with_holdout(
    documents: Sequence[Document],
    entity_types: Sequence[str],
    *,
    test_fraction: float = 0.1,
    seed: int = 0,
    params: Mapping[str, Any] | None = None,
) -> HoldoutResult:
    """Like Comprehend given no test set: hold out `test_fraction` (grouped by text, see
    `grouped_split`), train on the rest, and score the model on the held-out part."""
    train, test = grouped_split(documents, test_fraction=test_fraction, seed=seed)
    recognizer = train_recognizer(train, entity_types, seed=seed, params=params)
    return HoldoutResult(recognizer, evaluate(recognizer, test))


__all__ = [
    "DEFAULT_PARAMS",
    "Counts",
    "CrfRecognizer",
    "DetectedEntity",
    "Detector",
    "Document",
    "HoldoutResult",
    "InvalidTrainingData",
    "Metrics",
    "ScoredPrediction",
    "Token",
    "clean_spans",
    "evaluate",
    "gold_spans",
    "grouped_split",
    "scored_predictions",
    "train_recognizer",
    "train_with_holdout",
]
