"""Comprehend runs at most 10 concurrent detection jobs ("Guidelines and quotas"); the 11th start is
refused with TooManyRequestsException. In local mode, through the very handlers that run on AWS: more
uploads at once than there are slots queue their detection requests, and the watch stage starts them
as jobs end. Nothing fails, nothing is lost."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from nerloop.constants import MAX_CONCURRENT_DETECTION_JOBS
from nerloop_local.emulator.runtime import LocalRuntime
from nerloop_local.standins.comprehend_detection import JOB_IN_FLIGHT

UPLOADS = MAX_CONCURRENT_DETECTION_JOBS + 3


@pytest.fixture
def runtime(tmp_path: Path, sample_dir: Path) -> Iterator[LocalRuntime]:
    """v1 trained and active, nothing else in flight."""
    local = LocalRuntime(tmp_path / "workspace", {"EntityTypes": "SERVICE,VERSION", "TestShare": "0"},
                         reviewer=lambda name, content: None,
                         environment={"POWERTOOLS_METRICS_DISABLED": "true"}, autosave=False)
    local.start()
    with (sample_dir / "output.manifest").open("rb") as manifest:
        local.label_with_manifest(b"".join(itertools.islice(manifest, 45)),
                                  job_name=f"{local.stack.labeling_job_prefix()}-quota-seed")
    result = local.run_until_idle(max_cycles=200)
    assert result.idle and local.state.versions.active()[0] == "v1"
    yield local
    local.close(save=False)


def test_uploads_beyond_the_job_quota_queue_and_all_get_detected(runtime: LocalRuntime, sample_dir: Path) -> None:
    # Given more raw uploads at once than Comprehend has job slots, each with its own sentence
    lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:UPLOADS]
    for number, line in enumerate(lines):
        runtime.put_text(f"raw/upload-{number}.txt", line + "\n")
    jobs_before = {job.job_id for job in runtime.state.jobs.list()}

    # When the loop runs, watching how many jobs are ever active at once
    most_active, failures = 0, []
    for _ in range(200):
        delivered = runtime.cycle()
        failures += [d.line() for d in delivered if d.outcome != "ok"]
        most_active = max(most_active, sum(1 for job in runtime.comprehend.jobs.values()
                                           if job.status in JOB_IN_FLIGHT))
        if runtime.idle():
            break

    # Then no start failed, the quota was never passed, and every upload's batch was detected
    assert failures == [] and runtime.dead_letters() == []
    assert most_active == MAX_CONCURRENT_DETECTION_JOBS
    new_jobs = [job for job in runtime.state.jobs.list() if job.job_id not in jobs_before]
    assert len(new_jobs) == UPLOADS
    assert {job.status for job in new_jobs} == {"COMPLETED"}
    assert runtime.state.jobs.queued() == []
    assert runtime.state.jobs.in_flight() == []
