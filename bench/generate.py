"""Benchmark inputs made from the sample data, scaled up with varied text, deterministically.

Documents are recombined from the sample manifest's sentences (1 to 3 of them, from different lines,
in random order), and most entity mentions are replaced by another mention of the same type seen in
the sample (so names and positions vary and offsets are recomputed, not copied). Mentions keep their
original edges, white space included: the sample's quirk of spans that start or end on a space
(54 of 665) carries over at about the same rate. A seeded `random.Random` drives everything, so a
seed and a size always give the same bytes.

Outputs:
- `write_manifest`: a Ground Truth NER output manifest in the sample's exact shape (label attribute,
  `-metadata` with confidences, job name, type), with ~1 % of lines repeating an earlier document
  (half of them unlabelled, as in the sample) and ~0.05 % bad lines (invalid JSON, an offset past
  the text), so the repeat and quarantine paths run at scale too.
- `write_detection_output`: a detection job's input documents file and its output.tar.gz
  (one JSON record per document with scored entities).
- `iter_gold_items`, `iter_pool_items`: state-table items for set-ups.
"""

from __future__ import annotations

import io
import json
import random
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nerloop.documents import document_hash

SAMPLE_DIR = Path("/work/shared/data/aws-service-offerings")
GENERATOR_VERSION = 1  # bump when the output changes, so cached inputs are remade
MAX_DOCUMENT_BYTES = 5000
REPEAT_RATE = 0.01
BAD_LINE_RATE = 0.0005

Span = tuple[int, int, str]
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")
_DIGIT = re.compile(r"[0-9]")
# Openings put before some documents, so that mentions move.
_OPENINGS = ("", "", "", "Update: ", "Now available: ", "Announcing: ", "Today, ", "New: ", "Recently, ",
             "In this release, ", "As of today, ", "Customers asked for this: ")


@dataclass(frozen=True)
class Sample:
    documents: list[tuple[str, list[Span]]]
    label_attribute: str
    labels: list[str]


def load_sample(sample_dir: Path = SAMPLE_DIR) -> Sample:
    """The sample manifest's documents (text, spans) and its label attribute."""
    documents: list[tuple[str, list[Span]]] = []
    attribute = ""
    labels: list[str] = []
    with (sample_dir / "output.manifest").open(encoding="utf-8") as manifest:
        for line in manifest:
            record = json.loads(line)
            attribute = attribute or next(k for k in record if k != "source" and not k.endswith("-metadata"))
            annotations = record[attribute]["annotations"]
            labels = labels or [item["label"] for item in annotations.get("labels", [])]
            spans = [(e["startOffset"], e["endOffset"], e["label"]) for e in annotations["entities"]]
            documents.append((record["source"], sorted(spans)))
    return Sample(documents, attribute, labels)


def split_segments(text: str, spans: list[Span]) -> list[tuple[str, list[Span]]]:
    """Sentences of a document with their spans (offsets relative to the sentence); a sentence
    boundary that a span covers is not used."""
    cuts = [0]
    for match in _BOUNDARY.finditer(text):
        if not any(begin < match.end() and match.start() < end for begin, end, _ in spans):
            cuts += [match.start(), match.end()]
    cuts.append(len(text))
    segments = []
    for start, end in zip(cuts[::2], cuts[1::2], strict=True):
        inner = [(b - start, e - start, label) for b, e, label in spans if start <= b and e <= end]
        if text[start:end].strip():
            segments.append((text[start:end], inner))
    return segments


class DocumentGenerator:
    """Endless varied documents (text, spans) recombined from the sample."""

    def __init__(self, seed: int, sample: Sample | None = None) -> None:
        self.sample = sample or load_sample()
        self.random = random.Random(seed)  # nosec B311 # generated test input, not secrets
        self.segments = [segment for text, spans in self.sample.documents for segment in split_segments(text, spans)]
        mentions: dict[str, list[str]] = {}
        for text, spans in self.sample.documents:
            for begin, end, label in spans:
                mentions.setdefault(label, []).append(text[begin:end])
        # Drawn with the sample's own frequencies, so mentions with white space at an edge stay as common.
        self.mentions = mentions

    def _vary(self, text: str, spans: list[Span]) -> tuple[str, list[Span]]:
        """Replace ~90 % of the mentions by another mention of the same type."""
        pieces: list[str] = []
        new_spans: list[Span] = []
        position = 0
        length = 0
        for begin, end, label in spans:
            pieces.append(self._vary_digits(text[position:begin]))
            length += begin - position
            mention = text[begin:end]
            if self.random.random() < 0.9:
                mention = self.random.choice(self.mentions[label])
            pieces.append(mention)
            new_spans.append((length, length + len(mention), label))
            length += len(mention)
            position = end
        pieces.append(self._vary_digits(text[position:]))
        return "".join(pieces), new_spans

    def _vary_digits(self, text: str) -> str:
        """Digits outside mentions (dates, counts) drawn afresh: the length and offsets stay."""
        return _DIGIT.sub(lambda _: str(self.random.randrange(10)), text) if text else text

    def document(self) -> tuple[str, list[Span]]:
        count = self.random.choice((1, 1, 1, 1, 2))  # about the sample's length and spans a line
        text, spans = "", []
        opening = self.random.choice(_OPENINGS)
        for index in range(count):
            segment_text, segment_spans = self._vary(*self.random.choice(self.segments))
            if index == 0 and opening:
                segment_text = opening + segment_text
                segment_spans = [(b + len(opening), e + len(opening), label) for b, e, label in segment_spans]
            candidate = f"{text} {segment_text}" if text else segment_text
            if len(candidate.encode("utf-8")) > MAX_DOCUMENT_BYTES:
                break
            shift = len(candidate) - len(segment_text)
            spans += [(b + shift, e + shift, label) for b, e, label in segment_spans]
            text = candidate
        return text, spans


def manifest_line(text: str, spans: list[Span], attribute: str, labels: list[str], day: int) -> str:
    """One output manifest line in the shape Ground Truth writes (and the sample has)."""
    record = {
        "source": text,
        attribute: {"annotations": {
            "entities": [{"endOffset": e, "startOffset": b, "label": label} for b, e, label in spans],
            "labels": [{"label": label} for label in labels]}},
        f"{attribute}-metadata": {
            "entities": [{"confidence": 0} for _ in spans], "job-name": f"labeling-job/{attribute}",
            "type": "groundtruth/text-span", "creation-date": f"2020-06-{1 + day % 28:02d}T01:26:53.625439",
            "human-annotated": "yes"},
    }
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@dataclass
class ManifestInfo:
    lines: int
    repeats: int
    bad_lines: int
    spans: int
    label_attribute: str
    bytes: int


def write_manifest(path: Path, lines: int, seed: int) -> ManifestInfo:
    """Write a `lines`-line output manifest to `path` (streamed: memory stays flat)."""
    generator = DocumentGenerator(seed)
    sample = generator.sample
    recent: list[tuple[str, list[Span]]] = []
    info = ManifestInfo(lines, 0, 0, 0, sample.label_attribute, 0)
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for number in range(lines):
            roll = generator.random.random()
            if roll < BAD_LINE_RATE:
                text, spans = generator.document()
                if generator.random.random() < 0.5:
                    line = manifest_line(text, spans, sample.label_attribute, sample.labels, number)[:-7]
                else:
                    line = manifest_line(text, [(0, len(text) + 5, spans[0][2] if spans else "SERVICE")],
                                         sample.label_attribute, sample.labels, number)
                info.bad_lines += 1
            elif roll < BAD_LINE_RATE + REPEAT_RATE and recent:
                text, spans = generator.random.choice(recent)
                if generator.random.random() < 0.5:
                    spans = []
                line = manifest_line(text, spans, sample.label_attribute, sample.labels, number)
                info.repeats += 1
                info.spans += len(spans)
            else:
                text, spans = generator.document()
                recent.append((text, spans))
                if len(recent) > 1000:
                    recent.pop(generator.random.randrange(len(recent)))
                line = manifest_line(text, spans, sample.label_attribute, sample.labels, number)
                info.spans += len(spans)
            out.write(line + "\n")
            info.bytes += len(line.encode("utf-8")) + 1
    return info


# --- detection output ------------------------------------------------------------------------------


def detection_record(file: str, line: int, text: str, spans: list[Span], rng: random.Random) -> dict[str, Any]:
    """A Comprehend detection record: each gold span as a detected entity with a score; ~10 % of
    the scores fall below 0.8 (the template's default threshold)."""
    entities = []
    for begin, end, label in spans:
        score = rng.uniform(0.5, 0.8) if rng.random() < 0.1 else rng.uniform(0.8, 1.0)
        entities.append({"BeginOffset": begin, "EndOffset": end, "Score": round(score, 6),
                         "Text": text[begin:end], "Type": label})
    return {"File": file, "Line": line, "Entities": entities}


def write_detection_output(input_path: Path, archive_path: Path, documents: int, seed: int) -> int:
    """The job's ONE_DOC_PER_LINE input and its output.tar.gz (member `output`); returns the count.

    Every document is distinct (a repeat would be one pool item for two lines)."""
    generator = DocumentGenerator(seed)
    rng = random.Random(seed + 1)  # nosec B311 # generated test input, not secrets
    seen: set[str] = set()
    with input_path.open("w", encoding="utf-8", newline="\n") as inputs, \
            tarfile.open(archive_path, "w:gz", compresslevel=6) as archive:
        buffer = io.BytesIO()
        line = 0
        while line < documents:
            text, spans = generator.document()
            text = text.replace("\n", " ").replace("\r", " ")
            digest = document_hash(text)[:16]
            if digest in seen:
                continue
            seen.add(digest)
            inputs.write(text + "\n")
            record = detection_record(input_path.name, line, text, spans, rng)
            buffer.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
            line += 1
        info = tarfile.TarInfo("output")
        info.size = buffer.tell()
        buffer.seek(0)
        archive.addfile(info, buffer)
    return documents


def iter_input_documents(input_path: Path) -> Iterator[str]:
    with input_path.open(encoding="utf-8") as inputs:
        for line in inputs:
            yield line.rstrip("\n")


# --- state-table items --------------------------------------------------------------------------------


def iter_gold_items(documents: int, seed: int, origin: str = "labeling:bench") -> Iterator[dict[str, Any]]:
    """`documents` distinct GOLD items as GoldRepository.put writes them."""
    generator = DocumentGenerator(seed)
    seen: set[str] = set()
    while len(seen) < documents:
        text, spans = generator.document()
        doc = document_hash(text)
        if doc in seen:
            continue
        seen.add(doc)
        yield {"pk": "GOLD", "sk": doc, "text": text, "spans": json.dumps([list(span) for span in spans]),
               "origin": origin, "updated_at": "2024-01-01T00:00:00Z"}


def iter_pool_items(input_path: Path, status: str = "waiting") -> Iterator[dict[str, Any]]:
    """A POOL item for each line of a detection job's input."""
    for text in iter_input_documents(input_path):
        yield {"pk": "POOL", "sk": document_hash(text), "text": text, "status": status, "batch": "bench",
               "seen_by": "", "updated_at": "2024-01-01T00:00:00Z"}
