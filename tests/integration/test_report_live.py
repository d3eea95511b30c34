"""`nerloop report --workspace` on a `nerloop up` workspace whose reviewers changed the model's spans: the page's
counts of kept, relabelled, moved, removed and added spans, its production calibration and threshold, and its
agreement between reviewers are those of the answers given here; its plots are real PNGs."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import shutil
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nerloop.s3_uri import split_s3_uri
from nerloop_local.cli import main
from nerloop_local.emulator.workspace_runtime import open_workspace
from nerloop_local.report import files
from nerloop_local.report import live as report_live
from nerloop_local.report.live import build_stack_report
from nerloop_local.report.loop_records import read_records
from tests.integration.test_report import Page

SEED_LINES = 40
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TARGET = 0.8
OTHER = {"SERVICE": "VERSION", "VERSION": "SERVICE"}


@dataclass
class Expected:
    """What the answers given did, counted here from the answers themselves."""

    totals: Counter[str]
    scored: list[tuple[str, int, float, bool]]  # every model span of a reviewed document: (loop, begin, score, kept)
    reviews: int
    answers: int
    two_worker_loops: list[str]
    disagreeing_loop: str
    disagreeing_f1: float


@dataclass
class Live:
    workspace: Path
    before_answers: Path  # the workspace as `up` left it, loops still waiting
    page: Page
    out: Path
    printed: str
    expected: Expected


def nerloop(*argv: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main([str(arg) for arg in argv])
    return code, out.getvalue()


def entity(label: str, begin: int, end: int) -> dict[str, Any]:
    return {"label": label, "startOffset": begin, "endOffset": end}


def predictions(loop: Any) -> list[dict[str, Any]]:
    return sorted(loop.input["predictions"], key=lambda p: p["startOffset"])


def free_word(text: str, taken: list[dict[str, Any]]) -> tuple[int, int]:
    """The first word of `text` no predicted span touches."""
    position = 0
    for word in text.split(" "):
        begin, end = position, position + len(word)
        position = end + 1
        if word.isalpha() and all(end <= p["startOffset"] or begin >= p["endOffset"] for p in taken):
            return begin, end
    raise AssertionError(f"no free word in {text!r}")


def add_worker(runtime: Any, uri: str, worker: str, entities: list[dict[str, Any]]) -> None:
    """A second worker's answer in A2I's output.json (one humanAnswers entry per worker), submitted later."""
    bucket, key = split_s3_uri(uri)
    output = json.loads(runtime.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    first = output["humanAnswers"][0]
    later = (datetime.fromisoformat(first["submissionTime"].replace("Z", "+00:00")) + timedelta(minutes=3))
    output["humanAnswers"].append({**first, "workerId": worker,
                                   "submissionTime": later.astimezone(UTC).isoformat(timespec="milliseconds"),
                                   "answerContent": {"crowd-entity-annotation": {"entities": entities}},
                                   "workerMetadata": {"identityData": {**first["workerMetadata"]["identityData"],
                                                                       "sub": worker}}})
    runtime.s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(output).encode("utf-8"))


def answer_loops(workspace: Path) -> Expected:
    """Answer every waiting loop: kept, relabelled, moved, removed, added, everything removed, and two loops
    with several workers (one where bob disagrees on a span with alice and carol, one where alice and bob
    agree). Then let the loop run. Two workers who disagree would tie under the merge's majority rule
    (nerloop.review_consensus) and the document would go to a further review instead of being merged."""
    runtime = open_workspace(workspace)
    runtime.start()
    try:
        loops = sorted(runtime.a2i.pending_loops(), key=lambda loop: loop.name)
        assert len(loops) >= 8, [loop.name for loop in loops]
        totals: Counter[str] = Counter()
        scored: list[tuple[str, int, float, bool]] = []
        two, disagreeing, disagreeing_f1, extra_answers = [], "", 0.0, 0
        for index, loop in enumerate(loops):
            spans = predictions(loop)
            keep = [entity(p["label"], p["startOffset"], p["endOffset"]) for p in spans]
            kept = [True] * len(spans)
            if index == 1:  # relabel the first span
                keep[0]["label"] = OTHER[keep[0]["label"]]
                kept[0] = False
                totals["relabelled"] += 1
            elif index == 2:  # move the first span: one character shorter at its end
                assert keep[0]["endOffset"] - keep[0]["startOffset"] > 2
                keep[0]["endOffset"] -= 1
                kept[0] = False
                totals["moved"] += 1
            elif index == 3:  # remove the first span
                keep.pop(0)
                kept[0] = False
                totals["removed"] += 1
            elif index == 4:  # add a span where the model saw none
                keep.append(entity("SERVICE", *free_word(loop.input["text"], spans)))
                totals["added"] += 1
            elif index == 5:  # nothing the model found is an entity
                keep = []
                kept = [False] * len(spans)
                totals["removed"] += len(spans)
            totals["kept"] += sum(kept)
            scored += [(loop.name, p["startOffset"], p["score"], k) for p, k in zip(spans, kept, strict=True)]
            uri = runtime.a2i.complete_loop(loop.name, keep, worker_id="alice")
            if index == 6:  # bob removes the last span alice and carol kept: 2 of 3 keep it (the merge's rule)
                add_worker(runtime, uri, "bob", keep[:-1])
                add_worker(runtime, uri, "carol", keep)
                two.append(loop.name)
                extra_answers += 1
                # Pooled over the pairs alice/bob (n-1 of n and n-1 matched), alice/carol (n, n), bob/carol.
                spans_kept = len(keep)
                disagreeing, disagreeing_f1 = loop.name, (3 * spans_kept - 2) / (3 * spans_kept - 1)
            elif index == 7:
                add_worker(runtime, uri, "bob", keep)
                two.append(loop.name)
        result = runtime.run_until_idle(max_cycles=400)
        assert result.idle and not result.failures, [f.line() for f in result.failures]
        return Expected(totals, scored, len(loops), len(loops) + len(two) + extra_answers, two, disagreeing,
                        disagreeing_f1)
    finally:
        runtime.close()


@pytest.fixture(scope="module", autouse=True)
def environment() -> Iterator[None]:
    """main() sets offline credentials and Powertools variables for the process: put them back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Live:
    """Given `nerloop up --once` with a seed and ten lines of new text (every detected document to review),
    when people answer every loop as `answer_loops` does and `nerloop report --workspace` runs."""
    base = tmp_path_factory.mktemp("live")
    workspace, inbox = base / "workspace", base / "inbox"
    inbox.mkdir()
    seed = base / "seed.manifest"
    with (sample_dir / "output.manifest").open("rb") as handle:
        seed.write_bytes(b"".join(itertools.islice(handle, SEED_LINES)))
    lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:10]
    (inbox / "a.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, _ = nerloop("up", "--once", "--workspace", workspace, "--inbox", inbox, "--seed-manifest", seed,
                      "--param", "ConfidenceThreshold=0.999", "--param", "TestShare=0")
    assert code == 0
    before = base / "before"
    shutil.copytree(workspace, before)
    expected = answer_loops(workspace)
    code, printed = nerloop("report", "--workspace", workspace, "--target-precision", str(TARGET))
    assert code == 0
    out = workspace / "report"
    return Live(workspace, before, Page((out / "index.html").read_text(encoding="utf-8")), out, printed, expected)


def column(rows: list[dict[str, str]], name: str) -> int:
    return sum(int(row[name]) for row in rows)


def test_the_report_counts_what_the_reviewers_did_to_the_models_spans(live: Live) -> None:
    rows = live.page.tables["outcomes-by-type"]
    totals = live.expected.totals
    # The several-worker loops are scored against the merged answer: alice's and carol's (2 of 3) where bob
    # removed a span, so it differs from the model's by at most bob's one removal.
    removed = column(rows, "Removed")
    assert removed in (totals["removed"], totals["removed"] + 1)
    assert column(rows, "Relabelled") == totals["relabelled"] == 1
    assert column(rows, "Moved") == totals["moved"] == 1
    assert column(rows, "Added") == totals["added"] == 1
    assert column(rows, "Kept") == totals["kept"] - (removed - totals["removed"])
    assert column(rows, "Model spans") == len(live.expected.scored)


def merged_kept(live: Live) -> list[tuple[float, bool]]:
    """The expected (score, kept) of every model span, with the two-worker loop as the merge settled it
    (alice's answer or bob's, who removed the last span)."""
    records = records_of(live.workspace)
    [review] = [r for r in records.reviews if r.loop == live.expected.disagreeing_loop]
    dropped = {(s.begin, s.end) for s in review.model} - {(s.begin, s.end) for s in review.consolidated}
    last = max(review.model, key=lambda s: s.begin)
    assert dropped in (set(), {(last.begin, last.end)})
    return [(score, kept and not (dropped and (loop, begin) == (review.loop, last.begin)))
            for loop, begin, score, kept in live.expected.scored]


def records_of(workspace: Path) -> Any:
    runtime = open_workspace(workspace, autosave=False)
    runtime.start()
    try:
        return read_records(runtime.state.table, runtime.s3, runtime.bucket)
    finally:
        runtime.close(save=False)


def test_the_production_calibration_is_the_kept_share_per_confidence_bin(live: Live) -> None:
    scored = merged_kept(live)
    rows = live.page.tables["outcomes-by-bin"]
    assert len(rows) == 10
    for index, row in enumerate(rows):
        inside = [kept for score, kept in scored if min(9, int(score * 10)) == index]
        assert int(row["Model spans"]) == len(inside), row
        assert int(row["Kept"]) == sum(inside), row
        assert row["Kept share"] == (f"{100 * sum(inside) / len(inside):.1f}%" if inside else "n/a")
    [v1] = [row for row in live.page.tables["production-calibration"] if row["Version"] == "v1"]
    assert (int(v1["Reviews"]), int(v1["Model spans"]), int(v1["Kept"])) == (
        live.expected.reviews, len(scored), sum(kept for _, kept in scored))


def test_the_threshold_rests_on_the_reviewed_spans_above_it_with_its_intervals(live: Live) -> None:
    scored = merged_kept(live)
    rows = {row["Threshold"].split(" ")[0]: row for row in live.page.tables["threshold-evidence"]}
    for row in rows.values():
        if row["Value"] == "n/a":
            continue
        threshold = float(row["Value"])
        above = [kept for score, kept in scored if score >= threshold]
        assert (int(row["Spans"]), int(row["Kept"])) == (len(above), sum(above))
        low, high = (float(x) for x in row["95 % Wilson"].split(" to "))
        assert low <= sum(above) / len(above) <= high
        assert row["95 % bootstrap over reviews"] != "n/a"
    estimate = rows["estimate"]
    assert float(estimate["Kept share"]) >= TARGET
    # The lowest such threshold: one distinct score lower, the kept share falls below the target.
    lower = [score for score, _ in scored if score < float(estimate["Value"])]
    if lower:
        below = [kept for score, kept in scored if score >= max(lower)]
        assert sum(below) / len(below) < TARGET
    summary = live.page.by_id["live-threshold"]
    assert f"{len(scored)} of the model's spans in {live.expected.reviews} reviewed documents" in summary
    assert "The loop's threshold is 0.999" in summary


def test_agreement_is_span_f1_between_the_workers_of_a_document(live: Live) -> None:
    summary = live.page.by_id["agreement-summary"]
    assert summary.startswith("2 documents had several reviewers (3 workers;")
    worst = live.page.tables["disagreements"]
    assert [row["Human loop"] for row in worst] == [live.expected.disagreeing_loop,
                                                    *(n for n in live.expected.two_worker_loops
                                                      if n != live.expected.disagreeing_loop)]
    assert float(worst[0]["F1"]) == pytest.approx(live.expected.disagreeing_f1, abs=5e-5)
    assert float(worst[1]["F1"]) == pytest.approx(1.0)
    assert worst[0]["Pairs"].startswith("alice / bob: ")


def test_reviews_per_day_and_time_to_answer_count_every_review_and_answer(live: Live) -> None:
    assert column(live.page.tables["live-reviews-per-day"], "Reviews") == live.expected.reviews
    assert live.page.by_id["answer-times"].startswith(f"From a human loop's start to a worker's answer "
                                                      f"({live.expected.answers} answers): median ")
    loops = {row["Ending"]: int(row["Loops"]) for row in live.page.tables["live-loops"]}
    assert loops["Completed"] == live.expected.reviews


def test_each_version_shows_comprehends_evaluation_and_the_reviews_it_trained_on(live: Live) -> None:
    versions = {row["Version"]: row for row in live.page.tables["live-versions"]}
    assert versions["v1"]["Of them from reviews"] == "0"
    assert 0.0 < float(versions["v1"]["F1"]) <= 1.0
    assert versions["v1"]["Training took"].endswith(" s")  # the stand-in trains in seconds
    # Every loop answered, none open: the merge started a retrain on the reviews (README's retrain rules).
    assert versions["v2"]["Of them from reviews"] == str(live.expected.reviews)
    types = {(row["Version"], row["Type"]) for row in live.page.tables["live-version-types"]}
    assert {("v1", "SERVICE"), ("v1", "VERSION")} <= types


def test_the_plots_are_real_pngs(live: Live) -> None:
    assert sorted(live.page.images) == sorted(files.LIVE_IMAGES)
    for name in live.page.images:
        data = (live.out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", name
        width, height = struct.unpack(">II", data[16:24])
        assert width > 200 and height > 200, name
        with Image.open(live.out / name) as image:
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 20, name  # a plot, not a blank canvas
    assert live.printed.strip() == str(live.out / "index.html")
    assert live.page.scripts == 0


def state_files(workspace: Path) -> dict[str, tuple[bytes, int]]:
    return {str(path.relative_to(workspace)): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(workspace.rglob("*")) if path.is_file() and "report" not in path.parts}


def test_the_report_does_not_change_the_workspace(live: Live, tmp_path: Path) -> None:
    before = state_files(live.workspace)

    assert nerloop("report", "--workspace", live.workspace, "--out", tmp_path / "again")[0] == 0

    assert state_files(live.workspace) == before


def test_before_any_review_the_page_says_there_is_nothing_to_measure(live: Live) -> None:
    code, _ = nerloop("report", "--workspace", live.before_answers)
    assert code == 0
    page = Page((live.before_answers / "report" / "index.html").read_text(encoding="utf-8"))
    assert page.by_id["live-threshold"] == report_live.NO_REVIEWS
    assert page.by_id["agreement-summary"] == report_live.ONE_REVIEWER
    assert page.images == [files.VERSIONS_PNG]


def test_the_stack_entry_takes_a_table_and_a_bucket(live: Live, tmp_path: Path) -> None:
    runtime = open_workspace(live.workspace, autosave=False)
    runtime.start()
    try:
        page = build_stack_report(runtime.state.table, runtime.s3, runtime.bucket, tmp_path / "stack",
                                  source="a stack", target=TARGET, threshold=0.999)
    finally:
        runtime.close(save=False)
    assert Page(page.read_text(encoding="utf-8")).tables["outcomes-by-type"] == live.page.tables["outcomes-by-type"]
