"""`nerloop report` from the loop's own records: no test set, for a workspace or a deployed stack.

    build_stack_report(table, s3, bucket, out, ...)   the entry for any state table and data bucket
    read_workspace_records(DIR)                         a local workspace's, read without changing it

The page (or the sections put on the demo's page) shows, per model version, Comprehend's evaluation
and what it trained on; the human loops and reviews per day, with the time to an answer; what the
reviewers did to the model's spans by type and confidence; the model's precision in production per
confidence bin (a reliability diagram from the reviews) and the threshold it supports for a target
precision, with how many reviews that rests on and its uncertainty; agreement between reviewers.
Every figure is computed in `live_figures` from `loop_records`; plots use matplotlib's Agg canvas.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nerloop_local.emulator.workspace import Workspace
from nerloop_local.emulator.workspace_runtime import open_workspace
from nerloop_local.report.canvas import new_figure, save_png
from nerloop_local.report.demo_report import build_report
from nerloop_local.report.figures import DEFAULT_TARGET_PRECISION, parse_figures, read_json
from nerloop_local.report.files import (
    FIGURES_FILE,
    LIVE_RELIABILITY_PNG,
    OUTCOMES_PNG,
    REVIEWS_PER_DAY_PNG,
    VERSIONS_PNG,
    remove_stale,
)
from nerloop_local.report.live_figures import Calibration, LiveFigures, kept_share, live_figures
from nerloop_local.report.loop_records import LoopRecords, parse_time, read_records
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
from nerloop_local.report.review_analysis import (
    ADDED,
    KEPT,
    MOVED,
    OUTCOMES,
    RELABELLED,
    REMOVED,
    ThresholdEvidence,
    bin_label,
    wilson_interval,
)

NO_REVIEWS = "No review has been merged yet: nothing to measure the model against."
ONE_REVIEWER = "Every reviewed document had one reviewer: there is no agreement between reviewers to measure."
OUTCOME_COLOURS = {KEPT: "C2", RELABELLED: "C1", MOVED: "C0", REMOVED: "C3", ADDED: "C4"}


# --- plots -----------------------------------------------------------------------------------------------


def plot_versions(figures: LiveFigures, path: Path) -> None:
    """Comprehend's F1 per version, overall and per type (its own evaluation of each version)."""
    rows = [entry for entry in figures.records.versions if entry.version.metrics.get("f1") is not None]
    names = [entry.version.version for entry in rows]
    figure = new_figure()
    axes = figure.subplots()
    axes.plot(names, [entry.version.metrics["f1"] for entry in rows], marker="o", linewidth=2.5, label="overall")
    for name in figures.types:
        values = [((entry.version.metrics.get("per_type") or {}).get(name) or {}).get("f1") for entry in rows]
        axes.plot(names, [float("nan") if v is None else v for v in values], marker=".", linestyle="--", label=name)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("model version")
    axes.set_ylabel("F1 (Comprehend's evaluation)")
    axes.set_title("Each version's F1 on its own hold-out")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    save_png(figure, path)


def plot_reviews_per_day(figures: LiveFigures, path: Path) -> None:
    # Late import: matplotlib costs about half a second and only the plots need it, not every `nerloop` command.
    from matplotlib.ticker import MaxNLocator

    figure = new_figure(7.0, 3.4)
    axes = figure.subplots()
    days = [day.isoformat() for day, _ in figures.per_day]
    axes.bar(days, [count for _, count in figures.per_day], color="C0")
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("day (UTC)")
    axes.set_ylabel("reviews merged")
    axes.set_title("Reviews per day")
    axes.grid(axis="y", alpha=0.3)
    save_png(figure, path)


def plot_outcomes(figures: LiveFigures, path: Path) -> None:
    """What reviewers did to the model's spans, stacked per confidence bin."""
    # Late import: matplotlib costs about half a second and only the plots need it, not every `nerloop` command.
    from matplotlib.ticker import MaxNLocator

    bins = len(figures.by_bin)
    lefts = [index / bins for index in range(bins)]
    figure = new_figure()
    axes = figure.subplots()
    bottom = [0] * bins
    for outcome in (KEPT, RELABELLED, MOVED, REMOVED):
        heights = [counts[outcome] for counts in figures.by_bin]
        axes.bar(lefts, heights, width=1 / bins, align="edge", bottom=bottom, label=outcome,
                 color=OUTCOME_COLOURS[outcome], edgecolor="white")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_xlim(0, 1)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("model's confidence")
    axes.set_ylabel("model spans in reviewed documents")
    axes.set_title("What reviewers did to the model's spans")
    axes.legend(fontsize=8, loc="upper left")
    save_png(figure, path)


def plot_reliability(figures: LiveFigures, path: Path) -> None:
    """Share of the model's spans kept against confidence: per version, the headline with Wilson bars."""
    figure = new_figure(5.8, 5.2)
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for entry in figures.calibrations:
        filled = [(b.mean_score, b.accuracy, interval) for b, interval in zip(entry.bins, entry.intervals, strict=True)
                  if b.mean_score is not None and b.accuracy is not None]
        label = f"{entry.name} ({len(entry.predictions)} spans, {entry.reviews} reviews)"
        if entry is figures.headline:
            low = [acc - (ci[0] if ci else acc) for _, acc, ci in filled]
            high = [(ci[1] if ci else acc) - acc for _, acc, ci in filled]
            axes.errorbar([x for x, _, _ in filled], [y for _, y, _ in filled], yerr=[low, high], marker="o",
                          capsize=3, linewidth=2, label=f"{label}, 95 % Wilson")
        else:
            axes.plot([x for x, _, _ in filled], [y for _, y, _ in filled], marker=".", alpha=0.7, label=label)
    axes.axhline(figures.target, color="C3", linestyle="--", linewidth=1, label=f"target {figures.target:.2f}")
    advice = figures.advice
    if advice is not None and advice.confident is not None:
        axes.axvline(advice.confident.threshold, color="C2", linestyle="-.",
                     label=f"recommended threshold {advice.confident.threshold:.3f}")
    if figures.threshold is not None:
        axes.axvline(figures.threshold, color="black", linestyle="--", linewidth=1,
                     label=f"loop's threshold {figures.threshold:g}")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("model's confidence (mean in bin)")
    axes.set_ylabel("share of spans the reviewers kept")
    axes.set_title("Precision in production (reliability, 10 bins)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="upper left")
    save_png(figure, path)


def draw_plots(figures: LiveFigures, out: Path) -> list[str]:
    """Draw the plots the records have data for; return their file names."""
    drawn = []
    if any(entry.version.metrics.get("f1") is not None for entry in figures.records.versions):
        plot_versions(figures, out / VERSIONS_PNG)
        drawn.append(VERSIONS_PNG)
    if figures.per_day:
        plot_reviews_per_day(figures, out / REVIEWS_PER_DAY_PNG)
        drawn.append(REVIEWS_PER_DAY_PNG)
    if figures.headline is not None:
        plot_outcomes(figures, out / OUTCOMES_PNG)
        plot_reliability(figures, out / LIVE_RELIABILITY_PNG)
        drawn += [OUTCOMES_PNG, LIVE_RELIABILITY_PNG]
    return drawn


# --- the sections -----------------------------------------------------------------------------------------


def _interval(interval: tuple[float, float] | None) -> str:
    return MISSING if interval is None else f"{interval[0]:.3f} to {interval[1]:.3f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return MISSING
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def _training_seconds(metrics: dict[str, Any]) -> float | None:
    """From TrainingStartTime to TrainingEndTime, as the detect stage stored them."""
    started, ended = (parse_time(str(metrics.get(name) or "")) for name in ("training_started_at", "training_ended_at"))
    return None if started is None or ended is None else (ended - started).total_seconds()


def _version_rows(figures: LiveFigures) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    overall, per_type = [], []
    for entry in figures.records.versions:
        version, metrics = entry.version, entry.version.metrics
        training = metrics.get("training_set") or {}
        overall.append((version.version, version.status, "yes" if entry.active else "", version.created_at or MISSING,
                        _seconds(_training_seconds(metrics)),
                        training.get("documents", MISSING),
                        MISSING if entry.reviews_trained_on is None else entry.reviews_trained_on,
                        f"{metrics.get('trained_documents', MISSING)} / {metrics.get('test_documents', MISSING)}"
                        if "trained_documents" in metrics else MISSING,
                        score_text(metrics.get("precision")), score_text(metrics.get("recall")),
                        score_text(metrics.get("f1"))))
        for name, scores in (metrics.get("per_type") or {}).items():
            per_type.append((version.version, name, score_text(scores.get("precision")),
                             score_text(scores.get("recall")), score_text(scores.get("f1")),
                             scores.get("train_mentions", MISSING),
                             (training.get("annotations") or {}).get(name, MISSING)))
    return overall, per_type


def _threshold_text(figures: LiveFigures) -> str:
    advice = figures.advice
    if advice is None:
        return f"<p id=\"live-threshold\">{escape(NO_REVIEWS)}</p>"
    target = f"{advice.target:.2f}"
    on = (f"On {figures.headline_note}: {advice.spans} of the model's spans in {advice.reviews} reviewed "
          f"documents.")
    if advice.confident is not None:
        c = advice.confident
        first = (f"Recommended confidence threshold: {c.threshold:.4f}, the lowest at which the spans the reviewers "
                 f"saw scoring at or above it were kept at least {target} of the time with 95 % confidence: "
                 f"{c.kept} of {c.spans} kept ({score_text(c.precision)}; Wilson 95 % {_interval(c.wilson)}, bootstrap "
                 f"over the {c.reviews} reviews holding them {_interval(c.bootstrap)}).")
    else:
        first = (f"No threshold is supported for a precision of {target} with 95 % confidence: at every threshold "
                 f"the reviewed spans above it are too few, or kept too seldom.")
    if advice.point is not None and (advice.confident is None or advice.point.threshold != advice.confident.threshold):
        p = advice.point
        first += (f" By the estimate alone, {p.threshold:.4f} would do ({p.kept} of {p.spans} kept, "
                  f"{score_text(p.precision)}; Wilson {_interval(p.wilson)}): too few reviews to rely on.")
    loop = ""
    if figures.threshold is not None:
        at = next((c for c in advice.candidates if c.threshold >= figures.threshold), None)
        loop = (f" The loop's threshold is {figures.threshold:g}" + (
            f": {at.kept} of the {at.spans} reviewed spans at or above it were kept ({score_text(at.precision)})."
            if at is not None else ": no reviewed span scored that high."))
    caveat = (" Only documents sent to review are seen here, and the rule routes a whole document on its least "
              "confident span: the spans a threshold would accept are a subset of those counted.")
    return f"<p id=\"live-threshold\">{escape(on)} {escape(first)}{escape(loop)}{escape(caveat)}</p>"


def _evidence_row(label: str, evidence: ThresholdEvidence | None) -> tuple[Any, ...]:
    if evidence is None:
        return (label, MISSING, MISSING, MISSING, MISSING, MISSING, MISSING, MISSING)
    return (label, f"{evidence.threshold:.4f}", evidence.reviews, evidence.spans, evidence.kept,
            score_text(evidence.precision), _interval(evidence.wilson), _interval(evidence.bootstrap))


def _calibration_row(entry: Calibration) -> tuple[Any, ...]:
    kept = sum(1 for p in entry.predictions if p.correct)
    return (entry.name, entry.reviews, len(entry.predictions), kept,
            score_text(kept / len(entry.predictions) if entry.predictions else None), score_text(entry.ece))


def _agreement_sections(figures: LiveFigures) -> list[str]:
    found = figures.agreement
    parts = ["<h2 id=\"section-live-agreement\">Agreement between reviewers</h2>"]
    if not found.documents:
        return [*parts, f"<p id=\"agreement-summary\">{escape(ONE_REVIEWER)}</p>"]
    parts.append(f"<p id=\"agreement-summary\">{escape(found.documents)} documents had several reviewers "
                 f"({escape(found.workers)} workers; {escape(found.single)} had one). Span-level F1 between each "
                 f"pair of workers of a document (exact offsets and type), pooled over {escape(found.pairs)} pairs: "
                 f"{score_text(found.overall)}.</p>")
    parts.append(html_table("agreement-types", "Span-level F1 between pairs of workers, per entity type",
                            ["Type", "F1", "Pairs with a span"],
                            [(name, score_text(f1), pairs) for name, (f1, pairs) in found.per_type.items()]))
    rows = []
    for item in found.worst:
        review = item.review
        pairs = "; ".join(f"{a} / {b}: {score_text(p.f1)}" for p in item.pairs for a, b in [p.workers])
        rows.append((review.loop, review.version, review.text[:120], len(review.answers), score_text(item.f1), pairs))
    parts.append(html_table("disagreements", "The documents the reviewers disagreed on most",
                            ["Human loop", "Version", "Text", "Workers", "F1", "Pairs"], rows))
    return parts


def _versions_section(figures: LiveFigures, images: Sequence[str]) -> list[str]:
    """Each version as Comprehend evaluated it, and what it trained on."""
    parts = ["<h2 id=\"section-live-versions\">Model versions (Comprehend's evaluation)</h2>"]
    if VERSIONS_PNG in images:
        parts.append(html_image(VERSIONS_PNG, "Comprehend's F1 per version, overall and per entity type"))
    overall, per_type = _version_rows(figures)
    parts.append(html_table("live-versions", "Each version's evaluation by Comprehend, and what it trained on",
                            ["Version", "Status", "Active", "Submitted", "Training took", "Training documents",
                             "Of them from reviews",
                             "Comprehend trained / tested", "Precision", "Recall", "F1"], overall))
    parts.append(html_table("live-version-types", "Per entity type (Comprehend's evaluation)",
                            ["Version", "Type", "Precision", "Recall", "F1", "Train mentions",
                             "Annotations in snapshot"], per_type))
    return parts


def _reviews_section(figures: LiveFigures, images: Sequence[str]) -> list[str]:
    """Human loops by how they ended, reviews per day, and the time to an answer."""
    parts = ["<h2 id=\"section-live-reviews\">Human loops and reviews</h2>"]
    parts.append(html_table("live-loops", "Human loops by how they ended", ["Ending", "Loops"],
                            sorted(figures.loops.items())))
    if REVIEWS_PER_DAY_PNG in images:
        parts.append(html_image(REVIEWS_PER_DAY_PNG, "Reviews merged per day"))
    parts.append(html_table("live-reviews-per-day", "Reviews per day (UTC, the day of the last answer)",
                            ["Day", "Reviews"], [(day.isoformat(), count) for day, count in figures.per_day]))
    times = figures.times
    parts.append(f"<p id=\"answer-times\">From a human loop's start to a worker's answer ({times.count} answers): "
                 f"median {escape(_seconds(times.median))}, 90th percentile {escape(_seconds(times.p90))}, longest "
                 f"{escape(_seconds(times.longest))}.</p>")
    return parts


def _outcomes_section(figures: LiveFigures, images: Sequence[str]) -> list[str]:
    """What the reviewers did to the model's spans, by type and by confidence."""
    parts = ["<h2 id=\"section-live-outcomes\">What reviewers did to the model's spans</h2>"]
    if figures.headline is None:
        parts.append(f"<p class=\"missing\">{escape(NO_REVIEWS)}</p>")
    else:
        parts.append("<p>Each span the model proposed in a reviewed document against the merged answer: kept (same "
                     "offsets and type), relabelled (same offsets, another type), moved (other offsets, overlapping "
                     "a reviewer's span; its type may have changed too), removed; spans the reviewers marked where "
                     "the model had none are added.</p>")
        if OUTCOMES_PNG in images:
            parts.append(html_image(OUTCOMES_PNG, "Outcomes of the model's spans per confidence bin"))
        header = ["Type", *(o.capitalize() for o in OUTCOMES), "Model spans", "Kept share"]
        by_type = [(name, *(counts[o] for o in OUTCOMES), sum(counts[o] for o in OUTCOMES if o != ADDED),
                    share_text(kept_share(counts))) for name, counts in figures.by_type.items()]
        parts.append(html_table("outcomes-by-type", "By entity type (the model's; the reviewer's for added spans)",
                                header, by_type))
        by_bin = []
        for index, counts in enumerate(figures.by_bin):
            spans = sum(counts[o] for o in OUTCOMES if o != ADDED)
            by_bin.append((bin_label(index, len(figures.by_bin)), spans, *(counts[o] for o in OUTCOMES[:4]),
                           share_text(kept_share(counts)), _interval(wilson_interval(counts[KEPT], spans))))
        parts.append(html_table("outcomes-by-bin", "By the model's confidence (every version)",
                                ["Confidence", "Model spans", "Kept", "Relabelled", "Moved", "Removed", "Kept share",
                                 "Kept share, 95 % Wilson"], by_bin))
    return parts


def _calibration_section(figures: LiveFigures, images: Sequence[str]) -> list[str]:
    """The model's precision in production per version, and the threshold it supports."""
    parts = ["<h2 id=\"section-live-calibration\">Precision in production and the threshold</h2>"]
    if figures.headline is None:
        parts.append(f"<p class=\"missing\">{escape(NO_REVIEWS)}</p>")
    else:
        if LIVE_RELIABILITY_PNG in images:
            parts.append(html_image(LIVE_RELIABILITY_PNG, "Share of the model's spans kept against confidence"))
        parts.append(html_table("production-calibration", "The model's spans the reviewers kept, per version",
                                ["Version", "Reviews", "Model spans", "Kept", "Kept share", "ECE"],
                                [_calibration_row(entry) for entry in figures.calibrations]))
    parts.append(_threshold_text(figures))
    if figures.advice is not None:
        parts.append(html_table("threshold-evidence", f"Spans at or above a threshold (target {figures.target:.2f})",
                                ["Threshold", "Value", "Reviews", "Spans", "Kept", "Kept share", "95 % Wilson",
                                 "95 % bootstrap over reviews"],
                                [_evidence_row("recommended (Wilson lower bound ≥ target)", figures.advice.confident),
                                 _evidence_row("estimate ≥ target", figures.advice.point)]))
    return parts


def live_sections(figures: LiveFigures, images: Sequence[str]) -> list[str]:
    """The live report's sections, as HTML strings (escaped; images linked relative to the page)."""
    parts = [*_versions_section(figures, images), *_reviews_section(figures, images)]
    parts += _outcomes_section(figures, images)
    parts += _calibration_section(figures, images)
    parts += _agreement_sections(figures)
    if figures.records.problems:
        parts.append("<h2 id=\"section-live-problems\">Records that could not be read</h2>")
        parts.append("<ul id=\"live-problems\">" + "".join(f"<li>{escape(p)}</li>" for p in figures.records.problems)
                     + "</ul>")
    return parts


def render_page(figures: LiveFigures, images: Sequence[str], source: str) -> str:
    facts = [f"records: {source}", f"{len(figures.records.versions)} versions",
             f"{len(figures.records.loops)} human loops", f"{len(figures.records.reviews)} reviews"]
    if figures.threshold is not None:
        facts.append(f"confidence threshold {figures.threshold:g}")
    head = [*page_head("nerloop report"), "<h1>nerloop report</h1>",
            f"<p class=\"meta\">{escape(' · '.join(facts))}</p>"]
    return "\n".join([*head, *live_sections(figures, images), *PAGE_END])


def build_live_report(records: LoopRecords, out: Path, *, source: str, target: float = DEFAULT_TARGET_PRECISION,
                      threshold: float | None = None) -> Path:
    """Write `out/index.html` and its PNG files from the loop's records; return the page's path."""
    figures = live_figures(records, target=target, threshold=threshold)
    out.mkdir(parents=True, exist_ok=True)
    drawn = draw_plots(figures, out)
    remove_stale(out, drawn)
    page = out / "index.html"
    page.write_text(render_page(figures, drawn, source), encoding="utf-8")
    return page


def build_stack_report(table: Any, s3: Any, bucket: str, out: Path, *, source: str,
                       target: float = DEFAULT_TARGET_PRECISION, threshold: float | None = None) -> Path:
    """The report of any loop, from its state table (a boto3 DynamoDB Table) and data bucket (an S3 client
    and the bucket's name): what `--stack` resolves, and what a workspace holds. Reads only."""
    return build_live_report(read_records(table, s3, bucket), out, source=source, target=target, threshold=threshold)


def has_loop_state(workspace: Path) -> bool:
    """Whether `workspace` holds a saved loop (`nerloop up` or `nerloop demo --workspace`)."""
    return Workspace(workspace).exists()


def build_workspace_report(workspace: Path, out: Path, *, target: float = DEFAULT_TARGET_PRECISION) -> Path:
    """A workspace's page: its loop's records, then its demo's test set when it has figures (demo.json)."""
    records, threshold = read_workspace_records(workspace)
    figures = live_figures(records, target=target, threshold=threshold)
    out.mkdir(parents=True, exist_ok=True)
    drawn = draw_plots(figures, out)
    demo = workspace / FIGURES_FILE
    if demo.is_file():
        return build_report(parse_figures(read_json(demo), demo), out, source=str(demo), target=target,
                            before=live_sections(figures, drawn), drawn=drawn)
    remove_stale(out, drawn)
    page = out / "index.html"
    page.write_text(render_page(figures, drawn, str(workspace)), encoding="utf-8")
    return page


def read_workspace_records(workspace: Path) -> tuple[LoopRecords, float]:
    """A saved workspace's records and its ConfidenceThreshold, read from the emulated stack (started
    and closed without saving, so the workspace is not changed)."""
    runtime = open_workspace(workspace, autosave=False)
    runtime.start()
    try:
        records = read_records(runtime.state.table, runtime.s3, runtime.bucket)
        return records, float(runtime.stack.parameters["ConfidenceThreshold"])
    finally:
        runtime.close(save=False)


__all__ = [
    "NO_REVIEWS",
    "ONE_REVIEWER",
    "build_live_report",
    "build_stack_report",
    "build_workspace_report",
    "draw_plots",
    "has_loop_state",
    "live_sections",
    "read_workspace_records",
    "render_page",
]
