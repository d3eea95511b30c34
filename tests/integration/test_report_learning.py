"""`nerloop report` from a learning benchmark's JSON: chosen with --learning or recognised by its kind under
--figures; the page shows the file's own numbers and real plots, and a broken file is one clear error."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nerloop_local.commands import report as report_command
from nerloop_local.report import files
from nerloop_local.report.learning_figures import KIND
from nerloop_local.usage import UsageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def interval(mean: float, half: float | None = 0.02, n: int = 3) -> dict[str, Any]:
    if half is None:
        return {"mean": mean, "low": None, "high": None, "n": n, "sd": None}
    return {"mean": mean, "low": round(mean - half, 5), "high": round(mean + half, 5), "n": n, "sd": half}


def strategies(loop: float, random: float, full: float) -> dict[str, Any]:
    return {"loop": interval(loop), "random": interval(random), "full": interval(full),
            "loop_minus_random": interval(round(loop - random, 5), 0.01),
            "loop_of_full": interval(round(loop / full, 5)), "random_of_full": interval(round(random / full, 5))}


def run(seed: int, stalled: bool = False) -> dict[str, Any]:
    versions = 2 if stalled else 3
    return {
        "seed": seed, "pool_size": 40, "test_documents": 12, "seed_documents": 20, "review_budget_per_round": 10,
        "rounds_requested": 3, "rounds_trained": versions, "unreviewed_at_end": 30 if stalled else 20,
        "stalled": stalled, "reviewed_documents": [0, 10, 20][:versions], "pool_share": [0.0, 0.25, 0.5][:versions],
        "loop_f1": [0.61, 0.72, 0.75][:versions], "random_f1": [0.61, 0.69, 0.73][:versions],
        "random_draws": [[0.61], [0.69], [0.73]][:versions], "full_f1": 0.8, "full_documents": 60,
        "auc": {"loop": 0.3325, "random": 0.3275, "full": 0.4}, "auc_normalised": {"loop": 0.665, "random": 0.655,
                                                                                 "full": 0.8},
        "seconds": 12.345 + seed, "peak_rss_mb": 301.0 + seed, "rss_growth_mb": 40.0,
    }


def benchmark() -> dict[str, Any]:
    """What `python -m bench.learn` writes, small: three seeds, seed 2 stalled after two versions."""
    budgets = [
        {"step": 0, "seeds": [0, 1, 2], "reviewed_documents": [0, 0, 0], "pool_share": interval(0.0, 0.0),
         "f1": strategies(0.61, 0.61, 0.8)},
        {"step": 1, "seeds": [0, 1, 2], "reviewed_documents": [10, 10, 11], "pool_share": interval(0.2583, 0.01),
         "f1": strategies(0.7211, 0.6912, 0.8)},
        {"step": 2, "seeds": [0, 1], "reviewed_documents": [20, 20], "pool_share": interval(0.5, 0.0, n=2),
         "f1": strategies(0.7533, 0.7321, 0.8)},
    ]
    return {
        "kind": KIND, "format": 1, "dataset": "toy <set>", "manifest": "toy/output.manifest",
        "entity_types": ["SERVICE"], "seeds": [0, 1, 2], "rounds": 3, "random_draws": 1, "threshold": 0.95,
        "confidence": 0.95, "method": {"auc": "Trapezoid rule over the points (budget / pool size, test F1)."},
        "budgets": budgets, "auc": strategies(0.3325, 0.3275, 0.4), "auc_normalised": strategies(0.665, 0.655, 0.8),
        "full_supervision": interval(0.8), "stalled_seeds": [2], "any_stalled": True,
        "runs": [run(0), run(1), run(2, stalled=True)], "jobs": 2, "seconds": 40.0, "machine": {"cpus": 2},
    }


class Tables(HTMLParser):
    """Tables (by id) as lists of {header: cell}, image sources, and the text of elements with an id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.images: list[str] = []
        self.by_id: dict[str, str] = {}
        self.scripts = 0
        self._table = ""
        self._headers: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._open: tuple[str, str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.scripts += tag == "script"
        if tag == "img":
            self.images.append(found["src"] or "")
        elif tag == "table":
            self._table, self._headers = found["id"] or "", []
            self.tables[self._table] = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif found.get("id") and tag in ("p", "span"):
            self._open = (tag, found["id"] or "")
            self.by_id[self._open[1]] = ""

    def handle_endtag(self, tag: str) -> None:
        if self._open and tag == self._open[0]:
            self._open = None
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if not self._headers:
                self._headers = self._row
            else:
                self.tables[self._table].append(dict(zip(self._headers, self._row, strict=True)))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._open:
            self.by_id[self._open[1]] += data


def run_report(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="nerloop")
    report_command.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *map(str, argv)])
    return int(args.run(args))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Tables]:
    """One page, drawn once for the tests that read it."""
    folder = tmp_path_factory.mktemp("learning")
    source = folder / "learning.json"
    source.write_text(json.dumps(benchmark()), encoding="utf-8")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_report("--learning", source, "--out", folder / "out") == 0
    return folder / "out", printed.getvalue(), Tables((folder / "out" / "index.html").read_text(encoding="utf-8"))


def test_the_command_prints_the_page_it_wrote(built: tuple[Path, str, Tables]) -> None:
    out, printed, _ = built

    assert printed == f"{out / 'index.html'}\n"


def test_the_budget_table_shows_each_steps_means_and_intervals(built: tuple[Path, str, Tables]) -> None:
    rows = built[2].tables["budgets"]
    expected = benchmark()["budgets"]

    assert [int(row["Step"]) for row in rows] == [0, 1, 2]
    assert [int(row["Seeds"]) for row in rows] == [3, 3, 2]
    assert rows[1]["Reviewed (mean)"] == "10.3"
    assert rows[1]["Share of pool"] == "25.8%"
    for row, want in zip(rows, expected, strict=True):
        loop = want["f1"]["loop"]
        assert row["Loop F1"] == f"{loop['mean']:.4f} [{loop['low']:.4f}, {loop['high']:.4f}]"
        assert row["Random F1"].startswith(f"{want['f1']['random']['mean']:.4f} [")
        assert row["Loop - random"].startswith(f"{want['f1']['loop_minus_random']['mean']:.4f} [")


def test_the_areas_and_full_supervision_are_the_files(built: tuple[Path, str, Tables]) -> None:
    page = built[2]
    areas = {(row["Figure"], row["Strategy"]): row["Value"] for row in page.tables["areas"]}

    assert areas[("area", "loop")] == "0.3325 [0.3125, 0.3525]"
    assert areas[("area / range", "loop - random")] == "0.0100 [0.0000, 0.0200]"
    assert page.by_id["full-f1"] == "0.8000 [0.7800, 0.8200]"


def test_the_runs_table_says_which_run_stalled_and_what_each_cost(built: tuple[Path, str, Tables]) -> None:
    page = built[2]
    rows = {int(row["Seed"]): row for row in page.tables["runs"]}

    assert rows[2]["Stalled"] == "yes" and rows[2]["Versions"] == "2 of 3" and rows[0]["Stalled"] == ""
    assert rows[1]["Seconds"] == "13.3" and rows[1]["Peak MB"] == "302"
    assert "seed 2" in page.by_id["stalled"]


def test_the_plots_are_pngs_beside_a_page_without_script(built: tuple[Path, str, Tables]) -> None:
    out, _, page = built
    text = (out / "index.html").read_text(encoding="utf-8")

    assert sorted(page.images) == sorted(files.LEARNING_IMAGES)
    for name in page.images:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE), name
        width, height = struct.unpack(">II", data[16:24])
        assert width > 200 and height > 200, name
    assert page.scripts == 0
    assert "toy &lt;set&gt;" in text and "toy <set>" not in text


def test_figures_recognises_a_learning_benchmark_by_its_kind_and_drops_a_demo_reports_plots(
        tmp_path: Path) -> None:
    source = tmp_path / "learning.json"
    source.write_text(json.dumps(benchmark()), encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / files.HISTOGRAM_PNG).write_bytes(PNG_SIGNATURE)  # as a demo's report left it

    with contextlib.redirect_stdout(io.StringIO()):
        assert run_report("--figures", source, "--out", out) == 0

    assert sorted(p.name for p in out.glob("*.png")) == sorted(files.LEARNING_IMAGES)


def test_one_seed_gives_a_page_without_bands(tmp_path: Path) -> None:
    single = benchmark()
    single.update(seeds=[0], runs=[run(0)], stalled_seeds=[], any_stalled=False,
                  full_supervision=interval(0.8, None, n=1))
    for entry in single["budgets"]:
        entry.update(seeds=[0], reviewed_documents=entry["reviewed_documents"][:1])
        entry["f1"] = {name: interval(value["mean"], None, n=1) for name, value in entry["f1"].items()}
    source = tmp_path / "one.json"
    source.write_text(json.dumps(single), encoding="utf-8")

    with contextlib.redirect_stdout(io.StringIO()):
        assert run_report("--learning", source, "--out", tmp_path / "out") == 0

    page = Tables((tmp_path / "out" / "index.html").read_text(encoding="utf-8"))
    assert page.tables["budgets"][0]["Loop F1"] == "0.6100 (one seed)"
    assert page.by_id["stalled"] == "No run stalled."


def test_a_learning_file_missing_a_key_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    broken = benchmark()
    del broken["budgets"][1]["f1"]["random"]
    source = tmp_path / "broken.json"
    source.write_text(json.dumps(broken), encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        run_report("--figures", source, "--out", tmp_path / "out")

    assert str(caught.value).startswith(f"{source}: budgets[1].f1.random: Field required")
    assert not (tmp_path / "out").exists()


def test_a_demos_figures_given_as_a_learning_benchmark_is_a_usage_error(tmp_path: Path) -> None:
    source = tmp_path / "demo.json"
    source.write_text(json.dumps({"pool_size": 3, "rounds": []}), encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        run_report("--learning", source, "--out", tmp_path / "out")

    assert str(caught.value).startswith(f"{source}: kind: ")
