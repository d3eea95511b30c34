"""A LocalRuntime on a saved workspace: the stack it was saved with, and the handlers' environment the
commands run them in (`nerloop up`, `status`, `redrive` and the reports that read a workspace)."""

from __future__ import annotations

import os
from pathlib import Path

from nerloop_local.emulator.deployment import LOCAL_PARAMETERS
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.stack import Stack
from nerloop_local.emulator.template import load_template
from nerloop_local.emulator.workspace import Workspace
from nerloop_local.usage import UsageError


def handler_environment() -> dict[str, str]:
    """What the handlers run with here: no metrics, and errors only unless NERLOOP_LOG_LEVEL says otherwise."""
    return {"POWERTOOLS_METRICS_DISABLED": "true", "POWERTOOLS_LOG_LEVEL": os.environ.get("NERLOOP_LOG_LEVEL", "ERROR")}


def open_workspace(workspace: Path, *, autosave: bool = True) -> LocalRuntime:
    """A LocalRuntime (not started) on a saved workspace, with the parameters it was saved with.
    UsageError when no workspace was saved there."""
    saved = Workspace(workspace)
    if not saved.exists():
        raise UsageError(f"{workspace}: no nerloop workspace here (start one with `nerloop up`)")
    declared = load_template().get("Parameters", {})
    parameters = {name: value for name, value in (saved.manifest().get("parameters") or {}).items()
                  if name in declared}
    stack = Stack.load({**LOCAL_PARAMETERS, **parameters})
    return LocalRuntime(workspace, stack=stack, autosave=autosave, environment=handler_environment())
