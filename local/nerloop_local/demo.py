"""`nerloop demo` (filled in below once the local runtime lands)."""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    return None
