"""Text dropped after the active version has detected is detected at once by that version, not
left waiting for the next training (preprocess announces the batch; detect runs it)."""

from __future__ import annotations

import itertools
from pathlib import Path

from nerloop.documents import document_hash
from nerloop.state import ACCEPTED, IN_REVIEW
from nerloop_local.emulator.runtime import LocalRuntime


def test_a_new_batch_is_detected_by_the_active_version(tmp_path: Path, sample_dir: Path) -> None:
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed_manifest = b"".join(itertools.islice(manifest, 100))  # trains with a fifth held out for testing
    raw = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()
    parameters = {"EntityTypes": "SERVICE,VERSION", "ConfidenceThreshold": "0.9", "RetrainBatchSize": "50"}
    with LocalRuntime(tmp_path, parameters, reviewer=lambda name, content: None,
                      environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        # Given v1 trained, active, and done with the first text
        runtime.put_text("raw/first.txt", "\n".join(raw[:10]) + "\n")
        runtime.label_with_manifest(seed_manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-new-text-seed")
        assert runtime.run_until_idle(max_cycles=100).idle
        assert runtime.state.versions.active()[0] == "v1"
        jobs_before = {job.job_id for job in runtime.state.jobs.list()}

        # When new text arrives and the loop runs on, with no new version
        runtime.put_text("raw/later.txt", "\n".join(raw[40:43]) + "\n")
        result = runtime.run_until_idle(max_cycles=100)

        # Then one more detection job, by v1, over exactly the new documents, and each was routed
        assert result.idle and not result.failures
        (job,) = [job for job in runtime.state.jobs.list() if job.job_id not in jobs_before]
        new_docs = runtime.get_text(job.input_key).splitlines()
        assert job.version == "v1" and job.documents == len(new_docs) >= 3
        assert all(any(text in line for line in raw[40:43]) for text in new_docs)
        for text in new_docs:
            pooled = runtime.state.pool.get(document_hash(text))
            assert (pooled.seen_by, pooled.status) in {("v1", IN_REVIEW), ("v1", ACCEPTED)}, text
        assert [v.version for v in runtime.state.versions.list()] == ["v1"]
