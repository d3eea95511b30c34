"""`nerloop demo --reviewers 3 --reviewer-noise 0.3`: every human loop is answered by three simulated
workers who miss entities independently, A2I's output.json lists the three answers, and the merge
stage puts into the gold set the spans at least two of them marked."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nerloop.documents import Span
from nerloop_local.cli import main
from nerloop_local.emulator.workspace_runtime import open_workspace

WORKERS = ["local-reviewer", "local-reviewer-2", "local-reviewer-3"]


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> list[dict[str, Any]]:
    """Each completed loop of the run: its output.json and the gold spans of its document."""
    workspace = tmp_path_factory.mktemp("reviewers") / "workspace"
    assert main(["demo", "--rounds", "3", "--seed", "2", "--workspace", str(workspace), "--reviewers", "3",
                 "--reviewer-noise", "0.3", "--manifest", str(sample_dir / "output.manifest")]) == 0
    runtime = open_workspace(workspace, autosave=False)
    runtime.start()
    try:
        found = []
        for loop in runtime.a2i.loops.values():
            if loop.status != "Completed":
                continue
            output = json.loads(runtime.get_bytes(loop.output_uri.split("/", 3)[3]))
            gold = runtime.state.gold.get(runtime.state.loops.get(loop.name).doc)
            found.append({"name": loop.name, "output": output, "gold": gold})
        return found
    finally:
        runtime.close(save=False)


def answers_of(output: dict[str, Any]) -> dict[str, set[Span]]:
    return {answer["workerId"]: {Span(e["startOffset"], e["endOffset"], e["label"])
                                 for e in answer["answerContent"]["crowd-entity-annotation"]["entities"]}
            for answer in output["humanAnswers"]}


def test_each_loop_was_answered_by_three_distinct_workers(reviewed):
    assert reviewed
    assert all([a["workerId"] for a in item["output"]["humanAnswers"]] == WORKERS for item in reviewed)


def test_the_workers_disagreed_and_the_gold_set_holds_what_two_of_three_marked(reviewed):
    disagreements = [item for item in reviewed if len({frozenset(s) for s in answers_of(item["output"]).values()}) > 1]
    assert len(disagreements) >= 3, "with a 30 % miss rate the simulated workers should disagree"
    for item in reviewed:
        votes = Counter(span for spans in answers_of(item["output"]).values() for span in spans)
        majority = sorted(span for span, count in votes.items() if count >= 2)
        assert item["gold"] is not None and item["gold"].origin == f"review:{item['name']}"
        assert item["gold"].spans == majority, item["name"]
