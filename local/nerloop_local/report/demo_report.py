"""`nerloop report`: a demo run's figures as an HTML page with PNG plots.

    nerloop report --figures demo.json             → ./nerloop-report/index.html
    nerloop report --workspace DIR                  the loop's own records (`report_live`), then DIR/demo.json's
                                                    test set when there is one → DIR/report/index.html
    nerloop report --learning learning.json         a learning benchmark's page (`report_learning`)
    nerloop report --stack NAME [--region R]        a deployed stack's own records → ./nerloop-report/

The page shows the learning curve (test F1 against documents reviewed, beside the random-selection
and full-supervision references), precision / recall / F1 per entity type per model version, a
confidence histogram and a reliability diagram, and the threshold that keeps the precision of
auto-accepted entities at or above a target, with the reviews it would save against the run's
threshold (chosen on the even-numbered test documents, measured on the odd-numbered ones). Every
number comes from the figures file (computed in `report_figures`); none is typed in here. Plots are
drawn with matplotlib's Agg canvas, no display needed; the page needs no script.
"""

from __future__ import annotations

import argparse
import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nerloop_local.commands.demo import FIGURES_FILE
from nerloop_local.commands.stack_resources import add_stack_arguments, open_stack_for
from nerloop_local.report.figures import (
    DEFAULT_TARGET_PRECISION,
    FiguresError,
    LearningCurve,
    RoundFigures,
    RunFigures,
    ThresholdAnalysis,
    choose_threshold_held_out,
    expected_calibration_error,
    headline_round,
    learning_curve,
    parse_figures,
    read_json,
    reliability_bins,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_OUT = Path("nerloop-report")
WORKSPACE_FIGURES = FIGURES_FILE  # what `nerloop demo --workspace DIR` writes there
WORKSPACE_REPORT = "report"
NO_CALIBRATION = "No calibration data in this run."
MISSING = "n/a"  # a figure the run has no data for

LEARNING_CURVE_PNG = "learning_curve.png"
PER_TYPE_PNG = "per_type.png"
HISTOGRAM_PNG = "confidence_histogram.png"
RELIABILITY_PNG = "reliability.png"
THRESHOLD_PNG = "threshold.png"
IMAGES = (LEARNING_CURVE_PNG, PER_TYPE_PNG, HISTOGRAM_PNG, RELIABILITY_PNG, THRESHOLD_PNG)


@dataclass(frozen=True)
class CalibrationRow:
    entry: RoundFigures
    documents: int
    ece: float | None
    analysis: ThresholdAnalysis


@dataclass
class ReportData:
    """Everything the page shows, computed from one run's figures."""

    run: RunFigures
    source: str
    target: float
    curve: LearningCurve
    calibration: list[CalibrationRow] = field(default_factory=list)
    headline: CalibrationRow | None = None


def analyse(run: RunFigures, source: str, target: float = DEFAULT_TARGET_PRECISION) -> ReportData:
    """The page's figures: learning curve, and calibration and threshold per round that has the data."""
    rows = []
    for entry in sorted(run.rounds, key=lambda r: r.round):
        if entry.calibration is None:
            continue
        documents = run.documents_in_test(entry)
        rows.append(CalibrationRow(
            entry, documents, expected_calibration_error(reliability_bins(entry.calibration)),
            choose_threshold_held_out(entry.calibration, documents, target, run.threshold)))
    lead = headline_round(run)
    headline = next((row for row in rows if lead is not None and row.entry.round == lead.round), None)
    return ReportData(run, source, target, learning_curve(run), rows, headline)


# --- plots -------------------------------------------------------------------------------------------


def _figure(width: float = 7.0, height: float = 4.2) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, format="png", metadata={"Software": None})


def plot_learning_curve(curve: LearningCurve, path: Path) -> None:
    figure = _figure()
    axes = figure.subplots()
    reviewed = [p.reviewed for p in curve.points]
    axes.plot(reviewed, [p.f1 for p in curve.points], marker="o", label="active learning (this loop)")
    for x, point in zip(reviewed, curve.points, strict=True):
        axes.annotate(point.model_version, (x, point.f1), textcoords="offset points", xytext=(4, 6), fontsize=8)
    randoms = [(p.reviewed, p.random_f1) for p in curve.points if p.random_f1 is not None]
    if randoms:
        axes.plot([x for x, _ in randoms], [y for _, y in randoms], marker="s", linestyle="--",
                  label="random selection (mean of draws)")
        draws = [(p.reviewed, d) for p in curve.points for d in p.random_draws]
        if draws:
            axes.scatter([x for x, _ in draws], [y for _, y in draws], s=12, alpha=0.4, color="C1",
                         label="random selection draws")
    full = f"full supervision ({curve.full_documents} documents)" if curve.full_documents else "full supervision"
    axes.axhline(curve.full_f1, color="C2", linestyle=":", label=full)
    axes.set_xlabel(f"documents reviewed (pool {curve.pool_size})")
    axes.set_ylabel("test F1")
    axes.set_title("Learning curve")
    axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize=8)
    _save(figure, path)


def plot_per_type(run: RunFigures, path: Path) -> None:
    types = _types(run)
    rounds = sorted(run.rounds, key=lambda r: r.round)
    versions = [entry.model_version for entry in rounds]
    columns = min(3, max(1, len(types)))
    rows = (len(types) + columns - 1) // columns if types else 1
    figure = _figure(3.6 * columns + 0.6, 3.2 * rows + 0.4)
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    for index, name in enumerate(types):
        axes = grid[index // columns][index % columns]
        for metric, marker in (("precision", "o"), ("recall", "s"), ("f1", "^")):
            values = [getattr(entry.per_type[name], metric) if name in entry.per_type else float("nan")
                      for entry in rounds]
            axes.plot(versions, values, marker=marker, label="F1" if metric == "f1" else metric)
        axes.set_title(name, fontsize=10)
        axes.set_xlabel("model version")
        axes.grid(alpha=0.3)
    for index in range(len(types), rows * columns):
        grid[index // columns][index % columns].set_visible(False)
    grid[0][0].set_ylabel("test score")
    grid[0][0].legend(fontsize=8, loc="lower left")
    figure.suptitle("Precision, recall and F1 per entity type")
    _save(figure, path)


def plot_histogram(row: CalibrationRow, run_threshold: float, path: Path) -> None:
    from matplotlib.ticker import MaxNLocator

    bins = reliability_bins(row.entry.calibration or [], bins=20)
    lefts = [b.lower for b in bins]
    width = bins[0].upper - bins[0].lower
    right = [b.correct for b in bins]
    wrong = [b.count - b.correct for b in bins]
    figure = _figure()
    axes = figure.subplots()
    axes.bar(lefts, right, width=width, align="edge", label="correct", color="C2", edgecolor="white")
    axes.bar(lefts, wrong, width=width, align="edge", bottom=right, label="wrong", color="C3", edgecolor="white")
    axes.axvline(run_threshold, color="black", linestyle="--", label=f"run's threshold {run_threshold:.2f}")
    chosen = row.analysis.chosen
    if chosen is not None and not row.analysis.everything_reviewed:
        axes.axvline(chosen.threshold, color="C0", linestyle=":",
                     label=f"threshold for precision ≥ {row.analysis.target:.2f}: {chosen.threshold:.3f}")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, max(1, max(b.count for b in bins)) * 1.1)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("entity confidence")
    axes.set_ylabel("predicted entities (test set)")
    axes.set_title(f"Confidence of model {row.entry.model_version}'s entities")
    axes.legend(fontsize=8, loc="upper left")
    _save(figure, path)


def plot_reliability(rows: Sequence[CalibrationRow], path: Path) -> None:
    figure = _figure(5.6, 5.0)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for row in rows:
        filled = [(b.mean_score, b.accuracy) for b in reliability_bins(row.entry.calibration or [])
                  if b.mean_score is not None and b.accuracy is not None]
        ece = f", ECE {row.ece:.3f}" if row.ece is not None else ""
        axes.plot([x for x, _ in filled], [y for _, y in filled], marker="o",
                  label=f"{row.entry.model_version}{ece}")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("mean confidence in bin")
    axes.set_ylabel("share correct in bin")
    axes.set_title("Reliability (10 equal-width bins)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    _save(figure, path)


def plot_threshold(row: CalibrationRow, run_threshold: float, path: Path) -> None:
    from nerloop_local.report.figures import candidate_thresholds, review_outcome

    predictions = row.entry.calibration or []
    outcomes = [review_outcome(predictions, t, row.documents) for t in candidate_thresholds(predictions)]
    figure = _figure()
    axes = figure.subplots()
    kept = [(o.threshold, o.precision) for o in outcomes if o.precision is not None]
    axes.step([t for t, _ in kept], [p for _, p in kept], where="pre", color="C0",
              label="precision of auto-accepted entities")
    axes.axhline(row.analysis.target, color="C0", linestyle=":", label=f"target {row.analysis.target:.2f}")
    axes.set_xlabel("confidence threshold")
    axes.set_ylabel("precision of auto-accepted entities", color="C0")
    axes.set_xlim(0, 1)
    reviews = axes.twinx()
    reviews.step([o.threshold for o in outcomes], [o.to_review for o in outcomes], where="pre", color="C3",
                 label="test documents to review")
    reviews.set_ylabel(f"test documents to review (of {row.documents})", color="C3")
    reviews.set_ylim(0, max(1, row.documents))
    axes.axvline(run_threshold, color="black", linestyle="--", label=f"run's threshold {run_threshold:.2f}")
    chosen = row.analysis.chosen
    if chosen is not None and not row.analysis.everything_reviewed:
        axes.axvline(chosen.threshold, color="C2", linestyle="-.",
                     label=f"chosen on the even-numbered documents {chosen.threshold:.3f}")
    lines = axes.get_legend_handles_labels()
    more = reviews.get_legend_handles_labels()
    axes.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower left")
    axes.set_title(f"Threshold against precision and reviews (model {row.entry.model_version})")
    _save(figure, path)


# --- the page -----------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _score(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4f}"


def _share(value: float | None) -> str:
    return MISSING if value is None else f"{100 * value:.1f}%"


def _threshold(analysis: ThresholdAnalysis) -> str:
    chosen = analysis.chosen
    if chosen is None:
        return MISSING
    if analysis.everything_reviewed:
        return f"above {chosen.threshold:.4f}"
    return f"{chosen.threshold:.4f}"


def _table(table_id: str, caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th scope=\"col\">{_e(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return (f"<table id=\"{_e(table_id)}\"><caption>{_e(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n{body}\n</tbody></table>")


def _image(name: str, alt: str) -> str:
    return f"<p><img src=\"{_e(name)}\" alt=\"{_e(alt)}\"></p>"


def _types(run: RunFigures) -> list[str]:
    seen = list(run.entity_types)
    for entry in run.rounds:
        seen += [name for name in entry.per_type if name not in seen]
    return seen


def _headline_text(data: ReportData) -> str:
    row = data.headline
    if row is None:
        return f"<p>{_e(NO_CALIBRATION)}</p>"
    analysis, run_threshold = row.analysis, data.run.threshold
    chosen, at_run = analysis.chosen, analysis.run
    name = f"model {row.entry.model_version}" + (" (the active one)" if row.entry.active else "")
    if chosen is None:
        return (f"<p id=\"threshold-summary\">{_e(name[0].upper() + name[1:])} predicted no entity on the test "
                f"set; there is nothing to set a threshold on.</p>")
    target = f"{analysis.target:.2f}"
    choice = analysis.choice or chosen
    if analysis.everything_reviewed:
        first = (f"No threshold lets {name} accept any entity without review at a precision of {target} or more on "
                 f"the {choice.documents} even-numbered test documents it was chosen on: every test document with an "
                 f"entity would go to review ({chosen.to_review} of the other {chosen.documents}).")
    else:
        first = (f"For {name}, a threshold of {chosen.threshold:.4f} is the lowest that keeps the precision of "
                 f"auto-accepted entities at {target} or more on the {choice.documents} even-numbered test documents "
                 f"(chosen there). On the other {chosen.documents}, held out from the choice: {chosen.to_review} go "
                 f"to review, and the {chosen.accepted_entities} entities accepted without review are "
                 f"{_score(chosen.precision)} precise.")
    second = (f"There, the run's threshold, {run_threshold:g}, sends {at_run.to_review} to review "
              f"(auto-accepted precision {_score(at_run.precision)}).")
    saved = analysis.saved or 0
    if saved > 0:
        third = f"The chosen threshold would save {saved} reviews ({_share(analysis.saved_share)} of the run's)."
    elif saved < 0:
        third = (f"Meeting the target needs {-saved} more reviews than the run's threshold "
                 f"({_share(-(analysis.saved_share or 0.0))} more).")
    else:
        third = "The chosen threshold sends as many documents to review as the run's."
    return f"<p id=\"threshold-summary\">{_e(first)} {_e(second)} {_e(third)}</p>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 62rem; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; height: auto; }
.meta { color: #555; }
"""


def render_html(data: ReportData, images: Sequence[str], before: Sequence[str] = ()) -> str:
    """The page as a string: escaped text, relative image links, no script. `before`: sections (HTML)
    shown ahead of the test set's, as the live report's from the same workspace."""
    run = data.run
    rounds = sorted(run.rounds, key=lambda r: r.round)
    parts = [
        "<!DOCTYPE html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        "<title>nerloop report</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
        "<h1>nerloop report</h1>",
    ]
    facts = [f"figures: {data.source}"]
    if run.manifest:
        facts.append(f"manifest: {run.manifest}")
    if run.seed is not None:
        facts.append(f"seed {run.seed}")
    facts.append(f"pool {run.pool_size} documents")
    if run.test_documents is not None:
        facts.append(f"test {run.test_documents} documents")
    facts.append(f"confidence threshold {run.threshold:g}")
    facts.append("entity types " + ", ".join(run.entity_types))
    if run.seconds is not None:
        facts.append(f"run took {run.seconds:g} s")
    parts.append(f"<p class=\"meta\">{_e(' · '.join(facts))}</p>")
    if before:
        parts.append("<p>First what the loop's own records say (its versions and its reviews, as on a deployed "
                     "stack); then, from <a href=\"#section-learning-curve\">the learning curve</a> on, what the "
                     "demo's held-out test set says.</p>")
        parts += before

    parts.append("<h2 id=\"section-learning-curve\">Learning curve</h2>")
    if LEARNING_CURVE_PNG in images:
        parts.append(_image(LEARNING_CURVE_PNG, "Test F1 against documents reviewed, with references"))
    full = data.curve.full_f1
    parts.append(f"<p>Full supervision ({_e(data.curve.full_documents or '?')} documents): "
                 f"F1 <span id=\"full-f1\">{_score(full)}</span>.</p>")
    parts.append(_table(
        "curve", "Test F1 against documents reviewed",
        ["Version", "Reviewed", "Share of pool", "F1", "Random selection F1", "F1 / full supervision"],
        [(p.model_version, p.reviewed, _share(p.pool_share), _score(p.f1), _score(p.random_f1), _share(p.of_full))
         for p in data.curve.points]))

    parts.append("<h2 id=\"section-rounds\">Rounds</h2>")
    parts.append(_table(
        "rounds", "One row per model version, scored on the held-out test set",
        ["Round", "Version", "Active", "Reviewed (total)", "Training documents", "Detected", "Routed to review",
         "Reviewed this round", "Precision", "Recall", "F1"],
        [(e.round, e.model_version, "yes" if e.active else "", e.reviewed_documents, e.training_documents,
          e.documents_detected, e.routed_to_review, e.reviewed_this_round, _score(e.precision), _score(e.recall),
          _score(e.f1)) for e in rounds]))

    parts.append("<h2 id=\"section-per-type\">Per entity type</h2>")
    if PER_TYPE_PNG in images:
        parts.append(_image(PER_TYPE_PNG, "Precision, recall and F1 per entity type per model version"))
    type_rows = []
    for entry in rounds:
        for name, got in entry.per_type.items():
            type_rows.append((entry.model_version, name, _score(got.precision), _score(got.recall), _score(got.f1)))
    for name, got in run.full_supervision.per_type.items():
        type_rows.append(("full supervision", name, _score(got.precision), _score(got.recall), _score(got.f1)))
    parts.append(_table("per-type-table", "Precision, recall and F1 per entity type",
                        ["Version", "Type", "Precision", "Recall", "F1"], type_rows))

    parts.append("<h2 id=\"section-calibration\">Confidence and calibration</h2>")
    if data.headline is None:
        parts.append(f"<p class=\"missing\">{_e(NO_CALIBRATION)}</p>")
    else:
        parts.append(f"<p>Every entity the model predicts on the test set, with its confidence and whether it "
                     f"exactly matches a gold span of the same type (model {_e(data.headline.entry.model_version)} "
                     f"in the histogram; every version with the data in the reliability diagram).</p>")
        if HISTOGRAM_PNG in images:
            parts.append(_image(HISTOGRAM_PNG, "Histogram of entity confidence, correct and wrong"))
        if RELIABILITY_PNG in images:
            parts.append(_image(RELIABILITY_PNG, "Reliability diagram: share correct against confidence"))

    parts.append("<h2 id=\"section-threshold\">Confidence threshold</h2>")
    if data.headline is None:
        parts.append(f"<p class=\"missing\">{_e(NO_CALIBRATION)}</p>")
    else:
        parts.append(f"<p>A test document goes to review when any of its entities scores below the threshold (the "
                     f"loop's routing rule); the entities of the other documents are accepted without review. "
                     f"Target precision of auto-accepted entities: {data.target:.2f}. The threshold is chosen on the "
                     f"even-numbered test documents and every figure of it below is measured on the odd-numbered "
                     f"ones, so that it is not scored on the predictions it was chosen on.</p>")
        parts.append(_headline_text(data))
        if THRESHOLD_PNG in images:
            parts.append(_image(THRESHOLD_PNG, "Precision of auto-accepted entities and reviews against threshold"))
        parts.append(_table(
            "threshold-table", f"Per model version: threshold chosen on the even-numbered test documents, the "
                               f"rest measured on the odd-numbered ones (run's threshold {run.threshold:g})",
            ["Version", "Entities", "Test documents", "ECE", "Threshold for target", "To review",
             "Auto-accepted precision", "To review at run's threshold", "Auto-accepted precision at run's",
             "Reviews saved", "Share saved"],
            [(row.entry.model_version, len(row.entry.calibration or ()), row.documents, _score(row.ece),
              _threshold(row.analysis),
              MISSING if row.analysis.chosen is None else row.analysis.chosen.to_review,
              _score(None if row.analysis.chosen is None else row.analysis.chosen.precision),
              row.analysis.run.to_review, _score(row.analysis.run.precision),
              MISSING if row.analysis.saved is None else row.analysis.saved, _share(row.analysis.saved_share))
             for row in data.calibration]))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def build_report(run: RunFigures, out: Path, *, source: str, target: float = DEFAULT_TARGET_PRECISION,
                 before: Sequence[str] = (), drawn: Sequence[str] = ()) -> Path:
    """Write `out/index.html` and its PNG files; return the page's path. `before`: sections (HTML) put
    ahead of the test set's, whose plots, `drawn`, are already in `out`."""
    data = analyse(run, source, target)
    out.mkdir(parents=True, exist_ok=True)
    images = [LEARNING_CURVE_PNG, PER_TYPE_PNG]
    plot_learning_curve(data.curve, out / LEARNING_CURVE_PNG)
    plot_per_type(run, out / PER_TYPE_PNG)
    if data.headline is not None:
        plot_histogram(data.headline, run.threshold, out / HISTOGRAM_PNG)
        plot_reliability([row for row in data.calibration if row.entry.calibration], out / RELIABILITY_PNG)
        plot_threshold(data.headline, run.threshold, out / THRESHOLD_PNG)
        images += [HISTOGRAM_PNG, RELIABILITY_PNG, THRESHOLD_PNG]
    from nerloop_local.report.learning import IMAGES as LEARNING_IMAGES
    from nerloop_local.report.live import IMAGES as LIVE_IMAGES

    for stale in {*IMAGES, *LEARNING_IMAGES, *LIVE_IMAGES} - {*images, *drawn}:  # left by an earlier report here
        (out / stale).unlink(missing_ok=True)
    page = out / "index.html"
    page.write_text(render_html(data, images, before), encoding="utf-8")
    return page


# --- command line ---------------------------------------------------------------------------------------


def figures_source(figures: Path | None, workspace: Path | None) -> Path:
    """The figures file to read: the one given, or the workspace's demo.json."""
    from nerloop_local.usage import UsageError

    if figures is not None:
        return figures
    if workspace is None:
        raise UsageError("pass --figures FILE.json or --workspace DIR")
    if not workspace.is_dir():
        raise UsageError(f"{workspace}: no such workspace")
    found = workspace / WORKSPACE_FIGURES
    if not found.is_file():
        raise UsageError(f"{found}: no such file, and no loop state beside it (workspace.json): run "
                         f"`nerloop up --workspace {workspace}` or `nerloop demo --workspace {workspace}`, or pass "
                         f"--figures FILE.json")
    return found


def cmd_report(args: argparse.Namespace) -> int:
    """A demo's page, or a learning benchmark's (given with --learning, or recognised by its `kind`)."""
    from nerloop_local.report.learning import build_learning_report
    from nerloop_local.report.learning_figures import is_learning_benchmark, parse_learning
    from nerloop_local.usage import UsageError

    if not 0.0 < args.target_precision <= 1.0:
        raise UsageError(f"--target-precision must be in (0, 1], got {args.target_precision:g}")
    out = args.out or (args.workspace / WORKSPACE_REPORT if args.workspace is not None else DEFAULT_OUT)
    stack = open_stack_for(args)
    if stack is not None:  # a deployed stack's own records, read with the caller's credentials
        from nerloop_local.report.live import build_stack_report

        print(build_stack_report(stack.state_table(), stack.client("s3"), stack.bucket, out, source=stack.label,
                                 target=args.target_precision, threshold=stack.confidence_threshold))
        return 0
    if args.workspace is not None:
        from nerloop_local.report.live import build_workspace_report, has_loop_state

        if has_loop_state(args.workspace):  # the loop's own records, and the demo's test set when it has one
            try:
                page = build_workspace_report(args.workspace, out, target=args.target_precision)
            except FiguresError as exc:
                raise UsageError(str(exc)) from exc
            _add_cost(page, args.workspace)
            print(page)
            return 0
    source = args.learning or figures_source(args.figures, args.workspace)
    try:
        data = read_json(source)
        if args.learning is not None or is_learning_benchmark(data):
            page = build_learning_report(parse_learning(data, source), out, source=str(source))
        else:
            page = build_report(parse_figures(data, source), out, source=str(source), target=args.target_precision)
    except FiguresError as exc:
        raise UsageError(str(exc)) from exc
    if args.workspace is not None:
        _add_cost(page, args.workspace)
    print(page)
    return 0


def _add_cost(page: Path, workspace: Path) -> None:
    """The cost per round section (nerloop_local.report.cost), when the workspace holds loop state."""
    from nerloop_local.report.cost import add_cost_section

    add_cost_section(page, workspace)


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = commands.add_parser(
        "report", help="a demo run's figures, or a learning benchmark, as an HTML page with plots",
        description="Write an HTML page with PNG plots. From a workspace: the loop's own records (each "
                    "version's evaluation, reviews per day, what reviewers did to the model's spans, its precision "
                    "in production and the threshold it supports, agreement between reviewers), then a demo's "
                    "test set when the workspace has one. From the figures of `nerloop demo --json FILE`: "
                    "learning curve, scores per entity type, calibration, and the confidence threshold for a "
                    "target precision. From a learning benchmark "
                    "(`python -m bench.learn`): the learning curves of the loop, random selection and full "
                    "supervision with their intervals over seeds. Prints the page's path.")
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--figures", type=Path, metavar="FILE.json", help="figures written by `nerloop demo --json`")
    source.add_argument("--workspace", type=Path, metavar="DIR",
                        help="a workspace of `nerloop up` or `nerloop demo`: the loop's own records (versions, "
                             f"reviews), and the demo's test set when DIR/{WORKSPACE_FIGURES} is there")
    source.add_argument("--learning", type=Path, metavar="FILE.json",
                        help="a learning benchmark written by `python -m bench.learn` (--figures recognises one too)")
    add_stack_arguments(report, source, "its state table and data bucket, read, never written")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help=f"where to write index.html and the plots (default: DIR/{WORKSPACE_REPORT} with "
                             f"--workspace, else ./{DEFAULT_OUT})")
    report.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION,
                        help="precision the auto-accepted entities must keep, for the threshold section "
                             f"(default: {DEFAULT_TARGET_PRECISION})")
    report.set_defaults(run=cmd_report)


__all__ = [
    "DEFAULT_OUT",
    "IMAGES",
    "MISSING",
    "NO_CALIBRATION",
    "ReportData",
    "add_commands",
    "analyse",
    "build_report",
    "cmd_report",
    "figures_source",
    "render_html",
]
