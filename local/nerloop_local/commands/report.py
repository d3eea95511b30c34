"""`nerloop report`: a loop's own records, a demo run's figures or a learning benchmark as an HTML page.

    nerloop report --figures demo.json             → ./nerloop-report/index.html
    nerloop report --workspace DIR                  the loop's own records (`report.live`), then DIR/demo.json's
                                                    test set when there is one → DIR/report/index.html
    nerloop report --learning learning.json         a learning benchmark's page (`report.learning`)
    nerloop report --stack NAME [--region R]        a deployed stack's own records → ./nerloop-report/

The pages are drawn in nerloop_local.report; this module reads the arguments and picks the page.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nerloop_local.commands.stack_resources import add_stack_arguments, open_stack_for
from nerloop_local.report.cost import add_cost_section
from nerloop_local.report.demo_report import build_report
from nerloop_local.report.figures import DEFAULT_TARGET_PRECISION, FiguresError, parse_figures, read_json
from nerloop_local.report.files import DEFAULT_OUT, FIGURES_FILE, WORKSPACE_REPORT
from nerloop_local.report.learning import build_learning_report
from nerloop_local.report.learning_figures import is_learning_benchmark, parse_learning
from nerloop_local.report.live import build_stack_report, build_workspace_report, has_loop_state
from nerloop_local.usage import UsageError


def figures_source(figures: Path | None, workspace: Path | None) -> Path:
    """The figures file to read: the one given, or the workspace's demo.json."""
    if figures is not None:
        return figures
    if workspace is None:
        raise UsageError("pass --figures FILE.json or --workspace DIR")
    if not workspace.is_dir():
        raise UsageError(f"{workspace}: no such workspace")
    found = workspace / FIGURES_FILE
    if not found.is_file():
        raise UsageError(f"{found}: no such file, and no loop state beside it (workspace.json): run "
                         f"`nerloop up --workspace {workspace}` or `nerloop demo --workspace {workspace}`, or pass "
                         f"--figures FILE.json")
    return found


def cmd_report(args: argparse.Namespace) -> int:
    """A demo's page, or a learning benchmark's (given with --learning, or recognised by its `kind`)."""
    if not 0.0 < args.target_precision <= 1.0:
        raise UsageError(f"--target-precision must be in (0, 1], got {args.target_precision:g}")
    out = args.out or (args.workspace / WORKSPACE_REPORT if args.workspace is not None else DEFAULT_OUT)
    stack = open_stack_for(args)
    if stack is not None:  # a deployed stack's own records, read with the caller's credentials
        print(build_stack_report(stack.state_table(), stack.client("s3"), stack.bucket, out, source=stack.label,
                                 target=args.target_precision, threshold=stack.confidence_threshold))
        return 0
    if args.workspace is not None and has_loop_state(args.workspace):
        # The loop's own records, and the demo's test set when it has one.
        try:
            page = build_workspace_report(args.workspace, out, target=args.target_precision)
        except FiguresError as exc:
            raise UsageError(str(exc)) from exc
        add_cost_section(page, args.workspace)
        print(page)
        return 0
    source = args.learning or figures_source(args.figures, args.workspace)
    try:
        data = read_json(source)
        if args.learning is not None or is_learning_benchmark(data):
            page = build_learning_report(parse_learning(data, source), out, source=str(source))
        else:
            page = build_report(parse_figures(data, source), out, source=str(source), target=args.target_precision)
    except FiguresError as exc:
        raise UsageError(str(exc)) from exc
    if args.workspace is not None:  # the cost per round section, when the workspace holds loop state
        add_cost_section(page, args.workspace)
    print(page)
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    report = commands.add_parser(
        "report", help="a demo run's figures, or a learning benchmark, as an HTML page with plots",
        description="Write an HTML page with PNG plots. From a workspace: the loop's own records (each "
                    "version's evaluation, reviews per day, what reviewers did to the model's spans, its precision "
                    "in production and the threshold it supports, agreement between reviewers), then a demo's "
                    "test set when the workspace has one. From the figures of `nerloop demo --json FILE`: "
                    "learning curve, scores per entity type, calibration, and the confidence threshold for a "
                    "target precision. From a learning benchmark "
                    "(`python -m bench.learn`): the learning curves of the loop, random selection and full "
                    "supervision with their intervals over seeds. Prints the page's path.")
    source = report.add_mutually_exclusive_group(required=True)
    source.add_argument("--figures", type=Path, metavar="FILE.json", help="figures written by `nerloop demo --json`")
    source.add_argument("--workspace", type=Path, metavar="DIR",
                        help="a workspace of `nerloop up` or `nerloop demo`: the loop's own records (versions, "
                             f"reviews), and the demo's test set when DIR/{FIGURES_FILE} is there")
    source.add_argument("--learning", type=Path, metavar="FILE.json",
                        help="a learning benchmark written by `python -m bench.learn` (--figures recognises one too)")
    add_stack_arguments(report, source, "its state table and data bucket, read, never written")
    report.add_argument("--out", type=Path, metavar="DIR",
                        help=f"where to write index.html and the plots (default: DIR/{WORKSPACE_REPORT} with "
                             f"--workspace, else ./{DEFAULT_OUT})")
    report.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION,
                        help="precision the auto-accepted entities must keep, for the threshold section "
                             f"(default: {DEFAULT_TARGET_PRECISION})")
    report.set_defaults(run=cmd_report)


__all__ = ["add_commands", "cmd_report", "figures_source"]
