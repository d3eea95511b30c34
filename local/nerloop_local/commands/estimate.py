"""`nerloop estimate`: what a deployment's rounds would cost, before deploying, from the same price
table as `nerloop status` and the template's parameter defaults.

    nerloop estimate --pool N [--rounds R] [--review-budget B] [--chars C | --sample FILE]
                     [--seed-labels S] [--detect-cap D] [--training-minutes M] [--months K] [--price KEY=USD]

The model is the loop's own behaviour: round r's version detects the pool documents not yet reviewed
(every waiting and accepted document is looked at by each new version), at most `--detect-cap` of them;
it routes `ReviewBudget` of them to people (with a budget of 0, every uncertain one: give the share with
`--review-share`), and each is answered; the seed's Ground Truth objects are labeled before round 1.
Inference units are Comprehend's: 100 characters a unit, at least 3 a document, counted document by
document from `--sample` (a text file, one document a line) or for documents of `--chars` characters.
Comprehend's training time is not documented: give `--training-minutes` to price it. Every round is
counted in one month for the monthly tiers.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from nerloop.pricing import MODEL_MONTH, Price, PriceError, inference_units, tiered_cost
from nerloop.round_cost import CostLine, RoundUsage, price_rounds
from nerloop_local.emulator.template import load_template, parameter_defaults
from nerloop_local.report.cost import PRICE_HELP, cost_summary, format_costs, given_prices
from nerloop_local.usage import UsageError

DEFAULT_ROUNDS = 5
DEFAULT_CHARS = 100
MONTH = "estimate"  # every round in one billing month


@dataclass(frozen=True)
class Plan:
    """What the estimate assumes: the pool and the loop's parameters."""

    pool: int
    rounds: int
    review_budget: int
    units_per_document: Decimal
    chars_per_document: Decimal
    seed_labels: int = 0
    detect_cap: int | None = None
    review_share: float | None = None
    training_minutes: float | None = None


def plan_usages(plan: Plan) -> list[RoundUsage]:
    """Each round's expected usage under `plan`."""
    usages = []
    reviewed = 0
    for number in range(1, plan.rounds + 1):
        detected = max(0, plan.pool - reviewed)
        if plan.detect_cap is not None:
            detected = min(detected, plan.detect_cap)
        if plan.review_budget:
            loops = min(plan.review_budget, detected)
        else:
            loops = math.ceil((plan.review_share or 0.0) * detected)
        usages.append(RoundUsage(
            round=number, version=f"v{number}", status="estimate", month=MONTH,
            training_seconds=None if plan.training_minutes is None else plan.training_minutes * 60,
            detection_jobs=1 if detected else 0, documents=detected,
            characters=int(plan.chars_per_document * detected),
            units=int((plan.units_per_document * detected).to_integral_value(rounding="ROUND_CEILING")),
            loops_started=loops, loops_reviewed=loops, labeled_objects=plan.seed_labels if number == 1 else 0))
        reviewed += loops
    return usages


def estimate(plan: Plan, prices: dict[str, Price], models_kept: int, months: int) -> dict[str, Any]:
    """The estimate as `cost_summary` gives it, with the plan it assumed. Model management is the whole
    period's (`months`), not a month's."""
    models = min(plan.rounds, models_kept) * months
    management = CostLine(MODEL_MONTH, models, tiered_cost(prices[MODEL_MONTH], models))
    summary = cost_summary(price_rounds(plan_usages(plan), prices), management, prices)
    summary["model_management"]["label"] = (f"{min(plan.rounds, models_kept)} versions kept (VersionRetention) "
                                            f"for {months} month(s), {models} model-months, in all")
    summary["plan"] = {"pool": plan.pool, "rounds": plan.rounds, "review_budget": plan.review_budget,
                       "chars_per_document": float(plan.chars_per_document),
                       "units_per_document": float(plan.units_per_document), "seed_labels": plan.seed_labels,
                       "detect_cap": plan.detect_cap, "review_share": plan.review_share,
                       "training_minutes": plan.training_minutes, "months": months, "models_kept": models_kept}
    return summary


def sample_measure(path: Path) -> tuple[Decimal, Decimal]:
    """Mean characters and mean Comprehend units a document of a text file (one document a line)."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    lengths = [len(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lengths:
        raise UsageError(f"{path}: no documents (one a line)")
    count = Decimal(len(lengths))
    return Decimal(sum(lengths)) / count, Decimal(sum(inference_units(n) for n in lengths)) / count


def format_estimate(summary: dict[str, Any]) -> list[str]:
    plan = summary["plan"]
    review = (f"review budget {plan['review_budget']} a detection" if plan["review_budget"]
              else f"every uncertain document reviewed ({plan['review_share']:.0%} of those detected)")
    lines = [
        f"estimate: pool {plan['pool']:,} documents, {plan['rounds']} rounds, {review}, "
        f"{plan['chars_per_document']:,.0f} characters ({plan['units_per_document']:.2f} units) a document, "
        f"{plan['seed_labels']:,} seed objects labeled"
        + (f", at most {plan['detect_cap']:,} detected a round" if plan["detect_cap"] is not None else ""),
        "training: " + (f"{plan['training_minutes']:g} minutes a round (given)" if plan["training_minutes"] is not None
                        else "not priced (Comprehend documents no training time: give --training-minutes)"),
    ]
    return lines + format_costs(summary, title="expected cost per round (list prices, {region})")[1:]


def cmd_estimate(args: argparse.Namespace) -> int:
    defaults = parameter_defaults(load_template())
    if args.pool < 1 or args.rounds < 1:
        raise UsageError("--pool and --rounds must be at least 1")
    budget = int(defaults["ReviewBudget"]) if args.review_budget is None else args.review_budget
    if budget < 0:
        raise UsageError("--review-budget must be 0 (no limit) or more")
    if budget == 0 and args.review_share is None:
        raise UsageError("--review-budget 0 reviews every uncertain document: give their share with --review-share")
    if args.review_share is not None and not 0 <= args.review_share <= 1:
        raise UsageError("--review-share must be between 0 and 1")
    if args.sample is not None:
        chars, units = sample_measure(args.sample)
    else:
        if args.chars < 1:
            raise UsageError("--chars must be at least 1")
        chars, units = Decimal(args.chars), Decimal(inference_units(args.chars))
    try:
        prices = given_prices(args.price)
    except PriceError as exc:
        raise UsageError(str(exc)) from exc
    # The template's DetectionDocumentsPerRound, unless given; 0 means no cap.
    cap = int(defaults["DetectionDocumentsPerRound"]) if args.detect_cap is None else args.detect_cap
    if cap < 0:
        raise UsageError("--detect-cap must be 0 (no cap) or more")
    plan = Plan(pool=args.pool, rounds=args.rounds, review_budget=budget, units_per_document=units,
                chars_per_document=chars, seed_labels=args.seed_labels, detect_cap=cap or None,
                review_share=args.review_share, training_minutes=args.training_minutes)
    summary = estimate(plan, prices, models_kept=int(defaults["VersionRetention"]), months=args.months)
    print(json.dumps(summary, indent=2) if args.json else "\n".join(format_estimate(summary)))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "estimate", help="the expected cost of each round for a pool size, before deploying",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", type=int, required=True, help="documents the loop will detect (the pool)")
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS, help=f"model versions (default {DEFAULT_ROUNDS})")
    parser.add_argument("--review-budget", type=int,
                        help="human loops a detection (default: the template's ReviewBudget)")
    parser.add_argument("--review-share", type=float, help="with --review-budget 0: the share of detected documents "
                                                           "that are uncertain (0-1)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--chars", type=int, default=DEFAULT_CHARS,
                      help=f"characters a document (default {DEFAULT_CHARS})")
    size.add_argument("--sample", type=Path, help="a text file of typical documents, one a line, to measure")
    parser.add_argument("--seed-labels", type=int, default=0, help="objects the seed's Ground Truth job labels")
    parser.add_argument("--detect-cap", type=int, help="documents a version detects a round at most, 0 for all "
                        "(default: the template's DetectionDocumentsPerRound)")
    parser.add_argument("--training-minutes", type=float, help="Comprehend training time a round (not documented)")
    parser.add_argument("--months", type=int, default=1, help="months the kept versions are held (default 1)")
    parser.add_argument("--price", action="append", metavar="KEY=USD", help=PRICE_HELP)
    parser.add_argument("--json", action="store_true", help="print the estimate as JSON")
    parser.set_defaults(run=cmd_estimate)


__all__ = ["Plan", "add_commands", "cmd_estimate", "estimate", "format_estimate", "plan_usages", "sample_measure"]
