"""Many human loops completing at once, through MergeFunction's own handler on threads against one
table: no review lost, the review counter exact, one training started per batch while one is in flight."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerloop_local.commands.chaos_concurrency import check_concurrency


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_sixty_loops_completing_at_once_twice_each_are_all_merged_once(tmp_path: Path) -> None:
    figures = check_concurrency(tmp_path, loops=60, batch=20, threads=16)

    assert figures.notes == []
    assert figures.gold == 60 and figures.reviews == 60 and figures.loops == "Completed:60"
    assert figures.deliveries == 120  # every Completed event twice, all handed out at once
    assert figures.versions.split()[0] == "v1"  # one training while the lock was held; v2 only if due
    assert figures.ok
