"""The `nerloop` command: the loop on a laptop, with no AWS account.

    nerloop demo                       the whole loop on the walkthrough's data, with a simulated reviewer
    nerloop up                         the loop as a local service: drop .txt files in the inbox
    nerloop status                     versions, metrics, queues and in-flight work of a workspace or stack
    nerloop convert MANIFEST OUTDIR    Ground Truth output manifest → Comprehend training files
    nerloop validate FILE              check a manifest, detection archive, A2I output.json or event
    nerloop report                     a loop's own records, a demo run's figures or a learning benchmark as a page
    nerloop redrive                    re-run the dead letters of a workspace or stack through their functions
    nerloop chaos                      duplicates, faults, concurrency and redrive against a clean run
    nerloop estimate --pool N          the expected cost of each round, before deploying
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from nerloop_local.emulator.isolation import offline_environment
from nerloop_local.usage import UsageError


def reads_a_stack(argv: Sequence[str]) -> bool:
    """Whether the command line names a deployed stack (`--stack NAME`): then it needs real credentials."""
    return any(arg == "--stack" or arg.startswith("--stack=") for arg in argv)


def build_parser() -> argparse.ArgumentParser:
    """The `nerloop` command line: each subcommand's module adds its own parser (`add_commands`)."""
    parser = argparse.ArgumentParser(prog="nerloop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    # Late import: Powertools reads the environment when nerloop's modules load, and main() sets it first
    from nerloop_local.commands import chaos, convert, demo, estimate, redrive, report, status, up, validate

    convert.add_commands(commands)
    validate.add_commands(commands)
    demo.add_commands(commands)
    up.add_commands(commands)
    status.add_commands(commands)
    report.add_commands(commands)
    redrive.add_commands(commands)
    chaos.add_commands(commands)
    estimate.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    offline_environment(credentials=not reads_a_stack(argv))  # before any nerloop module makes a logger or client
    # Handlers run outside Lambda here: Powertools' reminder about the Lambda context is noise.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    # Metrics are off locally (POWERTOOLS_METRICS_DISABLED); Powertools still says there are none to flush.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as exc:
        print(f"nerloop: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

