"""`nerloop demo` then `nerloop report`, as a user runs them: the demo on the sample (three rounds) writes
its figures into the workspace, and the report built from them shows the run's own numbers and images."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest

from nerloop_local.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    workspace = tmp_path_factory.mktemp("demo") / "workspace"
    assert main(["demo", "--rounds", "3", "--seed", "1", "--workspace", str(workspace),
                 "--manifest", str(sample_dir / "output.manifest")]) == 0
    return workspace


def test_the_demo_leaves_its_figures_with_test_set_predictions(demo_run: Path) -> None:
    figures = json.loads((demo_run / "demo.json").read_text(encoding="utf-8"))

    assert [entry["round"] for entry in figures["rounds"]] == [1, 2, 3]
    # The reviewer answers the loops of the first two versions only: the third's wait for a person
    assert [entry["reviewed_this_round"] > 0 for entry in figures["rounds"]] == [True, True, False]
    assert len(figures["random_selection"]) == 3 and figures["full_supervision"]["f1"] > 0.5
    for entry in figures["rounds"]:
        docs = {prediction["doc"] for prediction in entry["calibration"]}
        assert docs and max(docs) < figures["test_documents"]
        assert all(0.0 <= prediction["score"] <= 1.0 for prediction in entry["calibration"])


def test_the_report_shows_the_runs_numbers_and_real_plots(demo_run: Path) -> None:
    assert main(["report", "--workspace", str(demo_run)]) == 0
    figures = json.loads((demo_run / "demo.json").read_text(encoding="utf-8"))
    page = (demo_run / "report" / "index.html").read_text(encoding="utf-8")

    for entry in figures["rounds"]:
        assert f"{entry['f1']:.4f}" in page, entry["model_version"]
    assert f"{figures['full_supervision']['f1']:.4f}" in page
    images = re.findall(r'<img[^>]+src="([^"]+\.png)"', page)
    assert {"learning_curve.png", "reliability.png", "confidence_histogram.png"} <= set(images)
    for name in images:
        data = (demo_run / "report" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        width, height = struct.unpack(">II", data[16:24])
        assert width > 200 and height > 200, name
