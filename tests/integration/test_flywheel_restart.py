"""TrainingMode Flywheel across a restart of the local stack: the flywheel, its datasets and an iteration in
flight are saved with the workspace and taken up again (the stand-in's snapshot and restore, and the custom
resource kept as it was), and the version it trains ends and is promoted as without the restart."""

from __future__ import annotations

import itertools
from pathlib import Path

from nerloop_local.emulator.runtime import LocalRuntime

PARAMETERS = {"EntityTypes": "SERVICE,VERSION", "TrainingMode": "Flywheel"}


def test_an_iteration_in_flight_survives_a_restart(tmp_path: Path, sample_dir: Path):
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed = b"".join(itertools.islice(manifest, 202))
    # Given the seed labelled and the loop stopped while v1's iteration trains
    with LocalRuntime(tmp_path, PARAMETERS, environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        runtime.label_with_manifest(seed, job_name=f"{runtime.stack.labeling_job_prefix()}-seed")
        for _ in range(40):
            runtime.cycle()
            if runtime.standins.flywheels.iterations:
                break
        (iteration,) = runtime.standins.flywheels.iterations.values()
        assert iteration.status == "TRAINING"
        (flywheel_arn,) = runtime.standins.flywheels.flywheels

    # When the stack starts again from the workspace and runs until idle
    with LocalRuntime(tmp_path, PARAMETERS, environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        assert runtime.restored
        result = runtime.run_until_idle(max_cycles=100)
        flywheels = runtime.standins.flywheels
        # Then the same flywheel finished the same iteration, and v1 is its active model
        assert result.idle and not result.failures and runtime.dead_letters() == []
        assert list(flywheels.flywheels) == [flywheel_arn]
        assert [i.status for i in flywheels.iterations.values()] == ["COMPLETED"]
        v1 = runtime.state.versions.get("v1")
        assert v1.status == "TRAINED" and v1.arn == iteration.trained_model_arn
        assert runtime.state.versions.active()[0] == "v1"
        assert flywheels.flywheels[flywheel_arn].active_model_arn == v1.arn
