"""`nerloop redrive` on a saved workspace: dead letters back through their function, then none left."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from nerloop.state import Loop
from nerloop_local.commands import redrive
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.emulator.stack import load_event

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    redrive.add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_redrive_reruns_a_dead_letter_once_the_handler_is_fixed(tmp_path: Path, capsys: Any) -> None:
    # Given a saved workspace whose merge function dead-lettered a completed loop's event
    workspace = tmp_path / "ws"
    failed = load_event("merge-failed")
    name = failed["detail"]["humanLoopName"]
    with LocalRuntime(workspace, environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        def broken(event: dict[str, Any], context: Any) -> None:
            raise RuntimeError("a bug in this version of the handler")

        runtime.state.loops.put(Loop(name, "doc", "v1", "InProgress"))
        runtime.override_handler("MergeFunction", broken)
        detail = {**failed["detail"], "flowDefinitionArn": runtime.flow_definition_arn}  # the rule's pattern
        runtime.put_event(failed["source"], failed["detail-type"], detail, failed["resources"])
        runtime.run_until_idle()
        assert len(runtime.dead_letters("MergeFunction")) == 1
        assert runtime.state.loops.get(name).status == "InProgress"
    # When `nerloop redrive` runs with the function's own code (the fixed handler)
    args = parse(["redrive", "--workspace", str(workspace), "--function", "MergeFunction"])
    status = args.run(args)
    out = capsys.readouterr().out
    # Then the event ran again and no dead letter is left
    assert status == 0, out
    assert "1 redriven, 0 dead letter(s) left" in out
    assert "MergeFunction" in out and "ok" in out
    with LocalRuntime(workspace, environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        assert runtime.state.loops.get(name).status == "Failed"
        assert runtime.dead_letters() == []


def test_redrive_of_an_unknown_workspace_is_a_usage_error(tmp_path: Path) -> None:
    from nerloop_local.usage import UsageError

    args = parse(["redrive", "--workspace", str(tmp_path)])
    with pytest.raises(UsageError):
        args.run(args)
