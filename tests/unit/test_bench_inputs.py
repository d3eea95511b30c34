"""The benchmark generators make valid, varied, reproducible input (bench/generate.py); not timed."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from bench.generate import DocumentGenerator, split_segments, write_detection_output, write_manifest
from nerloop.comprehend_output import check_against_text, iter_detection_output
from nerloop.documents import document_hash
from nerloop.gt_manifest import ParseStats, parse_manifest
from nerloop.quarantine import Quarantine

TYPES = ("SERVICE", "VERSION")


def test_every_generated_document_has_spans_inside_its_text_and_of_the_sample_types() -> None:
    generator = DocumentGenerator(seed=3)
    for _ in range(300):
        text, spans = generator.document()
        assert text and len(text.encode("utf-8")) <= 5000
        for begin, end, label in spans:
            assert 0 <= begin < end <= len(text) and label in TYPES


def test_generated_documents_are_varied() -> None:
    generator = DocumentGenerator(seed=3)
    hashes = {document_hash(generator.document()[0]) for _ in range(1000)}
    assert len(hashes) > 900


def test_a_sentence_boundary_inside_a_span_is_not_cut() -> None:
    text = "Amazon S3. Now faster. Use it."
    segments = split_segments(text, [(0, 15, "SERVICE")])  # "Amazon S3. Now " spans the first boundary
    assert [segment for segment, _ in segments] == ["Amazon S3. Now faster.", "Use it."]
    assert segments[0][1] == [(0, 15, "SERVICE")]


def test_a_generated_manifest_parses_with_only_its_deliberately_bad_lines_rejected(tmp_path: Path) -> None:
    path = tmp_path / "output.manifest"
    info = write_manifest(path, 3000, seed=5)
    stats = ParseStats()
    quarantine = Quarantine("convert", "bench")
    documents = list(parse_manifest(path.read_bytes().splitlines(), str(path), TYPES, quarantine, stats=stats))
    assert stats.lines == info.lines == 3000
    assert stats.rejected == info.bad_lines == len(quarantine.problems)
    assert len(documents) == 3000 - info.bad_lines
    assert stats.trimmed > 0  # the sample's spans with white space at an edge carry over


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes(tmp_path: Path) -> None:
    first, again, other = (tmp_path / name for name in ("a", "b", "c"))
    write_manifest(first, 200, seed=9)
    write_manifest(again, 200, seed=9)
    write_manifest(other, 200, seed=10)
    assert first.read_bytes() == again.read_bytes() != other.read_bytes()


def test_a_generated_detection_output_matches_its_input_documents(tmp_path: Path) -> None:
    inputs, archive = tmp_path / "documents.txt", tmp_path / "output.tar.gz"
    write_detection_output(inputs, archive, 400, seed=2)
    texts = inputs.read_text(encoding="utf-8").splitlines()
    with archive.open("rb") as body:
        records = list(iter_detection_output(body, "output.tar.gz"))
    assert len(texts) == len(records) == 400 == len({document_hash(text) for text in texts})
    assert all(check_against_text(record, texts[record.line]) is None for record in records)
    with tarfile.open(archive) as opened:
        first = json.loads(opened.extractfile("output").readline())  # type: ignore[union-attr]
    assert first["File"] == "documents.txt" and first["Line"] == 0
