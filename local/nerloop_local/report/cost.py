"""The cost of each round of a workspace, for `nerloop status` and the report's cost section.

`collect_costs` reads the loop's own records (versions with their training times, detection jobs with
their measured inputs, human loops, labeling jobs: `nerloop.cost_records`) and prices them with
`nerloop.round_cost`; `format_costs` prints them; `add_cost_section` puts them into a report page.
Dollars are list prices from `nerloop.pricing.PRICES` (or the ones a user gives with `--price`); a price
not found is shown as such, and the total counts only what could be priced.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from nerloop.cost_records import detection_inputs, labeling_jobs
from nerloop.pricing import NOT_PRICED, PRICES, REGION, Price, PriceError, with_overrides
from nerloop.round_cost import RoundCost, model_management_per_month, price_rounds, round_usages
from nerloop_local.emulator.workspace import Workspace
from nerloop_local.emulator.workspace_runtime import open_workspace

PRICE_HELP = ("a price in place of the table's, KEY=USD or KEY=USD:COUNT,USD for monthly tiers "
              f"(repeatable; keys: {', '.join(PRICES)})")
COST_SECTION_ID = "section-cost"


def given_prices(items: Sequence[str] | None) -> dict[str, Price]:
    """`--price KEY=VALUE ...` over the table; PriceError naming the bad one."""
    given = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise PriceError(f"--price {item}: expected KEY=USD")
        given[key.strip()] = value.strip()
    return with_overrides(given)


def _usd(value: Decimal | None) -> float | None:
    return None if value is None else float(round(value, 6))


def cost_summary(costs: Sequence[RoundCost], management: Any, prices: Mapping[str, Price]) -> dict[str, Any]:
    """A JSON-able account of the rounds' usage and cost, the prices used and what is not priced."""
    rounds = []
    for cost in costs:
        usage = cost.usage
        rounds.append({
            "round": usage.round, "version": usage.version, "status": usage.status,
            "training_seconds": usage.training_seconds, "detection_jobs": usage.detection_jobs,
            "unmeasured_jobs": usage.unmeasured_jobs, "documents": usage.documents,
            "characters": usage.characters, "units": usage.units, "loops_started": usage.loops_started,
            "loops_reviewed": usage.loops_reviewed, "labeled_objects": usage.labeled_objects,
            "usd": {line.key: _usd(line.usd) for line in cost.lines},
            "known_usd": _usd(cost.known_usd), "unpriced": list(cost.unpriced),
        })
    unpriced = sorted({key for cost in costs for key in cost.unpriced})
    return {
        "region": REGION,
        "rounds": rounds,
        "total": {"known_usd": _usd(sum((cost.known_usd for cost in costs), Decimal(0))), "unpriced": unpriced,
                  **{name: sum(row[name] for row in rounds) for name in (
                      "documents", "characters", "units", "loops_started", "loops_reviewed", "labeled_objects")}},
        "model_management": {"models": int(management.quantity), "usd_per_month": _usd(management.usd)},
        "prices": {key: {"what": price.what, "unit": price.unit, "price": price.describe(), "source": price.source,
                         "read_on": price.read_on, "note": price.note} for key, price in prices.items()},
        "not_priced": list(NOT_PRICED),
    }


def collect_costs(state: Any, prices: Mapping[str, Price] | None = None) -> dict[str, Any]:
    """Each round's usage and cost from a state table's records (reads only); priced from the table
    unless `prices` are given."""
    prices = prices or PRICES
    versions = state.versions.list()
    usages = round_usages(versions, state.jobs.list(), detection_inputs(state.table), state.loops.list(),
                          labeling_jobs(state.table))
    return cost_summary(price_rounds(usages, prices), model_management_per_month(versions, prices), prices)


def _money(value: float | None) -> str:
    if value is None:
        return "?"
    if value == 0:
        return "$0"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:,.1f} min" if seconds < 3600 else f"{seconds / 3600:,.2f} h"


def cost_rows(cost: dict[str, Any]) -> list[list[str]]:
    """The table of `format_costs` and the report: a header, a row per round, the total."""
    rows = [["round", "version", "training", "detected", "characters", "units", "loops (reviewed)", "labeled",
             "$ (priced)", "not priced"]]
    for row in cost["rounds"]:
        detected = f"{row['documents']:,}" + (f" (+{row['unmeasured_jobs']} jobs unmeasured)"
                                              if row["unmeasured_jobs"] else "")
        rows.append([str(row["round"]), row["version"], _hours(row["training_seconds"]), detected,
                     f"{row['characters']:,}", f"{row['units']:,}",
                     f"{row['loops_started']:,} ({row['loops_reviewed']:,})", f"{row['labeled_objects']:,}",
                     _money(row["known_usd"]), ", ".join(row["unpriced"]) or "-"])
    total = cost["total"]
    rows.append(["total", "", "", f"{total['documents']:,}", f"{total['characters']:,}", f"{total['units']:,}",
                 f"{total['loops_started']:,} ({total['loops_reviewed']:,})", f"{total['labeled_objects']:,}",
                 _money(total["known_usd"]), ", ".join(total["unpriced"]) or "-"])
    return rows


ROUND_TITLE = ("cost per round (list prices, {region}; a round is a version: its training, its detection jobs, "
               "the loops routed under it, the labeling before it)")


def format_costs(cost: dict[str, Any], title: str = ROUND_TITLE) -> list[str]:
    """`nerloop status`'s cost section (and `nerloop estimate`'s, with its own title)."""
    rows = cost_rows(cost)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["", title.format(region=cost["region"])]
    lines += ["  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    management = cost["model_management"]
    if management.get("label"):  # an estimate's: the whole period
        lines.append(f"  model management: {management['label']}, {_money(management['usd_per_month'])}")
    else:
        lines.append(f"  model management: {management['models']} versions kept, "
                     f"{_money(management['usd_per_month'])} a month")
    missing = [f"{key} ({entry['what']})" for key, entry in cost["prices"].items() if entry["price"] == "not found"]
    if missing:
        lines.append("  price not found, give it with --price KEY=USD: " + "; ".join(missing))
    lines.append("  not priced: " + "; ".join(cost["not_priced"]))
    return lines


def cost_section_html(cost: dict[str, Any]) -> str:
    """The report's cost section: the per-round table and the prices with their pages and dates."""
    rows = cost_rows(cost)
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows[1:])
    prices = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(entry['what'])}</td><td>{html.escape(entry['price'])}</td>"
        f"<td>{html.escape(entry['source'])}</td><td>{html.escape(entry['read_on'])}</td>"
        f"<td>{html.escape(entry['note'])}</td></tr>" for key, entry in cost["prices"].items())
    return "\n".join([
        f"<h2 id=\"{COST_SECTION_ID}\">Cost per round</h2>",
        f"<p>List prices ({html.escape(cost['region'])}) of what each round used, from the loop's own records. "
        "Not priced: " + html.escape("; ".join(cost["not_priced"])) + ".</p>",
        f"<table id=\"cost-rounds\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        "<table id=\"cost-prices\"><caption>Prices</caption><thead><tr><th>Key</th><th>What</th><th>Price</th>"
        f"<th>Page</th><th>Read on</th><th>Note</th></tr></thead><tbody>{prices}</tbody></table>",
    ])


def workspace_costs(workspace: Path, prices: Mapping[str, Price] = PRICES) -> dict[str, Any]:
    """`collect_costs` of a saved workspace, read without changing it."""
    runtime = open_workspace(workspace, autosave=False)
    runtime.start()
    try:
        return collect_costs(runtime.state, prices)
    finally:
        runtime.close(save=False)


def add_cost_section(page: Path, workspace: Path, prices: Mapping[str, Price] = PRICES) -> bool:
    """Put the workspace's cost section into a written report page (before its end), replacing one an
    earlier run put there; False (the page unchanged) when the folder holds no saved loop state (only
    a demo's figures, say)."""
    if not Workspace(workspace).exists():
        return False
    section = cost_section_html(workspace_costs(workspace, prices))
    text = re.sub(rf"<!-- {COST_SECTION_ID} -->.*<!-- /{COST_SECTION_ID} -->\n?", "", page.read_text(encoding="utf-8"),
                  flags=re.DOTALL)
    block = f"<!-- {COST_SECTION_ID} -->\n{section}\n<!-- /{COST_SECTION_ID} -->\n"
    page.write_text(text.replace("</body>", block + "</body>", 1), encoding="utf-8")
    return True


__all__ = [
    "PRICE_HELP",
    "add_cost_section",
    "collect_costs",
    "cost_rows",
    "cost_section_html",
    "cost_summary",
    "format_costs",
    "given_prices",
    "workspace_costs",
]
