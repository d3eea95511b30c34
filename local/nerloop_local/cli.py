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
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from nerloop_local.emulator.isolation import offline_environment
from nerloop_local.usage import UsageError


def reads_a_stack(argv: Sequence[str]) -> bool:
    """Whether the command line names a deployed stack (`--stack NAME`): then it needs real credentials."""
    return any(arg == "--stack" or arg.startswith("--stack=") for arg in argv)


def given_entity_types(given: str) -> list[str]:
    """`--entity-types A,B`: the names, each one Comprehend takes, else a UsageError naming why not."""
    from nerloop.comprehend_training import entity_type_problem

    types = [name.strip() for name in given.split(",") if name.strip()]
    bad = [f"{name!r}: {problem}" for name in types if (problem := entity_type_problem(name))]
    if bad:
        raise UsageError(f"--entity-types: {'; '.join(bad)}")
    return types


def entity_types_for(manifest: Path, given: str | None) -> list[str]:
    """The entity types to convert with: the given ones, else the labels the manifest uses that
    Comprehend takes as type names. A label it would refuse (`AWS SERVICE`) is left out, said on
    stderr, and so the lines that use it are quarantined like any other unknown label."""
    from nerloop.comprehend_training import entity_type_problem
    from nerloop_local.commands.validate import manifest_entity_types

    if given:
        return given_entity_types(given)
    types = []
    for name in manifest_entity_types(manifest):
        problem = entity_type_problem(name)
        if problem:
            print(f"nerloop: {manifest}: label {name!r} is not an entity type: {problem}; "
                  "the lines that use it are quarantined", file=sys.stderr)
        else:
            types.append(name)
    if not types:
        raise UsageError(f"{manifest}: no entity labels found that Comprehend takes; pass --entity-types")
    return types


# --- convert ----------------------------------------------------------------------------------


def cmd_convert(args: argparse.Namespace) -> int:
    """Run the convert stage itself (under emulated AWS) and copy the snapshot it writes."""
    manifest: Path = args.manifest
    if not manifest.is_file():
        raise UsageError(f"{manifest}: no such file")
    types = entity_types_for(manifest, args.entity_types)
    from nerloop.quarantine import Problem
    from nerloop.settings import SettingsError
    from nerloop_local.commands.offline import convert_manifest

    try:
        result, files = convert_manifest(manifest, types)
    except SettingsError as exc:  # e.g. more entity types than Comprehend trains on
        raise UsageError(f"{manifest}: {exc}; pass --entity-types") from exc
    out: Path = args.outdir
    out.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (out / name).write_bytes(body)
    print(f"{manifest}: {result.lines} lines → {result.documents} documents "
          f"({result.repeated} repeated lines merged), {result.spans} spans, "
          f"{result.trimmed} spans trimmed of white space, {result.quarantined} lines quarantined")
    for name in files:
        print(f"  wrote {out / name}")
    if "quarantine.jsonl" in files:
        rows = [json.loads(line) for line in files["quarantine.jsonl"].splitlines() if line.strip()]
        for row in rows:
            if row["kind"] == "rejected":
                print(f"quarantined: {Problem(row['file'], row['line'], row['reason'])}")
        repaired = sum(1 for row in rows if row["kind"] != "rejected")
        print(f"  problems and repairs ({repaired} repaired): {out / 'quarantine.jsonl'}")
    return 0 if result.documents else 1


# --- validate ---------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    from nerloop_local.commands.validate import validate_file

    types = given_entity_types(args.entity_types) if args.entity_types else None
    report = validate_file(path, types)
    for problem in report.problems:
        print(f"error: {problem}")
    for repair in report.repairs:  # each by file and line, what was done and why, as errors are
        print(f"repaired: {repair}")
    verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"{path}: {report.kind}, {report.records} record(s), {report.valid} valid, "
          f"{len(report.repairs)} repaired, {verdict}")
    return 0 if report.ok else 1


# --- entry point ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nerloop", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    convert = commands.add_parser("convert", help="Ground Truth output manifest → Comprehend training files")
    convert.add_argument("manifest", type=Path)
    convert.add_argument("outdir", type=Path)
    convert.add_argument("--entity-types", help="comma-separated; default: the labels the manifest uses")
    convert.set_defaults(run=cmd_convert)

    validate = commands.add_parser("validate", help="check a manifest, detection archive, A2I output.json or event")
    validate.add_argument("file", type=Path)
    validate.add_argument("--entity-types", help="comma-separated; default: the labels the file offers")
    validate.set_defaults(run=cmd_validate)

    from nerloop_local.commands import chaos, demo, estimate, redrive, report
    from nerloop_local.commands import up as service

    demo.add_commands(commands)
    service.add_commands(commands)
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

