"""The files `nerloop report` reads and writes: the demo's figures in a workspace, where pages go, and the
name of every plot a page draws (a page drawn into a folder deletes the plots an earlier one left there
that it did not draw)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

FIGURES_FILE = "demo.json"  # in a workspace: `nerloop demo --workspace`'s figures, for `nerloop report`
WORKSPACE_REPORT = "report"  # the page's folder in a workspace
DEFAULT_OUT = Path("nerloop-report")  # the page's folder otherwise

# The demo's test-set page (report.demo_report).
LEARNING_CURVE_PNG = "learning_curve.png"
PER_TYPE_PNG = "per_type.png"
HISTOGRAM_PNG = "confidence_histogram.png"
RELIABILITY_PNG = "reliability.png"
THRESHOLD_PNG = "threshold.png"
DEMO_IMAGES = (LEARNING_CURVE_PNG, PER_TYPE_PNG, HISTOGRAM_PNG, RELIABILITY_PNG, THRESHOLD_PNG)

# The learning benchmark's page (report.learning).
CURVES_PNG = "learning_benchmark.png"
DIFFERENCE_PNG = "learning_difference.png"
LEARNING_IMAGES = (CURVES_PNG, DIFFERENCE_PNG)

# The loop's own records (report.live).
VERSIONS_PNG = "live_versions.png"
REVIEWS_PER_DAY_PNG = "live_reviews_per_day.png"
OUTCOMES_PNG = "live_outcomes.png"
LIVE_RELIABILITY_PNG = "live_reliability.png"
LIVE_IMAGES = (VERSIONS_PNG, REVIEWS_PER_DAY_PNG, OUTCOMES_PNG, LIVE_RELIABILITY_PNG)

ALL_IMAGES = (*DEMO_IMAGES, *LEARNING_IMAGES, *LIVE_IMAGES)


def remove_stale(out: Path, drawn: Sequence[str], known: Sequence[str] = ALL_IMAGES) -> None:
    """Delete the plots of `known` an earlier report left in `out` that this one did not draw."""
    for stale in set(known) - set(drawn):
        (out / stale).unlink(missing_ok=True)
