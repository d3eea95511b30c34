"""`nerloop report` for a learning benchmark (`python -m bench.learn`): an HTML page with PNG plots.

    nerloop report --learning bench/learning-sample.json   → ./nerloop-report/index.html
    nerloop report --figures bench/learning-sample.json    the same: the file's `kind` says what it is

The page shows the learning curves of the loop's selection and random selection (mean test F1 per
budget step with its interval band over seeds) beside full supervision, the paired difference loop -
random per step, the areas under the curves, and every run (seed) with its seconds, memory and whether
it stalled. Every number is the benchmark file's; nothing is recomputed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nerloop_local.report.canvas import new_figure, save_png
from nerloop_local.report.files import CURVES_PNG, DEMO_IMAGES, DIFFERENCE_PNG, LEARNING_IMAGES, remove_stale
from nerloop_local.report.learning_figures import Interval, LearningBenchmark, Strategies
from nerloop_local.report.page import (
    MISSING,
    PAGE_END,
    escape,
    html_table,
    page_head,
    score_text,
    share_text,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

def _band(axes: Axes, xs: Sequence[float], values: Sequence[Interval], colour: str, label: str,
          marker: str, linestyle: str = "-") -> None:
    axes.plot(xs, [v.mean for v in values], marker=marker, color=colour, linestyle=linestyle, label=label)
    known = [(x, v.low, v.high) for x, v in zip(xs, values, strict=True) if v.low is not None and v.high is not None]
    if known:
        axes.fill_between([x for x, _, _ in known], [lo for _, lo, _ in known], [hi for _, _, hi in known],
                          color=colour, alpha=0.18, linewidth=0)


def _percent(shares: Sequence[float]) -> list[float]:
    return [100 * share for share in shares]


def plot_curves(result: LearningBenchmark, path: Path) -> None:
    """Loop and random selection with their interval bands; full supervision as a flat band."""
    xs = _percent([entry.pool_share.mean for entry in result.budgets])
    figure = new_figure()
    axes = figure.subplots()
    level = f"{result.confidence:.0%}"
    _band(axes, xs, [entry.f1.loop for entry in result.budgets], "C0", f"loop's selection (mean, {level} interval)",
          "o")
    _band(axes, xs, [entry.f1.random for entry in result.budgets], "C1",
          f"random selection (mean, {level} interval)", "s", "--")
    full = result.full_supervision
    axes.axhline(full.mean, color="C2", linestyle=":", label=f"full supervision (mean, {level} interval)")
    if full.low is not None and full.high is not None:
        axes.axhspan(full.low, full.high, color="C2", alpha=0.07, linewidth=0)
        for bound in (full.low, full.high):
            axes.axhline(bound, color="C2", linestyle=":", linewidth=0.8, alpha=0.6)
    bottom, top = axes.get_ylim()
    axes.set_ylim(max(0.0, bottom), min(1.0, top))  # an interval over few seeds can pass F1's bounds
    axes.set_xlabel("budget: documents reviewed, % of the pool (mean over seeds)")
    axes.set_ylabel("test F1")
    axes.set_title(f"Learning curves — {result.dataset}, {len(result.seeds)} seeds")
    axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=2, fontsize=8)
    save_png(figure, path)


def plot_difference(result: LearningBenchmark, path: Path) -> None:
    """Loop - random per budget step: the mean paired difference and its interval."""
    xs = _percent([entry.pool_share.mean for entry in result.budgets])
    differences = [entry.f1.loop_minus_random for entry in result.budgets]
    means = [d.mean for d in differences]
    below = [d.mean - d.low if d.low is not None else 0.0 for d in differences]
    above = [d.high - d.mean if d.high is not None else 0.0 for d in differences]
    figure = new_figure(7.0, 3.6)
    axes = figure.subplots()
    axes.axhline(0.0, color="grey", linewidth=1)
    axes.errorbar(xs, means, yerr=[below, above], marker="o", capsize=4, color="C0",
                  label=f"loop - random, mean and {result.confidence:.0%} interval over seeds")
    area = result.auc_normalised.loop_minus_random
    axes.set_xlabel("budget: documents reviewed, % of the pool (mean over seeds)")
    axes.set_ylabel("test F1 difference")
    axes.set_title(f"Paired difference per budget (over the whole curve: {area.mean:+.4f} mean F1)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    save_png(figure, path)


def _interval(value: Interval | None) -> str:
    if value is None:
        return MISSING
    if value.low is None or value.high is None:
        return f"{score_text(value.mean)} (one seed)"
    return f"{score_text(value.mean)} [{score_text(value.low)}, {score_text(value.high)}]"


def _area_rows(label: str, areas: Strategies) -> list[tuple[str, ...]]:
    return [(label, name, _interval(value)) for name, value in (
        ("loop", areas.loop), ("random", areas.random), ("full supervision", areas.full),
        ("loop - random", areas.loop_minus_random), ("loop / full", areas.loop_of_full),
        ("random / full", areas.random_of_full))]


def render_learning_html(result: LearningBenchmark, source: str, images: Sequence[str]) -> str:
    """The page as a string: escaped text, relative image links, no script."""
    level = f"{result.confidence:.0%}"
    parts = [*page_head("nerloop learning benchmark"), f"<h1>Learning benchmark: {escape(result.dataset)}</h1>"]
    facts = [f"figures: {source}", f"manifest: {result.manifest}",
             f"seeds {', '.join(str(seed) for seed in result.seeds)}", f"{result.rounds} rounds",
             f"{result.random_draws} random draw(s) per budget", f"confidence threshold {result.threshold:g}",
             f"{level} t intervals over seeds", f"{result.seconds:g} s with {result.jobs} job(s)"]
    if result.entity_types:
        facts.append("entity types " + ", ".join(result.entity_types))
    parts.append(f"<p class=\"meta\">{escape(' · '.join(facts))}</p>")

    parts.append("<h2 id=\"section-curves\">Learning curves</h2>")
    if CURVES_PNG in images:
        parts.append(f"<p><img src=\"{CURVES_PNG}\" "
                     f"alt=\"{escape('Test F1 against budget: loop, random, full')}\"></p>")
    parts.append(f"<p>Full supervision: F1 <span id=\"full-f1\">{escape(_interval(result.full_supervision))}</span>. "
                 f"Each seed holds out its own test set, so the bands are as wide as the test sets differ; the "
                 f"paired difference loop - random (same seed, same test set, same budget) does not carry that "
                 f"spread.</p>")
    parts.append(html_table(
        "budgets", f"Test F1 per budget step, mean [{level} interval] over the seeds that reached it",
        ["Step", "Seeds", "Reviewed (mean)", "Share of pool", "Loop F1", "Random F1", "Loop - random",
         "Loop / full", "Random / full"],
        [(entry.step, len(entry.seeds), f"{sum(entry.reviewed_documents) / len(entry.reviewed_documents):.1f}",
          share_text(entry.pool_share.mean), _interval(entry.f1.loop), _interval(entry.f1.random),
          _interval(entry.f1.loop_minus_random), _interval(entry.f1.loop_of_full),
          _interval(entry.f1.random_of_full)) for entry in result.budgets]))
    if DIFFERENCE_PNG in images:
        parts.append(f"<p><img src=\"{DIFFERENCE_PNG}\" alt=\"{escape('Loop minus random per budget step')}\"></p>")

    parts.append("<h2 id=\"section-areas\">Area under the learning curve</h2>")
    parts.append(f"<p>{escape(result.method.get('auc', ''))}</p>")
    parts.append(html_table("areas", f"Over seeds, mean [{level} interval]", ["Figure", "Strategy", "Value"],
                            [*_area_rows("area", result.auc), *_area_rows("area / range", result.auc_normalised)]))

    parts.append("<h2 id=\"section-runs\">Runs</h2>")
    stalled = ", ".join(str(seed) for seed in result.stalled_seeds)
    parts.append(f"<p id=\"stalled\">{escape(f'Stalled runs: seed {stalled}.' if stalled else 'No run stalled.')}</p>")
    parts.append(html_table(
        "runs", "One run of the demo per seed",
        ["Seed", "Pool", "Test", "Labelled seed", "Versions", "Stalled", "Unreviewed", "Final loop F1",
         "Final random F1", "Full F1", "Area / range loop", "Area / range random", "Seconds", "Peak MB"],
        [(run.seed, run.pool_size, run.test_documents, run.seed_documents,
          f"{run.rounds_trained} of {run.rounds_requested}", "yes" if run.stalled else "", run.unreviewed_at_end,
          score_text(run.loop_f1[-1]), score_text(run.random_f1[-1]), score_text(run.full_f1),
          score_text(run.auc_normalised.get("loop")), score_text(run.auc_normalised.get("random")),
          f"{run.seconds:.1f}", f"{run.peak_rss_mb:.0f}") for run in result.runs]))

    if result.method:
        parts.append("<h2 id=\"section-method\">How the figures are made</h2>")
        parts.append("<dl>" + "".join(f"<dt>{escape(name)}</dt><dd>{escape(text)}</dd>"
                                      for name, text in result.method.items()) + "</dl>")
    return "\n".join([*parts, *PAGE_END])


def build_learning_report(result: LearningBenchmark, out: Path, *, source: str) -> Path:
    """Write `out/index.html` and its PNG files; return the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    plot_curves(result, out / CURVES_PNG)
    plot_difference(result, out / DIFFERENCE_PNG)
    images = list(LEARNING_IMAGES)
    remove_stale(out, images, DEMO_IMAGES)  # a demo report's plots, left in the same folder
    page = out / "index.html"
    page.write_text(render_learning_html(result, source, images), encoding="utf-8")
    return page


__all__ = ["build_learning_report", "render_learning_html"]
