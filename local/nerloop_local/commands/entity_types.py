"""The entity types a command runs with: the ones `--entity-types A,B` names (each one Comprehend takes),
or the labels a Ground Truth output manifest uses (`convert`, `validate`, `up --seed-manifest`)."""

from __future__ import annotations

import sys
from pathlib import Path

from nerloop.comprehend_training import entity_type_problem
from nerloop.gt_manifest import iter_byte_lines, read_label_set
from nerloop_local.usage import UsageError


def given_entity_types(given: str) -> list[str]:
    """`--entity-types A,B`: the names, each one Comprehend takes, else a UsageError naming why not."""
    types = [name.strip() for name in given.split(",") if name.strip()]
    bad = [f"{name!r}: {problem}" for name in types if (problem := entity_type_problem(name))]
    if bad:
        raise UsageError(f"--entity-types: {'; '.join(bad)}")
    return types


def manifest_entity_types(path: Path) -> list[str]:
    """The entity types a manifest uses (its jobs' label sets), for runs without --entity-types."""
    with path.open("rb") as handle:
        return read_label_set(iter_byte_lines(iter(lambda: handle.read(1 << 16), b"")))


def entity_types_for(manifest: Path, given: str | None) -> list[str]:
    """The entity types to convert with: the given ones, else the labels the manifest uses that
    Comprehend takes as type names. A label it would refuse (`AWS SERVICE`) is left out, said on
    stderr, and so the lines that use it are quarantined like any other unknown label."""
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
