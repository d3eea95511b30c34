"""The whole local loop under duplicated events, transient faults and a dead-lettered stage: each run
must end in the state of a clean run of the same scenario (nerloop_local.commands.chaos_state.canonical_state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerloop_local.commands import chaos
from nerloop_local.commands.chaos_state import CHAOS_ENVIRONMENT, state_differences
from nerloop_local.emulator.faults import DYNAMODB, S3, FaultInjector
from nerloop_local.emulator.runtime import LocalRuntime

pytestmark = [pytest.mark.filterwarnings("ignore:No application metrics to publish"),
              pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")]

# The stages that guard their effect with run_stage_once (each imports it by name).
GUARDED_STAGES = ("convert", "train", "detect", "route", "merge", "preprocess")


@pytest.fixture(scope="module")
def scenario(sample_dir: Path) -> chaos.Scenario:
    return chaos.Scenario(sample=sample_dir)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chaos")


@pytest.fixture(scope="module")
def clean(scenario: chaos.Scenario, folder: Path) -> chaos.Run:
    return chaos.check_clean(scenario, folder)


def test_the_clean_run_trains_three_versions_from_two_batches_of_reviews(clean: chaos.Run,
                                                                         scenario: chaos.Scenario) -> None:
    assert clean.figures.ok, clean.figures.notes
    assert sorted(clean.state["VERSION"]) == ["v1", "v2", "v3"]
    assert clean.state["COUNTER"]["REVIEWS"]["value"] == scenario.reviews


def test_every_event_delivered_twice_ends_in_the_clean_state(clean: chaos.Run, scenario: chaos.Scenario,
                                                             folder: Path) -> None:
    run = chaos.check_duplicates(scenario, folder, clean)

    assert run.figures.duplicates == run.figures.deliveries - clean.figures.deliveries > 0
    assert state_differences(clean.state, run.state) == []
    assert run.figures.ok


def test_without_idempotency_the_duplicates_show(clean: chaos.Run, scenario: chaos.Scenario, folder: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Given every stage's run_stage_once replaced by a plain call (no idempotency record)
    import importlib

    for stage in GUARDED_STAGES:
        module = importlib.import_module(f"nerloop.stages.{stage}")
        monkeypatch.setattr(module, "run_stage_once", lambda _table, _action, _key, effect, *_variants: effect())
    # When every event is delivered twice
    run = chaos.run_loop("duplicates-unguarded", scenario, folder, duplicate_events=True)
    # Then the comparison catches a duplicate effect (a second detection job for a version, at least)
    assert state_differences(clean.state, run.state) != []


def test_twenty_percent_transient_faults_end_in_the_clean_state(clean: chaos.Run, scenario: chaos.Scenario,
                                                                folder: Path) -> None:
    run = chaos.check_faults(scenario, folder, clean, rate=0.2, outage_rate=0.0, fault_seed=11)

    assert run.figures.faults[S3] > 0 and run.figures.faults[DYNAMODB] > 0
    assert run.figures.retries > 0
    assert state_differences(clean.state, run.state) == []
    assert run.figures.ok, run.figures.notes


def test_faults_that_outlast_the_client_retries_are_retried_by_the_runtime(clean: chaos.Run,
                                                                           scenario: chaos.Scenario,
                                                                           folder: Path) -> None:
    # 1 call in 200 fails through all of its client retries: deliveries fail, are retried (or
    # dead-lettered and redriven), and the loop still ends where the clean run did.
    run = chaos.check_faults(scenario, folder, clean, rate=0.0, outage_rate=0.005, fault_seed=5, name="outages")

    assert run.figures.surfaced > 0 and run.figures.failed > 0
    assert state_differences(clean.state, run.state) == []


def test_a_dead_lettered_stage_is_redriven_to_the_clean_state_and_a_second_redrive_changes_nothing(
        clean: chaos.Run, scenario: chaos.Scenario, folder: Path) -> None:
    run = chaos.check_redrive(scenario, folder, clean)

    assert run.figures.notes == []  # the dead letters held the original events; redriving twice was a no-op
    assert run.figures.redriven == 2 * scenario.batch
    assert run.figures.dead_letters == 0
    assert run.figures.equal == "yes"


def test_a_permanent_failure_keeps_the_original_event_in_the_dead_letter_queue(scenario: chaos.Scenario,
                                                                               folder: Path) -> None:
    injector = FaultInjector(rate=0.0)
    injector.deny("s3", "GetObject", function="MergeFunction")
    with LocalRuntime(folder / "dlq", scenario.parameters(), reviewer=scenario.reviewer(),
                      environment=CHAOS_ENVIRONMENT, faults=injector, autosave=False, restore=False) as runtime:
        runtime.put_text("raw/offerings.txt", scenario.raw_text())
        runtime.label_with_manifest(scenario.seed_manifest(),
                                    job_name=f"{runtime.stack.labeling_job_prefix()}-chaos-seed")
        runtime.run_until_idle(max_cycles=scenario.max_cycles)
        dead = runtime.dead_letters("MergeFunction")
        delivered = [d for d in runtime.deliveries if d.function == "MergeFunction" and d.outcome == "dead-letter"]

        assert len(dead) == scenario.batch == len(delivered)
        for letter in dead:
            event = letter["event"]
            assert event["detail-type"] == "SageMaker A2I HumanLoop Status Change"
            assert event["detail"]["humanLoopStatus"] == "Completed"
            assert runtime.state.loops.get(event["detail"]["humanLoopName"]).status == "InProgress"
            assert letter["attempts"] == runtime.wiring["MergeFunction"].max_attempts
            assert "AccessDenied" in letter["error"]
        assert runtime.state.counters.get("REVIEWS") == 0
