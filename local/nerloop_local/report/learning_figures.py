"""The learning benchmark's record: what `python -m bench.learn` writes and `nerloop report` reads.

One file per data set: the loop's selection beside random selection (same budgets) and full supervision,
each run of `nerloop demo` (one per seed) summarised, and across seeds per budget step the mean test F1
with a t interval, the areas under the learning curves, and the paired difference loop - random.
`KIND` marks the file, so the report tells it from a demo's figures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nerloop_local.report.figures import validate_figures

KIND = "nerloop-learning-benchmark"
FORMAT = 1


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Interval(_Record):
    """A mean over seeds and its two-sided t interval; `low` and `high` are None with one seed."""

    mean: float
    low: float | None = None
    high: float | None = None
    n: int = Field(ge=1)
    sd: float | None = None


class Strategies(_Record):
    """One figure for each way of choosing documents, and how the loop compares."""

    loop: Interval
    random: Interval
    full: Interval  # full supervision: every pool document labelled
    loop_minus_random: Interval  # the mean and interval of the per-seed differences
    loop_of_full: Interval | None  # per-seed ratios to full supervision (None if its F1 was 0 in every run)
    random_of_full: Interval | None


class BudgetFigures(_Record):
    """One budget step across seeds: step 0 is the seed-only model (no reviews), step k the k-th retrain."""

    step: int = Field(ge=0)
    seeds: list[int]  # the runs that trained a version for this step (a stalled run lacks the last ones)
    reviewed_documents: list[int]  # per seed in `seeds`: the loop's reviews in that version's training data
    pool_share: Interval  # reviewed_documents / pool size
    f1: Strategies
    # The same loop with every version activated (F1Tolerance 1), and the gate's loop minus it (per seed).
    every_version_active: Interval | None = None
    gate_minus_every_version: Interval | None = None


class RunRecord(_Record):
    """One run of the demo (one seed), as the benchmark keeps it."""

    seed: int
    pool_size: int = Field(ge=0)
    test_documents: int = Field(ge=0)
    seed_documents: int = Field(ge=0)
    review_budget_per_round: int
    rounds_requested: int
    rounds_trained: int
    unreviewed_at_end: int  # pool documents never reviewed
    stalled: bool  # fewer versions than requested while unreviewed documents were left
    reviewed_documents: list[int]  # per version, cumulative
    pool_share: list[float]
    loop_f1: list[float]  # the version active after each round (the gate's choice), on the test set
    random_f1: list[float]  # at the same budgets: the mean of `random_draws`
    random_draws: list[list[float]]
    full_f1: float
    full_documents: int
    auc: dict[str, float]  # loop / random / full: area under the curve over [0, last share]
    auc_normalised: dict[str, float]  # the same divided by the last share: mean F1 over the budget range
    seconds: float
    peak_rss_mb: float  # the run's process, interpreter and imports included
    rss_growth_mb: float  # peak minus the resident size once the modules were imported
    # The gate (nerloop.gate): the same run with every version activated, per round; the versions kept
    # inactive; those kept although better on the loop's shared test set; those kept although better on
    # the benchmark's own test set than the version served instead.
    every_version_f1: list[float] = Field(default_factory=list)
    kept_inactive: list[str] = Field(default_factory=list)
    kept_but_better_on_shared_test: list[str] = Field(default_factory=list)
    kept_but_better_on_benchmark_test: list[str] = Field(default_factory=list)


class LearningBenchmark(_Record):
    kind: Literal["nerloop-learning-benchmark"]
    format: int = FORMAT
    dataset: str
    manifest: str
    entity_types: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(min_length=1)
    rounds: int
    random_draws: int
    threshold: float
    review_share: float = 0.5  # of the pool, over the run's rounds after the first
    confidence: float  # of every interval
    method: dict[str, str] = Field(default_factory=dict)  # how each figure is computed, in words
    budgets: list[BudgetFigures] = Field(min_length=1)
    auc: Strategies
    auc_normalised: Strategies
    full_supervision: Interval  # test F1 over seeds
    stalled_seeds: list[int]
    any_stalled: bool
    runs: list[RunRecord] = Field(min_length=1)
    jobs: int
    seconds: float
    machine: dict[str, Any] = Field(default_factory=dict)


def is_learning_benchmark(data: Any) -> bool:
    """Whether decoded JSON claims to be a learning benchmark (rather than a demo's figures)."""
    return isinstance(data, dict) and data.get("kind") == KIND


def parse_learning(data: Any, file: str | Path) -> LearningBenchmark:
    """Validate decoded JSON; raise FiguresError naming the first problem."""
    return validate_figures(LearningBenchmark, data, file, "the output of `python -m bench.learn`")


__all__ = [
    "FORMAT",
    "KIND",
    "BudgetFigures",
    "Interval",
    "LearningBenchmark",
    "RunRecord",
    "Strategies",
    "is_learning_benchmark",
    "parse_learning",
]
