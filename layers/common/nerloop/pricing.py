"""List prices of what a round of the loop is billed for: one table, each price with its page and the
date it was read, and the arithmetic of the units they are billed in.

Prices are US dollars for US East (N. Virginia), us-east-1, the only region this table covers. They are
list prices: no free tier, no savings plan, no tax. Read on 2026-12-05 from the stored copies of AWS's
pricing pages that this project can reach (no live web): where a page's figure is drawn by a script the
stored copy lacks, the price is recorded as not found (`Price.tiers` empty) rather than guessed, and a
user can give it (`with_overrides`, `nerloop estimate --price`, `nerloop status --price`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation

REGION = "us-east-1"
READ_ON = "2026-12-05"

COMPREHEND_PRICING = "https://aws.amazon.com/comprehend/pricing/"
A2I_PRICING = "https://aws.amazon.com/augmented-ai/pricing/"
GROUND_TRUTH_PRICING = "https://aws.amazon.com/sagemaker/groundtruth/pricing/"

# Comprehend's pricing page: "Asynchronous inference requests are measured in units of 100 characters,
# with a 3 unit (300 character) minimum charge per request." A job's ONE_DOC_PER_LINE input makes each
# line a document, and the loop reads each document as one request (the issue's reading: a per-document
# minimum); the page does not say otherwise for jobs.
CHARACTERS_PER_UNIT = 100
MINIMUM_UNITS_PER_DOCUMENT = 3

# Keys of the table.
TRAINING_HOUR = "comprehend_training_hour"
MODEL_MONTH = "comprehend_model_month"
INFERENCE_UNIT = "comprehend_async_unit"
REVIEW_OBJECT = "a2i_object"
LABEL_OBJECT = "groundtruth_object"


class PriceError(ValueError):
    """A price given on the command line that cannot be read (names the key and why)."""


@dataclass(frozen=True)
class Tier:
    """`usd` per unit for the units up to `up_to` in a month (None: every unit after the tiers before)."""

    up_to: int | None
    usd: Decimal


@dataclass(frozen=True)
class Price:
    """One billed item: what it is, its unit, its tiers (empty: not found), where and when it was read."""

    key: str
    what: str
    unit: str
    tiers: tuple[Tier, ...]
    source: str
    read_on: str
    note: str = ""

    @property
    def known(self) -> bool:
        return bool(self.tiers)

    def describe(self) -> str:
        """The price as people read it: `$3 per hour`, `$0.08 per object up to 50,000 a month, then ...`,
        or `not found`."""
        if not self.tiers:
            return "not found"
        parts = []
        for tier in self.tiers:
            amount = f"${tier.usd.normalize():f} per {self.unit}"
            parts.append(amount if tier.up_to is None else f"{amount} up to {tier.up_to:,} a month")
        return ", then ".join(parts)


PRICES: dict[str, Price] = {price.key: price for price in (
    Price(TRAINING_HOUR, "Comprehend custom model training", "hour", (Tier(None, Decimal("3")),),
          COMPREHEND_PRICING, READ_ON,
          "billed by the second; the time is TrainingEndTime - TrainingStartTime of DescribeEntityRecognizer"),
    Price(MODEL_MONTH, "Comprehend custom model management", "model-month", (Tier(None, Decimal("0.50")),),
          COMPREHEND_PRICING, READ_ON, "each version kept (VersionRetention) is a custom model"),
    Price(INFERENCE_UNIT, "Comprehend asynchronous custom inference", "unit", (), COMPREHEND_PRICING, READ_ON,
          "a unit is 100 characters, at least 3 units a document; the page's price per unit is drawn by a "
          "script and was not in the stored copies read"),
    Price(REVIEW_OBJECT, "Amazon A2I human review, custom task type", "object", (), A2I_PRICING, READ_ON,
          "per object reviewed, in monthly tiers; the tier prices are drawn by a script and were not in the "
          "stored copies read. A private workforce adds nothing per object; Mechanical Turk or a vendor adds "
          "its own price per object"),
    Price(LABEL_OBJECT, "SageMaker Ground Truth labeling", "object", (), GROUND_TRUTH_PRICING, READ_ON,
          "per object labeled, in monthly tiers; the tier prices are drawn by a script and were not in the "
          "stored copies read. Workforce cost is separate: nothing more with your own workforce, the worker "
          "price per object (PublicWorkforceTaskPrice) times workers per object with Mechanical Turk, the "
          "vendor's price with a vendor"),
)}

# Billed too, and not priced here: no current us-east-1 figure was found in the stored AWS pages. Each
# grows with requests the stages make (a few per document), not with characters or people's time.
NOT_PRICED = (
    "S3 requests and storage (detection inputs and outputs, snapshots, reviews)",
    "DynamoDB on-demand requests and storage (the state table)",
    "Lambda requests and duration (the eight functions)",
    "EventBridge (events the loop publishes on the default bus: nerloop's own status events, Documents Added)",
    "CloudWatch (logs and metrics)",
)


def inference_units(characters: int) -> int:
    """Comprehend's billed units for one document of `characters` characters: 100 a unit, rounded up,
    at least 3."""
    if characters < 0:
        raise ValueError(f"a document cannot have {characters} characters")
    return max(MINIMUM_UNITS_PER_DOCUMENT, math.ceil(characters / CHARACTERS_PER_UNIT))


def tiered_cost(price: Price, count: float | Decimal, already: float | Decimal = 0) -> Decimal | None:
    """What `count` more units cost in a month in which `already` units were billed, tier by tier;
    None when the price is not known."""
    if not price.tiers:
        return None
    if count < 0 or already < 0:
        raise ValueError("counts cannot be negative")
    total = Decimal(0)
    start, end = Decimal(str(already)), Decimal(str(already)) + Decimal(str(count))
    floor = Decimal(0)
    for tier in price.tiers:
        ceiling = Decimal(tier.up_to) if tier.up_to is not None else None
        low = max(start, floor)
        high = end if ceiling is None else min(end, ceiling)
        if high > low:
            total += (high - low) * tier.usd
        if ceiling is None or end <= ceiling:
            break
        floor = ceiling
    return total


def parse_tiers(key: str, text: str) -> tuple[Tier, ...]:
    """`0.08` (one price) or `0.08:50000,0.04:1000000,0.02` (a price up to a monthly count, then the
    next ...); the last tier has no bound. PriceError naming `key` and the fault otherwise."""
    tiers: list[Tier] = []
    parts = [part.strip() for part in text.split(",")]
    for index, part in enumerate(parts):
        usd_text, _, bound = part.partition(":")
        last = index == len(parts) - 1
        if last == bool(bound):
            raise PriceError(f"{key}={text}: every tier but the last needs ':<monthly count up to>', "
                             "and the last has none")
        try:
            usd = Decimal(usd_text)
            up_to = int(bound) if bound else None
        except (InvalidOperation, ValueError) as exc:
            raise PriceError(f"{key}={text}: {part!r} is not <usd>[:<count>]") from exc
        if usd < 0 or (up_to is not None and (up_to <= 0 or (tiers and up_to <= (tiers[-1].up_to or 0)))):
            raise PriceError(f"{key}={text}: prices must be >= 0 and bounds positive and increasing")
        tiers.append(Tier(up_to, usd))
    return tuple(tiers)


def with_overrides(given: Mapping[str, str], prices: Mapping[str, Price] = PRICES) -> dict[str, Price]:
    """The table with the prices a user gave (key → `parse_tiers` text) in place of the listed ones,
    each marked as given."""
    table = dict(prices)
    for key, text in given.items():
        if key not in table:
            raise PriceError(f"{key}: no such price (one of {', '.join(sorted(table))})")
        table[key] = replace(table[key], tiers=parse_tiers(key, text), source="given by the user", read_on="")
    return table


__all__ = [
    "CHARACTERS_PER_UNIT",
    "INFERENCE_UNIT",
    "LABEL_OBJECT",
    "MINIMUM_UNITS_PER_DOCUMENT",
    "MODEL_MONTH",
    "NOT_PRICED",
    "PRICES",
    "REGION",
    "REVIEW_OBJECT",
    "TRAINING_HOUR",
    "Price",
    "PriceError",
    "Tier",
    "inference_units",
    "parse_tiers",
    "tiered_cost",
    "with_overrides",
]
