"""`make learn`, small: the learning benchmark on the sample (two seeds, three rounds, one random draw, two
processes), then `nerloop report` on its JSON. The record must hold together: intervals around their means,
areas within [0, 1], a stalled flag on every run, budgets equal to the loop's reviewed counts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.learn import main as learn
from nerloop_local.cli import main as nerloop
from nerloop_local.report.learning_figures import KIND

pytestmark = pytest.mark.slow
SEEDS, ROUNDS = 2, 3


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> tuple[Path, dict[str, Any]]:
    output = tmp_path_factory.mktemp("learn") / "learning.json"
    assert learn(["--dataset", str(sample_dir / "output.manifest"), "--seeds", str(SEEDS), "--rounds", str(ROUNDS),
                  "--random-draws", "1", "--jobs", "2", "--output", str(output)]) == 0
    return output, json.loads(output.read_text(encoding="utf-8"))


def intervals(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every interval in the record, with where it is."""
    if isinstance(node, dict):
        if {"mean", "low", "high", "n"} <= node.keys():
            yield where, node
        for key, value in node.items():
            yield from intervals(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from intervals(value, f"{where}[{index}]")


def test_the_record_covers_every_seed_and_round(result: tuple[Path, dict[str, Any]]) -> None:
    _, figures = result

    assert figures["kind"] == KIND and figures["seeds"] == [0, 1] and figures["rounds"] == ROUNDS
    assert [run["seed"] for run in figures["runs"]] == [0, 1]
    assert len(figures["budgets"]) == max(run["rounds_trained"] for run in figures["runs"])
    assert figures["budgets"][0]["seeds"] == [0, 1]


def test_every_interval_contains_its_mean(result: tuple[Path, dict[str, Any]]) -> None:
    found = list(intervals(result[1]))

    assert len(found) > 20
    for where, value in found:
        assert value["n"] >= 1, where
        if value["low"] is not None:
            assert value["low"] <= value["mean"] <= value["high"], where


def test_the_areas_lie_within_zero_and_one(result: tuple[Path, dict[str, Any]]) -> None:
    _, figures = result

    for run in figures["runs"]:
        for areas in (run["auc"], run["auc_normalised"]):
            assert set(areas) == {"loop", "random", "full"}
            assert all(0.0 <= area <= 1.0 for area in areas.values()), areas
        assert run["auc"]["loop"] <= run["pool_share"][-1] + 1e-9  # at most F1 1 over the budget range
    for section in ("auc", "auc_normalised"):
        for name in ("loop", "random", "full"):
            assert 0.0 <= figures[section][name]["mean"] <= 1.0


def test_every_run_says_whether_it_stalled(result: tuple[Path, dict[str, Any]]) -> None:
    _, figures = result

    for run in figures["runs"]:
        assert isinstance(run["stalled"], bool)
        assert run["stalled"] == (run["rounds_trained"] < run["rounds_requested"] and run["unreviewed_at_end"] > 0)
    assert figures["stalled_seeds"] == [run["seed"] for run in figures["runs"] if run["stalled"]]
    assert figures["any_stalled"] == bool(figures["stalled_seeds"])


def test_budgets_are_the_loops_reviewed_counts(result: tuple[Path, dict[str, Any]]) -> None:
    _, figures = result
    runs = {run["seed"]: run for run in figures["runs"]}

    for run in runs.values():
        assert run["reviewed_documents"][0] == 0
        assert run["reviewed_documents"] == sorted(run["reviewed_documents"])
        assert len(run["loop_f1"]) == len(run["random_f1"]) == len(run["reviewed_documents"]) == run["rounds_trained"]
        assert run["pool_share"] == pytest.approx([n / run["pool_size"] for n in run["reviewed_documents"]], abs=1e-5)
    for entry in figures["budgets"]:
        assert entry["reviewed_documents"] == [runs[seed]["reviewed_documents"][entry["step"]]
                                               for seed in entry["seeds"]]


def test_each_run_has_its_time_and_memory(result: tuple[Path, dict[str, Any]]) -> None:
    for run in result[1]["runs"]:
        assert run["seconds"] > 0 and run["peak_rss_mb"] > run["rss_growth_mb"] > 0


def test_the_report_draws_the_benchmark(result: tuple[Path, dict[str, Any]], tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    output, figures = result

    assert nerloop(["report", "--figures", str(output), "--out", str(tmp_path)]) == 0

    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert set(re.findall(r'<img src="([^"]+\.png)"', page)) == {"learning_benchmark.png", "learning_difference.png"}
    assert f"{figures['budgets'][-1]['f1']['loop']['mean']:.4f}" in page
