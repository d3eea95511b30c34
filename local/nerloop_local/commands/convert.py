"""`nerloop convert MANIFEST OUTDIR`: a Ground Truth output manifest → Comprehend training files, by the
convert stage itself under emulated AWS (`offline.convert_manifest`); its problems and repairs are
printed and written to OUTDIR/quarantine.jsonl."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nerloop.quarantine import Problem
from nerloop.settings import SettingsError
from nerloop_local.commands.entity_types import entity_types_for
from nerloop_local.commands.offline import convert_manifest
from nerloop_local.usage import UsageError


def cmd_convert(args: argparse.Namespace) -> int:
    """Run the convert stage itself (under emulated AWS) and copy the snapshot it writes."""
    manifest: Path = args.manifest
    if not manifest.is_file():
        raise UsageError(f"{manifest}: no such file")
    types = entity_types_for(manifest, args.entity_types)
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


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    convert = commands.add_parser("convert", help="Ground Truth output manifest → Comprehend training files")
    convert.add_argument("manifest", type=Path)
    convert.add_argument("outdir", type=Path)
    convert.add_argument("--entity-types", help="comma-separated; default: the labels the manifest uses")
    convert.set_defaults(run=cmd_convert)
