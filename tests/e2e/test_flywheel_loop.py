"""The whole local loop with TrainingMode Flywheel: each snapshot becomes a TRAIN dataset (and its test set
a TEST dataset) of the stack's flywheel, an iteration trains and evaluates the version, the gate promotes
it with UpdateFlywheel, and the pool's detection jobs name the flywheel. The same run as
test_local_loop.py's (the sample's manifest as the seed, 40 raw lines, reviews in batches of 5)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from nerloop_local.emulator.runtime import LocalRuntime

BATCH = 5
SEED_LINES = 202


@pytest.fixture(scope="module")
def flywheel_run(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> dict[str, Any]:
    workspace = tmp_path_factory.mktemp("workspace")
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed_manifest = b"".join(itertools.islice(manifest, SEED_LINES))
    raw_lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()[:40]
    reviewed: list[str] = []

    def reviewer(loop_name: str, content: dict[str, Any]) -> list[dict[str, Any]] | None:
        if len(reviewed) >= 2 * BATCH:
            return None
        answer = [dict(item) for item in content["initialValue"]]
        first_word = len(content["text"].split(" ", 1)[0])
        if not any(item["startOffset"] < first_word for item in answer):
            answer.append({"label": "SERVICE", "startOffset": 0, "endOffset": first_word})
        reviewed.append(content["text"])
        return answer

    parameters = {"EntityTypes": "SERVICE,VERSION", "ConfidenceThreshold": "0.999", "TrainingMode": "Flywheel",
                  "RetrainBatchSize": str(BATCH), "ReviewBudget": str(BATCH)}
    with LocalRuntime(workspace, parameters, reviewer=reviewer,
                      environment={"POWERTOOLS_METRICS_DISABLED": "true"}) as runtime:
        runtime.put_text("raw/offerings.txt", "\n".join(raw_lines) + "\n")
        runtime.label_with_manifest(seed_manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-e2e-seed")
        result = runtime.run_until_idle(max_cycles=250)
        flywheels = runtime.standins.flywheels
        return {
            "idle": result.idle, "failures": [d.line() for d in result.failures],
            "dead_letters": runtime.dead_letters(),
            "flywheel_env": runtime.function_environment("DetectFunction")["FLYWHEEL_ARN"],
            "flywheels": dict(flywheels.flywheels), "datasets": list(flywheels.datasets.values()),
            "iterations": list(flywheels.iterations.values()),
            "recognizers": dict(runtime.comprehend.recognizers), "jobs": list(runtime.comprehend.jobs.values()),
            "versions": {v.version: v for v in runtime.state.versions.list()},
            "loop_jobs": runtime.state.jobs.list(), "active": runtime.state.versions.active(), "reviewed": reviewed,
        }


def test_the_loop_settles_without_failures(flywheel_run):
    assert flywheel_run["idle"]
    assert flywheel_run["failures"] == [] and flywheel_run["dead_letters"] == []


def test_the_stack_made_one_flywheel_and_the_functions_know_it(flywheel_run):
    (arn,) = flywheel_run["flywheels"]
    assert flywheel_run["flywheel_env"] == arn
    task = flywheel_run["flywheels"][arn].task_config
    assert [t["Type"] for t in task["EntityRecognitionConfig"]["EntityTypes"]] == ["SERVICE", "VERSION"]


def test_each_round_became_a_train_dataset_and_its_test_set_a_test_dataset(flywheel_run):
    versions = flywheel_run["versions"]
    assert len(versions) >= 2  # the seed, then at least one round of reviews
    by_name = {d.name: d for d in flywheel_run["datasets"]}
    for name, version in versions.items():
        train = by_name[f"{name}-train"]
        assert train.kind == "TRAIN" and train.status == "COMPLETED"
        assert train.input_config["Documents"]["S3Uri"].endswith(f"training/{name}/documents.txt")
        if version.metrics["test_set"]["usable"]:
            test = by_name[f"{name}-test"]
            assert test.kind == "TEST" and test.input_config["Documents"]["S3Uri"].endswith(
                f"training/{name}/test-documents.txt")
        assert version.metrics["flywheel"]["datasets"][0] == train.arn


def test_each_version_is_one_iteration_whose_model_it_holds(flywheel_run):
    iterations = {i.iteration_id: i for i in flywheel_run["iterations"]}
    assert len(iterations) == len(flywheel_run["versions"])
    for name, version in flywheel_run["versions"].items():
        iteration = iterations[version.metrics["flywheel"]["iteration"]]
        assert iteration.status == "COMPLETED", name
        assert version.arn == iteration.trained_model_arn and version.status == "TRAINED", name
        assert version.metrics["flywheel"]["trained_model_metrics"]["AverageF1Score"] > 0
    later = [i for i in iterations.values() if i.evaluated_model_arn]
    # Every iteration after the first evaluated the active model on the same test data.
    assert len(later) == len(iterations) - 1 and all(i.evaluated_metrics for i in later)


def test_the_gate_promoted_through_update_flywheel(flywheel_run):
    (flywheel,) = flywheel_run["flywheels"].values()
    active_name = flywheel_run["active"][0]
    assert flywheel.active_model_arn == flywheel_run["versions"][active_name].arn
    for name, version in flywheel_run["versions"].items():
        if name != "v1":  # paired on the stable test set, like the recognizer mode's versions
            assert version.metrics["gate"]["shared_documents"] >= 10, name
    assert flywheel_run["versions"][active_name].metrics["gate"]["status"] == "ACTIVATED"


def test_pool_detection_names_the_flywheel_and_evaluation_the_version(flywheel_run):
    (arn,) = flywheel_run["flywheels"]
    pool = [j for j in flywheel_run["jobs"] if "/detection/input/" in j.input_config["S3Uri"]]
    evaluation = [j for j in flywheel_run["jobs"] if "/training/" in j.input_config["S3Uri"]]
    assert pool and evaluation
    assert all(j.flywheel_arn == arn for j in pool)
    assert all(j.flywheel_arn is None for j in evaluation)
    # A job with the flywheel's ARN ran the model active when it started: a version the loop recorded.
    models = {v.arn for v in flywheel_run["versions"].values()}
    assert {j.recognizer_arn for j in pool} <= models
    assert flywheel_run["reviewed"]  # the flywheel's detections were routed to review and merged

