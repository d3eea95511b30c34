"""Cost per round from a local loop's own records: `nerloop status` prices what a demo workspace did
(documents and characters each version's detection jobs read, human loops, labeled objects, training
time), the report gets a cost section, and `nerloop estimate` prices a pool before deploying."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nerloop.constants import DETECTION_INPUT_PREFIX
from nerloop_local.cli import main
from nerloop_local.emulator.workspace_runtime import open_workspace


@dataclass
class Run:
    code: int
    out: str
    err: str


def nerloop(*argv: str | Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return Run(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    """main() sets offline credentials and Powertools variables for the process: put them back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Path:
    """Given the demo's three rounds on the sample, kept in a workspace."""
    folder = tmp_path_factory.mktemp("cost") / "ws"
    run = nerloop("demo", "--rounds", "3", "--workspace", folder, "--manifest", sample_dir / "output.manifest")
    assert run.code == 0, run.err
    return folder


@pytest.fixture(scope="module")
def records(workspace: Path) -> dict[str, Any]:
    """What the workspace holds, read apart from the cost code: each version's detection inputs as
    Comprehend read them (S3), its human loops, the training times Comprehend's stand-in reports."""
    runtime = open_workspace(workspace, autosave=False)
    runtime.start()
    try:
        inputs: dict[str, list[str]] = {}
        for job in runtime.state.jobs.list():
            inputs.setdefault(job.version, []).extend(runtime.get_text(job.input_key).splitlines())
        loops = runtime.state.loops.list()
        trained = {r.version: (r.training_end - r.training_start).total_seconds()
                   for r in runtime.comprehend.recognizers.values() if r.training_end}
        assert runtime.list_keys(DETECTION_INPUT_PREFIX)
    finally:
        runtime.close(save=False)
    return {"inputs": inputs, "loops": loops, "trained": trained,
            "demo": json.loads((workspace / "demo.json").read_text(encoding="utf-8"))}


@pytest.fixture(scope="module")
def cost(workspace: Path) -> dict[str, Any]:
    run = nerloop("status", "--workspace", workspace, "--json")
    assert run.code == 0, run.err
    return dict(json.loads(run.out)["cost"])


def test_each_round_counts_the_documents_and_characters_its_detection_jobs_read(cost, records):
    rounds = {row["version"]: row for row in cost["rounds"]}
    assert set(rounds) == set(records["inputs"]) == {"v1", "v2", "v3"}
    for version, lines in records["inputs"].items():
        row = rounds[version]
        assert row["documents"] == len(lines)
        assert row["characters"] == sum(len(line) for line in lines)
        # Comprehend's units, counted here by its pricing page's rule: 100 characters, at least 3 a document
        assert row["units"] == sum(max(3, math.ceil(len(line) / 100)) for line in lines)
        assert row["unmeasured_jobs"] == 0


def test_round_figures_agree_with_the_demo_s_own_count(cost, records):
    demo = {entry["model_version"]: entry for entry in records["demo"]["rounds"]}
    for row in cost["rounds"]:
        assert row["documents"] == demo[row["version"]]["documents_detected"]
        assert row["loops_started"] == demo[row["version"]]["routed_to_review"]
        assert row["loops_reviewed"] == demo[row["version"]]["reviewed_this_round"]


def test_loops_are_counted_under_the_version_that_routed_them(cost, records):
    for row in cost["rounds"]:
        mine = [loop for loop in records["loops"] if loop.version == row["version"]]
        assert row["loops_started"] == len(mine) > 0
        assert row["loops_reviewed"] == sum(loop.status == "Completed" for loop in mine)


def test_the_seed_s_labeled_objects_count_in_the_first_round(cost, records):
    assert [row["labeled_objects"] for row in cost["rounds"]] == [records["demo"]["seed_documents"], 0, 0]


def test_training_time_is_comprehend_s_and_priced_by_the_second(cost, records):
    for row in cost["rounds"]:
        assert row["training_seconds"] == pytest.approx(records["trained"][row["version"]])
        assert row["usd"]["comprehend_training_hour"] == pytest.approx(row["training_seconds"] * 3 / 3600, abs=1e-6)


def test_prices_not_found_are_named_not_counted_as_free(cost):
    assert cost["rounds"][0]["usd"]["a2i_object"] is None
    assert "a2i_object" in cost["total"]["unpriced"]
    assert cost["total"]["known_usd"] == pytest.approx(sum(row["known_usd"] for row in cost["rounds"]), abs=1e-5)


def test_a_given_price_prices_the_reviews(workspace, cost):
    run = nerloop("status", "--workspace", workspace, "--json", "--price", "a2i_object=0.08")
    rounds = json.loads(run.out)["cost"]["rounds"]
    assert [row["usd"]["a2i_object"] for row in rounds] == [
        pytest.approx(0.08 * row["loops_reviewed"]) for row in cost["rounds"]]


def test_status_prints_the_cost_per_round(workspace, cost):
    run = nerloop("status", "--workspace", workspace)
    assert run.code == 0
    assert "cost per round" in run.out
    v1 = next(line for line in run.out.splitlines() if line.split()[:2] == ["1", "v1"])
    assert f"{cost['rounds'][0]['documents']:,}" in v1.split()


def test_a_bad_price_exits_2_naming_it(workspace):
    run = nerloop("status", "--workspace", workspace, "--price", "a2i_object=cheap")
    assert run.code == 2
    assert "a2i_object" in run.err


def test_the_report_of_a_workspace_has_one_cost_section(workspace, cost):
    for _ in range(2):  # a second report replaces the section, never adds one
        run = nerloop("report", "--workspace", workspace)
        assert run.code == 0, run.err
    page = (workspace / "report" / "index.html").read_text(encoding="utf-8")
    assert page.count('id="section-cost"') == 1
    assert f"<td>{cost['total']['units']:,}</td>" in page
    assert "https://aws.amazon.com/comprehend/pricing/" in page


def test_estimate_prices_a_pool_from_the_template_s_defaults():
    run = nerloop("estimate", "--pool", "1000", "--rounds", "3", "--chars", "250", "--json",
                  "--price", "comprehend_async_unit=0.0005", "--price", "a2i_object=0.08")
    assert run.code == 0, run.err
    estimate = json.loads(run.out)
    # ReviewBudget's default (25) loops a round; each round detects the documents not yet reviewed
    assert [row["documents"] for row in estimate["rounds"]] == [1000, 975, 950]
    assert [row["loops_reviewed"] for row in estimate["rounds"]] == [25, 25, 25]
    assert [row["units"] for row in estimate["rounds"]] == [3000, 2925, 2850]  # 250 characters: 3 units
    assert estimate["rounds"][0]["known_usd"] == pytest.approx(3000 * 0.0005 + 25 * 0.08)
    assert estimate["total"]["unpriced"] == []
    assert estimate["model_management"]["models"] == 3  # VersionRetention's default, one month


def test_estimate_prints_a_table_and_says_what_it_could_not_price():
    run = nerloop("estimate", "--pool", "100000")
    assert run.code == 0, run.err
    assert "expected cost per round" in run.out
    assert "price not found" in run.out and "comprehend_async_unit" in run.out
    assert "give --training-minutes" in run.out


@pytest.mark.parametrize("argv", [
    ["--pool", "0"],
    ["--pool", "10", "--review-budget", "0"],
    ["--pool", "10", "--price", "nope=1"],
    ["--pool", "10", "--sample", "/nonexistent.txt"],
])
def test_estimate_refuses_bad_input_with_exit_2(argv):
    assert nerloop("estimate", *argv).code == 2
