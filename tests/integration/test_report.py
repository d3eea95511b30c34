"""`nerloop report` from demo-shaped figures: the page's numbers are the run's, its images are real PNGs,
a run without calibration data still gives a page, and unusable input is one clear error."""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import struct
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nerloop_local.commands import report as report_command
from nerloop_local.report import demo_report, files
from nerloop_local.usage import UsageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ODD_TYPE = "<b>VER&SION</b>"  # a type name the page must escape

# Four test documents for the active model v2: A has one wrong entity at 0.5; B right ones at 0.7 and
# 0.9; C a right one at 0.8; D a right one at 0.95. The threshold is chosen on the even-numbered documents
# (A, C): with target 0.9 the lowest is 0.8 (A to review, C accepted right). It is measured on the
# odd-numbered ones (B, D): B goes to review, D's entity is accepted (precision 1.0); the run's 0.95 does
# the same there: no review saved. (Chosen and scored on all four, it would have been 0.7, saving 2.)
CALIBRATION = [
    {"doc": 0, "score": 0.5, "correct": False, "type": "SERVICE"},
    {"doc": 1, "score": 0.7, "correct": True, "type": "SERVICE"},
    {"doc": 1, "score": 0.9, "correct": True, "type": ODD_TYPE},
    {"doc": 2, "score": 0.8, "correct": True, "type": "SERVICE"},
    {"doc": 3, "score": 0.95, "correct": True, "type": "SERVICE"},
]


def scores(p: float, r: float, f: float) -> dict[str, float]:
    return {"precision": p, "recall": r, "f1": f}


def demo_figures() -> dict[str, Any]:
    """What `nerloop demo --json` writes, small, with the per-round calibration the report reads."""
    types = ["SERVICE", ODD_TYPE, "PRODUCT", "REGION"]
    rounds = []
    for number, (reviewed, f1) in enumerate([(0, 0.6123), (6, 0.7042), (12, 0.7311)], start=1):
        rounds.append({
            "round": number, "model_version": f"v{number}", "active": number == 2,
            "reviewed_documents": reviewed, "training_documents": 20 + reviewed,
            "documents_detected": 30 - reviewed, "routed_to_review": 9 - number, "reviewed_this_round": 7 - number,
            "precision": round(f1 + 0.0101, 4), "recall": round(f1 - 0.0102, 4), "f1": f1,
            "per_type": {name: scores(round(f1 - 0.01 * i, 4), round(f1 + 0.01 * i, 4), round(f1 + 0.001 * i, 4))
                         for i, name in enumerate(types)},
            "calibration": [{**c, "score": round(c["score"] - 0.05 * (number - 2), 4)} for c in CALIBRATION],
        })
    return {
        "manifest": "sample/output.manifest", "seed": 7, "entity_types": types, "threshold": 0.95,
        "pool_size": 30, "pool_lines": 30, "test_documents": 4, "seed_documents": 20, "quarantined_lines": 0,
        "review_budget_per_round": 6, "rounds": rounds,
        "full_supervision": {"documents": 50, **scores(0.81, 0.79, 0.8012),
                             "per_type": {name: scores(0.8, 0.8, 0.8) for name in types}},
        "random_selection": [{"reviewed_documents": r["reviewed_documents"], "f1": round(r["f1"] - 0.0211, 4),
                              "draws": [round(r["f1"] - 0.03, 4), round(r["f1"] - 0.0122, 4)]} for r in rounds],
        "seconds": 1.5,
    }


class Page(HTMLParser):
    """Tables (by id) as lists of {header: cell}, image sources, paragraph texts and script tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, str]]] = {}
        self.images: list[str] = []
        self.scripts = 0
        self.by_id: dict[str, str] = {}
        self._table: str | None = None
        self._headers: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._open_id: tuple[str, str] | None = None
        self._id_text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if tag == "img":
            self.images.append(found["src"] or "")
        if tag in ("p", "span") and found.get("id"):
            self._open_id, self._id_text = (tag, found["id"] or ""), []
        if tag == "table":
            self._table, self._headers = found["id"], []
            self.tables[self._table or ""] = []
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if self._open_id and tag == self._open_id[0]:
            self.by_id[self._open_id[1]] = "".join(self._id_text)
            self._open_id = None
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table:
            if not self._headers:
                self._headers = self._row
            else:
                self.tables[self._table].append(dict(zip(self._headers, self._row, strict=True)))
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._open_id:
            self._id_text.append(data)


def run_report(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="nerloop")
    report_command.add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["report", *map(str, argv)])
    return int(args.run(args))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def figures_file(tmp_path: Path) -> Path:
    path = tmp_path / "demo.json"
    path.write_text(json.dumps(demo_figures()), encoding="utf-8")
    return path


@pytest.fixture
def plain_figures_file(tmp_path: Path) -> Path:
    """Figures from before the demo recorded calibration: quicker to draw (two plots)."""
    figures = demo_figures()
    for entry in figures["rounds"]:
        del entry["calibration"]
    path = tmp_path / "plain.json"
    path.write_text(json.dumps(figures), encoding="utf-8")
    return path


@dataclass
class Built:
    out: Path
    printed: str
    page: Page


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One report, built once for the tests that read it (drawing the plots takes about a second)."""
    folder = tmp_path_factory.mktemp("report")
    source = folder / "demo.json"
    source.write_text(json.dumps(demo_figures()), encoding="utf-8")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert run_report("--figures", source, "--out", folder / "out", "--target-precision", "0.9") == 0
    return Built(folder / "out", printed.getvalue(), Page((folder / "out" / "index.html").read_text(encoding="utf-8")))


@pytest.fixture
def page(built: Built) -> Page:
    return built.page


def test_the_command_prints_the_page_it_wrote(built: Built) -> None:
    assert built.printed == f"{built.out / 'index.html'}\n"


def test_the_rounds_table_shows_each_rounds_own_figures(page: Page) -> None:
    rows = page.tables["rounds"]
    expected = demo_figures()["rounds"]

    assert [row["Version"] for row in rows] == [r["model_version"] for r in expected]
    for row, want in zip(rows, expected, strict=True):
        assert int(row["Reviewed (total)"]) == want["reviewed_documents"]
        assert int(row["Training documents"]) == want["training_documents"]
        assert int(row["Detected"]) == want["documents_detected"]
        assert int(row["Routed to review"]) == want["routed_to_review"]
        assert int(row["Reviewed this round"]) == want["reviewed_this_round"]
        assert (row["Active"] == "yes") == want["active"]
        for column, key in (("Precision", "precision"), ("Recall", "recall"), ("F1", "f1")):
            assert float(row[column]) == pytest.approx(want[key], abs=5e-5)


def test_the_learning_curve_table_has_both_references(page: Page) -> None:
    figures = demo_figures()
    rows = page.tables["curve"]

    assert [int(row["Reviewed"]) for row in rows] == [r["reviewed_documents"] for r in figures["rounds"]]
    assert [float(row["F1"]) for row in rows] == pytest.approx([r["f1"] for r in figures["rounds"]], abs=5e-5)
    assert [float(row["Random selection F1"]) for row in rows] == pytest.approx(
        [r["f1"] for r in figures["random_selection"]], abs=5e-5)
    assert float(page.by_id["full-f1"]) == pytest.approx(figures["full_supervision"]["f1"], abs=5e-5)
    last = figures["rounds"][-1]
    assert rows[-1]["Share of pool"] == f"{100 * last['reviewed_documents'] / figures['pool_size']:.1f}%"


def test_the_per_type_table_has_every_type_of_every_version(page: Page) -> None:
    figures = demo_figures()
    shown = {(row["Version"], row["Type"]): row for row in page.tables["per-type-table"]}

    for entry in figures["rounds"]:
        for name, want in entry["per_type"].items():
            row = shown[(entry["model_version"], name)]
            assert float(row["Precision"]) == pytest.approx(want["precision"], abs=5e-5)
            assert float(row["Recall"]) == pytest.approx(want["recall"], abs=5e-5)
            assert float(row["F1"]) == pytest.approx(want["f1"], abs=5e-5)
    assert ("full supervision", "SERVICE") in shown


def test_the_threshold_is_chosen_on_half_the_test_documents_and_measured_on_the_other_half(
        page: Page) -> None:
    row = {r["Version"]: r for r in page.tables["threshold-table"]}["v2"]

    assert float(row["Threshold for target"]) == pytest.approx(0.8)
    assert int(row["To review"]) == 1
    assert float(row["Auto-accepted precision"]) == pytest.approx(1.0)
    assert int(row["To review at run's threshold"]) == 1
    assert int(row["Reviews saved"]) == 0
    assert row["Share saved"] == "0.0%"
    assert int(row["Entities"]) == len(CALIBRATION)
    summary = page.by_id["threshold-summary"]
    assert "model v2 (the active one)" in summary
    assert "0.8000" in summary and "on the 2 even-numbered test documents (chosen there)" in summary
    assert "On the other 2, held out from the choice: 1 go to review" in summary
    assert "sends as many documents to review as the run's" in summary


def test_every_image_is_a_png_beside_the_page(built: Built) -> None:
    from PIL import Image

    assert sorted(built.page.images) == sorted(files.DEMO_IMAGES)
    for name in built.page.images:
        assert "/" not in name
        path = built.out / name
        width, height = png_size(path)
        assert width > 200 and height > 200
        with Image.open(path) as image:
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        # A plot, not a blank canvas: lines, text and bars draw many shades.
        assert colours is None or len(colours) > 20


def test_the_page_escapes_text_and_needs_no_script(built: Built) -> None:
    text = (built.out / "index.html").read_text(encoding="utf-8")

    assert ODD_TYPE not in text
    assert "&lt;b&gt;VER&amp;SION&lt;/b&gt;" in text
    assert built.page.scripts == 0
    assert ODD_TYPE in {row["Type"] for row in built.page.tables["per-type-table"]}


def test_without_calibration_the_page_says_so_and_draws_no_calibration_plots(
        plain_figures_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_report("--figures", plain_figures_file, "--out", tmp_path / "out") == 0

    text = (tmp_path / "out" / "index.html").read_text(encoding="utf-8")
    assert text.count(demo_report.NO_CALIBRATION) == 2
    assert sorted(Page(text).images) == [files.LEARNING_CURVE_PNG, files.PER_TYPE_PNG]
    assert not (tmp_path / "out" / files.RELIABILITY_PNG).exists()


def test_a_report_over_an_old_one_drops_the_plots_it_no_longer_draws(
        plain_figures_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / files.HISTOGRAM_PNG).write_bytes(PNG_SIGNATURE)  # as an earlier report with calibration left it

    assert run_report("--figures", plain_figures_file, "--out", out) == 0

    assert not (out / files.HISTOGRAM_PNG).exists()


def test_a_workspace_report_reads_its_demo_json_and_writes_beside_it(
        plain_figures_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "demo.json").write_bytes(plain_figures_file.read_bytes())

    assert run_report("--workspace", workspace) == 0

    assert capsys.readouterr().out.strip() == str(workspace / "report" / "index.html")
    assert (workspace / "report" / files.LEARNING_CURVE_PNG).is_file()


def test_without_out_or_workspace_the_report_goes_to_the_current_folder(
        plain_figures_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)

    assert run_report("--figures", plain_figures_file) == 0

    assert (tmp_path / "nerloop-report" / "index.html").is_file()


def test_a_workspace_without_demo_figures_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        run_report("--workspace", tmp_path)

    assert str(caught.value).startswith(f"{tmp_path / 'demo.json'}: no such file")
    assert not (tmp_path / "report").exists()


def test_a_file_that_is_not_json_is_a_one_line_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("figures: none\n", encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        run_report("--figures", bad, "--out", tmp_path / "out")

    assert str(caught.value).startswith(f"{bad}: not JSON")
    assert "\n" not in str(caught.value)


def test_a_missing_key_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    figures = copy.deepcopy(demo_figures())
    del figures["full_supervision"]
    bad = tmp_path / "short.json"
    bad.write_text(json.dumps(figures), encoding="utf-8")

    with pytest.raises(UsageError) as caught:
        run_report("--figures", bad, "--out", tmp_path / "out")

    assert str(caught.value) == f"{bad}: full_supervision: Field required"


def test_a_target_precision_outside_zero_to_one_is_a_usage_error(figures_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--target-precision"):
        run_report("--figures", figures_file, "--out", tmp_path / "out", "--target-precision", "95")
