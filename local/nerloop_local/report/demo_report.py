"""The demo's test-set page: a demo run's figures (`nerloop demo --json FILE`, or demo.json in its workspace)
as an HTML page with PNG plots, drawn for `nerloop report` (nerloop_local.commands.report).

The page shows the learning curve (test F1 against documents reviewed, beside the random-selection
and full-supervision references), precision / recall / F1 per entity type per model version, a
confidence histogram and a reliability diagram, and the threshold that keeps the precision of
auto-accepted entities at or above a target, with the reviews it would save against the run's
threshold (chosen on the even-numbered test documents, measured on the odd-numbered ones). Every
number comes from the figures file (computed in `report.figures`); none is typed in here. Plots are
drawn with matplotlib's Agg canvas (`report.canvas`), no display needed; the page needs no script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nerloop_local.report.canvas import new_figure, save_png
from nerloop_local.report.figures import (
    DEFAULT_TARGET_PRECISION,
    LearningCurve,
    RoundFigures,
    RunFigures,
    ThresholdAnalysis,
    candidate_thresholds,
    choose_threshold_held_out,
    expected_calibration_error,
    headline_round,
    learning_curve,
    reliability_bins,
    review_outcome,
)
from nerloop_local.report.files import (
    HISTOGRAM_PNG,
    LEARNING_CURVE_PNG,
    PER_TYPE_PNG,
    RELIABILITY_PNG,
    THRESHOLD_PNG,
    remove_stale,
)
from nerloop_local.report.page import (
    MISSING,
    PAGE_END,
    escape,
    html_image,
    html_table,
    page_head,
    score_text,
    share_text,
)

NO_CALIBRATION = "No calibration data in this run."


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


def plot_learning_curve(curve: LearningCurve, path: Path) -> None:
    figure = new_figure()
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
    save_png(figure, path)


def plot_per_type(run: RunFigures, path: Path) -> None:
    types = _types(run)
    rounds = sorted(run.rounds, key=lambda r: r.round)
    versions = [entry.model_version for entry in rounds]
    columns = min(3, max(1, len(types)))
    rows = (len(types) + columns - 1) // columns if types else 1
    figure = new_figure(3.6 * columns + 0.6, 3.2 * rows + 0.4)
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
    save_png(figure, path)


def plot_histogram(row: CalibrationRow, run_threshold: float, path: Path) -> None:
    # Late import: matplotlib costs about half a second and only the plots need it, not every `nerloop` command.
    from matplotlib.ticker import MaxNLocator

    bins = reliability_bins(row.entry.calibration or [], bins=20)
    lefts = [b.lower for b in bins]
    width = bins[0].upper - bins[0].lower
    right = [b.correct for b in bins]
    wrong = [b.count - b.correct for b in bins]
    figure = new_figure()
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
    save_png(figure, path)


def plot_reliability(rows: Sequence[CalibrationRow], path: Path) -> None:
    figure = new_figure(5.6, 5.0)
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
    save_png(figure, path)


def plot_threshold(row: CalibrationRow, run_threshold: float, path: Path) -> None:
    predictions = row.entry.calibration or []
    outcomes = [review_outcome(predictions, t, row.documents) for t in candidate_thresholds(predictions)]
    figure = new_figure()
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
    save_png(figure, path)


# --- the page -----------------------------------------------------------------------------------------


def _threshold(analysis: ThresholdAnalysis) -> str:
    chosen = analysis.chosen
    if chosen is None:
        return MISSING
    if analysis.everything_reviewed:
        return f"above {chosen.threshold:.4f}"
    return f"{chosen.threshold:.4f}"


def _types(run: RunFigures) -> list[str]:
    seen = list(run.entity_types)
    for entry in run.rounds:
        seen += [name for name in entry.per_type if name not in seen]
    return seen


def _headline_text(data: ReportData) -> str:
    row = data.headline
    if row is None:
        return f"<p>{escape(NO_CALIBRATION)}</p>"
    analysis, run_threshold = row.analysis, data.run.threshold
    chosen, at_run = analysis.chosen, analysis.run
    name = f"model {row.entry.model_version}" + (" (the active one)" if row.entry.active else "")
    if chosen is None:
        return (f"<p id=\"threshold-summary\">{escape(name[0].upper() + name[1:])} predicted no entity on the test "
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
                 f"{score_text(chosen.precision)} precise.")
    second = (f"There, the run's threshold, {run_threshold:g}, sends {at_run.to_review} to review "
              f"(auto-accepted precision {score_text(at_run.precision)}).")
    saved = analysis.saved or 0
    if saved > 0:
        third = f"The chosen threshold would save {saved} reviews ({share_text(analysis.saved_share)} of the run's)."
    elif saved < 0:
        third = (f"Meeting the target needs {-saved} more reviews than the run's threshold "
                 f"({share_text(-(analysis.saved_share or 0.0))} more).")
    else:
        third = "The chosen threshold sends as many documents to review as the run's."
    return f"<p id=\"threshold-summary\">{escape(first)} {escape(second)} {escape(third)}</p>"


def _facts(data: ReportData) -> str:
    """The line under the title: where the figures come from and the run's settings."""
    run = data.run
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
    return f"<p class=\"meta\">{escape(' · '.join(facts))}</p>"


def _curve_section(data: ReportData, images: Sequence[str]) -> list[str]:
    parts = ["<h2 id=\"section-learning-curve\">Learning curve</h2>"]
    if LEARNING_CURVE_PNG in images:
        parts.append(html_image(LEARNING_CURVE_PNG, "Test F1 against documents reviewed, with references"))
    full = data.curve.full_f1
    parts.append(f"<p>Full supervision ({escape(data.curve.full_documents or '?')} documents): "
                 f"F1 <span id=\"full-f1\">{score_text(full)}</span>.</p>")
    parts.append(html_table(
        "curve", "Test F1 against documents reviewed",
        ["Version", "Reviewed", "Share of pool", "F1", "Random selection F1", "F1 / full supervision"],
        [(p.model_version, p.reviewed, share_text(p.pool_share), score_text(p.f1), score_text(p.random_f1),
          share_text(p.of_full)) for p in data.curve.points]))
    return parts


def _rounds_section(rounds: Sequence[RoundFigures]) -> list[str]:
    return ["<h2 id=\"section-rounds\">Rounds</h2>", html_table(
        "rounds", "One row per model version, scored on the held-out test set",
        ["Round", "Version", "Active", "Reviewed (total)", "Training documents", "Detected", "Routed to review",
         "Reviewed this round", "Precision", "Recall", "F1"],
        [(e.round, e.model_version, "yes" if e.active else "", e.reviewed_documents, e.training_documents,
          e.documents_detected, e.routed_to_review, e.reviewed_this_round, score_text(e.precision),
          score_text(e.recall), score_text(e.f1)) for e in rounds])]


def _per_type_section(run: RunFigures, rounds: Sequence[RoundFigures], images: Sequence[str]) -> list[str]:
    parts = ["<h2 id=\"section-per-type\">Per entity type</h2>"]
    if PER_TYPE_PNG in images:
        parts.append(html_image(PER_TYPE_PNG, "Precision, recall and F1 per entity type per model version"))
    type_rows = []
    for entry in rounds:
        for name, got in entry.per_type.items():
            type_rows.append((entry.model_version, name, score_text(got.precision), score_text(got.recall),
                              score_text(got.f1)))
    for name, got in run.full_supervision.per_type.items():
        type_rows.append(("full supervision", name, score_text(got.precision), score_text(got.recall),
                          score_text(got.f1)))
    parts.append(html_table("per-type-table", "Precision, recall and F1 per entity type",
                            ["Version", "Type", "Precision", "Recall", "F1"], type_rows))
    return parts


def _calibration_section(data: ReportData, images: Sequence[str]) -> list[str]:
    parts = ["<h2 id=\"section-calibration\">Confidence and calibration</h2>"]
    if data.headline is None:
        return [*parts, f"<p class=\"missing\">{escape(NO_CALIBRATION)}</p>"]
    parts.append(f"<p>Every entity the model predicts on the test set, with its confidence and whether it "
                 f"exactly matches a gold span of the same type (model {escape(data.headline.entry.model_version)} "
                 f"in the histogram; every version with the data in the reliability diagram).</p>")
    if HISTOGRAM_PNG in images:
        parts.append(html_image(HISTOGRAM_PNG, "Histogram of entity confidence, correct and wrong"))
    if RELIABILITY_PNG in images:
        parts.append(html_image(RELIABILITY_PNG, "Reliability diagram: share correct against confidence"))
    return parts


def _threshold_row(row: CalibrationRow) -> tuple[object, ...]:
    analysis = row.analysis
    return (row.entry.model_version, len(row.entry.calibration or ()), row.documents, score_text(row.ece),
            _threshold(analysis), MISSING if analysis.chosen is None else analysis.chosen.to_review,
            score_text(None if analysis.chosen is None else analysis.chosen.precision),
            analysis.run.to_review, score_text(analysis.run.precision),
            MISSING if analysis.saved is None else analysis.saved, share_text(analysis.saved_share))


def _threshold_section(data: ReportData, images: Sequence[str]) -> list[str]:
    parts = ["<h2 id=\"section-threshold\">Confidence threshold</h2>"]
    if data.headline is None:
        return [*parts, f"<p class=\"missing\">{escape(NO_CALIBRATION)}</p>"]
    parts.append(f"<p>A test document goes to review when any of its entities scores below the threshold (the "
                 f"loop's routing rule); the entities of the other documents are accepted without review. "
                 f"Target precision of auto-accepted entities: {data.target:.2f}. The threshold is chosen on the "
                 f"even-numbered test documents and every figure of it below is measured on the odd-numbered "
                 f"ones, so that it is not scored on the predictions it was chosen on.</p>")
    parts.append(_headline_text(data))
    if THRESHOLD_PNG in images:
        parts.append(html_image(THRESHOLD_PNG, "Precision of auto-accepted entities and reviews against threshold"))
    parts.append(html_table(
        "threshold-table", f"Per model version: threshold chosen on the even-numbered test documents, the "
                           f"rest measured on the odd-numbered ones (run's threshold {data.run.threshold:g})",
        ["Version", "Entities", "Test documents", "ECE", "Threshold for target", "To review",
         "Auto-accepted precision", "To review at run's threshold", "Auto-accepted precision at run's",
         "Reviews saved", "Share saved"],
        [_threshold_row(row) for row in data.calibration]))
    return parts


def render_html(data: ReportData, images: Sequence[str], before: Sequence[str] = ()) -> str:
    """The page as a string: escaped text, relative image links, no script. `before`: sections (HTML)
    shown ahead of the test set's, as the live report's from the same workspace."""
    rounds = sorted(data.run.rounds, key=lambda r: r.round)
    parts = [*page_head("nerloop report"), "<h1>nerloop report</h1>", _facts(data)]
    if before:
        parts.append("<p>First what the loop's own records say (its versions and its reviews, as on a deployed "
                     "stack); then, from <a href=\"#section-learning-curve\">the learning curve</a> on, what the "
                     "demo's held-out test set says.</p>")
        parts += before
    parts += _curve_section(data, images)
    parts += _rounds_section(rounds)
    parts += _per_type_section(data.run, rounds, images)
    parts += _calibration_section(data, images)
    parts += _threshold_section(data, images)
    return "\n".join([*parts, *PAGE_END])


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
    remove_stale(out, [*images, *drawn])
    page = out / "index.html"
    page.write_text(render_html(data, images, before), encoding="utf-8")
    return page


__all__ = [
    "NO_CALIBRATION",
    "ReportData",
    "analyse",
    "build_report",
    "render_html",
]
