"""`nerloop status`: a look at a loop's state, from a workspace or a deployed stack.

    nerloop status [--workspace DIR | --stack NAME [--region R]] [--json] [--price KEY=USD ...]

On a workspace it starts the runtime with the saved state, reads, and closes it without saving: no pump
cycle runs, no event is delivered, and nothing in the workspace folder is written (the runtime's `start`
only restores; a custom resource is re-run only when its properties changed, and that too stays in
memory). It can run beside `up`: the workspace's files are replaced atomically. With `--stack NAME` it
reads a deployed stack instead (`stack_status`), in the same form. What is collected and how it is
written: nerloop_local.report.status.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nerloop.pricing import PriceError
from nerloop_local.commands.stack_resources import add_stack_arguments, open_stack_for
from nerloop_local.commands.stack_status import collect_stack_status
from nerloop_local.commands.up import DEFAULT_WORKSPACE
from nerloop_local.report.cost import PRICE_HELP, given_prices
from nerloop_local.report.status import format_status, read_status
from nerloop_local.usage import UsageError


def cmd_status(args: argparse.Namespace) -> int:
    try:
        prices = given_prices(args.price)
    except PriceError as exc:
        raise UsageError(str(exc)) from exc
    stack = open_stack_for(args)
    if stack is not None:
        status = collect_stack_status(stack, prices)
    else:
        workspace: Path = args.workspace
        if not workspace.is_dir():
            raise UsageError(f"{workspace}: no such workspace folder")
        status = read_status(workspace, prices)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=False))
    else:
        print("\n".join(format_status(status)))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    status = commands.add_parser("status", help="versions, queues, in-flight work and dead letters of a workspace "
                                                "or a deployed stack")
    place = status.add_mutually_exclusive_group()
    place.add_argument("--workspace", type=Path, default=DEFAULT_WORKSPACE,
                       help=f"the workspace to read (default: {DEFAULT_WORKSPACE}); it is not changed")
    add_stack_arguments(status, place, "read, never written")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    status.add_argument("--price", action="append", metavar="KEY=USD", help=PRICE_HELP)
    status.set_defaults(run=cmd_status)
