"""`python -m bench.run`: every benchmark side by side with its reference; a table and bench/results.json.

Inputs are generated once per seed and size (bench/generate.py) into a cache directory and reused.
Each measurement runs in a fresh child process (bench/workloads.py). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess  # nosec B404 # runs this repository's own make target
import sys
import time
from collections.abc import Mapping
from importlib.util import cache_from_source
from pathlib import Path
from typing import Any

from bench import detection_cap
from bench.at_latency import bench_latency
from bench.generate import SAMPLE_DIR
from bench.inputs import DEFAULT_CACHE, QUICK, Config, Row, _label_attribute, detection, gold_state, manifest
from bench.latency import PROFILES
from bench.measure import REPO, median, run_workload, side_by_side
from nerloop_local.emulator.isolation import FAKE_CREDENTIALS
from nerloop_local.emulator.stack import Stack

# --- the benchmarks -------------------------------------------------------------------------------------


def _mb(value: float) -> str:
    return f"{value:.0f} MB"


def bench_convert(config: Config, results: dict[str, Any], rows: list[Row]) -> None:
    attribute = _label_attribute()
    peaks: dict[int, float] = {}
    entries = []
    for lines in config.convert_sizes:
        params = {"manifest": str(manifest(config, lines)), "label_attribute": attribute}
        repeats = config.repeats_for(lines)
        stage, reference = side_by_side("convert_stage", "convert_reference", params, repeats)
        # The parse alone, for the breakdown (skipped at the largest size: minutes for one figure).
        parse = run_workload("convert_parse_only", params) if lines <= 100_000 else None
        seconds = median([run["seconds"] for run in stage])
        ref_seconds = median([run["seconds"] for run in reference])
        ratio = seconds / ref_seconds
        peaks[lines] = max(run["peak_mb"] for run in stage)
        entry = {
            "lines": lines, "repeats": repeats, "seconds": seconds, "reference_seconds": ref_seconds,
            "ratio": ratio, "lines_per_second": lines / seconds, "reference_lines_per_second": lines / ref_seconds,
            "parse_only_seconds": parse["seconds"] if parse else None, "peak_mb": peaks[lines],
            "reference_peak_mb": max(run["peak_mb"] for run in reference),
            "result": stage[-1]["result"], "table_calls": stage[-1]["table_calls"],
            "runs": [run["seconds"] for run in stage], "reference_runs": [run["seconds"] for run in reference],
            "target": "time ratio <= 1.5", "pass": ratio <= 1.5,
        }
        entries.append(entry)
        rows.append(Row("convert time", f"{lines:,} lines" + (f" ({repeats} run)" if repeats == 1 else ""),
                        f"{seconds:.2f} s ({lines / seconds:,.0f}/s)",
                        f"{ref_seconds:.2f} s ({lines / ref_seconds:,.0f}/s)", f"{ratio:.2f}", "<= 1.5", ratio <= 1.5))
        rows.append(_own_code_row(stage, ref_seconds, f"{lines:,} lines", entry))
        if parse:
            rows.append(Row("  of which parse+validate", f"{lines:,} lines", f"{parse['seconds']:.2f} s",
                            f"{ref_seconds:.2f} s", f"{parse['seconds'] / ref_seconds:.2f}", "", None))
    smallest, largest = min(config.convert_sizes), max(config.convert_sizes)
    growth = peaks[largest] - peaks[smallest]
    memory = {"small_lines": smallest, "large_lines": largest, "small_peak_mb": peaks[smallest],
              "large_peak_mb": peaks[largest], "growth_mb": growth, "target": "growth <= 50 MB",
              "pass": growth <= 50}
    for lines in config.convert_sizes:
        rows.append(Row("convert peak RSS", f"{lines:,} lines", _mb(peaks[lines]),
                        _mb(next(e["reference_peak_mb"] for e in entries if e["lines"] == lines))))
    rows.append(Row("convert memory growth", f"{smallest:,} -> {largest:,}", f"+{growth:.0f} MB", "", "",
                    "<= +50 MB", growth <= 50))
    results["convert"] = {"sizes": entries, "memory": memory}

    walk = []
    for lines in config.walkthrough_sizes:
        params = {"manifest": str(manifest(config, lines)), "label_attribute": attribute}
        run = run_workload("walkthrough", params)
        ratio = run["peak_mb"] / peaks[lines]  # absolute peaks: convert's includes boto3, pydantic, Powertools
        walk.append({"lines": lines, "walkthrough_peak_mb": run["peak_mb"], "walkthrough_seconds": run["seconds"],
                     "convert_peak_mb": peaks[lines], "memory_ratio": ratio,
                     "walkthrough_annotations": run["annotations"]})
        rows.append(Row("walkthrough's way peak RSS", f"{lines:,} lines", _mb(peaks[lines]) + " (convert)",
                        _mb(run["peak_mb"]) + " (notebook)", f"{ratio:.1f}", "(notebook / convert)", None))
    results["walkthrough"] = walk


def _own_code_row(stage: list[dict[str, Any]], ref_seconds: float, size: str, entry: dict[str, Any]) -> Row:
    """The stage's time without what it spent inside the stand-ins (bench/standins.py), against the same
    reference: the part that is the function's own code on AWS, where the rest is network and service."""
    own = median([run["seconds"] - run["standin_seconds"] for run in stage])
    standin = median([run["standin_seconds"] for run in stage])
    entry.update({"own_seconds": own, "standin_seconds": standin, "own_ratio": own / ref_seconds})
    return Row("  without the stand-ins' time", size, f"{own:.2f} s (stand-ins {standin:.2f} s)",
               f"{ref_seconds:.2f} s", f"{own / ref_seconds:.2f}", "", None)


def bench_route(config: Config, results: dict[str, Any], rows: list[Row]) -> None:
    entries = []
    for documents in config.route_sizes:
        params = detection(config, documents)
        stage, reference = side_by_side("route_stage", "route_reference", params, config.repeats)
        seconds = median([run["seconds"] for run in stage])
        ref_seconds = median([run["seconds"] for run in reference])
        ratio = seconds / ref_seconds
        entries.append({"documents": documents, "seconds": seconds, "reference_seconds": ref_seconds, "ratio": ratio,
                        "documents_per_second": documents / seconds, "peak_mb": max(r["peak_mb"] for r in stage),
                        "growth_mb": max(r["growth_mb"] for r in stage), "loops": stage[-1]["loops"],
                        "result": stage[-1]["result"], "table_calls": stage[-1]["table_calls"],
                        "target": "time ratio <= 2", "pass": ratio <= 2})
        rows.append(Row("route time", f"{documents:,} documents", f"{seconds:.2f} s ({documents / seconds:,.0f}/s)",
                        f"{ref_seconds:.2f} s ({documents / ref_seconds:,.0f}/s)", f"{ratio:.2f}", "<= 2", ratio <= 2))
        rows.append(_own_code_row(stage, ref_seconds, f"{documents:,} documents", entries[-1]))
        parse = run_workload("route_parse_only", params)
        entries[-1]["parse_only_seconds"] = parse["seconds"]
        rows.append(Row("  of which read+validate", f"{documents:,} documents", f"{parse['seconds']:.2f} s",
                        f"{ref_seconds:.2f} s", f"{parse['seconds'] / ref_seconds:.2f}", "", None))
    small, large = entries[0], entries[-1]
    growth = large["peak_mb"] - small["peak_mb"]
    for entry in entries:
        rows.append(Row("route peak RSS", f"{entry['documents']:,} documents", _mb(entry["peak_mb"]), ""))
    flat = growth <= 50
    rows.append(Row("route memory growth", f"{small['documents']:,} -> {large['documents']:,}", f"+{growth:.0f} MB",
                    "", "", "flat (<= +50 MB)", flat))
    results["route"] = {"sizes": entries, "memory": {"growth_mb": growth, "target": "flat (<= +50 MB)", "pass": flat}}


def bench_merge(config: Config, results: dict[str, Any], rows: list[Row]) -> None:
    params = {"state": str(gold_state(config, config.merge_gold)), "loops": config.merge_loops,
              "seed": config.seed + 11, "gold": config.merge_gold}
    run = run_workload("merge_loops", params)
    rows.append(Row("merge per loop", f"{config.merge_loops:,} loops, {config.merge_gold:,} gold",
                    f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms", "",
                    "", f"max {run['max_ms']:.0f} ms ({run['snapshots']} snapshot)"))
    snap = run_workload("snapshot", {"state": str(gold_state(config, config.snapshot_gold))})
    rows.append(Row("training snapshot", f"{config.snapshot_gold:,} gold documents",
                    f"{snap['seconds']:.2f} s ({snap['documents'] / snap['seconds']:,.0f}/s)", "",
                    "", f"peak +{snap['growth_mb']:.0f} MB"))
    results["merge"] = {"loops": config.merge_loops, **{k: v for k, v in run.items() if k != "base_mb"}}
    results["snapshot"] = {"gold_documents": config.snapshot_gold, **snap}


# --- cold start ------------------------------------------------------------------------------------

# Cold start is measured as information, no target (issue 13): the functions run on events nobody waits
# on, and 1.4-1.5x `import boto3` is ~60 ms.
COLD_START_INFORMATION = "(information)"
LAYER_ID = "CommonLayer"

# What a handler imports before any code of nerloop's: boto3, pydantic and the Powertools utilities the
# house style keeps, under the same garbage-collection pause as nerloop.coldstart. The floor of the ratio.
LIBRARIES_ALONE = """\
import gc
gc.disable()
import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.idempotency import idempotent_function
from aws_lambda_powertools.utilities.parser import event_parser
from pydantic import BaseModel, Field
Logger()
Metrics(namespace="nerloop")
gc.freeze()
gc.enable()
"""

# Run in a fresh `python -S -P`: no site-packages, no current folder on sys.path, only the stdlib and
# PYTHONPATH (as Lambda's /var/task and /opt/python). Times the statements (compiled first), then,
# the clock stopped, says where the loaded modules came from, counted by sys.path entry.
IMPORT_PROBE = """\
import sys, time
code = compile(sys.argv[1], "<cold start>", "exec")
started = time.perf_counter()
exec(code, {})
seconds = time.perf_counter() - started
import json
roots = sorted((entry for entry in sys.path if entry), key=len, reverse=True)
origins, elsewhere = {}, []
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if not path:
        continue  # built into the interpreter or frozen
    root = next((entry for entry in roots if path.startswith(entry + "/")), None)
    if root is None:
        elsewhere.append(path)
    else:
        origins[root] = origins.get(root, 0) + 1
files = {name: sys.modules[name].__file__ for name in ("app", "boto3", "pydantic", "aws_lambda_powertools", "nerloop")
         if name in sys.modules}
print(json.dumps({"seconds": seconds, "files": files, "sys_path": sys.path, "origins": origins,
                  "elsewhere": elsewhere, "site": "site" in sys.modules, "xray": "aws_xray_sdk" in sys.modules}))
"""


def lambda_env(function: str, tracing: bool) -> dict[str, str]:
    """What Lambda gives a function, and nothing of this machine's environment: the template's variables,
    the variables Lambda sets, fake credentials (nothing may reach AWS)."""
    stack = Stack.load()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": str(stack.function_setting(function, "Handler", "app.lambda_handler")),
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(stack.function_setting(function, "MemorySize", 128)),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{stack.function_setting(function, 'Runtime', 'python3.11')}",
        **FAKE_CREDENTIALS,
        # /var/task and /opt are read-only on Lambda: what the package does not ship compiled stays uncompiled.
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(stack.function_environment(function))
    env["FLOW_DEFINITION_ARN"] = (env.get("FLOW_DEFINITION_ARN")
                                  or "arn:aws:sagemaker:us-east-1:123456789012:flow-definition/x")
    env["POWERTOOLS_TRACE_DISABLED"] = "false" if tracing else "true"
    return env


def check_build(build_dir: Path, functions: dict[str, Path]) -> None:
    """The built functions and layer exist, hold this tree's code and are compiled; else a RuntimeError
    that says to run `make build`."""
    layer = build_dir / LAYER_ID / "python"
    folders = [build_dir / function for function in functions]
    missing = [str(path) for path in [layer / "nerloop", *folders] if not path.is_dir()]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} missing: run `make build` first (`make bench` does)")
    package = REPO / "layers/common/nerloop"
    copies = [(source, layer / "nerloop" / source.relative_to(package)) for source in package.rglob("*.py")]
    copies += [(code / "app.py", build_dir / function / "app.py") for function, code in functions.items()]
    stale = [str(built) for source, built in copies
             if not built.is_file() or built.read_bytes() != source.read_bytes()]
    if stale:
        raise RuntimeError(f"{build_dir} is older than the source ({stale[0]} and {len(stale) - 1} more): "
                           f"run `make build` first (`make bench` does)")
    uncompiled = [str(path) for folder in [layer, *folders] for path in folder.rglob("*.py")
                  if not Path(cache_from_source(str(path))).is_file()]
    if uncompiled:
        raise RuntimeError(f"{uncompiled[0]} and {len(uncompiled) - 1} more have no .pyc: run `make build` "
                           f"(it compiles the build folder)")


def time_import(statements: str, code: Path, layer: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Run `statements` (imports) once in a fresh interpreter that sees only the stdlib, the function's
    folder and the layer, as on Lambda: seconds (interpreter start-up not counted), which files the main
    packages came from, and how many modules came from the function, the layer and the stdlib."""
    completed = subprocess.run(  # nosec B603 # our own interpreter and probe, no shell
        [sys.executable, "-S", "-P", "-c", IMPORT_PROBE, statements], cwd=code, capture_output=True, check=False,
        env={**env, "PYTHONPATH": os.pathsep.join([str(code), str(layer)])}, timeout=120,
    )
    if completed.returncode != 0:
        failure = completed.stderr.decode(errors="replace")[-3000:]
        raise RuntimeError(f"{statements!r} in {code} failed:\n{failure}")
    probe = dict(json.loads(completed.stdout))
    if probe["elsewhere"] or probe["site"]:
        raise RuntimeError(f"{statements!r}: modules from outside the build and the stdlib: {probe['elsewhere'][:3]}")
    # With -S, sys.path is PYTHONPATH and then the interpreter's standard library.
    labels = {str(code): "function", str(layer): "layer"}
    origins: dict[str, int] = {}
    for root, count in probe["origins"].items():
        origins[labels.get(root, "stdlib")] = origins.get(labels.get(root, "stdlib"), 0) + count
    probe["origins"] = origins
    probe["files"] = {name: _shown(path) for name, path in probe["files"].items()}
    probe["sys_path"] = [_shown(entry) for entry in probe["sys_path"]]
    return probe


def _shown(path: str) -> str:
    """A path relative to the repository when inside it."""
    return os.path.relpath(path, REPO) if Path(path).is_relative_to(REPO) else path


def bench_cold_start(config: Config, results: dict[str, Any], rows: list[Row]) -> None:
    """Each function as deployed (its `.aws-sam/build` folder and the layer's, compiled) imported in a
    fresh `python -S`, against `import boto3` from the same layer, alternated; median of the pairs' ratios."""
    build_dir = REPO / ".aws-sam/build"
    functions = {logical_id: REPO / resource["Properties"]["CodeUri"]
                 for logical_id, resource in sorted(Stack.load().functions().items())}
    check_build(build_dir, functions)
    layer = build_dir / LAYER_ID / "python"

    def against_boto3(function: str, statements: str, tracing: bool = False) -> dict[str, Any]:
        code, env = build_dir / function, lambda_env(function, tracing)
        measured: list[dict[str, Any]] = []
        boto3: list[dict[str, Any]] = []
        for _ in range(config.import_repeats):  # alternated, so load on the machine hits both alike
            boto3.append(time_import("import boto3", code, layer, env))
            measured.append(time_import(statements, code, layer, env))
        runs = [run["seconds"] for run in measured]
        boto3_runs = [run["seconds"] for run in boto3]
        seconds, reference = median(runs), median(boto3_runs)
        # The ratio is the median of each import's ratio to the boto3 import just before it: this machine
        # slows down for seconds at a time, which moves a ratio of the two medians but not most pairs.
        ratio = median([run / boto3_run for run, boto3_run in zip(runs, boto3_runs, strict=True)])
        return {"function": function, "imports": statements, "import_seconds": seconds, "boto3_seconds": reference,
                "ratio": ratio, "ratio_of_medians": seconds / reference, "runs_seconds": runs,
                "boto3_runs_seconds": boto3_runs, "xray_imported": measured[-1]["xray"],
                "files": measured[-1]["files"], "modules": measured[-1]["origins"],
                "boto3_files": boto3[-1]["files"], "boto3_modules": boto3[-1]["origins"],
                "sys_path": measured[-1]["sys_path"]}

    def row(benchmark: str, entry: dict[str, Any], target: str, ok: bool | None) -> Row:
        return Row(benchmark, entry["function"], f"{entry['import_seconds'] * 1000:.0f} ms",
                   f"{entry['boto3_seconds'] * 1000:.0f} ms (boto3)", f"{entry['ratio']:.2f}", target, ok)

    entries = []
    for function in functions:
        entry = against_boto3(function, "import app")
        entry["target"] = COLD_START_INFORMATION
        entries.append(entry)
        rows.append(row("cold start (import)", entry, COLD_START_INFORMATION, None))
    # For comparison: a handler with tracing on (the real Tracer and the X-Ray SDK), and the libraries
    # every handler imports before any of nerloop's code.
    traced = against_boto3("ConvertFunction", "import app", tracing=True)
    rows.append(row("cold start, tracing on", traced, COLD_START_INFORMATION, None))
    floor = against_boto3("ConvertFunction", LIBRARIES_ALONE)
    floor.update({"function": "boto3+pydantic+Powertools", "environment_of": "ConvertFunction"})
    rows.append(row("cold start, libraries alone", floor, COLD_START_INFORMATION, None))
    results["cold_start"] = {
        "how": "python -S -P (no site-packages), PYTHONPATH = .aws-sam/build/<function> and the layer's python/ "
               "(Lambda's /var/task and /opt/python), .pyc from `make build`, the function's environment "
               "from template.yaml; `import boto3` and `import app` alternated in fresh interpreters, "
               "start-up not counted; ratio = median over the pairs of app / boto3",
        "interpreter": [sys.executable, "-S", "-P"], "python": platform.python_version(),
        "repeats": config.import_repeats, "layer": _shown(str(layer)),
        "boto3_seconds": median([s for entry in entries for s in entry["boto3_runs_seconds"]]),
        "functions": entries, "tracing_on": traced, "libraries_alone": floor,
    }


def bench_recognizer(config: Config, results: dict[str, Any], rows: list[Row]) -> None:
    runs = [run_workload("recognizer", {"sample_dir": str(SAMPLE_DIR)}) for _ in range(max(1, config.repeats))]
    train = median([run["train_seconds"] for run in runs])
    speed = median([run["documents_per_second"] for run in runs])
    f1 = runs[-1]["f1"]
    rows.append(Row("local recognizer", f"sample ({runs[-1]['detect_documents']} docs detected)",
                    f"train {train:.2f} s, detect {speed:,.0f} docs/s", "", "", f"F1 {f1:.3f} (hold-out)"))
    results["recognizer"] = {"train_seconds": train, "documents_per_second": speed, "f1": f1,
                             "precision": runs[-1]["precision"], "recall": runs[-1]["recall"],
                             "test_documents": runs[-1]["test_documents"]}


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file() and not entry.is_symlink())


def bench_sizes(config: Config, results: dict[str, Any], rows: list[Row], build_dir: Path) -> None:
    """Each function's unzipped deployment: its code folder plus the layer (package + requirements)."""
    if not build_dir.is_dir():
        rows.append(Row("deployment size", "not built", "run `make build` first", ""))
        results["deployment"] = {"built": False}
        return
    layer = directory_bytes(build_dir / "CommonLayer") if (build_dir / "CommonLayer").is_dir() else 0
    entries: list[dict[str, Any]] = []
    for function in sorted(p for p in build_dir.iterdir() if p.is_dir() and p.name.endswith("Function")):
        own = directory_bytes(function)
        total = own + layer
        entries.append({"function": function.name, "function_bytes": own, "layer_bytes": layer,
                        "total_bytes": total, "limit_bytes": 250 * 1024 * 1024, "pass": total < 250 * 1024 * 1024})
    largest = max(entries, key=lambda entry: entry["total_bytes"])
    rows.append(Row("deployment size (unzipped)", f"{len(entries)} functions",
                    f"layer {layer / 2**20:.1f} MB, largest {largest['total_bytes'] / 2**20:.1f} MB", "",
                    "", "< 250 MB", all(entry["pass"] for entry in entries)))
    results["deployment"] = {"built": True, "layer_bytes": layer, "functions": entries}


# --- output -------------------------------------------------------------------------------------------


def render(rows: list[Row]) -> str:
    header = ("benchmark", "size", "nerloop", "reference", "ratio", "target", "met")
    table = [header] + [(r.benchmark, r.size, r.measured, r.reference, r.ratio, r.target,
                         "" if r.ok is None else ("yes" if r.ok else "NO")) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) + " |"
             for line in table]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            info["cpu_model"] = next((line.split(":", 1)[1].strip() for line in cpuinfo
                                      if line.startswith("model name")), "")
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            info["memory_gb"] = round(int(meminfo.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    return info


# --- detection cap (issue 13, part 3): bench/detection_cap.py ------------------------------------------


def bench_detection_cap(config: Config, results: dict[str, Any], rows: list[Row]) -> None:
    """Documents detected per round under the template's cap, over the route benchmark's largest pool."""
    pool = max(config.route_sizes)
    cap = min(detection_cap.template_cap(), max(1, pool // 10))
    entry = detection_cap.run_in_child(pool, cap, detection_cap.ROUNDS, config.seed)
    results["detection_cap"] = entry
    rows.append(Row("detected per round (capped)", f"{pool:,}-doc pool, {len(entry['rounds'])} rounds",
                    f"max {entry['max_detected']:,} ({entry['detected_total']:,} in all)",
                    f"{entry['uncapped_total']:,} uncapped", "", f"<= {cap:,} (the cap)", entry["pass"]))


BENCHMARKS = {
    "convert": bench_convert, "route": bench_route, "merge": bench_merge, "latency": bench_latency,
    "cold-start": bench_cold_start,
    "recognizer": bench_recognizer,
    "detection-cap": bench_detection_cap,
}


def run(config: Config, only: list[str], output: Path | None, build_dir: Path) -> tuple[str, dict[str, Any]]:
    """Run the benchmarks (all, or `only` these); with `only`, the others' earlier results in `output`
    are kept. Results are written after each benchmark, so an interrupted run keeps what it measured;
    a benchmark that fails is reported as such and the others go on."""
    results: dict[str, Any] = {}
    if only and output is not None and output.exists():
        results = json.loads(output.read_text(encoding="utf-8"))
    results.update({"machine": machine(), "seed": config.seed})
    rows_of: dict[str, Any] = results.setdefault("rows", {})
    timings: dict[str, float] = results.setdefault("bench_seconds", {})
    for name, function in [*BENCHMARKS.items(), ("size", None)]:
        if only and name not in only:
            continue
        began = time.perf_counter()
        rows: list[Row] = []
        try:
            if function is None:
                bench_sizes(config, results, rows, build_dir)
            else:
                function(config, results, rows)
        except Exception as exc:
            rows.append(Row(name, "FAILED", f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}", ""))
            results[name] = {"error": str(exc)[-3000:]}
        rows_of[name] = [row.__dict__ for row in rows]
        timings[name] = time.perf_counter() - began
        print(f"[bench] {name} done in {timings[name]:.0f} s", file=sys.stderr, flush=True)
        if output is not None:
            output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    results["seconds"] = sum(timings.values())
    table = render([Row(**row) for name in [*BENCHMARKS, "size"] for row in rows_of.get(name, [])])
    if output is not None:
        output.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return table, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--only", nargs="*", default=[], choices=[*BENCHMARKS, "size"],
                        help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run each (a smoke test)")
    parser.add_argument("--output", type=Path, default=REPO / "bench/results.json")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where generated inputs are kept")
    parser.add_argument("--build", action="store_true", help="run `make build` first (deployment sizes)")
    parser.add_argument("--latency", choices=sorted(PROFILES), default="aws",
                        help="the latency rows' per-call latency model (bench/latency.py); none skips them")
    args = parser.parse_args(argv)
    config = QUICK if args.quick else Config()
    config.cache = args.cache
    config.latency = args.latency
    if args.build:
        subprocess.run(["make", "build"], cwd=REPO, check=True)  # nosec B603 B607 # our own make target
    table, results = run(config, args.only, args.output, REPO / ".aws-sam/build")
    print(table)
    print(f"\n{results['machine'].get('cpu_model', '')}, {results['machine']['cpus']} CPUs, Python "
          f"{results['machine']['python']}; {results['seconds']:.0f} s; results in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
