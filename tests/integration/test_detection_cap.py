"""Issue 13, part 3: a round's detection is capped (DetectionDocumentsPerRound), and which documents it
takes follows nerloop.detection_policy. In local mode, through the very handlers that run on AWS: a pool
five times the cap, round after round of train → detect → route → review → retrain."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nerloop.documents import document_hash
from nerloop.stages import route
from nerloop.state import ACCEPTED, GOLD, IN_REVIEW, WAITING, Job
from nerloop_local.emulator.runtime import LocalRuntime

CAP = 10
POOL = 5 * CAP
ROUNDS = 6
BUDGET = 2  # reviews a round, and the retrain batch: every round's reviews start the next round


def no_entities(name: str, content: str) -> list[Any]:
    """A reviewer who finds nothing: every loop is answered at once, so a retrain follows each round."""
    return []


@pytest.fixture(autouse=True)
def routings_a_second_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each routing's stamps a second after the last. Stamps have whole seconds: on a fast machine several
    rounds fall in one second, and "waiting longest" would then be decided by the tie-break (the document's
    hash) alone."""
    start, ticks = time.time(), itertools.count()
    monkeypatch.setattr(route, "now", lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + next(ticks))))


@pytest.fixture
def runtime(tmp_path: Path, sample_dir: Path) -> Iterator[LocalRuntime]:
    local = LocalRuntime(tmp_path / "workspace",
                         {"EntityTypes": "SERVICE,VERSION", "F1Tolerance": "1", "TestShare": "0",
                          "DetectionDocumentsPerRound": str(CAP),
                          "ReviewBudget": str(BUDGET), "RetrainBatchSize": str(BUDGET)},
                         reviewer=no_entities, environment={"POWERTOOLS_METRICS_DISABLED": "true"}, autosave=False)
    local.start()
    yield local
    local.close(save=False)


def pool_texts(sample_dir: Path, seed: list[str]) -> list[str]:
    """POOL distinct sentences of the sample's test file that are not in the seed."""
    lines = (sample_dir / "test.csv").read_text(encoding="utf-8").splitlines()
    distinct = dict.fromkeys(line.strip() for line in lines if line.strip() and line.strip() not in seed)
    texts = list(distinct)[:POOL]
    assert len(texts) == POOL
    return texts


def round_jobs(runtime: LocalRuntime) -> list[Job]:
    """The detection jobs of the rounds so far, in version order."""
    return sorted(runtime.state.jobs.list(), key=lambda job: int(job.version.removeprefix("v")))


def detected_texts(runtime: LocalRuntime, job: Job) -> list[str]:
    return runtime.get_text(job.input_key).splitlines()


def test_each_round_detects_at_most_the_cap_new_documents_first(runtime: LocalRuntime, sample_dir: Path) -> None:
    # Given a pool five times the cap, all of it there before the first version (no batch detection)
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed_manifest = b"".join(itertools.islice(manifest, 45))
    seed = [json.loads(line)["source"].strip() for line in seed_manifest.decode("utf-8").splitlines()]
    texts = pool_texts(sample_dir, seed)
    for text in texts:
        assert runtime.state.pool.add(document_hash(text), text, batch="cap-test")

    # When the seed is labelled and the loop runs round after round
    runtime.label_with_manifest(seed_manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-cap-seed")
    failures: list[str] = []
    for _ in range(400):
        failures += [delivery.line() for delivery in runtime.cycle() if delivery.outcome != "ok"]
        if len(round_jobs(runtime)) >= ROUNDS:  # the last round's input is written when its job starts
            break
    jobs = round_jobs(runtime)[:ROUNDS]
    assert failures == [] and runtime.dead_letters() == []
    assert [job.version for job in jobs] == [f"v{n}" for n in range(1, ROUNDS + 1)]

    # Then no round detected more than the cap, each took the full cap while the pool had that many
    rounds = [detected_texts(runtime, job) for job in jobs]
    assert [job.documents for job in jobs] == [len(lines) for lines in rounds] == [CAP] * ROUNDS
    # and the first five rounds took the never-detected documents first: the whole pool, each once
    first_pass = [text for lines in rounds[:POOL // CAP] for text in lines]
    assert sorted(first_pass) == sorted(texts)
    # and the sixth, with nothing new left, went back to the documents waiting longest: those the first round
    # left waiting (uncertain over the review budget; those reviewed are gold and out of the pool, and those it
    # accepted rank after every waiting one)
    sixth = set(rounds[POOL // CAP])
    state = runtime.state
    first_round_left = {text for text in rounds[0]
                        if (pool := state.pool.get(document_hash(text))) and pool.status == WAITING
                        and pool.seen_by == "v1"}
    assert first_round_left and first_round_left <= sixth


def test_route_records_what_the_policy_reads(runtime: LocalRuntime, sample_dir: Path) -> None:
    # Given one round routed over a pool of more than the cap
    with (sample_dir / "output.manifest").open("rb") as manifest:
        seed_manifest = b"".join(itertools.islice(manifest, 45))
    seed = [json.loads(line)["source"].strip() for line in seed_manifest.decode("utf-8").splitlines()]
    texts = pool_texts(sample_dir, seed)[: 2 * CAP]
    for text in texts:
        runtime.state.pool.add(document_hash(text), text, batch="cap-test")
    runtime.label_with_manifest(seed_manifest, job_name=f"{runtime.stack.labeling_job_prefix()}-cap-seed")
    for _ in range(200):
        runtime.cycle()
        if any(doc.seen_by for doc in runtime.state.pool.documents()):  # v1's output is routed (in one go)
            break

    # Then each detected document carries its detection's version and time, and those found uncertain
    # (left waiting by the budget, or sent to review as uncertain) the version that found them so
    job = next(job for job in runtime.state.jobs.list() if job.version == "v1")
    detected = {document_hash(text) for text in detected_texts(runtime, job)}
    items = {doc.doc: doc for doc in runtime.state.pool.documents()}
    assert len(detected) == CAP
    for doc, item in items.items():
        if doc not in detected:
            assert (item.seen_by, item.detected_at, item.status) == ("", "", WAITING)
            continue
        assert item.seen_by == "v1" and item.detected_at, item
        if item.status == WAITING:
            assert item.uncertain_by == "v1"
        assert item.status in (WAITING, ACCEPTED, IN_REVIEW, GOLD)
