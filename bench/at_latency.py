"""The latency rows of `make bench`: convert, route and merge with every stand-in call taking its time on
AWS (bench/latency.py), each stage's wall time against its function's Timeout from template.yaml, and its
requests per 1,000 documents against the design's minimum (bench/minimums.py). Writes `latency` and
`targets` into results.json.

Sizes run from small to large; a size whose time, predicted from the size before it, would pass
`Config.latency_run_limit_seconds` is not run: its wall time and requests are extrapolated linearly
from the largest size run, and the row and the JSON say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.inputs import Config, Row, _label_attribute, detection, gold_state, manifest
from bench.invocations import function_timeout
from bench.latency import PROFILES, describe
from bench.measure import run_workload
from bench.minimums import (
    MARGIN_TARGET,
    REQUESTS_TARGET_RATIO,
    convert_minimum,
    merge_minimum,
    requests_target,
    route_minimum,
    time_target,
)


def _ascending(sizes: list[int], run: Callable[[int], dict[str, Any]], limit: float) -> list[dict[str, Any]]:
    """Run each size in turn; once one is predicted (linearly from the last run) to take over `limit`
    seconds, extrapolate it and the larger ones from that last run instead."""
    entries: list[dict[str, Any]] = []
    measured: dict[str, Any] | None = None
    for size in sizes:
        if measured is not None:
            factor = size / measured["size"]
            predicted = measured["wall_seconds"] * factor
            if predicted > limit:
                entries.append({"size": size, "extrapolated_from": measured["size"], "wall_seconds": predicted,
                                "invocation_seconds": [predicted], "invocations": 1,
                                "requests": {name: round(count * factor) for name, count
                                             in measured["requests"].items()}})
                continue
        entry = {"size": size, **run(size)}
        entry["wall_seconds"] = sum(entry["invocation_seconds"])
        entries.append(entry)
        measured = entry
    return entries


def _time_row(benchmark: str, size: str, target: dict[str, Any]) -> Row:
    how = (f"extrapolated x{target['size_factor']:.0f}" if target["extrapolated_from"] else
           f"{target['invocations']} invocation(s)")
    return Row(benchmark, size, f"{target['wall_seconds']:.1f} s ({how})", f"Timeout {target['timeout_seconds']:.0f} s",
               f"{target['margin']:.1f}x", f">= {MARGIN_TARGET:g}x or continues", target["met"])


def _requests_row(size: str, target: dict[str, Any]) -> Row:
    return Row(f"  requests per 1,000 {target['unit']}", size, f"{target['measured_per_1000']:,.1f}",
               f"minimum {target['minimum_per_1000']:,.1f}", f"{target['ratio']:.2f}",
               f"<= {REQUESTS_TARGET_RATIO}x", target["met"])


def _compare_with_one_invocation(entry: dict[str, Any], run: Callable[[int, bool], dict[str, Any]]) -> None:
    """For a size the stage did in several invocations: run it again in one invocation with no latency
    (seconds, not minutes) and record whether both ended in the same state (no repeated effect)."""
    if "extrapolated_from" in entry or entry.get("invocations", 1) <= 1:
        return
    reference = run(entry["size"], True)
    entry["one_invocation"] = {"end_state": reference["end_state"], "seconds": reference["invocation_seconds"][0]}
    entry["same_end_state"] = reference["end_state"] == entry["end_state"]


def _timed(stage: str, size_label: str, function: str, entry: dict[str, Any], timeout: float) -> dict[str, Any]:
    target = time_target(stage, size_label, timeout, entry["invocation_seconds"],
                         extrapolated_from=f"{entry['extrapolated_from']:,}" if "extrapolated_from" in entry else None,
                         same_end_state=entry.get("same_end_state"))
    target["function"] = function
    target["size_factor"] = entry["size"] / entry["extrapolated_from"] if "extrapolated_from" in entry else 1.0
    return target


def bench_latency(config: Config, results: dict[str, Any], rows: list[Row]) -> None:
    if config.latency == "none":
        rows.append(Row("AWS latency model", "off (--latency none)", "", ""))
        return
    targets: dict[str, Any] = {"latency_profile": config.latency}
    latency: dict[str, Any] = {"profile": config.latency, "table": describe(PROFILES[config.latency]),
                               "run_limit_seconds": config.latency_run_limit_seconds}
    attribute = _label_attribute()

    # convert
    timeout = function_timeout("ConvertFunction")

    def run_convert(lines: int, one_invocation: bool = False) -> dict[str, Any]:
        return run_workload("convert_stage", {"manifest": str(manifest(config, lines)), "label_attribute": attribute,
                                              "latency": "none" if one_invocation else config.latency,
                                              "one_invocation": one_invocation}, timeout=3600)

    entries = _ascending(list(config.latency_convert_sizes), run_convert, config.latency_run_limit_seconds)
    _compare_with_one_invocation(entries[-1], run_convert)
    for entry in entries:
        size = f"{entry['size']:,} lines"
        target = _timed("convert", size, "ConvertFunction", entry, timeout)
        entry["timing"] = target
        rows.append(_time_row("convert at AWS latency", size, target))
        if "extrapolated_from" not in entry:
            result = entry["result"]
            entry["requests_target"] = requests_target(
                "convert", "lines", entry["size"], entry["requests"],
                convert_minimum(result["documents"], result["repeated"], entry["table_calls"].get("query", 0)))
            rows.append(_requests_row(size, entry["requests_target"]))
    latency["convert"] = entries
    targets["convert_time"] = entries[-1]["timing"]
    targets["convert_requests"] = [e for e in entries if "requests_target" in e][-1]["requests_target"]

    # route
    timeout = function_timeout("RouteFunction")
    budgets = dict(config.latency_route_sizes)

    def run_route(documents: int, one_invocation: bool = False) -> dict[str, Any]:
        return run_workload("route_stage", {**detection(config, documents),
                                            "latency": "none" if one_invocation else config.latency,
                                            "one_invocation": one_invocation, "review_budget": budgets[documents]},
                            timeout=3600)

    entries = _ascending([documents for documents, _ in config.latency_route_sizes], run_route,
                         config.latency_run_limit_seconds)
    _compare_with_one_invocation(entries[-1], run_route)
    for entry in entries:
        size = f"{entry['size']:,} documents, budget {budgets[entry['size']]:,}"
        target = _timed("route", size, "RouteFunction", entry, timeout)
        entry["timing"] = target
        entry["review_budget"] = budgets[entry["size"]]
        rows.append(_time_row("route at AWS latency", size, target))
        if "extrapolated_from" not in entry:
            result = entry["result"]
            loops = result["loops_started"] + result["loops_existing"]
            decided = result["records"] - result["skipped"] - result["quarantined"]
            entry["requests_target"] = requests_target(
                "route", "documents", entry["size"], entry["requests"],
                route_minimum(result["records"], decided, loops))
            rows.append(_requests_row(size, entry["requests_target"]))
    latency["route"] = entries
    targets["route_time"] = entries[-1]["timing"]
    targets["route_requests"] = [e for e in entries if "requests_target" in e][-1]["requests_target"]

    # merge: every review is an invocation of its own
    timeout = function_timeout("MergeFunction")
    loops = config.latency_merge_loops
    run = run_workload("merge_loops", {"state": str(gold_state(config, config.merge_gold)), "loops": loops,
                                       "seed": config.seed + 11, "gold": config.merge_gold,
                                       "latency": config.latency}, timeout=3600)
    size = f"{loops:,} reviews, {config.merge_gold:,} gold"
    timing = time_target("merge (longest review)", size, timeout, [run["max_ms"] / 1000])
    timing.update({"function": "MergeFunction", "size_factor": 1.0, "p50_ms": run["p50_ms"], "p99_ms": run["p99_ms"]})
    rows.append(Row("merge at AWS latency", size, f"p50 {run['p50_ms']:.0f} ms, max {run['max_ms']:.0f} ms",
                    f"Timeout {timeout:.0f} s", f"{timing['margin']:.0f}x", f">= {MARGIN_TARGET:g}x", timing["met"]))
    merge_target = requests_target("merge", "reviews", loops, run["requests"],
                                   merge_minimum(loops, run["gold_pages"], run["snapshots"],
                                                 run["repaired"]))
    rows.append(_requests_row(size, merge_target))
    latency["merge"] = {"loops": loops, "timing": timing, **{k: v for k, v in run.items() if k != "base_mb"}}
    targets["merge_time"] = timing
    targets["merge_requests"] = merge_target

    results["latency"] = latency
    results["targets"] = targets
