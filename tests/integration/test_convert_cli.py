"""`nerloop convert MANIFEST OUTDIR` as a new user meets it: a line whose label Comprehend would
refuse as an entity type is quarantined with file, line and reason, and the rest is converted."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop_local import cli

BAD_LINE = 5  # 1-based, as the messages count


@pytest.fixture
def nerloop(capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """`nerloop ...` in process: (exit status, stdout, stderr). The CLI's offline environment is undone."""
    saved = dict(os.environ)

    def run(*argv: str) -> tuple[int, str, str]:
        status = cli.main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    yield run
    os.environ.clear()
    os.environ.update(saved)


def relabelled(sample_dir: Path, target: Path, line: int, label: str) -> str:
    """The sample's output manifest with the first entity of `line` relabelled; returns that line's text."""
    lines = (sample_dir / "output.manifest").read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[line - 1])
    (attribute,) = [key for key in record if key != "source" and not key.endswith("-metadata")]
    record[attribute]["annotations"]["entities"][0]["label"] = label
    lines[line - 1] = json.dumps(record)
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(record["source"])


def test_a_label_comprehend_refuses_quarantines_its_line_and_the_rest_converts(
        tmp_path: Path, sample_dir: Path, nerloop: Any) -> None:
    # Given the sample with one label that has a space in it (Comprehend takes no space in a type name)
    manifest = tmp_path / "labels.manifest"
    bad_text = relabelled(sample_dir, manifest, BAD_LINE, "AWS SERVICE")

    status, out, err = nerloop("convert", str(manifest), str(tmp_path / "out"))
    clean_status, _, _ = nerloop("convert", str(sample_dir / "output.manifest"), str(tmp_path / "clean"))

    # Then no traceback: the line is named with its reason, on stdout and in the report
    assert status == clean_status == 0
    assert f"quarantined: {manifest}:{BAD_LINE}: entity 0: label 'AWS SERVICE'" in out
    assert "cannot contain a space" in out
    assert "'AWS SERVICE' is not an entity type" in err
    rows = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    rejected = [(row["file"], row["line"]) for row in rows if row["kind"] == "rejected"]
    assert rejected == [(str(manifest), BAD_LINE)]
    # And every other document is converted, with the stack's types only
    converted = (tmp_path / "out" / "documents.txt").read_text(encoding="utf-8").splitlines()
    clean = (tmp_path / "clean" / "documents.txt").read_text(encoding="utf-8").splitlines()
    lines = (sample_dir / "output.manifest").read_text(encoding="utf-8").splitlines()
    repeats_bad_line = sum(json.loads(line)["source"] == bad_text for line in lines) > 1
    assert sorted(converted) == sorted(text for text in clean if text != bad_text or repeats_bad_line)
    types = {row.split(",")[-1] for row in (tmp_path / "out" / "annotations.csv").read_text().splitlines()[1:]}
    assert types == {"SERVICE", "VERSION"}


def test_an_entity_type_comprehend_refuses_is_a_usage_error(tmp_path: Path, sample_dir: Path, nerloop: Any) -> None:
    status, _, err = nerloop("convert", str(sample_dir / "output.manifest"), str(tmp_path / "out"),
                             "--entity-types", "SERVICE,AWS SERVICE")

    assert status == 2 and not (tmp_path / "out").exists()
    assert "--entity-types: 'AWS SERVICE': a Comprehend entity type name cannot contain a space" in err
