"""What each round of the loop cost, from its own records, priced from `nerloop.pricing`.

A round is a model version: its training (TrainingEndTime - TrainingStartTime, billed by the second),
the detection jobs run with it (units of each job's input: `nerloop.cost_records`), the human loops
routed under it (A2I bills an object reviewed: a loop that completed; loops that failed, expired or were
stopped are counted, not priced) and the Ground Truth objects labeled before it trained (a labeling
job counts in the first round whose version was recorded at or after the job was converted; later
ones wait for the next version, in a row of their own).

Tiered prices (A2I, Ground Truth) are monthly: a round's objects are priced after those of the earlier
rounds of the same calendar month (the month its version was recorded), as if the stack were the
account's only use of the service. Pure: the records are passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from nerloop.cost_records import InputMeasure, LabelingRecord
from nerloop.pricing import (
    INFERENCE_UNIT,
    LABEL_OBJECT,
    MODEL_MONTH,
    REVIEW_OBJECT,
    TRAINING_HOUR,
    Price,
    tiered_cost,
)
from nerloop.state import Job, Loop, Version

REVIEWED = "Completed"  # a human loop's status once a person answered it (A2I HumanLoopStatus)
NEXT_ROUND = "next"  # the row of what is recorded for a version not yet trained


@dataclass(frozen=True)
class RoundUsage:
    """What one round used, in the units it is billed in."""

    round: int
    version: str
    status: str
    month: str  # YYYY-MM of the version's record: the billing month its tiers are counted in
    training_seconds: float | None = None  # None: the version has no training times recorded
    detection_jobs: int = 0
    unmeasured_jobs: int = 0  # jobs whose input was not measured (started before measures were kept)
    documents: int = 0
    characters: int = 0
    units: int = 0
    loops_started: int = 0
    loops_reviewed: int = 0
    labeled_objects: int = 0


@dataclass(frozen=True)
class CostLine:
    """One priced item of a round: its price key, quantity (in the price's unit) and dollars (None: the
    price is not known)."""

    key: str
    quantity: float
    usd: Decimal | None


@dataclass(frozen=True)
class RoundCost:
    usage: RoundUsage
    lines: tuple[CostLine, ...] = field(default_factory=tuple)

    @property
    def known_usd(self) -> Decimal:
        """The sum of the lines whose price is known."""
        return sum((line.usd for line in self.lines if line.usd is not None), Decimal(0))

    @property
    def unpriced(self) -> tuple[str, ...]:
        """The keys of lines with a quantity but no known price."""
        return tuple(line.key for line in self.lines if line.usd is None and line.quantity)


def version_order(name: str) -> tuple[int, str]:
    """v2 before v10; names that are not vN after the numbered ones, by name."""
    match = re.fullmatch(r"v(\d+)", name)
    return (int(match.group(1)), "") if match else (1 << 62, name)


def training_seconds(version: Version) -> float | None:
    """TrainingEndTime - TrainingStartTime in seconds, or None when either is missing."""
    if not version.training_started_at or not version.training_ended_at:
        return None
    start = datetime.fromisoformat(version.training_started_at)
    end = datetime.fromisoformat(version.training_ended_at)
    return max(0.0, (end - start).total_seconds())


def round_usages(versions: Iterable[Version], jobs: Iterable[Job], inputs: Mapping[str, InputMeasure],
                 loops: Iterable[Loop], labeling: Iterable[LabelingRecord]) -> list[RoundUsage]:
    """One usage per version, in version order, then a `next` row when labeling waits for a version."""
    ordered = sorted(versions, key=lambda v: version_order(v.version))
    jobs_of: dict[str, list[Job]] = {}
    for job in jobs:
        jobs_of.setdefault(job.version, []).append(job)
    started: dict[str, int] = {}
    reviewed: dict[str, int] = {}
    for loop in loops:
        started[loop.version] = started.get(loop.version, 0) + 1
        reviewed[loop.version] = reviewed.get(loop.version, 0) + (loop.status == REVIEWED)
    labeled: dict[str, int] = {}
    waiting_since = ""  # the month the labeling that waits for a version was recorded in
    for record in labeling:
        owner = next((v.version for v in ordered if v.created_at >= record.recorded_at), NEXT_ROUND)
        labeled[owner] = labeled.get(owner, 0) + record.labeled
        if owner == NEXT_ROUND:
            waiting_since = max(waiting_since, record.recorded_at[:7])

    usages = []
    for number, version in enumerate(ordered, start=1):
        measured = [inputs[job.input_key] for job in jobs_of.get(version.version, []) if job.input_key in inputs]
        count = len(jobs_of.get(version.version, []))
        usages.append(RoundUsage(
            round=number, version=version.version, status=version.status, month=version.created_at[:7],
            training_seconds=training_seconds(version), detection_jobs=count,
            unmeasured_jobs=count - len(measured), documents=sum(m.documents for m in measured),
            characters=sum(m.characters for m in measured), units=sum(m.units for m in measured),
            loops_started=started.get(version.version, 0), loops_reviewed=reviewed.get(version.version, 0),
            labeled_objects=labeled.get(version.version, 0)))
    if labeled.get(NEXT_ROUND):
        usages.append(RoundUsage(round=len(ordered) + 1, version=NEXT_ROUND, status="", month=waiting_since,
                                 labeled_objects=labeled[NEXT_ROUND]))
    return usages


def price_rounds(usages: Sequence[RoundUsage], prices: Mapping[str, Price]) -> list[RoundCost]:
    """Each round's cost lines: training hours, inference units, objects reviewed, objects labeled."""
    billed_in_month: dict[tuple[str, str], float] = {}

    def tiered(key: str, month: str, count: float) -> Decimal | None:
        already = billed_in_month.get((key, month), 0)
        billed_in_month[(key, month)] = already + count
        return tiered_cost(prices[key], count, already)

    costs = []
    for usage in usages:
        seconds = Decimal(str(usage.training_seconds or 0))
        per_second = tiered_cost(prices[TRAINING_HOUR], seconds)  # a flat price: seconds x $/hour, then / 3600
        costs.append(RoundCost(usage, (
            CostLine(TRAINING_HOUR, float(seconds) / 3600, None if per_second is None else per_second / 3600),
            CostLine(INFERENCE_UNIT, usage.units, tiered(INFERENCE_UNIT, usage.month, usage.units)),
            CostLine(REVIEW_OBJECT, usage.loops_reviewed, tiered(REVIEW_OBJECT, usage.month, usage.loops_reviewed)),
            CostLine(LABEL_OBJECT, usage.labeled_objects, tiered(LABEL_OBJECT, usage.month, usage.labeled_objects)),
        )))
    return costs


def model_management_per_month(versions: Iterable[Version], prices: Mapping[str, Price],
                               kept_statuses: Sequence[str] = ("TRAINED", "TRAINED_WITH_WARNING")) -> CostLine:
    """What the versions still kept cost a month (Comprehend bills each custom model a month)."""
    kept = sum(1 for version in versions if version.status in kept_statuses)
    return CostLine(MODEL_MONTH, kept, tiered_cost(prices[MODEL_MONTH], kept))


__all__ = [
    "NEXT_ROUND",
    "CostLine",
    "RoundCost",
    "RoundUsage",
    "model_management_per_month",
    "price_rounds",
    "round_usages",
    "training_seconds",
    "version_order",
]
